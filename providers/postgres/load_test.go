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

// TestPacketStatsPages counts the packets of 100 sessions (some with none, some
// with identical packets that carry an expiry, which the server groups by header)
// in one page and in pages of 7 sessions: both give every session's counts and
// bytes, each session once.
func TestPacketStatsPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := harness("").New(t)
	ss := p.Sessions()
	const n = 100
	want := map[string]persistence.PacketStats{}
	var b persistence.Batch
	for i := range n {
		id := fmt.Sprintf("stats-%03d", i)
		b.Create(id, persistence.SessionBase{ProtocolVersion: 5})
		st := persistence.PacketStats{ID: id}
		for k := range i % 5 {
			data := make([]byte, 100*k+i)
			pk := &persistence.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, Data: data}
			if k%2 == 1 { // the same expiry and length each time: one group on the server
				pk.ExpireAt = time.Unix(1_900_000_000, 0)
			}
			class := []persistence.PacketClass{persistence.ClassQoS12, persistence.ClassUnAck}[k%2]
			b.PacketAppend(id, class, pk)
			b.PacketAppend(id, class, pk)
			cs := &st.Classes[class-1]
			cs.Count += 2
			cs.Bytes += 2 * uint64(len(data))
		}
		if !st.Empty() {
			want[id] = st
		}
	}
	if _, err := ss.Apply(ctx, &b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, page := range []int{10000, 7} {
		postgres.SetStatsPage(p, page)
		got := map[string]persistence.PacketStats{}
		err := ss.PacketStatsForEach(ctx, func(st *persistence.PacketStats) error {
			if _, dup := got[st.ID]; dup {
				return fmt.Errorf("session %q visited twice", st.ID)
			}
			if !st.Empty() {
				got[st.ID] = *st
			}
			return nil
		})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d: PacketStatsForEach = %v, error %v; want %v", page, got, err, want)
		}
	}
}
