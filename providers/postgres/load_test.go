package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/postgres"
)

// TestLoadForEachRanges loads the same 3000 sessions (0 to 3 subscriptions each,
// some with a state or an expiry) in one range and in many ranges of the session
// hash: both visit every session once, with the same contents.
func TestLoadForEachRanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := harness("").New(t)
	ss := p.Sessions()
	const n = 3000
	due := time.Unix(1_900_000_000, 0)
	var b persistence.Batch
	for i := range n {
		id := fmt.Sprintf("ranges-%05d", i)
		b.Create(id, persistence.SessionBase{ProtocolVersion: 5})
		for s := range i % 4 {
			b.SubscriptionStore(id, persistence.Subscription{Filter: fmt.Sprintf("a/%d/+/%d", i, s), QoS: byte(s % 3), ID: uint32(s + 1)})
		}
		if i%3 == 0 {
			b.StateStore(id, &persistence.SessionState{ProtocolVersion: 5, Username: "u" + id})
		}
		if i%5 == 0 {
			b.ExpiryStore(id, persistence.SessionExpiry{ExpireAt: due.Add(time.Duration(i) * time.Second)})
		}
		if b.Len() > 500 || i == n-1 {
			if _, err := ss.Apply(ctx, &b); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			b.Reset()
		}
	}
	load := func(what string) map[string]*persistence.LoadedSession {
		t.Helper()
		got := make(map[string]*persistence.LoadedSession, n)
		err := ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
			if _, dup := got[ls.ID]; dup {
				return fmt.Errorf("session %q visited twice", ls.ID)
			}
			slices.SortFunc(ls.Subscriptions, func(a, b persistence.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
			got[ls.ID] = ls
			return nil
		})
		if err != nil || len(got) != n {
			t.Fatalf("%s: LoadForEach visited %d sessions, error %v; want %d", what, len(got), err, n)
		}
		return got
	}
	whole := load("one range")
	for i := range n {
		ls := whole[fmt.Sprintf("ranges-%05d", i)]
		if ls == nil || len(ls.Subscriptions) != i%4 || (ls.State != nil) != (i%3 == 0) || (ls.Expiry != nil) != (i%5 == 0) {
			t.Fatalf("one range: session %d loaded as %+v", i, ls)
		}
	}
	var heap int64
	if err := postgres.Pool(p).QueryRow(ctx,
		`SELECT pg_relation_size('mqtt_sessions') + pg_relation_size('mqtt_subscriptions')`).Scan(&heap); err != nil {
		t.Fatal(err)
	}
	const budget = 16 << 10
	if heap < 8*budget {
		t.Fatalf("the tables hold %d bytes of heap: too few for 8 ranges of %d", heap, budget)
	}
	postgres.SetLoadBudget(p, budget)
	if ranged := load("many ranges"); !reflect.DeepEqual(ranged, whole) {
		for id, ls := range whole {
			if !reflect.DeepEqual(ranged[id], ls) {
				t.Fatalf("session %q: one range loaded %+v, many ranges %+v", id, ls, ranged[id])
			}
		}
	}
}
