package broker_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
)

// TestDrainWhilePublishing reconnects a persistent subscriber to a stored backlog
// of 600 messages while four publishers queue 150 more each: the delivery pump
// holds pages of the queue's head and reads the next one while a move commits
// (deliver_ahead.go), and the fan-outs commit in between. Every message arrives
// exactly once, and each publisher's messages in the order it sent them.
func TestDrainWhilePublishing(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		e := newEnv(t, k, broker.Options{})
		s := dialV3(t, e.addr, "drainer", false)
		s.sub(t, "d/#", 1)
		s.close()
		const backlog, pubs, each = 600, 4, 150
		p := dialV3(t, e.addr, "backlog", true)
		for i := range backlog {
			p.pub(t, "d/b", 1, false, fmt.Sprint("b-", i))
		}
		s = dialV3(t, e.addr, "drainer", false)
		errs := make(chan error, pubs)
		for k := range pubs {
			pk := dialV3(t, e.addr, fmt.Sprint("pub", k), true)
			go func() {
				for i := range each {
					tok := pk.c.Publish(fmt.Sprint("d/", k), 1, false, fmt.Sprint(k, "-", i))
					if !tok.WaitTimeout(wait) || tok.Error() != nil {
						errs <- fmt.Errorf("publisher %d, message %d: %v", k, i, tok.Error())
						return
					}
				}
				errs <- nil
			}()
		}
		want := backlog + pubs*each
		seen := make(map[string]bool, want)
		next := map[string]int{} // per publisher: the next index expected
		deadline := time.After(2 * time.Minute)
		for len(seen) < want {
			select {
			case m := <-s.msgs:
				payload := string(m.Payload())
				if seen[payload] {
					t.Fatalf("%q delivered twice (%d of %d received)", payload, len(seen), want)
				}
				seen[payload] = true
				from, idx, _ := strings.Cut(payload, "-")
				i, _ := strconv.Atoi(idx)
				if i != next[from] {
					t.Fatalf("publisher %s: message %d arrived when %d was next", from, i, next[from])
				}
				next[from]++
			case <-deadline:
				t.Fatalf("received %d of %d messages", len(seen), want)
			}
		}
		for range pubs {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}
