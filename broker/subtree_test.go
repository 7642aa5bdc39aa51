package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// TestSubTreeAgainstMatchTopic checks that the subscription tree proposes every
// (filter, session) that persistence.MatchTopic accepts, on random filters and
// topics over a small alphabet (so that they collide), also after removals.
func TestSubTreeAgainstMatchTopic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []string{"a", "b", "", "$SYS", "$x"}
	randTopic := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = levels[rng.IntN(len(levels))]
		}
		return strings.Join(parts, "/")
	}
	randFilter := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			switch r := rng.IntN(10); {
			case r < 3:
				parts[i] = "+"
			case r == 3 && i == n-1:
				parts[i] = "#"
			default:
				parts[i] = levels[rng.IntN(len(levels))]
			}
		}
		return strings.Join(parts, "/")
	}
	sessions := make([]*session, 20)
	for i := range sessions {
		sessions[i] = newSession(fmt.Sprint("s", i))
	}
	type entry struct {
		filter string
		s      *session
	}
	var tree subTree
	live := map[entry]bool{}
	for round := range 2000 {
		e := entry{randFilter(), sessions[rng.IntN(len(sessions))]}
		if persistence.ValidFilter(e.filter) != nil {
			continue
		}
		if live[e] && rng.IntN(2) == 0 {
			tree.remove(e.filter, e.s)
			delete(live, e)
		} else {
			tree.add(e.filter, e.s)
			live[e] = true
		}
		topic := randTopic()
		var got []string
		tree.match(topic, func(f string, s *session) {
			if persistence.MatchTopic(f, topic) {
				got = append(got, f+" "+s.id)
			}
		})
		var want []string
		for e := range live {
			if persistence.MatchTopic(e.filter, topic) {
				want = append(want, e.filter+" "+e.s.id)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d, topic %q: tree proposed %q, MatchTopic accepts %q", round, topic, got, want)
		}
	}
	for e := range live {
		tree.remove(e.filter, e.s)
	}
	if len(tree.root.children) != 0 {
		t.Fatalf("tree not pruned after removing every entry: %d children left", len(tree.root.children))
	}
}

// BenchmarkMatch10kSessions routes a message among 10000 sessions, each with one
// subscription of its own and one shared wildcard every 100th session has.
func BenchmarkMatch10kSessions(b *testing.B) {
	br := &Broker{sessions: map[string]*session{}}
	for i := range 10000 {
		s := newSession(fmt.Sprint("c", i))
		filters := []string{fmt.Sprintf("dev/%d/cmd", i)}
		if i%100 == 0 {
			filters = append(filters, "dev/+/cmd")
		}
		for _, f := range filters {
			s.subs[f] = persistence.Subscription{Filter: f, QoS: 1}
			br.subs.add(f, s)
		}
		br.sessions[s.id] = s
	}
	b.ReportAllocs()
	for i := range b.N {
		if got := br.match("x", fmt.Sprintf("dev/%d/cmd", i%10000), 1); len(got) < 1 {
			b.Fatalf("no target")
		}
	}
}
