package mem

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
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
				q.push(&persistence.PersistedPacket{Seq: seq})
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
			nodes = append(nodes, x.insert("id", persistence.SessionExpiry{ExpireAt: at}))
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
// persistence.MatchTopic over random topics and filters built from a small
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
			if persistence.MatchTopic(f, tp) {
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
