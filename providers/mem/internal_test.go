package mem

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// TestQueueModel checks the queue (binary search, lazy deletion, compaction, index
// hints) against a plain sorted slice under random operations.
func TestQueueModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var q queue
		var model []uint64
		var seq uint64
		for step := range 2000 {
			switch op := rng.IntN(10); {
			case op < 5 || len(model) == 0:
				seq += 1 + uint64(rng.IntN(3))
				q.push(&driver.PersistedPacket{Seq: seq})
				model = append(model, seq)
			case op < 7: // ack the head, the common case
				i := q.index(model[0])
				if i < 0 {
					t.Fatalf("round %d step %d: head %d not found", round, step, model[0])
				}
				q.remove(i)
				model = model[1:]
			case op < 9: // delete anywhere
				k := rng.IntN(len(model))
				q.remove(q.index(model[k]))
				model = slices.Delete(model, k, k+1)
			default:
				q.reset()
				model = nil
			}
			if q.live != len(model) {
				t.Fatalf("round %d step %d: live %d, model %d", round, step, q.live, len(model))
			}
			if missing := seq + 1; q.index(missing) >= 0 {
				t.Fatalf("found a seq never pushed")
			}
			if step%50 == 0 || len(model) < 5 {
				var got []uint64
				last, hint := uint64(0), -1
				for {
					i := q.next(last, hint)
					if i < 0 {
						break
					}
					last, hint = q.ents[i].seq, i
					got = append(got, last)
				}
				if !slices.Equal(got, model) {
					t.Fatalf("round %d step %d: iteration %v, model %v", round, step, got, model)
				}
				if dead := len(q.ents) - q.live; dead > max(compactMin, q.live+1) {
					t.Fatalf("round %d step %d: %d dead slots for %d live: compaction missing", round, step, dead, q.live)
				}
			}
		}
	}
}

// TestExpIndexModel checks the skip list against a sorted slice.
func TestExpIndexModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := newExpIndex()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var nodes []*expNode
	for step := range 5000 {
		if len(nodes) == 0 || rng.IntN(3) > 0 {
			at := base.Add(time.Duration(rng.IntN(100)) * time.Millisecond) // many ties
			nodes = append(nodes, x.insert("id", driver.SessionExpiry{ExpireAt: at}))
		} else {
			k := rng.IntN(len(nodes))
			x.remove(nodes[k])
			nodes = slices.Delete(nodes, k, k+1)
		}
		if step%100 != 0 {
			continue
		}
		want := slices.Clone(nodes)
		slices.SortFunc(want, func(a, b *expNode) int {
			if a.key.less(b.key) {
				return -1
			}
			return 1
		})
		var got []*expNode
		for n := x.head.next[0]; n != nil; n = n.next[0] {
			got = append(got, n)
		}
		if !slices.Equal(got, want) || x.n != len(want) {
			t.Fatalf("step %d: skip list order differs from the model (%d vs %d nodes)", step, len(got), len(want))
		}
		for i, n := range want {
			var next *expNode
			if i+1 < len(want) {
				next = want[i+1]
			}
			if a := x.after(n.key); a != next {
				t.Fatalf("step %d: after(%v) is wrong", step, n.key)
			}
		}
	}
}

// TestTrieMatchesMatchTopic checks the retained-topic trie against
// driver.MatchTopic over random topics and filters built from a small
// alphabet of levels (empty levels, '$' levels and misplaced wildcards included).
func TestTrieMatchesMatchTopic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	levels := []string{"", "a", "b", "$SYS", "$", "a\x00", "ab"}
	flevels := append([]string{"+", "#", "+", "#", "a+", "#b"}, levels...)
	gen := func(alphabet []string) string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return strings.Join(parts, "/")
	}
	var tr topicTrie
	stored := map[string]bool{}
	for range 300 {
		tp := gen(levels)
		if tp == "" {
			continue
		}
		tr.insert(tp)
		stored[tp] = true
	}
	// Remove some, checking that pruning keeps the rest reachable.
	for tp := range stored {
		if rng.IntN(3) == 0 {
			tr.remove(tp)
			delete(stored, tp)
		}
	}
	tr.remove("never/stored")
	for range 3000 {
		f := gen(flevels)
		got := tr.match(f, nil)
		slices.Sort(got)
		var want []string
		for tp := range stored {
			if driver.MatchTopic(f, tp) {
				want = append(want, tp)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %q: trie %q, MatchTopic %q", f, got, want)
		}
	}
	for tp := range stored {
		tr.remove(tp)
	}
	if len(tr.root.children) != 0 {
		t.Fatalf("empty trie keeps %d children", len(tr.root.children))
	}
}

func connect(t *testing.T) *conn {
	t.Helper()
	c, err := Config{}.Connect(t.Context(), driver.Env{Clock: driver.SystemClock{}})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*conn)
}

// TestCheck checks that Apply sees the effect of a list's earlier operations when it
// checks a later one (check's views), on the one-session path and on the
// whole-store path, and that a failing list writes nothing.
func TestCheck(t *testing.T) {
	ctx := t.Context()
	p := &driver.PersistedPacket{QoS: 1, Data: []byte("x")}
	for _, tc := range []struct {
		name string
		ops  func(seq uint64) []driver.Op
		want error
	}{
		{"DeleteThenUpdate", func(seq uint64) []driver.Op {
			return []driver.Op{
				{Kind: driver.OpPacketDelete, ID: "s", Class: driver.ClassUnAck, Seq: seq},
				{Kind: driver.OpPacketUpdate, ID: "s", Class: driver.ClassUnAck, Packet: &driver.PersistedPacket{Seq: seq}},
			}
		}, driver.ErrNotFound},
		{"ClearThenUpdate", func(seq uint64) []driver.Op {
			return []driver.Op{
				{Kind: driver.OpPacketsDelete, ID: "s", Class: driver.ClassUnAck},
				{Kind: driver.OpPacketUpdate, ID: "s", Class: driver.ClassUnAck, Packet: &driver.PersistedPacket{Seq: seq}},
			}
		}, driver.ErrNotFound},
		{"OtherClassCleared", func(seq uint64) []driver.Op {
			return []driver.Op{
				{Kind: driver.OpPacketsDelete, ID: "s", Class: driver.ClassQoS0},
				{Kind: driver.OpPacketUpdate, ID: "s", Class: driver.ClassUnAck, Packet: &driver.PersistedPacket{Seq: seq}},
			}
		}, nil},
		{"RecreateThenUpdate", func(seq uint64) []driver.Op {
			return []driver.Op{
				{Kind: driver.OpDelete, ID: "s"},
				{Kind: driver.OpCreate, ID: "s"},
				{Kind: driver.OpPacketUpdate, ID: "s", Class: driver.ClassUnAck, Packet: &driver.PersistedPacket{Seq: seq}},
			}
		}, driver.ErrNotFound},
		{"DeleteThenWrite", func(uint64) []driver.Op {
			return []driver.Op{{Kind: driver.OpDelete, ID: "s"}, {Kind: driver.OpStateDelete, ID: "s"}}
		}, driver.ErrNotFound},
		{"CreateTwice", func(uint64) []driver.Op {
			return []driver.Op{{Kind: driver.OpCreate, ID: "n"}, {Kind: driver.OpCreate, ID: "n"}}
		}, driver.ErrAlreadyExists},
		{"CreateThenWrite", func(uint64) []driver.Op {
			return []driver.Op{{Kind: driver.OpCreate, ID: "n"}, {Kind: driver.OpPacketAppend, ID: "n", Class: driver.ClassQoS0, Packet: p}}
		}, nil},
		{"OtherSessionMissing", func(uint64) []driver.Op {
			return []driver.Op{{Kind: driver.OpStateDelete, ID: "s"}, {Kind: driver.OpStateDelete, ID: "n"}}
		}, driver.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t)
			defer c.Close()
			if _, err := c.Apply(ctx, []driver.Op{{Kind: driver.OpCreate, ID: "s"}}); err != nil {
				t.Fatal(err)
			}
			seqs, err := c.Apply(ctx, []driver.Op{{Kind: driver.OpPacketAppend, ID: "s", Class: driver.ClassUnAck, Packet: p}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Apply(ctx, tc.ops(seqs[0]))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Apply: %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				return
			}
			n, _ := c.Count(ctx)
			k, _ := c.PacketCount(ctx, "s", driver.ClassUnAck)
			if n != 1 || k != 1 {
				t.Fatalf("a failing list wrote: %d sessions, %d packets", n, k)
			}
		})
	}
}

// TestCallsAfterClose calls every method of a closed Conn, as a call racing with
// Close would reach it (the Store stops later calls itself): each must fail with
// ErrClosed, not crash on the released maps.
func TestCallsAfterClose(t *testing.T) {
	ctx := t.Context()
	c := connect(t)
	p := &driver.PersistedPacket{Data: []byte("x")}
	ops := []driver.Op{{Kind: driver.OpCreate, ID: "s"}, {Kind: driver.OpExpiryStore, ID: "s", Expiry: driver.SessionExpiry{ExpireAt: time.Unix(1, 0)}}}
	if _, err := c.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := c.RetainedPut(ctx, "t", p); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Apply":             func() error { _, err := c.Apply(ctx, ops); return err },
		"ApplyOne":          func() error { _, err := c.Apply(ctx, ops[1:]); return err },
		"Exists":            func() error { _, err := c.Exists(ctx, "s"); return err },
		"Count":             func() error { _, err := c.Count(ctx); return err },
		"LoadForEach":       func() error { return c.LoadForEach(ctx, func(*driver.LoadedSession) error { return nil }) },
		"SubscriptionsLoad": func() error { _, err := c.SubscriptionsLoad(ctx, "s"); return err },
		"StateGet":          func() error { _, err := c.StateGet(ctx, "s"); return err },
		"ExpiryGet":         func() error { _, err := c.ExpiryGet(ctx, "s"); return err },
		"ExpiredForEach": func() error {
			return c.ExpiredForEach(ctx, time.Unix(2, 0), func(string, driver.SessionExpiry) error { return nil })
		},
		"PacketGet":   func() error { _, err := c.PacketGet(ctx, "s", driver.ClassQoS0, 1); return err },
		"PacketCount": func() error { _, err := c.PacketCount(ctx, "s", driver.ClassQoS0); return err },
		"PacketsForEach": func() error {
			return c.PacketsForEach(ctx, "s", driver.ClassQoS0, func(*driver.PersistedPacket) (bool, error) { return false, nil })
		},
		"RetainedPut":     func() error { return c.RetainedPut(ctx, "t", p) },
		"RetainedGet":     func() error { _, err := c.RetainedGet(ctx, "t"); return err },
		"RetainedDelete":  func() error { return c.RetainedDelete(ctx, "t") },
		"RetainedLoad":    func() error { return c.RetainedLoad(ctx, nil, func(*driver.RetainedMessage) error { return nil }) },
		"RetainedReplace": func() error { return c.RetainedReplace(ctx, nil) },
		"RetainedCount":   func() error { _, err := c.RetainedCount(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if c.sessions != nil || c.retained != nil || c.exp.n != 0 {
		t.Errorf("Close kept the stored data")
	}
}
