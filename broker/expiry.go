package broker

import (
	"context"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// expiryPoll bounds how long the expiry loop sleeps while a deadline is pending,
// so an injected Clock that jumps ahead is noticed without a kick.
const expiryPoll = time.Second

// kickExpiry makes the expiry loop recompute its next deadline.
func (b *Broker) kickExpiry() {
	select {
	case b.expiryKick <- struct{}{}:
	default:
	}
}

// expiryLoop sleeps until the earliest will or session-expiry deadline of an
// offline session and then lets the store say which sessions are due
// (Expiry.ExpiredForEach), so deadlines are always the stored ones.
func (b *Broker) expiryLoop() {
	defer b.bg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := b.nextDeadline()
		wait := time.Hour
		if !next.IsZero() {
			wait = min(max(next.Sub(b.now()), 0), expiryPoll)
		}
		t.Reset(wait)
		select {
		case <-t.C:
			if !next.IsZero() && !b.now().Before(next) {
				ctx, cancel := b.storeCtx()
				b.runExpiry(ctx)
				cancel()
			}
		case <-b.expiryKick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-b.stopBG:
			return
		}
	}
}

// nextDeadline returns the earliest deadline of an offline session (zero: none).
func (b *Broker) nextDeadline() time.Time {
	var next time.Time
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.sessions {
		s.mu.Lock()
		if s.conn == nil && !s.gone {
			if n := s.expiry.Next(); !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
		}
		s.mu.Unlock()
	}
	return next
}

// runExpiry publishes the wills and removes the sessions whose deadlines passed,
// and returns how many of each.
func (b *Broker) runExpiry(ctx context.Context) (wills, expired int) {
	now := b.now()
	err := b.sess.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error {
		w, x := b.expireOne(id, e, now)
		if w {
			wills++
		}
		if x {
			expired++
		}
		return ctx.Err()
	})
	if err != nil {
		b.storageError("Expiry.ExpiredForEach", "", err)
	}
	return wills, expired
}

// expireOne handles one session whose deadline passed: its will is published (at
// the latest when the session ends), then, if its expiry passed, it is deleted with
// everything it owns in one store call.
func (b *Broker) expireOne(id string, e persistence.SessionExpiry, now time.Time) (willFired, removed bool) {
	s := b.lookup(id)
	expDue := !e.ExpireAt.IsZero() && !now.Before(e.ExpireAt)
	if b.cl != nil {
		return b.expireClustered(id, s, expDue, e, now) // cluster_expiry.go
	}
	if s == nil {
		// Not known in memory (written by another process?): only removal applies.
		if expDue && !b.isQuarantined(id) { // a damaged session waits for an operator
			if err := b.sess.Delete(b.ctx, id); err != nil {
				b.storageError("Sessions.Delete(expired)", id, err)
			}
			return false, true
		}
		return false, false
	}
	s.mu.Lock()
	if s.conn != nil || s.gone {
		s.mu.Unlock()
		return false, false
	}
	willDue := s.state.Will != nil && (expDue || (!e.WillAt.IsZero() && !now.Before(e.WillAt)))
	if willDue {
		will := s.state.Will
		s.mu.Unlock()
		ok := b.publishWill(id, will, nil)
		s.mu.Lock()
		if s.conn != nil || s.gone {
			s.mu.Unlock()
			return ok, false
		}
		if !ok {
			s.mu.Unlock()
			return false, false // kept; tried again at the next run
		}
		willFired = true
		s.state.Will = nil
		s.expiry.WillAt = time.Time{}
		if !expDue {
			var batch persistence.Batch
			batch.StateStore(id, &s.state)
			batch.ExpiryStore(id, s.expiry)
			ctx, cancel := b.storeCtx()
			_, err := b.sess.Apply(ctx, &batch)
			cancel()
			if err != nil {
				b.storageError("Sessions.Apply(will sent)", id, err)
			}
		}
	}
	if !expDue {
		s.mu.Unlock()
		return willFired, false
	}
	ctx, cancel := b.storeCtx()
	err := b.sess.Delete(ctx, id)
	cancel()
	if err != nil {
		s.mu.Unlock()
		b.storageError("Sessions.Delete(expired)", id, err)
		return willFired, false
	}
	s.gone = true
	b.unindex(s)
	s.mu.Unlock()
	b.forget(s)
	b.log.Debug("broker: session expired", "client", id)
	return willFired, true
}
