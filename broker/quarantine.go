package broker

import (
	"context"
	"errors"

	"github.com/mqttstore/mqttstore/persistence"
)

// Quarantine (Options.Quarantine): restore sets aside a session the store
// cannot give back whole instead of failing New. The hooks here are all that
// restore knows of it:
//
//   - quarantining wraps restore's per-session loader: a session whose loading
//     fails with persistence.ErrBrokenEntry (a damaged state, subscription or
//     packet record) is undone in memory and recorded, and the load goes on;
//   - quarantineSkipped takes the error LoadForEach itself returns for damaged
//     session records the driver skipped (persistence/kv skips them, goes on
//     with the others and reports them at the end) and turns it into a count.
//
// A session set aside stays in the store untouched; its client id is refused at
// CONNECT (isQuarantined) and its expiry does not delete it, so that nothing is
// lost before an operator looks at it.

// quarantining returns load itself without Options.Quarantine, and otherwise a
// loader that sets aside a session whose load failed on a damaged record.
func (b *Broker) quarantining(load persistence.SessionLoader) persistence.SessionLoader {
	if !b.opts.Quarantine {
		return load
	}
	return func(ls *persistence.LoadedSession) error {
		b.quarantineVisited++
		err := load(ls)
		if err == nil || !errors.Is(err, persistence.ErrBrokenEntry) {
			return err
		}
		b.setAside(ls, err)
		return nil
	}
}

// setAside forgets what restore had built of ls before its load failed with
// err, and records it as quarantined.
func (b *Broker) setAside(ls *persistence.LoadedSession, err error) {
	b.mu.Lock()
	delete(b.sessions, ls.ID)
	if b.quarantined == nil {
		b.quarantined = map[string]error{}
	}
	b.quarantined[ls.ID] = err
	b.mu.Unlock()
	// restore indexes the subscriptions first; the session they point to is
	// found by its id (it is in the tree under no other).
	var found []*session
	b.subs.mu.RLock()
	b.subs.root.walk(func(s *session) {
		if s.id == ls.ID {
			found = append(found, s)
		}
	})
	b.subs.mu.RUnlock()
	for _, s := range found {
		for _, sub := range ls.Subscriptions {
			b.subs.remove(sub.Filter, s)
		}
	}
	b.restored.Quarantined++
	b.log.Error("broker: damaged session set aside (quarantined); its client is refused until the store is repaired",
		"client", ls.ID, "err", err)
}

// walk calls fn for every session of every node below n, shared
// subscriptions' members included. The caller holds the tree's lock.
func (n *subNode) walk(fn func(*session)) {
	for s := range n.subs {
		fn(s)
	}
	for _, g := range n.groups {
		for _, s := range g.members {
			fn(s)
		}
	}
	for _, c := range n.children {
		c.walk(fn)
	}
}

// quarantineSkipped is what restore does with an error of LoadForEach. Without
// Options.Quarantine, or for an error that is not persistence.ErrBrokenEntry, it
// returns err. Otherwise the error reports session records the driver could not
// decode and skipped: they are counted (the store's session count less the
// sessions visited), logged, and restore goes on.
func (b *Broker) quarantineSkipped(ctx context.Context, err error) error {
	if err == nil || !b.opts.Quarantine || !errors.Is(err, persistence.ErrBrokenEntry) {
		return err
	}
	n, cerr := b.sess.Count(ctx)
	skipped := 1
	if cerr == nil && int(n) > b.quarantineVisited {
		skipped = int(n) - b.quarantineVisited
	}
	b.restored.Quarantined += skipped
	b.log.Error("broker: damaged session records skipped by the store (quarantined); they stay in the store",
		"records", skipped, "err", err)
	return nil
}

// isQuarantined reports whether restore set session id aside.
func (b *Broker) isQuarantined(id string) bool {
	_, ok := b.quarantined[id] // written only during New
	return ok
}

// Quarantined returns the client ids of the sessions New set aside as damaged
// (Options.Quarantine), each with the error it failed with. Sessions whose
// record the store could not decode at all are counted in
// RestoreStats.Quarantined but have no id to list.
func (b *Broker) Quarantined() map[string]error {
	out := make(map[string]error, len(b.quarantined))
	for id, err := range b.quarantined {
		out[id] = err
	}
	return out
}

// packetStatsFailed is restore's hook for an error of
// Sessions.PacketStatsForEach. Under Options.Quarantine a damaged record
// (persistence.ErrBrokenEntry) makes the packet counts unknown instead of
// failing New: restore then reads every class of every session (statsFor),
// and the session that holds the damaged record is set aside there.
func (b *Broker) packetStatsFailed(err error) error {
	if err == nil || !b.opts.Quarantine || !errors.Is(err, persistence.ErrBrokenEntry) {
		return err
	}
	b.statsUnknown = true
	b.log.Warn("broker: packet counts unavailable (damaged records); reading every session's packets", "err", err)
	return nil
}

// statsFor returns the packet stats restore goes by for session id: its entry
// in stats, or none; when the counts are unknown (packetStatsFailed), one
// packet in every class, so that restore reads each class.
func (b *Broker) statsFor(stats map[string]*persistence.PacketStats, id string) *persistence.PacketStats {
	if ps := stats[id]; ps != nil && !b.statsUnknown {
		return ps
	}
	ps := &persistence.PacketStats{ID: id}
	if b.statsUnknown {
		for i := range ps.Classes {
			ps.Classes[i].Count = 1
		}
	}
	return ps
}
