package conformance

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on subscriptions.

func (r *modelRunner) opSubscriptionsStore(ctx context.Context) {
	id := r.pickID()
	subs := make([]persistence.Subscription, 1+r.rng.IntN(3))
	bad := false
	for i := range subs {
		if r.pct(3) {
			subs[i], bad = r.invalidSubscription(), true
		} else {
			subs[i] = r.subscription()
		}
	}
	r.begin("SubscriptionsStore(%q, %+v)", id, subs)
	err := r.ss.SubscriptionsStore(ctx, id, subs...)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil && r.pct(50) {
			r.checkSession(ctx, id)
		}
		return
	}
	s := r.m.sessions[id]
	if s.subs == nil {
		s.subs = map[string]persistence.Subscription{}
	}
	for _, sub := range subs {
		s.subs[sub.Filter] = sub // the last one for a filter wins
	}
}

func (r *modelRunner) opSubscriptionsDelete(ctx context.Context) {
	id := r.pickID()
	filters := make([]string, 1+r.rng.IntN(3))
	for i := range filters {
		filters[i] = pick(r, modelFilters)
	}
	r.begin("SubscriptionsDelete(%q, %q)", id, filters)
	err := r.ss.SubscriptionsDelete(ctx, id, filters...)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		for _, f := range filters {
			delete(r.m.sessions[id].subs, f)
		}
	}
}

func (r *modelRunner) opSubscriptionsDeleteAll(ctx context.Context) {
	id := r.pickID()
	r.begin("SubscriptionsDeleteAll(%q)", id)
	err := r.ss.SubscriptionsDeleteAll(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].subs = nil
	}
}

func (r *modelRunner) opSubscriptionsLoad(ctx context.Context) {
	id := r.pickID()
	r.begin("SubscriptionsLoad(%q)", id)
	got, err := r.ss.SubscriptionsLoad(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want != errNil {
		return
	}
	if d := diffSubs(got, r.m.sessions[id].subs); d != "" {
		r.failf("SubscriptionsLoad: %s", d)
	}
	for i := range got {
		got[i].Filter, got[i].QoS = "scribbled", 2
	}
}
