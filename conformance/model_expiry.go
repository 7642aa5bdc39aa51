package conformance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on session deadlines and ExpiredForEach.

func (r *modelRunner) opExpiryStore(ctx context.Context) {
	id := r.pickID()
	e := r.expiry()
	r.begin("ExpiryStore(%q, {ExpireAt %s, WillAt %s})", id, fmtTime(e.ExpireAt), fmtTime(e.WillAt))
	err := r.ss.ExpiryStore(ctx, id, e)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].exp = e
	}
}

func (r *modelRunner) opExpiryGet(ctx context.Context) {
	id := r.pickID()
	r.begin("ExpiryGet(%q)", id)
	got, err := r.ss.ExpiryGet(ctx, id)
	want := r.sessionWant(id, false)
	if want == errNil && r.m.sessions[id].exp.IsZero() {
		want = errNotFound
	}
	r.expect(err, want)
	if want == errNil {
		if d := diffExpiry(got, r.m.sessions[id].exp); d != "" {
			r.failf("ExpiryGet: %s", d)
		}
	}
}

func (r *modelRunner) opExpiryDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("ExpiryDelete(%q)", id)
	err := r.ss.ExpiryDelete(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].exp = persistence.SessionExpiry{}
	}
}

// opExpiredForEach iterates the due sessions at a random now; the callback deletes
// some, clears or postpones the deadlines of others, and sometimes stops or fails.
func (r *modelRunner) opExpiredForEach(ctx context.Context) {
	now := modelEpoch.Add(time.Duration(r.rng.IntN(700_000)-20_000) * time.Millisecond)
	var deadlines []time.Time
	for _, id := range r.m.ids() {
		if e := r.m.sessions[id].exp; !e.IsZero() {
			deadlines = append(deadlines, e.ExpireAt, e.WillAt)
		}
	}
	deadlines = slices.DeleteFunc(deadlines, time.Time.IsZero)
	if len(deadlines) > 0 && r.pct(25) {
		now = pick(r, deadlines) // exactly at a deadline: "at or before now" is due
	}
	cb := cbRand(r.rng.Uint64())
	due := map[string]persistence.SessionExpiry{}
	for id, s := range r.m.sessions {
		if !s.exp.IsZero() && s.exp.Due(now) {
			due[id] = s.exp
		}
	}
	r.begin("ExpiredForEach(now %s) with %d due", fmtTime(now), len(due))
	var (
		visited  []string
		seen     = map[string]bool{}
		lastNext time.Time
		ended    string
		mismatch string
	)
	err := r.ss.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error {
		w, ok := due[id]
		switch {
		case ended != "":
			mismatch = fmt.Sprintf("callback called again (session %q) after it stopped the iteration (%s)", id, ended)
		case seen[id]:
			mismatch = fmt.Sprintf("called twice for session %q", id)
		case !ok && r.m.sessions[id] == nil:
			mismatch = fmt.Sprintf("called for session %q, which does not exist", id)
		case !ok:
			mismatch = fmt.Sprintf("called for session %q, whose deadlines {ExpireAt %s, WillAt %s} are not at or before now %s",
				id, fmtTime(r.m.sessions[id].exp.ExpireAt), fmtTime(r.m.sessions[id].exp.WillAt), fmtTime(now))
		case len(visited) > 0 && e.Next().Before(lastNext):
			mismatch = fmt.Sprintf("not earliest deadline first: session %q (deadline %s) after one with deadline %s",
				id, fmtTime(e.Next()), fmtTime(lastNext))
		default:
			if d := diffExpiry(e, w); d != "" {
				mismatch = fmt.Sprintf("session %q: %s", id, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[id] = true
		visited = append(visited, id)
		lastNext = e.Next()
		// The callback may delete the session or change its deadlines.
		var err error
		var what string
		switch h := cb.of(id) % 20; {
		case h < 3:
			what = "Delete"
			if err = r.ss.Delete(ctx, id); err == nil {
				delete(r.m.sessions, id)
			}
		case h < 5:
			what = "ExpiryDelete"
			if err = r.ss.ExpiryDelete(ctx, id); err == nil {
				r.m.sessions[id].exp = persistence.SessionExpiry{}
			}
		case h < 7:
			what = "ExpiryStore (postpone)"
			ne := persistence.SessionExpiry{ExpireAt: now.Add(time.Duration(1+cb.of(id)%100) * time.Second)}
			if err = r.ss.ExpiryStore(ctx, id, ne); err == nil {
				r.m.sessions[id].exp = ne
			}
		case h < 8:
			ended = "stop"
			return persistence.ErrStopIteration
		case h < 9:
			ended = "error"
			return errModelCallback
		}
		if err != nil {
			mismatch = fmt.Sprintf("%s(%q) from inside the callback: got error %v, want nil", what, id, errString(err))
			return errModelMismatch
		}
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	if ended == "error" {
		r.expect(err, errCallback)
	} else {
		r.expect(err, errNil)
	}
	if ended == "" {
		for _, id := range slices.Sorted(maps.Keys(due)) {
			if !seen[id] {
				r.failf("not called for session %q, whose deadline %s is at or before now %s",
					id, fmtTime(due[id].Next()), fmtTime(now))
			}
		}
		return
	}
	for id, e := range due {
		if !seen[id] && e.Next().Before(lastNext) {
			r.failf("stopped after session with deadline %s, but session %q with the earlier deadline %s was not visited",
				fmtTime(lastNext), id, fmtTime(e.Next()))
		}
	}
}
