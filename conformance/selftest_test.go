package conformance

// Deliberately broken drivers: wrappers around the real in-memory driver that each
// break one rule the suite pins, used by selftest_test.go to prove the suite catches
// them.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// wrapped is a provider whose Sessions, Retained or Close may be replaced.
type wrapped struct {
	*persistence.Store
	ss    *persistence.Sessions
	rs    *persistence.Retained
	close func() error
}

func (w *wrapped) Sessions() *persistence.Sessions {
	if w.ss != nil {
		return w.ss
	}
	return w.Provider.Sessions()
}

func (w *wrapped) Retained() *persistence.Retained {
	if w.rs != nil {
		return w.rs
	}
	return w.Provider.Retained()
}

func (w *wrapped) Close() error {
	if w.close != nil {
		return w.close()
	}
	return w.Provider.Close()
}

// ---- LIFO iteration ----

type lifoSessions struct{ *persistence.Sessions }

func (s lifoSessions) PacketsForEach(ctx context.Context, id string, c persistence.PacketClass, fn persistence.PacketLoader) error {
	var all []*persistence.PersistedPacket
	if err := s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		all = append(all, p)
		return false, nil
	}); err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		del, err := fn(all[i])
		if del {
			if e := s.Sessions.PacketDelete(ctx, id, c, all[i].Seq); e != nil {
				return e
			}
		}
		if err != nil {
			if errors.Is(err, persistence.ErrStopIteration) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ---- Delete that leaves subscriptions behind ----

// leftoverSubs forgets to delete subscriptions with their session: a session created
// again with the same id finds them.
type leftoverSubs struct {
	*persistence.Sessions
	mu   sync.Mutex
	left map[string][]persistence.Subscription
}

func (s *leftoverSubs) Delete(ctx context.Context, id string) error {
	subs, _ := s.Sessions.SubscriptionsLoad(ctx, id)
	if err := s.Sessions.Delete(ctx, id); err != nil {
		return err
	}
	if len(subs) > 0 {
		s.mu.Lock()
		s.left[id] = subs
		s.mu.Unlock()
	}
	return nil
}

func (s *leftoverSubs) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	if err := s.Sessions.Create(ctx, id, base); err != nil {
		return err
	}
	s.mu.Lock()
	subs := s.left[id]
	s.mu.Unlock()
	if len(subs) > 0 {
		return s.Sessions.SubscriptionsStore(ctx, id, subs...)
	}
	return nil
}

func (s *leftoverSubs) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	seqs, err := s.Sessions.Apply(ctx, b)
	if err != nil {
		return seqs, err
	}
	for _, op := range b.Ops() {
		if op.Kind == persistence.OpCreate {
			s.mu.Lock()
			subs := s.left[op.ID]
			s.mu.Unlock()
			if len(subs) > 0 {
				if err := s.Sessions.SubscriptionsStore(ctx, op.ID, subs...); err != nil {
					return seqs, err
				}
			}
		}
	}
	return seqs, nil
}

// ---- missing ErrNotFound ----

// nilOnMissing returns a nil value and a nil error from gets of missing items.
type nilOnMissing struct{ *persistence.Sessions }

func (s nilOnMissing) PacketGet(ctx context.Context, id string, c persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	p, err := s.Sessions.PacketGet(ctx, id, c, seq)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

func (s nilOnMissing) StateGet(ctx context.Context, id string) (*persistence.SessionState, error) {
	st, err := s.Sessions.StateGet(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return st, err
}

type nilOnMissingRetained struct{ *persistence.Retained }

func (r nilOnMissingRetained) Get(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	p, err := r.Retained.Get(ctx, topic)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

// ---- sequence-number remapping: reuse after delete, update that moves to the tail ----

type remapQueue struct {
	v2r, r2v map[uint64]uint64
}

// remapSessions shows the caller its own sequence numbers ("virtual") instead of the
// store's. With neither flag set the virtual numbers are the real ones and the
// wrapper is correct (a control for the wrapper itself). reuse numbers each queue's
// packets max+1 of the live ones, as a careless "SELECT max(seq)+1" does, so deleting
// the tail reuses its number; updateToTail implements PacketUpdate as delete and
// append, moving the packet to the tail of its queue.
type remapSessions struct {
	*persistence.Sessions
	reuse, updateToTail bool
	mu                  sync.Mutex
	qs                  map[seqKey]*remapQueue
}

func newRemap(ss *persistence.Sessions, reuse, updateToTail bool) *remapSessions {
	return &remapSessions{Sessions: ss, reuse: reuse, updateToTail: updateToTail, qs: map[seqKey]*remapQueue{}}
}

// missingSeq is a real sequence number mem never assigns in a test.
const missingSeq = math.MaxUint64 - 1

func (s *remapSessions) q(id string, c persistence.PacketClass) *remapQueue {
	k := seqKey{id, c}
	q := s.qs[k]
	if q == nil {
		q = &remapQueue{v2r: map[uint64]uint64{}, r2v: map[uint64]uint64{}}
		s.qs[k] = q
	}
	return q
}

func (s *remapSessions) add(id string, c persistence.PacketClass, real uint64) uint64 {
	q := s.q(id, c)
	virt := real
	if s.reuse {
		virt = 1
		for v := range q.v2r {
			virt = max(virt, v+1)
		}
	}
	q.v2r[virt], q.r2v[real] = real, virt
	return virt
}

func (s *remapSessions) real(id string, c persistence.PacketClass, virt uint64) uint64 {
	if r, ok := s.q(id, c).v2r[virt]; ok {
		return r
	}
	return missingSeq
}

func (s *remapSessions) forget(id string, c persistence.PacketClass, virt uint64) {
	q := s.q(id, c)
	if r, ok := q.v2r[virt]; ok {
		delete(q.v2r, virt)
		delete(q.r2v, r)
	}
}

func (s *remapSessions) forgetAll(id string, classes ...persistence.PacketClass) {
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	for _, c := range classes {
		delete(s.qs, seqKey{id, c})
	}
}

func (s *remapSessions) PacketAppend(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	real, err := s.Sessions.PacketAppend(ctx, id, c, p)
	if err != nil {
		return 0, err
	}
	return s.add(id, c, real), nil
}

func (s *remapSessions) PacketGet(ctx context.Context, id string, c persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.Valid() {
		return s.Sessions.PacketGet(ctx, id, c, seq)
	}
	p, err := s.Sessions.PacketGet(ctx, id, c, s.real(id, c, seq))
	if p != nil {
		p.Seq = seq
	}
	return p, err
}

func (s *remapSessions) PacketUpdate(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == nil || !c.Valid() {
		return s.Sessions.PacketUpdate(ctx, id, c, p)
	}
	rp := p.Clone()
	rp.Seq = s.real(id, c, p.Seq)
	if !s.updateToTail {
		return s.Sessions.PacketUpdate(ctx, id, c, rp)
	}
	if err := persistence.ValidatePacket(rp); err != nil {
		return err
	}
	if _, err := s.Sessions.PacketGet(ctx, id, c, rp.Seq); err != nil {
		return err
	}
	if err := s.Sessions.PacketDelete(ctx, id, c, rp.Seq); err != nil {
		return err
	}
	real, err := s.Sessions.PacketAppend(ctx, id, c, rp)
	if err != nil {
		return err
	}
	q := s.q(id, c)
	delete(q.r2v, rp.Seq)
	q.v2r[p.Seq], q.r2v[real] = real, p.Seq
	return nil
}

func (s *remapSessions) PacketDelete(ctx context.Context, id string, c persistence.PacketClass, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.Valid() {
		return s.Sessions.PacketDelete(ctx, id, c, seq)
	}
	if err := s.Sessions.PacketDelete(ctx, id, c, s.real(id, c, seq)); err != nil {
		return err
	}
	s.forget(id, c, seq)
	return nil
}

func (s *remapSessions) PacketsForEach(ctx context.Context, id string, c persistence.PacketClass, fn persistence.PacketLoader) error {
	if !c.Valid() || fn == nil {
		return s.Sessions.PacketsForEach(ctx, id, c, fn)
	}
	return s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		s.mu.Lock()
		virt, ok := s.q(id, c).r2v[p.Seq]
		s.mu.Unlock()
		if !ok {
			return false, nil // appended meanwhile, not mapped yet
		}
		p.Seq = virt
		del, err := fn(p)
		if del {
			s.mu.Lock()
			s.forget(id, c, virt)
			s.mu.Unlock()
		}
		return del, err
	})
}

func (s *remapSessions) PacketsStore(ctx context.Context, id string, pp *persistence.PersistedPackets) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Sessions.PacketsStore(ctx, id, pp); err != nil {
		return err
	}
	for _, c := range persistence.PacketClasses {
		if len(pp.Class(c)) == 0 {
			continue
		}
		q := s.q(id, c)
		err := s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
			if _, ok := q.r2v[p.Seq]; !ok {
				s.add(id, c, p.Seq)
			}
			return false, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *remapSessions) PacketsDelete(ctx context.Context, id string, classes ...persistence.PacketClass) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Sessions.PacketsDelete(ctx, id, classes...); err != nil {
		return err
	}
	s.forgetAll(id, classes...)
	return nil
}

func (s *remapSessions) Delete(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Sessions.Delete(ctx, id); err != nil {
		return err
	}
	s.forgetAll(id)
	return nil
}

func (s *remapSessions) Apply(ctx context.Context, b *persistence.Batch) ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		return s.Sessions.Apply(ctx, b)
	}
	rb := &persistence.Batch{}
	for _, op := range b.Ops() {
		switch op.Kind {
		case persistence.OpCreate:
			rb.Create(op.ID, op.Base)
		case persistence.OpDelete:
			rb.Delete(op.ID)
		case persistence.OpPacketAppend:
			rb.PacketAppend(op.ID, op.Class, op.Packet)
		case persistence.OpPacketUpdate:
			p := op.Packet.Clone()
			if p != nil && op.Class.Valid() {
				p.Seq = s.real(op.ID, op.Class, p.Seq)
			}
			rb.PacketUpdate(op.ID, op.Class, p)
		case persistence.OpPacketDelete:
			seq := op.Seq
			if op.Class.Valid() {
				seq = s.real(op.ID, op.Class, seq)
			}
			rb.PacketDelete(op.ID, op.Class, seq)
		case persistence.OpPacketsDelete:
			rb.PacketsDelete(op.ID, op.Class)
		case persistence.OpSubscriptionStore:
			rb.SubscriptionStore(op.ID, op.Subscription)
		case persistence.OpSubscriptionDelete:
			rb.SubscriptionDelete(op.ID, op.Filter)
		case persistence.OpSubscriptionsDeleteAll:
			rb.SubscriptionsDeleteAll(op.ID)
		case persistence.OpStateStore:
			rb.StateStore(op.ID, op.State)
		case persistence.OpStateDelete:
			rb.StateDelete(op.ID)
		case persistence.OpExpiryStore:
			rb.ExpiryStore(op.ID, op.Expiry)
		case persistence.OpExpiryDelete:
			rb.ExpiryDelete(op.ID)
		}
	}
	reals, err := s.Sessions.Apply(ctx, rb)
	if err != nil {
		return nil, err
	}
	var virts []uint64
	i := 0
	for _, op := range b.Ops() {
		switch op.Kind {
		case persistence.OpDelete:
			s.forgetAll(op.ID)
		case persistence.OpPacketAppend:
			virts = append(virts, s.add(op.ID, op.Class, reals[i]))
			i++
		case persistence.OpPacketDelete:
			s.forget(op.ID, op.Class, op.Seq)
		case persistence.OpPacketsDelete:
			s.forgetAll(op.ID, op.Class)
		}
	}
	return virts, nil
}

// ---- hooks around every call: locks held during callbacks, ErrClosed swallowed,
// writes despite a cancelled context ----

// callHook runs one call (fn) of the named method.
type callHook func(ctx context.Context, method string, fn func(ctx context.Context) error) error

// hookSessions delegates every method to in through hook.
type hookSessions struct {
	in   *persistence.Sessions
	hook callHook
}

func (s *hookSessions) Create(ctx context.Context, id string, base persistence.SessionBase) error {
	return s.hook(ctx, "Create", func(ctx context.Context) error { return s.in.Create(ctx, id, base) })
}

func (s *hookSessions) Exists(ctx context.Context, id string) (ok bool, err error) {
	err = s.hook(ctx, "Exists", func(ctx context.Context) (e error) { ok, e = s.in.Exists(ctx, id); return e })
	return ok, err
}

func (s *hookSessions) Count(ctx context.Context) (n uint64, err error) {
	err = s.hook(ctx, "Count", func(ctx context.Context) (e error) { n, e = s.in.Count(ctx); return e })
	return n, err
}

func (s *hookSessions) LoadForEach(ctx context.Context, fn persistence.SessionLoader) error {
	return s.hook(ctx, "LoadForEach", func(ctx context.Context) error { return s.in.LoadForEach(ctx, fn) })
}

func (s *hookSessions) Delete(ctx context.Context, id string) error {
	return s.hook(ctx, "Delete", func(ctx context.Context) error { return s.in.Delete(ctx, id) })
}

func (s *hookSessions) Apply(ctx context.Context, b *persistence.Batch) (seqs []uint64, err error) {
	err = s.hook(ctx, "Apply", func(ctx context.Context) (e error) { seqs, e = s.in.Apply(ctx, b); return e })
	return seqs, err
}

func (s *hookSessions) PacketAppend(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) (seq uint64, err error) {
	err = s.hook(ctx, "PacketAppend", func(ctx context.Context) (e error) { seq, e = s.in.PacketAppend(ctx, id, c, p); return e })
	return seq, err
}

func (s *hookSessions) PacketGet(ctx context.Context, id string, c persistence.PacketClass, seq uint64) (p *persistence.PersistedPacket, err error) {
	err = s.hook(ctx, "PacketGet", func(ctx context.Context) (e error) { p, e = s.in.PacketGet(ctx, id, c, seq); return e })
	return p, err
}

func (s *hookSessions) PacketUpdate(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) error {
	return s.hook(ctx, "PacketUpdate", func(ctx context.Context) error { return s.in.PacketUpdate(ctx, id, c, p) })
}

func (s *hookSessions) PacketDelete(ctx context.Context, id string, c persistence.PacketClass, seq uint64) error {
	return s.hook(ctx, "PacketDelete", func(ctx context.Context) error { return s.in.PacketDelete(ctx, id, c, seq) })
}

func (s *hookSessions) PacketCount(ctx context.Context, id string, c persistence.PacketClass) (n uint64, err error) {
	err = s.hook(ctx, "PacketCount", func(ctx context.Context) (e error) { n, e = s.in.PacketCount(ctx, id, c); return e })
	return n, err
}

func (s *hookSessions) PacketsForEach(ctx context.Context, id string, c persistence.PacketClass, fn persistence.PacketLoader) error {
	return s.hook(ctx, "PacketsForEach", func(ctx context.Context) error { return s.in.PacketsForEach(ctx, id, c, fn) })
}

func (s *hookSessions) PacketsStore(ctx context.Context, id string, pp *persistence.PersistedPackets) error {
	return s.hook(ctx, "PacketsStore", func(ctx context.Context) error { return s.in.PacketsStore(ctx, id, pp) })
}

func (s *hookSessions) PacketsDelete(ctx context.Context, id string, classes ...persistence.PacketClass) error {
	return s.hook(ctx, "PacketsDelete", func(ctx context.Context) error { return s.in.PacketsDelete(ctx, id, classes...) })
}

func (s *hookSessions) SubscriptionsStore(ctx context.Context, id string, subs ...persistence.Subscription) error {
	return s.hook(ctx, "SubscriptionsStore", func(ctx context.Context) error { return s.in.SubscriptionsStore(ctx, id, subs...) })
}

func (s *hookSessions) SubscriptionsDelete(ctx context.Context, id string, filters ...string) error {
	return s.hook(ctx, "SubscriptionsDelete", func(ctx context.Context) error { return s.in.SubscriptionsDelete(ctx, id, filters...) })
}

func (s *hookSessions) SubscriptionsDeleteAll(ctx context.Context, id string) error {
	return s.hook(ctx, "SubscriptionsDeleteAll", func(ctx context.Context) error { return s.in.SubscriptionsDeleteAll(ctx, id) })
}

func (s *hookSessions) SubscriptionsLoad(ctx context.Context, id string) (subs []persistence.Subscription, err error) {
	err = s.hook(ctx, "SubscriptionsLoad", func(ctx context.Context) (e error) { subs, e = s.in.SubscriptionsLoad(ctx, id); return e })
	return subs, err
}

func (s *hookSessions) StateStore(ctx context.Context, id string, st *persistence.SessionState) error {
	return s.hook(ctx, "StateStore", func(ctx context.Context) error { return s.in.StateStore(ctx, id, st) })
}

func (s *hookSessions) StateGet(ctx context.Context, id string) (st *persistence.SessionState, err error) {
	err = s.hook(ctx, "StateGet", func(ctx context.Context) (e error) { st, e = s.in.StateGet(ctx, id); return e })
	return st, err
}

func (s *hookSessions) StateDelete(ctx context.Context, id string) error {
	return s.hook(ctx, "StateDelete", func(ctx context.Context) error { return s.in.StateDelete(ctx, id) })
}

func (s *hookSessions) ExpiryStore(ctx context.Context, id string, e persistence.SessionExpiry) error {
	return s.hook(ctx, "ExpiryStore", func(ctx context.Context) error { return s.in.ExpiryStore(ctx, id, e) })
}

func (s *hookSessions) ExpiryGet(ctx context.Context, id string) (e persistence.SessionExpiry, err error) {
	err = s.hook(ctx, "ExpiryGet", func(ctx context.Context) (er error) { e, er = s.in.ExpiryGet(ctx, id); return er })
	return e, err
}

func (s *hookSessions) ExpiryDelete(ctx context.Context, id string) error {
	return s.hook(ctx, "ExpiryDelete", func(ctx context.Context) error { return s.in.ExpiryDelete(ctx, id) })
}

func (s *hookSessions) ExpiredForEach(ctx context.Context, now time.Time, fn persistence.ExpiredLoader) error {
	return s.hook(ctx, "ExpiredForEach", func(ctx context.Context) error { return s.in.ExpiredForEach(ctx, now, fn) })
}

// hookRetained delegates every method to in through hook.
type hookRetained struct {
	in   *persistence.Retained
	hook callHook
}

func (r *hookRetained) Put(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	return r.hook(ctx, "Retained.Put", func(ctx context.Context) error { return r.in.Put(ctx, topic, p) })
}

func (r *hookRetained) Get(ctx context.Context, topic string) (p *persistence.PersistedPacket, err error) {
	err = r.hook(ctx, "Retained.Get", func(ctx context.Context) (e error) { p, e = r.in.Get(ctx, topic); return e })
	return p, err
}

func (r *hookRetained) Delete(ctx context.Context, topic string) error {
	return r.hook(ctx, "Retained.Delete", func(ctx context.Context) error { return r.in.Delete(ctx, topic) })
}

func (r *hookRetained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	return r.hook(ctx, "Retained.LoadMatching", func(ctx context.Context) error { return r.in.LoadMatching(ctx, filters, fn) })
}

func (r *hookRetained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	return r.hook(ctx, "Retained.Load", func(ctx context.Context) error { return r.in.Load(ctx, fn) })
}

func (r *hookRetained) Store(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	return r.hook(ctx, "Retained.Store", func(ctx context.Context) error { return r.in.Store(ctx, msgs) })
}

func (r *hookRetained) Count(ctx context.Context) (n uint64, err error) {
	err = r.hook(ctx, "Retained.Count", func(ctx context.Context) (e error) { n, e = r.in.Count(ctx); return e })
	return n, err
}

func (r *hookRetained) Wipe(ctx context.Context) error {
	return r.hook(ctx, "Retained.Wipe", func(ctx context.Context) error { return r.in.Wipe(ctx) })
}

type hookSystem struct {
	in   persistence.System
	hook callHook
}

func (s *hookSystem) GetInfo(ctx context.Context) (info persistence.SystemInfo, err error) {
	err = s.hook(ctx, "System.GetInfo", func(ctx context.Context) (e error) { info, e = s.in.GetInfo(ctx); return e })
	return info, err
}

// hooked is a provider whose every call goes through hook.
type hooked struct {
	*persistence.Store
	ss *hookSessions
	rs *hookRetained
	sy *hookSystem
}

func hook(p *persistence.Store, h callHook) *hooked {
	return &hooked{
		Provider: p,
		ss:       &hookSessions{in: p.Sessions(), hook: h},
		rs:       &hookRetained{in: p.Retained(), hook: h},
		sy:       &hookSystem{in: p.System(), hook: h},
	}
}

func (h *hooked) Sessions() *persistence.Sessions { return h.ss }
func (h *hooked) Retained() *persistence.Retained { return h.rs }
func (h *hooked) System() persistence.System     { return h.sy }

// lockedCallbacks holds one store-wide mutex for the whole of every call, callbacks
// included: a callback that calls back into the store deadlocks.
func lockedCallbacks(p *persistence.Store) *persistence.Store {
	var mu sync.Mutex
	return hook(p, func(ctx context.Context, _ string, fn func(context.Context) error) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(ctx)
	})
}

// noErrClosed hides ErrClosed: calls after Close "succeed".
func noErrClosed(p *persistence.Store) *persistence.Store {
	return hook(p, func(ctx context.Context, _ string, fn func(context.Context) error) error {
		if err := fn(ctx); !errors.Is(err, persistence.ErrClosed) {
			return err
		}
		return nil
	})
}

// writesDespiteCancel performs writes even when the context is already done (and
// still reports the context's error).
func writesDespiteCancel(p *persistence.Store) *persistence.Store {
	return hook(p, func(ctx context.Context, method string, fn func(context.Context) error) error {
		if ctx.Err() == nil || !isWrite(method) {
			return fn(ctx)
		}
		_ = fn(context.WithoutCancel(ctx))
		return ctx.Err()
	})
}

func isWrite(method string) bool {
	for _, prefix := range []string{"Get", "Load", "Count", "Exists", "SubscriptionsLoad", "StateGet", "ExpiryGet",
		"ExpiredForEach", "PacketGet", "PacketCount", "PacketsForEach", "Retained.Get", "Retained.Load",
		"Retained.Count", "System."} {
		if strings.HasPrefix(method, prefix) {
			return false
		}
	}
	return true
}

// closeNotIdempotent fails the second Close.
func closeNotIdempotent(p *persistence.Store) *persistence.Store {
	var once sync.Once
	return &wrapped{Provider: p, close: func() error {
		err := errors.New("broken: provider already closed")
		once.Do(func() { err = p.Close() })
		return err
	}}
}

// ---- callback error swallowed ----

type swallowSessions struct{ *persistence.Sessions }

func (s swallowSessions) PacketsForEach(ctx context.Context, id string, c persistence.PacketClass, fn persistence.PacketLoader) error {
	var cbErr error
	err := s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		del, err := fn(p)
		cbErr = err
		return del, err
	})
	if cbErr != nil {
		return nil
	}
	return err
}

func (s swallowSessions) LoadForEach(ctx context.Context, fn persistence.SessionLoader) error {
	var cbErr error
	err := s.Sessions.LoadForEach(ctx, func(ls *persistence.LoadedSession) error { cbErr = fn(ls); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

func (s swallowSessions) ExpiredForEach(ctx context.Context, now time.Time, fn persistence.ExpiredLoader) error {
	var cbErr error
	err := s.Sessions.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error { cbErr = fn(id, e); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

type swallowRetained struct{ *persistence.Retained }

func (r swallowRetained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	var cbErr error
	err := r.Retained.LoadMatching(ctx, filters, func(m *persistence.RetainedMessage) error { cbErr = fn(m); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

func (r swallowRetained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	var cbErr error
	err := r.Retained.Load(ctx, func(m *persistence.RetainedMessage) error { cbErr = fn(m); return cbErr })
	if cbErr != nil {
		return nil
	}
	return err
}

// ---- stored values alias the caller's slices ----

// aliasSessions keeps the caller's Data slice of every appended or updated packet and
// hands that same slice out on every read.
type aliasSessions struct {
	*persistence.Sessions
	mu   sync.Mutex
	data map[uint64][]byte
}

func (s *aliasSessions) keep(seq uint64, d []byte) {
	s.mu.Lock()
	s.data[seq] = d
	s.mu.Unlock()
}

func (s *aliasSessions) swap(p *persistence.PersistedPacket) {
	if p == nil {
		return
	}
	s.mu.Lock()
	if d, ok := s.data[p.Seq]; ok {
		p.Data = d
	}
	s.mu.Unlock()
}

func (s *aliasSessions) PacketAppend(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) (uint64, error) {
	seq, err := s.Sessions.PacketAppend(ctx, id, c, p)
	if err == nil {
		s.keep(seq, p.Data)
	}
	return seq, err
}

func (s *aliasSessions) PacketUpdate(ctx context.Context, id string, c persistence.PacketClass, p *persistence.PersistedPacket) error {
	err := s.Sessions.PacketUpdate(ctx, id, c, p)
	if err == nil {
		s.keep(p.Seq, p.Data)
	}
	return err
}

func (s *aliasSessions) PacketGet(ctx context.Context, id string, c persistence.PacketClass, seq uint64) (*persistence.PersistedPacket, error) {
	p, err := s.Sessions.PacketGet(ctx, id, c, seq)
	s.swap(p)
	return p, err
}

func (s *aliasSessions) PacketsForEach(ctx context.Context, id string, c persistence.PacketClass, fn persistence.PacketLoader) error {
	if fn == nil {
		return s.Sessions.PacketsForEach(ctx, id, c, fn)
	}
	return s.Sessions.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		s.swap(p)
		return fn(p)
	})
}

type aliasRetained struct {
	*persistence.Retained
	mu   sync.Mutex
	data map[string][]byte
}

func (r *aliasRetained) Put(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	err := r.Retained.Put(ctx, topic, p)
	if err == nil {
		r.mu.Lock()
		r.data[topic] = p.Data
		r.mu.Unlock()
	}
	return err
}

func (r *aliasRetained) swap(topic string, p *persistence.PersistedPacket) {
	if p == nil {
		return
	}
	r.mu.Lock()
	if d, ok := r.data[topic]; ok {
		p.Data = d
	}
	r.mu.Unlock()
}

func (r *aliasRetained) Get(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	p, err := r.Retained.Get(ctx, topic)
	r.swap(topic, p)
	return p, err
}

func (r *aliasRetained) Delete(ctx context.Context, topic string) error {
	r.mu.Lock()
	delete(r.data, topic)
	r.mu.Unlock()
	return r.Retained.Delete(ctx, topic)
}

func (r *aliasRetained) Store(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	err := r.Retained.Store(ctx, msgs)
	if err == nil {
		r.mu.Lock()
		clear(r.data)
		r.mu.Unlock()
	}
	return err
}

func (r *aliasRetained) Wipe(ctx context.Context) error {
	err := r.Retained.Wipe(ctx)
	if err == nil {
		r.mu.Lock()
		clear(r.data)
		r.mu.Unlock()
	}
	return err
}

func (r *aliasRetained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	if fn == nil {
		return r.Retained.LoadMatching(ctx, filters, fn)
	}
	return r.Retained.LoadMatching(ctx, filters, func(m *persistence.RetainedMessage) error {
		r.swap(m.Topic, m.Packet)
		return fn(m)
	})
}

func (r *aliasRetained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	if fn == nil {
		return r.Retained.Load(ctx, fn)
	}
	return r.Retained.Load(ctx, func(m *persistence.RetainedMessage) error {
		r.swap(m.Topic, m.Packet)
		return fn(m)
	})
}

// ---- ExpiredForEach returns sessions not yet due ----

type expiredEarly struct{ *persistence.Sessions }

func (s expiredEarly) ExpiredForEach(ctx context.Context, now time.Time, fn persistence.ExpiredLoader) error {
	return s.Sessions.ExpiredForEach(ctx, now.Add(time.Hour), fn)
}

// ---- '#' and '+' match '$' topics ----

type dollarMatch struct{ *persistence.Retained }

func (r dollarMatch) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	if fn == nil {
		return r.Retained.LoadMatching(ctx, filters, fn)
	}
	return r.Retained.Load(ctx, func(m *persistence.RetainedMessage) error {
		for _, f := range filters {
			if persistence.MatchTopic(f, m.Topic) ||
				(strings.HasPrefix(m.Topic, "$") && persistence.MatchTopic(f, "_"+m.Topic[1:])) {
				return fn(m)
			}
		}
		return nil
	})
}

// ---- the catalogue ----

// brokenDriver is one deliberately broken driver.
type brokenDriver struct {
	name string
	// wrap breaks a real mem provider.
	wrap func(p *persistence.Store) *persistence.Store
	// hangs marks drivers that deadlock instead of failing a check.
	hangs bool
}

func wrapSessions(f func(ss *persistence.Sessions) *persistence.Sessions) func(*persistence.Store) *persistence.Store {
	return func(p *persistence.Store) *persistence.Store { return &wrapped{Provider: p, ss: f(p.Sessions())} }
}

func wrapRetained(f func(rs *persistence.Retained) *persistence.Retained) func(*persistence.Store) *persistence.Store {
	return func(p *persistence.Store) *persistence.Store { return &wrapped{Provider: p, rs: f(p.Retained())} }
}

var brokenDrivers = []brokenDriver{
	{name: "LIFOIteration", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return lifoSessions{ss} })},
	{name: "DeleteLeavesSubscriptions", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions {
		return &leftoverSubs{Sessions: ss, left: map[string][]persistence.Subscription{}}
	})},
	{name: "NoErrNotFound", wrap: func(p *persistence.Store) *persistence.Store {
		return &wrapped{Provider: p, ss: nilOnMissing{p.Sessions()}, rs: nilOnMissingRetained{p.Retained()}}
	}},
	{name: "LockHeldDuringCallbacks", wrap: lockedCallbacks, hangs: true},
	{name: "SeqReusedAfterDelete", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return newRemap(ss, true, false) })},
	{name: "UpdateMovesToTail", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return newRemap(ss, false, true) })},
	{name: "CallbackErrorSwallowed", wrap: func(p *persistence.Store) *persistence.Store {
		return &wrapped{Provider: p, ss: swallowSessions{p.Sessions()}, rs: swallowRetained{p.Retained()}}
	}},
	{name: "CloseNotIdempotent", wrap: closeNotIdempotent},
	{name: "NoErrClosedAfterClose", wrap: noErrClosed},
	{name: "CancelledContextWrites", wrap: writesDespiteCancel},
	{name: "StoredValueAliasesCaller", wrap: func(p *persistence.Store) *persistence.Store {
		return &wrapped{Provider: p,
			ss: &aliasSessions{Sessions: p.Sessions(), data: map[uint64][]byte{}},
			rs: &aliasRetained{Retained: p.Retained(), data: map[string][]byte{}}}
	}},
	{name: "ExpiredBeforeDeadline", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return expiredEarly{ss} })},
	{name: "HashMatchesDollarTopics", wrap: wrapRetained(func(rs *persistence.Retained) *persistence.Retained { return dollarMatch{rs} })},
	{name: "DeleteLeavesPackets", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions {
		return &leftoverPackets{Sessions: ss, left: map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{}}
	})},
	{name: "NoErrAlreadyExists", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return noErrExists{ss} })},
	{name: "RetainedDeleteNoop", wrap: wrapRetained(func(rs *persistence.Retained) *persistence.Retained { return retainedDeleteNoop{rs} })},
	{name: "ApplyNotAtomic", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return applyOneByOne{ss} })},
	{name: "IgnoresContext", wrap: ignoresContext},
	{name: "CreatedAtNotFromClock", wrap: func(p *persistence.Store) *persistence.Store {
		return systemWrapped{Provider: p, sys: wallClockInfo{p.System()}}
	}},
}

// controlDrivers are wrappers that break nothing: the suite must pass them, which
// shows that a broken driver fails because of its one broken rule.
var controlDrivers = []brokenDriver{
	{name: "Mem", wrap: func(p *persistence.Store) *persistence.Store { return p }},
	{name: "RemapIdentity", wrap: wrapSessions(func(ss *persistence.Sessions) *persistence.Sessions { return newRemap(ss, false, false) })},
	{name: "HookIdentity", wrap: func(p *persistence.Store) *persistence.Store {
		return hook(p, func(ctx context.Context, _ string, fn func(context.Context) error) error { return fn(ctx) })
	}},
}

// newMem returns a new in-memory store, bypassing the registry.
func newMem() *persistence.Store { return mem.New(nil) }

// ---- running the suite against broken drivers in child processes ----

// Run's *testing.T cannot be intercepted, so each broken driver runs the suite in a
// child process: the test binary re-executed with -test.run selecting
// TestBrokenDriverChild and the relevant areas only, and the driver named in
// selftestDriverEnv. The parent asserts that the child fails, that its output names
// the expected failing subtests, and that it failed by its deadlines rather than
// hanging.

const (
	selftestDriverEnv = "MQTTSTORE_SELFTEST_DRIVER"
	selftestChildTime = 3 * time.Minute // bound of one child process
)

// selftestCase is one child run.
type selftestCase struct {
	driver string // a name in brokenDrivers or controlDrivers
	// areas is a -test.run pattern for the levels below TestBrokenDriverChild
	// ("^(Packets|Model)$"); empty runs the whole suite.
	areas string
	// fails are regexps of subtests (below TestBrokenDriverChild/) that must be
	// reported as failed; none for a control, which must pass.
	fails []string
	// caseTimeout is the harness's CaseTimeout in the child (0: the default).
	caseTimeout time.Duration
}

// selftestCases run the suite's relevant areas (or single cases, for drivers that
// hang) against each broken driver; fails names subtests that must fail. The
// controls run the whole suite and must pass it.
var selftestCases = []selftestCase{
	{driver: "LIFOIteration", areas: "^(Packets|Model)$",
		fails: []string{`Packets/QoS12/FIFO`, `Packets/Inflight/PubrelKeepsPosition`, `Model/Seed=\d+`}},
	{driver: "DeleteLeavesSubscriptions", areas: "^(Sessions|Bytes)$",
		fails: []string{`Sessions/DeleteCascadesToEverything`, `Bytes/IDs/Prefix`}},
	{driver: "DeleteLeavesPackets", areas: "^(Sessions)$",
		fails: []string{`Sessions/DeleteCascadesToEverything`}},
	{driver: "NoErrNotFound", areas: "^(Packets|Retained|Errors)$",
		fails: []string{`Packets/QoS0/GetMissingIsErrNotFound`, `Retained/GetMissingIsErrNotFound`, `Errors/StateGetWithoutStateIsErrNotFound`}},
	{driver: "NoErrAlreadyExists", areas: "^(Sessions|Batch)$",
		fails: []string{`Sessions/CreateExistingIsErrAlreadyExists`}},
	// Each hanging case costs its deadline: run only a few of them.
	{driver: "LockHeldDuringCallbacks", areas: "^(Sessions|Packets)$/^(LoadForEachCallbackMayCallAnyMethod|Inflight)$/^(|ForEachCallbackMayCallAnyMethod)$",
		fails: []string{`Sessions/LoadForEachCallbackMayCallAnyMethod`, `Packets/Inflight/ForEachCallbackMayCallAnyMethod`}, caseTimeout: 2 * time.Second},
	{driver: "SeqReusedAfterDelete", areas: "^(Packets)$",
		fails: []string{`Packets/QoS12/SeqNeverReusedAfterDelete`}},
	{driver: "UpdateMovesToTail", areas: "^(Packets)$",
		fails: []string{`Packets/Inflight/PubrelKeepsPosition`, `Packets/QoS0/UpdateKeepsPosition`}},
	{driver: "CallbackErrorSwallowed", areas: "^(Sessions|Packets|Retained|Expiry)$",
		fails: []string{`Packets/QoS12/ForEachErrorKeepsEarlierDeletes`, `Sessions/LoadForEachCallbackErrorReturned`,
			`Retained/LoadCallbackErrorReturned`, `Expiry/CallbackErrorReturned`}},
	{driver: "CloseNotIdempotent", areas: "^(Close)$", fails: []string{`Close/Idempotent`}},
	{driver: "NoErrClosedAfterClose", areas: "^(Close)$",
		fails: []string{`Close/AfterClose/PacketAppend`, `Close/AfterClose/Retained.Load`, `Close/AfterClose/System.GetInfo`}},
	{driver: "CancelledContextWrites", areas: "^(Context)$",
		fails: []string{`Context/Cancelled/PacketAppend`, `Context/DeadlineExceeded/Retained.Put`, `Context/CancelledBatchWritesNothing`}},
	{driver: "IgnoresContext", areas: "^(Context)$",
		fails: []string{`Context/Cancelled/Exists`, `Context/Cancelled/Create`, `Context/PacketIterationStopsWhenCancelled`}},
	{driver: "StoredValueAliasesCaller", areas: "^(Packets|Retained)$",
		fails: []string{`Packets/QoS12/StoredPacketIsACopy`, `Retained/StoredAndReturnedAreCopies`}},
	{driver: "ExpiredBeforeDeadline", areas: "^(Expiry)$",
		fails: []string{`Expiry/OnlyDueSessions`, `Expiry/FakeClockDrivesExpiry`}},
	{driver: "HashMatchesDollarTopics", areas: "^(Retained)$",
		fails: []string{`Retained/Match/DollarTopics`}},
	{driver: "RetainedDeleteNoop", areas: "^(Retained)$", fails: []string{`Retained/Delete`}},
	{driver: "ApplyNotAtomic", areas: "^(Batch)$",
		fails: []string{`Batch/FailingUpdateChangesNothing`, `Batch/MissingSessionChangesNothing`}},
	{driver: "CreatedAtNotFromClock", areas: "^(System)$", fails: []string{`System/CreatedAtFromClock`}},
	{driver: "Mem"},
	{driver: "RemapIdentity"},
	{driver: "HookIdentity"},
}

// harness returns the mem harness with every store wrapped by d.
func (d brokenDriver) harness() Harness {
	h := memHarness()
	newMem := h.New
	h.New = func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
		return d.wrap(newMem(t, opts...))
	}
	return h
}

func findDriver(name string) (brokenDriver, bool) {
	for _, d := range append(slices.Clone(brokenDrivers), controlDrivers...) {
		if d.name == name {
			return d, true
		}
	}
	return brokenDriver{}, false
}

// runSuite is what the children run.
func runSuite(t *testing.T, h Harness) { Run(t, h) }

// TestBrokenDriverChild runs the suite against the driver named in
// MQTTSTORE_SELFTEST_DRIVER. It does nothing unless started by TestBrokenDrivers.
func TestBrokenDriverChild(t *testing.T) {
	name := os.Getenv(selftestDriverEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestBrokenDrivers")
	}
	d, ok := findDriver(name)
	if !ok {
		t.Fatalf("%s=%q names no driver of the self-test", selftestDriverEnv, name)
	}
	h := d.harness()
	h.Caps.MaxPayload = 1 << 20 // sizes are not what the self-test is about
	if v := os.Getenv(selftestDriverEnv + "_CASE_TIMEOUT"); v != "" {
		ct, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("bad case timeout %q: %v", v, err)
		}
		h.CaseTimeout = ct
	}
	runSuite(t, h)
}

// TestBrokenDrivers proves that the suite catches each deliberately broken driver,
// and that it passes the unbroken ones.
func TestBrokenDrivers(t *testing.T) {
	if os.Getenv(selftestDriverEnv) != "" {
		t.Skip("already in a child process")
	}
	for _, c := range selftestCases {
		name := c.driver
		if len(c.fails) == 0 {
			name = "Control=" + name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, exit, timedOut := runChild(t, c)
			tail := lastLines(out, 60)
			switch {
			case timedOut:
				t.Fatalf("the child did not finish within %v: the suite hangs on this driver instead of failing by its deadline\n%s",
					selftestChildTime, tail)
			case strings.Contains(out, "panic: test timed out"):
				t.Fatalf("the child hit its -test.timeout: the suite hangs on this driver\n%s", tail)
			case len(c.fails) == 0:
				if exit != 0 || strings.Contains(out, "--- FAIL") {
					t.Fatalf("the suite fails a driver that breaks nothing (exit %d)\n%s", exit, failLines(out, tail))
				}
				if !strings.Contains(out, "--- PASS: TestBrokenDriverChild") {
					t.Fatalf("the child did not run the suite\n%s", tail)
				}
				t.Logf("passes: %d subtests", strings.Count(out, "--- PASS: TestBrokenDriverChild/"))
				return
			case exit == 0:
				t.Fatalf("the suite passes a driver that breaks a rule\n%s", tail)
			}
			for _, f := range c.fails {
				re := regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenDriverChild/` + f)
				if !re.MatchString(out) {
					t.Errorf("no failure of a subtest matching %q\n%s", f, failLines(out, tail))
				}
			}
			t.Logf("caught:\n%s", failLines(out, ""))
		})
	}
}

// runChild runs one child process, bounded by selftestChildTime.
func runChild(t *testing.T, c selftestCase) (out string, exit int, timedOut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), selftestChildTime)
	t.Cleanup(cancel)
	run := "^TestBrokenDriverChild$"
	if c.areas != "" {
		run += "/" + c.areas
	}
	args := []string{"-test.run=" + run, "-test.v", "-test.count=1",
		"-test.timeout=" + (selftestChildTime - 15*time.Second).String()}
	// Short mode keeps the children quick (fewer model seeds, shorter queues): they
	// check rules, not sizes, and providers/mem runs the full suite itself.
	args = append(args, "-test.short")
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), selftestDriverEnv+"="+c.driver)
	if c.caseTimeout > 0 {
		cmd.Env = append(cmd.Env, selftestDriverEnv+"_CASE_TIMEOUT="+c.caseTimeout.String())
	}
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return buf.String(), -1, true
	case errors.As(err, &ee):
		return buf.String(), ee.ExitCode(), false
	case err != nil:
		t.Fatalf("cannot run the child: %v", err)
	}
	return buf.String(), 0, false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"\t…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// failLines returns the "--- FAIL" lines of out, or def when there are none.
func failLines(out, def string) string {
	var fails []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "--- FAIL:") {
			fails = append(fails, strings.TrimRight(line, "\n"))
		}
	}
	if len(fails) == 0 {
		return def
	}
	return strings.Join(fails, "\n")
}

// ---- RunBench verifies what it measures ----

// benchOnce runs f as a one-iteration benchmark and reports whether it completed (a
// benchmark that fails reports N == 0).
func benchOnce(t *testing.T, f func(b *testing.B)) bool {
	t.Helper()
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("1x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)
	return testing.Benchmark(f).N > 0
}

// TestRunBenchWorkloads runs each standard workload once, small, against mem (they
// must complete) and against broken drivers (their checks must fail the benchmark,
// so that a broken driver cannot produce a fast number).
func TestRunBenchWorkloads(t *testing.T) {
	good := memHarness()
	lifo, _ := findDriver("LIFOIteration")
	dollar, _ := findDriver("HashMatchesDollarTopics")
	n := 1000
	for _, w := range []struct {
		name string
		run  func(b *testing.B, h Harness)
		bad  []brokenDriver // drivers the workload's checks must reject
	}{
		{"Append/Writers=1", func(b *testing.B, h Harness) { benchAppend(b, h, 1) }, nil},
		{"Append/Writers=64", func(b *testing.B, h Harness) { benchAppend(b, h, 64) }, nil},
		{"IterateAck", func(b *testing.B, h Harness) { benchIterateAck(b, h, n) }, []brokenDriver{lifo}},
		{"Retained/Subtree", func(b *testing.B, h Harness) {
			rs, _, devs := fillRetained(b, h, n)
			benchLoadMatching(b, rs, "site/7/#", devs)
		}, nil},
		{"Retained/PlusLevel", func(b *testing.B, h Harness) {
			rs, sites, _ := fillRetained(b, h, n)
			// A '$' topic must not be matched by a filter starting with '+'.
			if err := rs.Put(context.Background(), "$site/7/dev/3/temp", benchPacket(nil)); err != nil {
				b.Fatal(err)
			}
			benchLoadMatching(b, rs, "+/+/dev/3/temp", sites)
		}, []brokenDriver{dollar}},
		{"Sessions/LoadForEach", func(b *testing.B, h Harness) { benchSessions(b, h, n) }, nil},
	} {
		t.Run(w.name, func(t *testing.T) {
			if !benchOnce(t, func(b *testing.B) { w.run(b, good) }) {
				t.Fatal("the workload fails against mem")
			}
			for _, d := range w.bad {
				if benchOnce(t, func(b *testing.B) { w.run(b, d.harness()) }) {
					t.Errorf("the workload completes against the broken driver %s", d.name)
				}
			}
		})
	}
}
