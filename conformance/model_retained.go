package conformance

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on retained messages, and their comparison with the model.

// checkRetained compares every retained message with the model.
func (r *modelRunner) checkRetained(ctx context.Context) {
	n, err := r.rs.Count(ctx)
	if err != nil || n != uint64(len(r.m.retained)) {
		r.failf("Retained.Count() = %d, %v; want %d, nil", n, errString(err), len(r.m.retained))
	}
	r.loadRetained(ctx, "Retained.Load()", nil, true, 0)
	for _, topic := range modelTopics {
		got, err := r.rs.Get(ctx, topic)
		want := r.m.retained[topic]
		if want == nil {
			if !errMatches(err, errNotFound) {
				r.failf("Retained.Get(%q) of a topic with no retained message: got error %v, want ErrNotFound", topic, errString(err))
			}
			continue
		}
		if err != nil {
			r.failf("Retained.Get(%q): got error %v, want nil", topic, errString(err))
		}
		if d := diffPacket(got, want, false); d != "" {
			r.failf("Retained.Get(%q): %s", topic, d)
		}
		scribblePacket(got)
	}
}

// loadRetained runs Load (all) or LoadMatching(filters) and compares what it delivers
// with the model. stopAt > 0 stops after that many messages.
func (r *modelRunner) loadRetained(ctx context.Context, what string, filters []string, all bool, stopAt int) {
	want := map[string]*persistence.PersistedPacket{}
	for topic, p := range r.m.retained {
		if all || slices.ContainsFunc(filters, func(f string) bool { return persistence.MatchTopic(f, topic) }) {
			want[topic] = p
		}
	}
	seen := map[string]bool{}
	var mismatch string
	fn := func(m *persistence.RetainedMessage) error {
		w := want[m.Topic]
		switch {
		case stopAt > 0 && len(seen) >= stopAt:
			mismatch = fmt.Sprintf("callback called again (topic %q) after it returned ErrStopIteration", m.Topic)
		case seen[m.Topic]:
			mismatch = fmt.Sprintf("topic %q delivered twice", m.Topic)
		case w == nil && r.m.retained[m.Topic] == nil:
			mismatch = fmt.Sprintf("delivered topic %q, which has no retained message", m.Topic)
		case w == nil:
			mismatch = fmt.Sprintf("delivered topic %q, which matches none of the filters", m.Topic)
		default:
			if d := diffPacket(m.Packet, w, false); d != "" {
				mismatch = fmt.Sprintf("topic %q: %s", m.Topic, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[m.Topic] = true
		scribblePacket(m.Packet)
		if stopAt > 0 && len(seen) == stopAt {
			return persistence.ErrStopIteration
		}
		return nil
	}
	var err error
	if all {
		err = r.rs.Load(ctx, fn)
	} else {
		err = r.rs.LoadMatching(ctx, filters, fn)
	}
	if mismatch != "" {
		r.failf("%s: %s", what, mismatch)
	}
	if err != nil {
		r.failf("%s: got error %v, want nil", what, errString(err))
	}
	if stopAt > 0 {
		return
	}
	for _, topic := range slices.Sorted(maps.Keys(want)) {
		if !seen[topic] {
			r.failf("%s did not deliver topic %q (delivered %d of %d)", what, topic, len(seen), len(want))
		}
	}
}

func (r *modelRunner) retainedPacket() *persistence.PersistedPacket {
	p := r.packet()
	p.Seq = 0
	return p
}

func (r *modelRunner) opRetainedPut(ctx context.Context) {
	topic := pick(r, modelTopics)
	p, bad := r.retainedPacket(), false
	switch x := r.rng.IntN(100); {
	case x < 2:
		topic, bad = "", true
	case x < 3:
		p, bad = nil, true
	case x < 4:
		p.QoS, bad = 3, true
	}
	r.begin("Retained.Put(%q, %s)", topic, fmtPacket(p))
	mp := p.Clone()
	err := r.rs.Put(ctx, topic, p)
	if bad {
		r.expect(err, errInvalid)
		return
	}
	r.expect(err, errNil)
	r.m.retained[topic] = mp
	scribblePacket(p)
}

func (r *modelRunner) opRetainedGet(ctx context.Context) {
	topic := pick(r, modelTopics)
	if r.pct(10) {
		topic = pick(r, modelMatchFilters) // wildcards are literal bytes to Get
	}
	r.begin("Retained.Get(%q)", topic)
	got, err := r.rs.Get(ctx, topic)
	want := r.m.retained[topic]
	if want == nil {
		r.expect(err, errNotFound)
		return
	}
	r.expect(err, errNil)
	if d := diffPacket(got, want, false); d != "" {
		r.failf("Retained.Get: %s", d)
	}
	scribblePacket(got)
}

func (r *modelRunner) opRetainedDelete(ctx context.Context) {
	topic := pick(r, modelTopics)
	r.begin("Retained.Delete(%q)", topic)
	r.expect(r.rs.Delete(ctx, topic), errNil)
	delete(r.m.retained, topic)
}

func (r *modelRunner) opRetainedLoadMatching(ctx context.Context) {
	var filters []string
	for range r.rng.IntN(4) {
		filters = append(filters, pick(r, modelMatchFilters))
	}
	stopAt := 0
	if r.pct(20) {
		stopAt = 1 + r.rng.IntN(3)
	}
	r.begin("Retained.LoadMatching(%q, stop after %d)", filters, stopAt)
	r.loadRetained(ctx, fmt.Sprintf("Retained.LoadMatching(%q)", filters), filters, false, stopAt)
}

func (r *modelRunner) opRetainedStore(ctx context.Context) {
	msgs := make([]*persistence.RetainedMessage, r.rng.IntN(7))
	bad := false
	for i := range msgs {
		msgs[i] = &persistence.RetainedMessage{Topic: pick(r, modelTopics), Packet: r.retainedPacket()}
	}
	if len(msgs) > 0 && r.pct(10) {
		m := pick(r, msgs)
		if r.pct(50) {
			m.Topic = ""
		} else {
			m.Packet.QoS = 3
		}
		bad = true
	}
	topics := make([]string, len(msgs))
	for i, m := range msgs {
		topics[i] = m.Topic
	}
	r.begin("Retained.Store(%q, invalid %v)", topics, bad)
	want := map[string]*persistence.PersistedPacket{}
	for _, m := range msgs {
		want[m.Topic] = m.Packet.Clone() // later messages for a topic win
	}
	err := r.rs.Store(ctx, msgs)
	if bad {
		r.expect(err, errInvalid)
		r.checkRetained(ctx) // atomic: a failed Store changes nothing
		return
	}
	r.expect(err, errNil)
	r.m.retained = want
	for _, m := range msgs {
		scribblePacket(m.Packet)
	}
}

func (r *modelRunner) opRetainedWipeOrLoad(ctx context.Context) {
	if r.pct(30) {
		r.begin("Retained.Wipe()")
		r.expect(r.rs.Wipe(ctx), errNil)
		r.m.retained = map[string]*persistence.PersistedPacket{}
		return
	}
	r.begin("Retained.Load()")
	r.loadRetained(ctx, "Retained.Load()", nil, true, 0)
}

func (r *modelRunner) opRetainedCount(ctx context.Context) {
	r.begin("Retained.Count()")
	n, err := r.rs.Count(ctx)
	r.expect(err, errNil)
	if n != uint64(len(r.m.retained)) {
		r.failf("Retained.Count() = %d, want %d", n, len(r.m.retained))
	}
}
