package persistence

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Notifications: brokers on one shared store wake each other through the store
// itself (PostgreSQL's NOTIFY and LISTEN), so that a cluster needs no second
// server. A notification rides in a [Batch] and is sent only if the batch commits;
// it is a wake-up, not a log: a listener that lost its connection to the store
// must catch up from the data (see [Store.Listen]).

// MaxNotificationPayload is the longest payload [Batch.Notify] accepts, in bytes.
const MaxNotificationPayload = driver.MaxNotificationPayload

// Notifies reports whether the store carries notifications ([Store.Listen],
// [Batch.Notify]). Only a shared store can; on the others those calls return
// [ErrNotSupported].
func (s *Store) Notifies() bool {
	_, ok := s.conn.(driver.Notifier)
	return ok
}

// Notify adds a notification to b: when [Sessions.Apply] commits b, every
// [Store.Listen] on channel, in every provider of the store, receives payload;
// when b fails (a fenced batch included) nobody does. channel is 1 to 32
// characters among a–z, 0–9 and '_'; payload is UTF-8 text without NUL bytes of
// at most [MaxNotificationPayload] bytes. Applying a batch with notifications to
// a store that does not [Store.Notifies] returns [ErrNotSupported].
func (b *Batch) Notify(channel, payload string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpNotify, Channel: channel, Payload: payload})
	return b
}

// Notify sends one notification on channel, alone: it is [Batch.Notify] in a
// batch of its own.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	var b Batch
	_, err := s.sessions.Apply(ctx, b.Notify(channel, payload))
	return err
}

// Listen calls fn with the payload of every notification sent on channel by any
// provider of the store (this one included) from the moment it listens, which it
// reports by calling ready once (ready may be nil). fn is called from one
// goroutine, in commit order, and should return quickly. Listen blocks until ctx
// ends (it then returns ctx's error) or its connection to the store breaks (it
// returns that error): notifications sent meanwhile are lost, so the caller
// re-reads what it needs from the store, then listens again.
//
// It returns [ErrNotSupported] when the store does not [Store.Notifies], and
// [ErrClosed] once the store is closed, which also ends a Listen in progress.
func (s *Store) Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if fn == nil {
		return invalidArg("nil notification callback")
	}
	if err := driver.ValidateNotification(channel, ""); err != nil {
		return err
	}
	n, ok := s.conn.(driver.Notifier)
	if !ok {
		return errNotShared("Listen")
	}
	if ready == nil {
		ready = func() {}
	}
	return s.result(n.Listen(ctx, channel, ready, func(p string) {
		if !s.closed.Load() {
			fn(p)
		}
	}))
}
