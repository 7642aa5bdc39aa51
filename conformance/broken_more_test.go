package conformance

// More deliberately broken drivers for the self-test (see selftest_test.go): each
// breaks one further rule the suite's cases pin.

import (
	"context"
	"errors"
	"sync"

	"github.com/mqttstore/mqttstore/persistence"
)

// ---- Delete that leaves packets behind ----

// leftoverPackets forgets to delete packets with their session: a session created
// again with the same id finds its old queues.
type leftoverPackets struct {
	*persistence.Sessions
	mu   sync.Mutex
	left map[string]map[persistence.PacketClass][]*persistence.PersistedPacket
}

func (s *leftoverPackets) Delete(ctx context.Context, id string) error {
	old := map[persistence.PacketClass][]*persistence.PersistedPacket{}
	for _, c := range persistence.PacketClasses {
		_ = s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
			old[c] = append(old[c], p)
			return false, nil
		})
	}
	if err := s.Sessions.Delete(ctx, id); err != nil {
		return err
	}
	s.mu.Lock()
	s.left[id] = old
	s.mu.Unlock()
	return nil
}

func (s *leftoverPackets) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	if err := s.Sessions.Create(ctx, id, base); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.left[id]
	delete(s.left, id)
	s.mu.Unlock()
	for _, c := range persistence.PacketClasses {
		for _, p := range old[c] {
			if _, err := s.Sessions.PacketAppend(ctx, id, c, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- Create of an existing session succeeds ----

type noErrExists struct{ *persistence.Sessions }

func (s noErrExists) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	if err := s.Sessions.Create(ctx, id, base); !errors.Is(err, persistence.ErrAlreadyExists) {
		return err
	}
	return nil
}

// ---- retained Delete does nothing ----

type retainedDeleteNoop struct{ *persistence.Retained }

func (retainedDeleteNoop) Delete(context.Context, string) error { return nil }

// ---- Apply that is not atomic ----

// applyOneByOne runs a batch's operations as single calls and stops at the first
// error, leaving the earlier ones written.
type applyOneByOne struct{ *persistence.Sessions }

func (s applyOneByOne) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	var seqs []uint64
	for _, op := range b.Ops() {
		var err error
		switch op.Kind {
		case persistence.OpCreate:
			err = s.Create(ctx, op.ID, op.Base)
		case persistence.OpDelete:
			err = s.Delete(ctx, op.ID)
		case persistence.OpPacketAppend:
			var seq uint64
			if seq, err = s.PacketAppend(ctx, op.ID, op.Class, op.Packet); err == nil {
				seqs = append(seqs, seq)
			}
		case persistence.OpPacketUpdate:
			err = s.PacketUpdate(ctx, op.ID, op.Class, op.Packet)
		case persistence.OpPacketDelete:
			err = s.PacketDelete(ctx, op.ID, op.Class, op.Seq)
		case persistence.OpPacketsDelete:
			err = s.PacketsDelete(ctx, op.ID, op.Class)
		case persistence.OpSubscriptionStore:
			err = s.SubscriptionsStore(ctx, op.ID, op.Subscription)
		case persistence.OpSubscriptionDelete:
			err = s.SubscriptionsDelete(ctx, op.ID, op.Filter)
		case persistence.OpSubscriptionsDeleteAll:
			err = s.SubscriptionsDeleteAll(ctx, op.ID)
		case persistence.OpStateStore:
			err = s.StateStore(ctx, op.ID, op.State)
		case persistence.OpStateDelete:
			err = s.StateDelete(ctx, op.ID)
		case persistence.OpExpiryStore:
			err = s.ExpiryStore(ctx, op.ID, op.Expiry)
		case persistence.OpExpiryDelete:
			err = s.ExpiryDelete(ctx, op.ID)
		}
		if err != nil {
			return nil, err
		}
	}
	return seqs, nil
}

// ---- the context is ignored altogether ----

// ignoresContext runs every call with a context that is never done.
func ignoresContext(p *persistence.Store) *persistence.Store {
	return hook(p, func(ctx context.Context, _ string, fn func(context.Context) error) error {
		return fn(context.WithoutCancel(ctx))
	})
}

// ---- creation time not from the injected clock ----

type wallClockInfo struct{ persistence.System }

func (s wallClockInfo) GetInfo(ctx context.Context) (persistence.SystemInfo, error) {
	info, err := s.System.GetInfo(ctx)
	info.CreatedAt = info.CreatedAt.Add(-3 * 24 * 3600e9) // as if stamped by another clock
	return info, err
}

type systemWrapped struct {
	*persistence.Store
	sys persistence.System
}

func (w systemWrapped) System() persistence.System { return w.sys }
