package mutation

import (
	"cmp"
	"context"
	"slices"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- subscriptions ----

// subsRewrite implements a single subscribe or unsubscribe as read the list,
// change it, write the whole list back: a concurrent change made in between is
// lost.
var subsRewrite = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	if len(ops) != 1 || (ops[0].Kind != driver.OpSubscriptionStore && ops[0].Kind != driver.OpSubscriptionDelete) {
		return c.Apply(ctx, ops)
	}
	op := ops[0]
	subs, err := c.SubscriptionsLoad(ctx, op.ID)
	if err != nil {
		return nil, err
	}
	window()
	m := map[string]driver.Subscription{}
	for _, s := range subs {
		m[s.Filter] = s
	}
	if op.Kind == driver.OpSubscriptionStore {
		m[op.Subscription.Filter] = op.Subscription
	} else {
		delete(m, op.Filter)
	}
	out := []driver.Op{{Kind: driver.OpSubscriptionsDeleteAll, ID: op.ID}}
	for _, s := range m {
		out = append(out, driver.Op{Kind: driver.OpSubscriptionStore, ID: op.ID, Subscription: s})
	}
	return c.Apply(ctx, out)
})

// subsChange stores every subscription changed by f.
func subsChange(f func(*driver.Subscription)) func(driver.Conn) driver.Conn {
	return withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
		out := slices.Clone(ops)
		for i := range out {
			if out[i].Kind == driver.OpSubscriptionStore {
				f(&out[i].Subscription)
			}
		}
		return c.Apply(ctx, out)
	})
}

// subsDeleteAllKeepsOne: DeleteAll walks the sorted list from index 1.
var subsDeleteAllKeepsOne = withApply(func(c driver.Conn, ctx context.Context, ops []driver.Op) ([]uint64, error) {
	var out []driver.Op
	for _, op := range ops {
		if op.Kind != driver.OpSubscriptionsDeleteAll {
			out = append(out, op)
			continue
		}
		subs, _ := c.SubscriptionsLoad(ctx, op.ID)
		slices.SortFunc(subs, func(a, b driver.Subscription) int { return cmp.Compare(a.Filter, b.Filter) })
		for i := 1; i < len(subs); i++ {
			out = append(out, driver.Op{Kind: driver.OpSubscriptionDelete, ID: op.ID, Filter: subs[i].Filter})
		}
		if len(subs) == 0 {
			out = append(out, op) // keeps the missing-session error
		}
	}
	return c.Apply(ctx, out)
})
