package conformance

import (
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Subscriptions: a set of filters per session, each with its MQTT 5.0 options.

func runSubscriptions(t *testing.T, h Harness) { runCases(t, h, subscriptionCases) }

var subscriptionCases = []tcase{
	{"StoreAndLoad", func(e *env) {
		e.create("s")
		subs := []persistence.Subscription{sub("a/b", 0), sub("a/+", 1), sub("#", 2)}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		e.subsSet("s", subs...)
	}},
	{"EveryOptionRoundTrips", func(e *env) {
		e.create("s")
		var subs []persistence.Subscription
		for i, rh := range []uint8{0, 1, 2} {
			for q := range uint8(3) {
				subs = append(subs, persistence.Subscription{
					Filter: fmt.Sprintf("f/%d/%d", rh, q), QoS: q, NoLocal: q == 1, RetainAsPublished: rh == 2,
					RetainHandling: rh, ID: uint32(268435455 - i),
				})
			}
		}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		e.subsSet("s", subs...)
	}},
	{"LoadEmpty", func(e *env) {
		e.create("s")
		got, err := e.ss.SubscriptionsLoad(e.ctx, "s")
		e.ok(err, "SubscriptionsLoad of a session without subscriptions")
		if len(got) != 0 {
			e.fatalf("got %d subscriptions, want 0", len(got))
		}
	}},
	{"SameFilterReplaces", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a/b", 1), sub("c", 1)), "SubscriptionsStore")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a/b", 2)), "SubscriptionsStore again")
		e.subsSet("s", sub("a/b", 2), sub("c", 1))
	}},
	{"LastInOneCallWins", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a", 1), sub("a", 2), sub("a", 4)), "SubscriptionsStore")
		e.subsSet("s", sub("a", 4))
	}},
	{"DeleteSome", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a", 1), sub("b", 2), sub("c", 3)), "SubscriptionsStore")
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "a", "c"), "SubscriptionsDelete")
		e.subsSet("s", sub("b", 2))
	}},
	{"DeleteMissingIsNoop", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a", 1)), "SubscriptionsStore")
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "nope", "a/+"), "SubscriptionsDelete of missing filters")
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "a"), "SubscriptionsDelete")
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "a"), "SubscriptionsDelete twice")
		e.subsSet("s")
	}},
	{"DeleteAll", func(e *env) {
		e.create("s", "t")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a", 1), sub("b", 2)), "SubscriptionsStore")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "t", sub("a", 1)), "SubscriptionsStore")
		e.ok(e.ss.SubscriptionsDeleteAll(e.ctx, "s"), "SubscriptionsDeleteAll")
		e.ok(e.ss.SubscriptionsDeleteAll(e.ctx, "s"), "SubscriptionsDeleteAll twice")
		e.subsSet("s")
		e.subsSet("t", sub("a", 1))
	}},
	{"FiltersAreNotNormalised", func(e *env) {
		// [MQTT-4.7.3-4] topic filters are compared byte for byte.
		e.create("s")
		var subs []persistence.Subscription
		for i, f := range []string{"a/b", "a/b/", "/a/b", "A/b", "a//b", "a/ b", "a/b ", "caf\u00e9", "cafe\u0301", "\ufeffa"} {
			subs = append(subs, sub(f, i))
		}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		e.subsSet("s", subs...)
	}},
	{"SharedSubscriptionKeptVerbatim", func(e *env) {
		e.create("s")
		subs := []persistence.Subscription{sub("$share/g1/a/#", 1), sub("$share/g2/a/#", 2), sub("a/#", 0)}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		e.subsSet("s", subs...)
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "$share/g1/a/#"), "SubscriptionsDelete")
		e.subsSet("s", subs[1:]...)
	}},
	{"BinaryFilters", func(e *env) {
		e.create("s")
		var subs []persistence.Subscription
		for i, f := range []string{"a\x00b", "a\x00", "\xff\xfe", "a:b", "a%2Fb", "a_b", "x/\x01/y"} {
			subs = append(subs, sub(f, i))
		}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		e.subsSet("s", subs...)
		e.ok(e.ss.SubscriptionsDelete(e.ctx, "s", "a\x00"), "SubscriptionsDelete")
		e.subsSet("s", append(subs[:1:1], subs[2:]...)...)
	}},
	{"SessionsAreIsolated", func(e *env) {
		ids := []string{"a", "a:b", "a/b", "ab", "a\x00"}
		e.create(ids...)
		for i, id := range ids {
			e.ok(e.ss.SubscriptionsStore(e.ctx, id, sub("t/"+id, i), sub("common", i)), "SubscriptionsStore(%q)", id)
		}
		e.ok(e.ss.SubscriptionsDeleteAll(e.ctx, "a"), "SubscriptionsDeleteAll(a)")
		e.subsSet("a")
		for i, id := range ids[1:] {
			e.subsSet(id, sub("t/"+id, i+1), sub("common", i+1))
		}
	}},
	{"Many", func(e *env) {
		e.create("s")
		var subs []persistence.Subscription
		for i := range 1000 {
			subs = append(subs, sub(fmt.Sprintf("site/%d/+/temp", i), i))
		}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore of 1000")
		e.subsSet("s", subs...)
	}},
	{"InvalidStoresNothing", func(e *env) {
		e.create("s")
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("keep", 1)), "SubscriptionsStore")
		for _, bad := range []persistence.Subscription{
			{Filter: ""},
			{Filter: "q", QoS: 3},
			{Filter: "r", RetainHandling: 3},
		} {
			err := e.ss.SubscriptionsStore(e.ctx, "s", sub("valid/before", 1), bad)
			e.is(err, persistence.ErrInvalidArgument, "SubscriptionsStore with %+v", bad)
		}
		e.subsSet("s", sub("keep", 1))
	}},
	{"StoredAndReturnedAreCopies", func(e *env) {
		e.create("s")
		subs := []persistence.Subscription{sub("a", 1), sub("b", 2)}
		e.ok(e.ss.SubscriptionsStore(e.ctx, "s", subs...), "SubscriptionsStore")
		subs[0].Filter, subs[1].QoS = "scribbled", 0
		got, err := e.ss.SubscriptionsLoad(e.ctx, "s")
		e.ok(err, "SubscriptionsLoad")
		for i := range got {
			got[i].Filter = "scribbled"
		}
		e.subsSet("s", sub("a", 1), sub("b", 2))
	}},
}
