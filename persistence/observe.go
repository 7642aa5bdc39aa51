package persistence

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Observer is told about every call through a [Store] opened [WithObserver], whatever
// the driver: it is how metrics and traces are collected without the driver doing
// anything.
type Observer interface {
	// Begin is called when a call starts. The context it returns is the one the
	// driver receives (it may carry a trace span); done is called exactly once with
	// the call's result, as the caller receives it.
	Begin(ctx context.Context, c Call) (_ context.Context, done func(err error))
}

// Call describes one call through a Store.
type Call struct {
	// Op is the method's name: "PacketAppend", "Apply", "RetainedPut", …
	Op string
	// Ops is the number of write operations the call carries (the batch size of
	// Apply, the subscriptions of SubscriptionsStore, …); 0 for reads.
	Ops int
}

// CommitObserver may also be implemented by an [Observer]: it is then told about each
// commit of a driver that merges concurrent writes into shared commits.
type CommitObserver interface {
	Commit(driver.CommitInfo)
}
