package conformance

import (
	"context"
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
)

// Full-state comparisons of the driver with the model: every session, its packets in
// FIFO order, subscriptions, state and deadlines.

func diffLoaded(ls *persistence.LoadedSession, s *mSession) string {
	var d []string
	if !ls.Base.CreatedAt.Equal(s.base.CreatedAt) || ls.Base.ProtocolVersion != s.base.ProtocolVersion {
		d = append(d, fmt.Sprintf("Base {%s, v%d}, want {%s, v%d}", fmtTime(ls.Base.CreatedAt), ls.Base.ProtocolVersion,
			fmtTime(s.base.CreatedAt), s.base.ProtocolVersion))
	}
	if sd := diffState(ls.State, s.state); sd != "" {
		d = append(d, "State: "+sd)
	}
	if sd := diffSubs(ls.Subscriptions, s.subs); sd != "" {
		d = append(d, "Subscriptions: "+sd)
	}
	switch {
	case ls.Expiry == nil && !s.exp.IsZero():
		d = append(d, "Expiry nil, want "+diffExpiry(persistence.SessionExpiry{}, s.exp))
	case ls.Expiry != nil && s.exp.IsZero():
		d = append(d, fmt.Sprintf("Expiry %+v, want nil", *ls.Expiry))
	case ls.Expiry != nil:
		if ed := diffExpiry(*ls.Expiry, s.exp); ed != "" {
			d = append(d, "Expiry: "+ed)
		}
	}
	return strings.Join(d, "; ")
}

// readClass returns the packets of (id, c) in the driver's FIFO order.
func (r *modelRunner) readClass(ctx context.Context, id string, c persistence.PacketClass) []*persistence.PersistedPacket {
	var got []*persistence.PersistedPacket
	err := r.ss.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		got = append(got, p)
		return false, nil
	})
	if err != nil {
		r.failf("PacketsForEach(%q, %s) to read the queue: got error %v, want nil", id, c, errString(err))
	}
	return got
}

// checkClass compares (id, c) with the model: FIFO order, contents, seqs and count.
func (r *modelRunner) checkClass(ctx context.Context, id string, c persistence.PacketClass) {
	want := r.m.sessions[id].queues[c-1]
	got := r.readClass(ctx, id, c)
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			r.failf("queue (%q, %s) in FIFO order: packet #%d (seq %d) missing; got %d packets, want %d: %s",
				id, c, i, want[i].Seq, len(got), len(want), seqList(got, want))
		case i >= len(want):
			r.failf("queue (%q, %s) in FIFO order: unexpected packet #%d (seq %d); got %d packets, want %d: %s",
				id, c, i, got[i].Seq, len(got), len(want), seqList(got, want))
		}
		if d := diffPacket(got[i], want[i], true); d != "" {
			r.failf("queue (%q, %s) in FIFO order: packet #%d: %s (%s)", id, c, i, d, seqList(got, want))
		}
		scribblePacket(got[i])
	}
	n, err := r.ss.PacketCount(ctx, id, c)
	if err != nil || n != uint64(len(want)) {
		r.failf("PacketCount(%q, %s) = %d, %v; want %d, nil", id, c, n, errString(err), len(want))
	}
}

// checkSession compares everything the driver has for id with the model.
func (r *modelRunner) checkSession(ctx context.Context, id string) {
	s := r.m.sessions[id]
	ok, err := r.ss.Exists(ctx, id)
	if err != nil || ok != (s != nil) {
		r.failf("Exists(%q) = %v, %v; want %v, nil", id, ok, errString(err), s != nil)
	}
	if s == nil {
		if _, err := r.ss.PacketCount(ctx, id, persistence.ClassQoS12); !errMatches(err, errNotFound) {
			r.failf("PacketCount(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.SubscriptionsLoad(ctx, id); !errMatches(err, errNotFound) {
			r.failf("SubscriptionsLoad(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.StateGet(ctx, id); !errMatches(err, errNotFound) {
			r.failf("StateGet(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.ExpiryGet(ctx, id); !errMatches(err, errNotFound) {
			r.failf("ExpiryGet(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		return
	}
	for _, c := range persistence.PacketClasses {
		r.checkClass(ctx, id, c)
	}
	subs, err := r.ss.SubscriptionsLoad(ctx, id)
	if err != nil {
		r.failf("SubscriptionsLoad(%q): got error %v, want nil", id, errString(err))
	}
	if d := diffSubs(subs, s.subs); d != "" {
		r.failf("SubscriptionsLoad(%q): %s", id, d)
	}
	st, err := r.ss.StateGet(ctx, id)
	if s.state == nil {
		if !errMatches(err, errNotFound) {
			r.failf("StateGet(%q) of a session without state: got error %v, want ErrNotFound", id, errString(err))
		}
	} else if err != nil {
		r.failf("StateGet(%q): got error %v, want nil", id, errString(err))
	} else if d := diffState(st, s.state); d != "" {
		r.failf("StateGet(%q): %s", id, d)
	}
	e, err := r.ss.ExpiryGet(ctx, id)
	if s.exp.IsZero() {
		if !errMatches(err, errNotFound) {
			r.failf("ExpiryGet(%q) of a session without deadlines: got %+v, %v; want ErrNotFound", id, e, errString(err))
		}
	} else if err != nil {
		r.failf("ExpiryGet(%q): got error %v, want nil", id, errString(err))
	} else if d := diffExpiry(e, s.exp); d != "" {
		r.failf("ExpiryGet(%q): %s", id, d)
	}
}

// checkAll compares the whole observable state of the driver with the model.
func (r *modelRunner) checkAll(ctx context.Context, why string) {
	r.begin("compare the full state (%s)", why)
	r.checks++
	r.lastCheckStep = r.step
	n, err := r.ss.Count(ctx)
	if err != nil || n != uint64(len(r.m.sessions)) {
		r.failf("Count() = %d, %v; want %d, nil (sessions %q)", n, errString(err), len(r.m.sessions), r.m.ids())
	}
	seen := map[string]bool{}
	var mismatch string
	err = r.ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		s := r.m.sessions[ls.ID]
		switch {
		case seen[ls.ID]:
			mismatch = fmt.Sprintf("LoadForEach visited session %q twice", ls.ID)
		case s == nil:
			mismatch = fmt.Sprintf("LoadForEach visited session %q, which does not exist", ls.ID)
		default:
			if d := diffLoaded(ls, s); d != "" {
				mismatch = fmt.Sprintf("LoadForEach: session %q: %s", ls.ID, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[ls.ID] = true
		scribbleState(ls.State)
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	if err != nil {
		r.failf("LoadForEach: got error %v, want nil", errString(err))
	}
	for _, id := range r.m.ids() {
		if !seen[id] {
			r.failf("LoadForEach did not visit session %q", id)
		}
	}
	for _, id := range modelIDs {
		r.checkSession(ctx, id)
	}
	r.checkRetained(ctx)
}
