// Package tool implements the mqttstore command's operations (export, import,
// migrate, inspect, check, compact) on the SDK's public API, so that the command
// itself is only flag parsing. Every operation takes a context and returns typed
// errors (see errors.go).
package tool

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/persistence"
)

// errSkipSession, returned by an emit callback for a KindSession record, makes the
// walk skip the rest of that session's records.
var errSkipSession = errors.New("skip session")

// emitFunc receives the records of a walk. The record is the callee's to keep.
type emitFunc func(r *archive.Record) error

// walk calls emit for every record of s, session by session (the session record,
// its subscriptions sorted by filter, its state, its expiry, then its packets class
// by class in FIFO order), then every retained message. Sessions are in the
// driver's order. The copy marker session is never emitted. Broken entries are
// skipped by the drivers and reported (persistence.ErrBrokenEntry) at the end.
func walk(ctx context.Context, s Store, emit emitFunc) error {
	sess := s.Sessions()
	err := sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		if ls.ID == markerID {
			return nil
		}
		return walkSession(ctx, sess, ls, emit)
	})
	if err != nil {
		return err
	}
	return s.Retained().Load(ctx, func(m *persistence.RetainedMessage) error {
		return emit(&archive.Record{Kind: archive.KindRetained, Topic: m.Topic, Packet: m.Packet})
	})
}

func walkSession(ctx context.Context, sess sessionsAPI, ls *persistence.LoadedSession, emit emitFunc) error {
	err := emit(&archive.Record{Kind: archive.KindSession, ID: ls.ID, Base: ls.Base})
	if errors.Is(err, errSkipSession) {
		return nil
	}
	if err != nil {
		return err
	}
	subs := slices.Clone(ls.Subscriptions)
	slices.SortFunc(subs, func(a, b persistence.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	for _, sub := range subs {
		if err := emit(&archive.Record{Kind: archive.KindSubscription, ID: ls.ID, Sub: sub}); err != nil {
			return err
		}
	}
	if ls.State != nil {
		if err := emit(&archive.Record{Kind: archive.KindState, ID: ls.ID, State: ls.State}); err != nil {
			return err
		}
	}
	if ls.Expiry != nil {
		if err := emit(&archive.Record{Kind: archive.KindExpiry, ID: ls.ID, Expiry: *ls.Expiry}); err != nil {
			return err
		}
	}
	for _, c := range persistence.PacketClasses {
		var idx uint64
		err := sess.PacketsForEach(ctx, ls.ID, c, func(p *persistence.PersistedPacket) (bool, error) {
			r := &archive.Record{Kind: archive.KindPacket, ID: ls.ID, Class: c, Index: idx, Packet: p}
			idx++
			return false, emit(r)
		})
		if errors.Is(err, persistence.ErrNotFound) {
			return nil // deleted while we walked it
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// summarize returns the per-kind digest of every record of s.
func summarize(ctx context.Context, s Store, prog Progress) (archive.Summary, error) {
	sum := archive.Summary{}
	err := walk(ctx, s, func(r *archive.Record) error {
		prog.Add(1, recordBytes(r))
		return sum.Add(r)
	})
	return sum, err
}

// recordBytes is the payload size of r that progress reports count.
func recordBytes(r *archive.Record) int64 {
	if r.Packet != nil {
		return int64(len(r.Packet.Data))
	}
	return 0
}

// countItems counts the records a walk of s will emit, for progress totals, from
// the stores' counters (packets are counted, not read).
func countItems(ctx context.Context, s Store) (int64, error) {
	sess := s.Sessions()
	var n int64
	err := sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		if ls.ID == markerID {
			return nil
		}
		n += 1 + int64(len(ls.Subscriptions))
		if ls.State != nil {
			n++
		}
		if ls.Expiry != nil {
			n++
		}
		for _, c := range persistence.PacketClasses {
			k, err := sess.PacketCount(ctx, ls.ID, c)
			if err != nil && !errors.Is(err, persistence.ErrNotFound) {
				return err
			}
			n += int64(k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	r, err := s.Retained().Count(ctx)
	return n + int64(r), err
}

// isEmpty reports whether s holds no session and no retained message.
func isEmpty(ctx context.Context, s Store) (bool, error) {
	n, err := s.Sessions().Count(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	r, err := s.Retained().Count(ctx)
	return r == 0, err
}

// Summarize returns the per-kind counts and content digests of every record of st
// (the copy marker excluded): what import and migrate compare to verify a copy.
func Summarize(ctx context.Context, st Store) (archive.Summary, error) {
	return summarize(ctx, st, noProgress{})
}
