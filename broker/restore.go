package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// RestoreStallTimeout is how long restore waits for progress — a session loaded, a
// step finished — before it gives up with a *RestoreError naming the step: a store
// that hangs (a paused database, a lost network) makes New fail instead of leaving
// a broker that neither serves nor says why. A slow store that progresses is
// waited for; bound the whole restore with New's context.
var RestoreStallTimeout = storeTimeout

// restoreProgressEvery is how often restore logs its progress while it runs.
const restoreProgressEvery = 2 * time.Second

// RestoreError is New's error when restoring the store's state failed: Step names
// what restore was doing ("counting packets", "loading sessions", …), Sessions
// how many sessions it had restored. It wraps the store's error and, when restore
// gave up waiting for a store that made no progress, context.DeadlineExceeded.
type RestoreError struct {
	Step     string
	Sessions int
	Elapsed  time.Duration
	Err      error
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("broker: restore: %s (after %d sessions, %s): %v", e.Step, e.Sessions,
		e.Elapsed.Round(time.Millisecond), e.Err)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// errRestoreStalled is the cause of a restore context cancelled by the watchdog.
var errRestoreStalled = errors.New("no progress")

// restoreWatch tracks restore's progress: the step in progress and the sessions
// restored, for the progress log and for the stall watchdog.
type restoreWatch struct {
	step     atomic.Pointer[string]
	sessions atomic.Int64
	ticks    atomic.Int64 // progress events, sessions included
}

func (w *restoreWatch) enter(step string) { w.step.Store(&step); w.ticks.Add(1) }

func (w *restoreWatch) stepName() string {
	if p := w.step.Load(); p != nil {
		return *p
	}
	return "starting"
}

// watch logs progress every restoreProgressEvery and cancels ctx with
// errRestoreStalled when nothing progressed for RestoreStallTimeout; it returns
// when done is closed.
func (b *Broker) watch(w *restoreWatch, cancel context.CancelCauseFunc, began time.Time, done <-chan struct{}) {
	tick := time.NewTicker(min(restoreProgressEvery, RestoreStallTimeout/4+time.Millisecond))
	defer tick.Stop()
	lastTicks, lastMove := int64(-1), time.Now()
	lastLog, lastSessions := time.Now(), int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			if t := w.ticks.Load(); t != lastTicks {
				lastTicks, lastMove = t, now
			} else if now.Sub(lastMove) >= RestoreStallTimeout {
				b.log.Error("broker: restore made no progress; giving up", "step", w.stepName(),
					"waited", now.Sub(lastMove).Round(time.Millisecond), "sessions", w.sessions.Load())
				cancel(fmt.Errorf("%w for %s: %w", errRestoreStalled, RestoreStallTimeout, context.DeadlineExceeded))
				return
			}
			if now.Sub(lastLog) >= restoreProgressEvery {
				n := w.sessions.Load()
				rate := float64(n-lastSessions) / now.Sub(lastLog).Seconds()
				b.log.Info("broker: restoring", "step", w.stepName(), "sessions", n,
					"sessions_per_s", int64(rate), "elapsed", now.Sub(began).Round(time.Millisecond))
				lastLog, lastSessions = now, n
			}
		}
	}
}

// restore loads every stored session into memory — subscriptions, state,
// deadlines, in-flight packets (bounded by the window they were sent in) and
// incoming QoS 2 packet ids — and knows, without reading them, how many messages
// it has queued. A session that was connected when the previous process died is
// treated as disconnected now. Then every deadline that passed fires.
//
// It costs a few set-based reads, not a few per session: the packet counts and
// sizes of every session come from one Sessions.PacketStatsForEach, and a
// session's in-flight and incoming packets are read only when it has some. With
// Options.Quarantine every session's queue is read too, so that a damaged queued
// message sets its session aside here rather than at delivery.
func (b *Broker) restore(ctx context.Context) (err error) {
	began := time.Now()
	w := &restoreWatch{}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go b.watch(w, cancel, began, done)
	defer func() {
		close(done)
		cancel(nil)
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errRestoreStalled) && !errors.Is(err, errRestoreStalled) {
				err = fmt.Errorf("%w: %w", cause, err)
			}
			err = &RestoreError{Step: w.stepName(), Sessions: int(w.sessions.Load()), Elapsed: time.Since(began), Err: err}
		}
	}()
	now := b.now()
	st := &b.restored

	w.enter("counting packets (Sessions.PacketStatsForEach)")
	stats := map[string]*persistence.PacketStats{}
	err = b.sess.PacketStatsForEach(ctx, func(ps *persistence.PacketStats) error {
		stats[ps.ID] = ps
		w.ticks.Add(1)
		return nil
	})
	if err = b.packetStatsFailed(err); err != nil { // quarantine.go
		return err
	}

	owners, err := b.clusterOwners(ctx, w) // cluster_restore.go
	if err != nil {
		return err
	}
	w.enter("loading sessions (Sessions.LoadForEach)")
	var disconnected []*session
	// quarantining and quarantineSkipped (quarantine.go) set damaged sessions
	// aside under Options.Quarantine; without it they change nothing.
	err = b.sess.LoadForEach(ctx, b.quarantining(func(ls *persistence.LoadedSession) error {
		s := newSession(ls.ID)
		s.stored = true
		if ls.State != nil {
			s.state = *ls.State.Clone()
		} else {
			// Written by something else than this broker: keep it until cleaned.
			s.state = persistence.SessionState{ProtocolVersion: ls.Base.ProtocolVersion, ExpiryInterval: -1}
		}
		for _, sub := range ls.Subscriptions {
			s.subs[sub.Filter] = sub
			b.subs.add(sub.Filter, s)
		}
		if ls.Expiry != nil {
			s.expiry = *ls.Expiry
		}
		if b.routingOnly(s, owners) { // cluster_restore.go
			b.sessions[s.id] = s
			st.Sessions++
			st.Subscriptions += len(s.subs)
			if !b.ownedByLive(s) {
				// Nobody serves it: its packets wait in the store for the node
				// its client connects to, which loads them then.
				ps := b.statsFor(stats, ls.ID)
				st.QueuedMessages += int(ps.Class(persistence.ClassQoS12).Count)
				st.InflightMessages += int(ps.Class(persistence.ClassUnAck).Count)
			}
			w.sessions.Add(1)
			w.ticks.Add(1)
			return nil
		}
		ps := b.statsFor(stats, ls.ID) // quarantine.go
		if err := b.restorePackets(ctx, s, ps); err != nil {
			return err
		}
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		if s.state.DisconnectedAt.IsZero() {
			s.state.DisconnectedAt = now
			s.expiry = s.deadlinesAt(now, true)
			disconnected = append(disconnected, s)
		}
		b.sessions[s.id] = s
		st.Sessions++
		st.Subscriptions += len(s.subs)
		st.QueuedMessages += s.queued
		st.InflightMessages += len(s.inflight)
		w.sessions.Add(1)
		w.ticks.Add(1)
		return nil
	}))
	if err = b.quarantineSkipped(ctx, err); err != nil {
		return err
	}

	w.enter("recording disconnects (Sessions.Apply)")
	if err := b.recordDisconnects(ctx, disconnected, w); err != nil {
		return err
	}

	w.enter("counting retained messages (Retained.Count)")
	n, err := b.ret.Count(ctx)
	if err != nil {
		return fmt.Errorf("counting retained messages: %w", err)
	}
	st.Retained = int(n)
	w.enter("firing due wills and expiries (Sessions.ExpiredForEach)")
	st.WillsFired, st.SessionsExpired = b.runExpiry(ctx)
	if b.cl != nil {
		w.enter("adopting the sessions of nodes that are gone (Sessions.Claim)")
		b.claimOrphans(ctx)
	}
	if err := context.Cause(ctx); err != nil && errors.Is(err, errRestoreStalled) {
		return err
	}
	b.log.Info("broker: state restored", "sessions", st.Sessions, "subscriptions", st.Subscriptions,
		"queued", st.QueuedMessages, "inflight", st.InflightMessages, "retained", st.Retained,
		"wills_fired", st.WillsFired, "sessions_expired", st.SessionsExpired, "quarantined", st.Quarantined,
		"took", time.Since(began).Round(time.Millisecond))
	return nil
}

// restorePackets restores s's in-flight packets and incoming QoS 2 packet ids,
// reading each class only when ps says it has packets, and sets its queue count
// and size from ps (or, under Options.Quarantine, from reading the queue).
func (b *Broker) restorePackets(ctx context.Context, s *session, ps *persistence.PacketStats) error {
	has := func(c persistence.PacketClass) bool { return ps == nil || ps.Class(c).Count > 0 }
	if has(persistence.ClassUnAck) {
		var stale []uint64
		err := b.sess.PacketsForEach(ctx, s.id, persistence.ClassUnAck, func(p *persistence.PersistedPacket) (bool, error) {
			if p.PacketID == 0 || len(p.Data) == 0 {
				b.log.Error("broker: broken in-flight packet dropped", "client", s.id, "seq", p.Seq, "id", p.PacketID)
				return true, nil
			}
			if old := s.inflight[p.PacketID]; old != nil {
				// A packet id is given to a new flight only after the client
				// acknowledged the previous one, and that acknowledgement's delete
				// may not have been committed before the process ended (see
				// session.acked). The older record (lower seq, met first) is it.
				stale = append(stale, old.seq)
			}
			s.inflight[p.PacketID] = &flight{
				seq: p.Seq, pid: p.PacketID, qos: p.QoS, pkt: p,
				rel: packet.Type(p.Data[0]>>4) == packet.PUBREL,
			}
			s.nextPID = max(s.nextPID, p.PacketID+1)
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("in-flight packets of %q: %w", s.id, err)
		}
		if len(stale) > 0 {
			var batch persistence.Batch
			b.fence(s, &batch)
			for _, seq := range stale {
				batch.PacketDelete(s.id, persistence.ClassUnAck, seq)
			}
			if _, err := b.sess.Apply(ctx, &batch); err != nil {
				return fmt.Errorf("acknowledged in-flight packets of %q: %w", s.id, err)
			}
		}
	}
	if has(persistence.ClassIncoming) {
		err := b.sess.PacketsForEach(ctx, s.id, persistence.ClassIncoming, func(p *persistence.PersistedPacket) (bool, error) {
			s.incoming[p.PacketID] = p.Seq
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("incoming QoS 2 state of %q: %w", s.id, err)
		}
	}
	if !b.opts.Quarantine && ps == nil {
		n, err := b.sess.PacketCount(ctx, s.id, persistence.ClassQoS12)
		if err != nil {
			return fmt.Errorf("queue of %q: %w", s.id, err)
		}
		s.queued, s.queuedBytes = int(n), 0
		return nil
	}
	if !b.opts.Quarantine {
		q := ps.Class(persistence.ClassQoS12)
		s.queued, s.queuedBytes = int(q.Count), int64(q.Bytes)
		return nil
	}
	err := b.sess.PacketsForEach(ctx, s.id, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		s.queued++
		s.queuedBytes += int64(len(p.Data))
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("queue of %q: %w", s.id, err)
	}
	return nil
}

// disconnectChunk is how many sessions one recordDisconnects commit covers.
const disconnectChunk = 256

// recordDisconnects stores the disconnect time and deadlines of the sessions that
// were connected when the previous process ended, a chunk of sessions per commit.
func (b *Broker) recordDisconnects(ctx context.Context, ss []*session, w *restoreWatch) error {
	for len(ss) > 0 {
		chunk := ss[:min(len(ss), disconnectChunk)]
		ss = ss[len(chunk):]
		var batch persistence.Batch
		for _, s := range chunk {
			b.fence(s, &batch)
			batch.StateStore(s.id, &s.state)
			batch.ExpiryStore(s.id, s.expiry)
		}
		if _, err := b.sess.Apply(ctx, &batch); err != nil {
			return fmt.Errorf("recording the disconnect of %d sessions (%q…): %w", len(chunk), chunk[0].id, err)
		}
		w.ticks.Add(1)
	}
	return nil
}
