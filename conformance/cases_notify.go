package conformance

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Shared/Notify*: notifications between the providers of a shared store
// (Store.Listen, Batch.Notify). A notification reaches every listener of its
// channel, the sender's own included, in commit order; it is sent only when its
// batch commits; bad channels and payloads are refused before anything is
// written; and Listen ends with its context and with Close.

// notifyWait bounds how long a case waits for a notification to arrive.
const notifyWait = 10 * time.Second

// listener is one Store.Listen in progress, feeding a channel.
type listener struct {
	got    chan string
	done   chan error
	cancel context.CancelFunc
}

// listen starts p.Listen(channel) and returns once it is listening.
func (e *env) listen(p *persistence.Store, channel string) *listener {
	ctx, cancel := context.WithCancel(e.ctx)
	l := &listener{got: make(chan string, 256), done: make(chan error, 1), cancel: cancel}
	ready := make(chan struct{})
	go func() {
		l.done <- p.Listen(ctx, channel, func() { close(ready) }, func(s string) { l.got <- s })
	}()
	select {
	case <-ready:
	case err := <-l.done:
		cancel()
		e.fatalf("Store.Listen(%q) returned before listening: %v", channel, err)
	case <-time.After(notifyWait):
		cancel()
		e.fatalf("Store.Listen(%q) did not report ready within %s", channel, notifyWait)
	}
	e.t.Cleanup(cancel)
	return l
}

// next returns the next notification l receives, failing the case after notifyWait.
func (e *env) next(l *listener, what string) string {
	select {
	case s := <-l.got:
		return s
	case err := <-l.done:
		e.fatalf("%s: Listen ended before a notification arrived: %v", what, err)
	case <-time.After(notifyWait):
		e.fatalf("%s: no notification within %s", what, notifyWait)
	}
	return ""
}

// notify applies a batch holding only one notification, through p.
func (e *env) notify(p *persistence.Store, channel, payload string) {
	e.ok(p.Notify(e.ctx, channel, payload), "Store.Notify(%q, %q)", channel, payload)
}

var sharedNotifyCases = []tcase{
	{"NotifyDelivered", func(e *env) {
		b := e.peer()
		if !e.p.Notifies() || !b.Notifies() {
			e.fatalf("a shared store must carry notifications: Store.Notifies() = false")
		}
		lb := e.listen(b, "wake")
		la := e.listen(e.p, "wake")
		other := e.listen(b, "other")
		var batch persistence.Batch
		batch.Create("s", persistence.SessionBase{CreatedAt: caseEpoch}).Notify("wake", "s created")
		_, err := e.ss.Apply(e.ctx, &batch)
		e.ok(err, "Apply of Create + Notify")
		if got := e.next(lb, "the peer's listener"); got != "s created" {
			e.fatalf("the peer received %q, want %q", got, "s created")
		}
		if got := e.next(la, "the sender's own listener"); got != "s created" {
			e.fatalf("the sender's listener received %q, want %q", got, "s created")
		}
		// A listener that is notified can read the write the notification rode with.
		ok, err := b.Sessions().Exists(e.ctx, "s")
		e.ok(err, "Exists on the peer after the notification")
		if !ok {
			e.fatalf("the session created in the notifying batch does not exist for the notified peer")
		}
		e.notify(b, "other", "x")
		if got := e.next(other, "listener of another channel"); got != "x" {
			e.fatalf("the listener of channel other received %q, want %q (a notification of channel wake leaked?)", got, "x")
		}
	}},
	{"NotifyOrder", func(e *env) {
		b := e.peer()
		l := e.listen(b, "order")
		const n = 50
		for i := range n {
			e.notify(e.p, "order", strings.Repeat("x", i))
		}
		for i := range n {
			if got := e.next(l, "ordered notifications"); len(got) != i {
				e.fatalf("notification %d has a payload of %d bytes, want %d: notifications arrive out of commit order", i, len(got), i)
			}
		}
	}},
	{"NotifyOnlyOnCommit", func(e *env) {
		b := e.peer()
		e.renew(e.p, "n1")
		e.renew(b, "n2")
		e.create("s")
		old := e.claim(e.p, "s", "n1")
		e.takeover(b, "s", "n2")
		l := e.listen(b, "commit")
		before := e.snapshot()
		var batch persistence.Batch
		batch.Fence(old).PacketAppend("s", persistence.ClassQoS12, pkt(1)).Notify("commit", "fenced")
		_, err := e.ss.Apply(e.ctx, &batch)
		e.is(err, persistence.ErrFenced, "Apply of a batch fenced with a replaced ownership")
		e.eq(diffSnap(e.snapshot(), before), "store after a fenced batch")
		e.notify(e.p, "commit", "committed")
		if got := e.next(l, "after a fenced batch"); got != "committed" {
			e.fatalf("received %q first, want %q: a failed batch's notification was sent", got, "committed")
		}
	}},
	{"NotifyInvalid", func(e *env) {
		e.peer()
		before := e.snapshot()
		for _, c := range []struct{ channel, payload, why string }{
			{"", "p", "empty channel"},
			{"Upper", "p", "upper-case channel"},
			{"a-b", "p", "'-' in channel"},
			{strings.Repeat("c", 33), "p", "33-character channel"},
			{"c", strings.Repeat("p", persistence.MaxNotificationPayload+1), "payload over MaxNotificationPayload"},
			{"c", "a\x00b", "NUL in payload"},
			{"c", "\xff", "payload not UTF-8"},
		} {
			var batch persistence.Batch
			batch.Create("s", persistence.SessionBase{CreatedAt: caseEpoch}).Notify(c.channel, c.payload)
			_, err := e.ss.Apply(e.ctx, &batch)
			e.is(err, persistence.ErrInvalidArgument, "Apply with a notification with %s", c.why)
		}
		e.eq(diffSnap(e.snapshot(), before), "store after refused notifications")
		e.is(e.p.Listen(e.ctx, "Bad", nil, func(string) {}), persistence.ErrInvalidArgument, "Listen on a bad channel")
		e.is(e.p.Listen(e.ctx, "ok", nil, nil), persistence.ErrInvalidArgument, "Listen with a nil callback")
		var batch persistence.Batch
		max := strings.Repeat("é", persistence.MaxNotificationPayload/2)
		l := e.listen(e.p, "max")
		_, err := e.ss.Apply(e.ctx, batch.Notify("max", max))
		e.ok(err, "a notification of MaxNotificationPayload bytes")
		if got := e.next(l, "longest payload"); got != max {
			e.fatalf("the longest payload arrived changed (%d bytes, want %d)", len(got), len(max))
		}
	}},
	{"ListenEnds", func(e *env) {
		b := e.peer()
		l := e.listen(b, "end")
		l.cancel()
		select {
		case err := <-l.done:
			e.is(err, context.Canceled, "Listen after its context was cancelled")
		case <-time.After(notifyWait):
			e.fatalf("Listen did not return within %s of its context's cancellation", notifyWait)
		}
		l2 := e.listen(b, "end")
		e.ok(b.Close(), "Close of the peer")
		select {
		case err := <-l2.done:
			if !errors.Is(err, persistence.ErrClosed) {
				e.fatalf("Listen ended by Close returned %v, want ErrClosed", err)
			}
		case <-time.After(notifyWait):
			e.fatalf("Listen did not return within %s of the store's Close", notifyWait)
		}
		e.is(b.Listen(e.ctx, "end", nil, func(string) {}), persistence.ErrClosed, "Listen on a closed store")
	}},
}
