package main

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
)

// waitStats waits until cond holds for b's statistics, bounded by ctx.
func waitStats(ctx context.Context, t *testing.T, b *broker.Broker, what string, cond func(broker.Stats) bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond(b.Stats()) {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %+v", what, b.Stats())
		case <-tick.C:
		}
	}
}

// runAsync starts run(cfg) and returns a function waiting for its outcome.
func runAsync(ctx context.Context, t *testing.T, cfg config) func() result {
	t.Helper()
	type outcome struct {
		res result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := run(ctx, cfg, io.Discard)
		done <- outcome{res, err}
	}()
	return func() result {
		t.Helper()
		select {
		case o := <-done:
			if o.err != nil && !errors.Is(o.err, context.Canceled) {
				t.Fatalf("run: %v", o.err)
			}
			return o.res
		case <-ctx.Done():
			t.Fatal("mqttload did not finish")
			return result{}
		}
	}
}

// TestSpreadOverTwoBrokers: -pub-addr and -sub-addr spread the clients round-robin.
// On two independent brokers with as many publishers as subscribers, publisher i
// and subscriber i (topic i) share broker i mod 2, so everything arrives only if
// every client is where the spreading says; each broker sees half the clients and
// half the messages.
func TestSpreadOverTwoBrokers(t *testing.T) {
	ba, a := startMemBroker(t)
	bb, b := startMemBroker(t)
	list := a + "," + b
	for q, qos := range []string{"0", "1"} {
		res := smoke(t, "-pub-addr", list, "-sub-addr", list, "-pubs", "4", "-subs", "4", "-qos", qos, "-count", "400", "-prefix", "spread"+qos)
		if res.Received != 400 || res.Failovers != 0 || len(res.PubAddrs) != 2 || len(res.SubAddrs) != 2 {
			t.Fatalf("QoS %s: %+v", qos, res)
		}
		for name, br := range map[string]*broker.Broker{"a": ba, "b": bb} {
			if st := br.Stats(); st.Connections != int64(4*(q+1)) || st.MessagesIn != int64(200*(q+1)) {
				t.Fatalf("QoS %s: broker %s saw %d connections and %d messages, want %d and %d", qos, name, st.Connections, st.MessagesIn, 4*(q+1), 200*(q+1))
			}
		}
	}

	// Publishers on a, subscribers on b: two brokers that share nothing deliver
	// nothing, and the tool must say so.
	var out, errb discard
	if code := mainErr([]string{"-pub-addr", a, "-sub-addr", b, "-count", "10", "-qos", "1", "-settle", "300ms", "-timeout", "30s", "-progress=false"}, &out, &errb); code != 1 {
		t.Fatalf("messages across unconnected brokers: exit %d, want 1", code)
	}
	if code := mainErr([]string{"-sub-addr", a + ",192.0.2.1:1883", "-count", "1", "-timeout", "1s"}, &out, &errb); code != 2 {
		t.Fatalf("remote -sub-addr: exit %d, want 2", code)
	}
}

// TestFailoverToNextBroker: with -reconnect, the clients of a broker that goes away
// reconnect to the next address of their list and go on there (clean sessions, as
// the two brokers share no state).
func TestFailoverToNextBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ba, a := startMemBroker(t)
	bb, b := startMemBroker(t)
	list := a + "," + b
	cfg := config{Addr: a, PubAddr: list, SubAddr: list, Phase: "run", Pubs: 2, Subs: 2, QoS: 1, Size: 64, Duration: 3 * time.Second,
		Clean: true, Reconnect: true, Inflight: 8, Settle: 5 * time.Second, Timeout: 50 * time.Second, Prefix: "failover", ConnectTimeout: 5 * time.Second}
	wait := runAsync(ctx, t, cfg)
	waitStats(ctx, t, bb, "messages on b", func(s broker.Stats) bool { return s.MessagesIn > 50 })
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := bb.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	inA := ba.Stats().MessagesIn
	// b's publisher and subscriber reconnect to a, and b's publisher goes on there.
	waitStats(ctx, t, ba, "b's clients on a", func(s broker.Stats) bool { return s.Connections >= 4 && s.Connected == 4 })
	waitStats(ctx, t, ba, "more messages on a", func(s broker.Stats) bool { return s.MessagesIn > inA+100 })
	res := wait()
	t.Logf("acked %d, received %d, reconnects %d, failovers %d", res.Acked, res.Received, res.Reconnects, res.Failovers)
	if res.Failovers != 2 || res.Reconnects != 2 || res.Misrouted != 0 || res.Acked == 0 || res.Received == 0 {
		t.Fatalf("%+v", res)
	}
}

// down closes the proxy's listener and every connection through it: to its clients
// it is a node that died.
func (c *cutter) down() {
	c.l.Close()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cut()
}

// TestFailoverResumesSession: two proxies in front of one broker stand for two nodes
// of a cluster that share the sessions. When the first proxy dies mid-run its
// clients move to the second and resume their persistent sessions, at QoS 1 and 2,
// with every acknowledged message delivered (QoS 2: exactly once).
func TestFailoverResumesSession(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			br, addr := startMemBroker(t)
			p1, p2 := startCutter(t, addr), startCutter(t, addr)
			list := p1.l.Addr().String() + "," + p2.l.Addr().String()
			cfg := config{Addr: addr, PubAddr: list, SubAddr: list, Phase: "run", Pubs: 2, Subs: 2, QoS: qos, Size: 64, Duration: 3 * time.Second,
				Reconnect: true, Inflight: 8, Settle: 10 * time.Second, Timeout: 50 * time.Second, Prefix: "resume", ConnectTimeout: 5 * time.Second}
			wait := runAsync(ctx, t, cfg)
			waitStats(ctx, t, br, "messages", func(s broker.Stats) bool { return s.MessagesIn > 100 })
			p1.down()
			res := wait()
			t.Logf("acked %d, received %d, duplicates %d, reconnects %d, failovers %d", res.Acked, res.Received, res.Duplicates, res.Reconnects, res.Failovers)
			if !res.OK || !res.Verified || res.Missing != 0 || res.Duplicates != 0 && qos == 2 || res.Acked == 0 {
				t.Fatalf("%+v", res)
			}
			if res.Failovers != 2 {
				t.Fatalf("%d failovers, want 2 (publisher 0 and subscriber 0): %+v", res.Failovers, res)
			}
		})
	}
}
