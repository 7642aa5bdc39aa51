package conformance

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on sessions (Create, Delete, Exists, Count, LoadForEach) and their
// state.

func (r *modelRunner) opCreate(ctx context.Context) {
	id := pick(r, modelIDs)
	if len(r.m.sessions) < 5 || r.pct(50) {
		if m := r.missingID(); m != "" {
			id = m
		}
	}
	base := persistence.SessionBase{CreatedAt: r.when(), ProtocolVersion: pick(r, []uint8{3, 4, 5})}
	r.begin("Create(%q, {%s, v%d})", id, fmtTime(base.CreatedAt), base.ProtocolVersion)
	err := r.ss.Create(ctx, id, base)
	if r.m.sessions[id] != nil {
		r.expect(err, errExists)
		return
	}
	r.expect(err, errNil)
	r.m.sessions[id] = &mSession{base: base}
}

func (r *modelRunner) opDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("Delete(%q)", id)
	r.expect(r.ss.Delete(ctx, id), errNil)
	delete(r.m.sessions, id)
	if r.pct(50) {
		r.checkSession(ctx, id)
	}
}

func (r *modelRunner) opExists(ctx context.Context) {
	id := pick(r, modelIDs)
	r.begin("Exists(%q)", id)
	ok, err := r.ss.Exists(ctx, id)
	r.expect(err, errNil)
	if want := r.m.sessions[id] != nil; ok != want {
		r.failf("Exists(%q) = %v, want %v", id, ok, want)
	}
}

func (r *modelRunner) opCount(ctx context.Context) {
	r.begin("Count()")
	n, err := r.ss.Count(ctx)
	r.expect(err, errNil)
	if n != uint64(len(r.m.sessions)) {
		r.failf("Count() = %d, want %d", n, len(r.m.sessions))
	}
}

// opLoadForEach iterates the sessions, sometimes stopping early, sometimes deleting
// the visited session from inside the callback.
func (r *modelRunner) opLoadForEach(ctx context.Context) {
	mode := r.rng.IntN(3) // 0: plain, 1: stop after k sessions, 2: delete some from the callback
	cb := cbRand(r.rng.Uint64())
	total := len(r.m.sessions)
	k := 1 + r.rng.IntN(max(total, 1))
	r.begin("LoadForEach(mode %d, k %d)", mode, k)
	seen := map[string]bool{}
	var mismatch string
	err := r.ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		s := r.m.sessions[ls.ID]
		switch {
		case mode == 1 && len(seen) >= k:
			mismatch = fmt.Sprintf("callback called again (session %q) after it returned ErrStopIteration", ls.ID)
		case seen[ls.ID]:
			mismatch = fmt.Sprintf("visited session %q twice", ls.ID)
		case s == nil:
			mismatch = fmt.Sprintf("visited session %q, which does not exist", ls.ID)
		default:
			if d := diffLoaded(ls, s); d != "" {
				mismatch = fmt.Sprintf("session %q: %s", ls.ID, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[ls.ID] = true
		if mode == 1 && len(seen) == k {
			return persistence.ErrStopIteration
		}
		if mode == 2 && cb.of(ls.ID)%3 == 0 {
			// A callback may call any method of the store, including Delete of the
			// session it is given.
			if err := r.ss.Delete(ctx, ls.ID); err != nil {
				mismatch = fmt.Sprintf("Delete(%q) from inside the LoadForEach callback: got error %v, want nil", ls.ID, errString(err))
				return errModelMismatch
			}
			delete(r.m.sessions, ls.ID)
		}
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	r.expect(err, errNil)
	want := total
	if mode == 1 {
		want = min(k, total)
	}
	if len(seen) != want {
		r.failf("LoadForEach visited %d sessions, want %d", len(seen), want)
	}
}

// ---- state ----

func (r *modelRunner) opStateStore(ctx context.Context) {
	id := r.pickID()
	st, bad := r.state(), false
	switch {
	case r.pct(2):
		st, bad = nil, true
	case r.pct(2) && st.Will != nil:
		st.Will.QoS, bad = 3, true
	}
	r.begin("StateStore(%q, invalid %v)", id, bad)
	mst := st.Clone()
	err := r.ss.StateStore(ctx, id, st)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		return
	}
	r.m.sessions[id].state = mst
	scribbleState(st)
}

func (r *modelRunner) opStateGet(ctx context.Context) {
	id := r.pickID()
	r.begin("StateGet(%q)", id)
	got, err := r.ss.StateGet(ctx, id)
	want := r.sessionWant(id, false)
	if want == errNil && r.m.sessions[id].state == nil {
		want = errNotFound
	}
	r.expect(err, want)
	if want != errNil {
		return
	}
	if d := diffState(got, r.m.sessions[id].state); d != "" {
		r.failf("StateGet: %s", d)
	}
	scribbleState(got)
}

func (r *modelRunner) opStateDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("StateDelete(%q)", id)
	err := r.ss.StateDelete(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].state = nil
	}
}
