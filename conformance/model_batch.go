package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Model steps that apply random atomic batches, simulated on a copy of the model.

// genBatch builds a random batch over one to three sessions; some batches carry an
// operation that makes the whole batch fail.
func (r *modelRunner) genBatch() (*persistence.Batch, []string) {
	var ids []string
	for range 1 + r.rng.IntN(3) {
		ids = append(ids, r.pickID())
	}
	type adder func(b *persistence.Batch) string
	var adds []adder
	for _, id := range ids {
		if r.m.sessions[id] == nil && r.pct(80) {
			base := persistence.SessionBase{CreatedAt: r.when(), ProtocolVersion: 5}
			adds = append(adds, func(b *persistence.Batch) string {
				b.Create(id, base)
				return fmt.Sprintf("Create(%q)", id)
			})
		}
	}
	n := r.rng.IntN(7)
	for range n {
		id := pick(r, ids)
		c := pick(r, persistence.PacketClasses)
		switch x := r.rng.IntN(100); {
		case x < 4:
			adds = append(adds, func(b *persistence.Batch) string {
				b.Create(id, persistence.SessionBase{CreatedAt: modelEpoch, ProtocolVersion: 4})
				return fmt.Sprintf("Create(%q)", id)
			})
		case x < 8:
			adds = append(adds, func(b *persistence.Batch) string { b.Delete(id); return fmt.Sprintf("Delete(%q)", id) })
		case x < 35:
			p := r.packet()
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketAppend(id, c, p)
				return fmt.Sprintf("PacketAppend(%q, %s)", id, c)
			})
		case x < 45:
			p := r.packet()
			p.Seq = r.pickSeq(id, c)
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketUpdate(id, c, p)
				return fmt.Sprintf("PacketUpdate(%q, %s, %d)", id, c, p.Seq)
			})
		case x < 55:
			seq := r.pickSeq(id, c)
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketDelete(id, c, seq)
				return fmt.Sprintf("PacketDelete(%q, %s, %d)", id, c, seq)
			})
		case x < 59:
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketsDelete(id, c)
				return fmt.Sprintf("PacketsDelete(%q, %s)", id, c)
			})
		case x < 69:
			sub := r.subscription()
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionStore(id, sub)
				return fmt.Sprintf("SubscriptionStore(%q, %q)", id, sub.Filter)
			})
		case x < 75:
			f := pick(r, modelFilters)
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionDelete(id, f)
				return fmt.Sprintf("SubscriptionDelete(%q, %q)", id, f)
			})
		case x < 78:
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionsDeleteAll(id)
				return fmt.Sprintf("SubscriptionsDeleteAll(%q)", id)
			})
		case x < 84:
			st := r.state()
			adds = append(adds, func(b *persistence.Batch) string {
				b.StateStore(id, st)
				return fmt.Sprintf("StateStore(%q)", id)
			})
		case x < 87:
			adds = append(adds, func(b *persistence.Batch) string { b.StateDelete(id); return fmt.Sprintf("StateDelete(%q)", id) })
		case x < 95:
			e := r.expiry()
			adds = append(adds, func(b *persistence.Batch) string {
				b.ExpiryStore(id, e)
				return fmt.Sprintf("ExpiryStore(%q, %s)", id, fmtTime(e.Next()))
			})
		default:
			adds = append(adds, func(b *persistence.Batch) string { b.ExpiryDelete(id); return fmt.Sprintf("ExpiryDelete(%q)", id) })
		}
	}
	if len(adds) > 0 && r.pct(20) {
		// A poison operation: the whole batch must fail and write nothing.
		id := pick(r, ids)
		var poison adder
		switch r.rng.IntN(4) {
		case 0:
			seq := r.highSeq + 1 + r.rng.Uint64N(1000)
			poison = func(b *persistence.Batch) string {
				b.PacketUpdate(id, persistence.ClassUnAck, &persistence.PersistedPacket{Seq: seq, QoS: 1})
				return fmt.Sprintf("PacketUpdate(%q, UnAck, missing seq %d)", id, seq)
			}
		case 1:
			if m := r.missingID(); m != "" && !slices.Contains(ids, m) {
				poison = func(b *persistence.Batch) string {
					b.SubscriptionStore(m, r.subscription())
					return fmt.Sprintf("SubscriptionStore(missing %q)", m)
				}
				break
			}
			fallthrough
		case 2:
			if ex := r.m.ids(); len(ex) > 0 {
				e := pick(r, ex)
				poison = func(b *persistence.Batch) string {
					b.Create(e, persistence.SessionBase{})
					return fmt.Sprintf("Create(existing %q)", e)
				}
				break
			}
			fallthrough
		default:
			c := pick(r, invalidClasses)
			poison = func(b *persistence.Batch) string {
				b.PacketAppend(id, c, r.packet())
				return fmt.Sprintf("PacketAppend(%q, invalid class %d)", id, c)
			}
		}
		i := r.rng.IntN(len(adds) + 1)
		adds = slices.Insert(adds, i, poison)
	}
	b := &persistence.Batch{}
	desc := make([]string, len(adds))
	for i, add := range adds {
		desc[i] = add(b)
	}
	return b, desc
}

// simulate applies ops to m in order, as Apply must. It returns the packets the
// appends store (their Seq still unset), the first failure and whether any operation
// has an argument no store accepts.
func simulate(m *model, ops []driver.Op) (appended []*persistence.PersistedPacket, appendKeys []seqKey, fail errKind, invalid bool) {
	for i := range ops {
		if ops[i].Validate() != nil {
			invalid = true
		}
	}
	placeholder := map[*persistence.PersistedPacket]bool{}
	live := func(q []*persistence.PersistedPacket, seq uint64) int {
		return slices.IndexFunc(q, func(p *persistence.PersistedPacket) bool { return !placeholder[p] && p.Seq == seq })
	}
	for i := range ops {
		op := &ops[i]
		if op.Validate() != nil {
			return nil, nil, errInvalid, invalid
		}
		s := m.sessions[op.ID]
		switch op.Kind {
		case driver.OpCreate:
			if s != nil {
				return nil, nil, errExists, invalid
			}
			m.sessions[op.ID] = &mSession{base: op.Base}
			continue
		case driver.OpDelete:
			delete(m.sessions, op.ID)
			continue
		}
		if s == nil {
			return nil, nil, errNotFound, invalid
		}
		switch op.Kind {
		case driver.OpPacketAppend:
			p := op.Packet.Clone()
			placeholder[p] = true
			appended = append(appended, p)
			appendKeys = append(appendKeys, seqKey{op.ID, op.Class})
			s.queues[op.Class-1] = append(s.queues[op.Class-1], p)
		case driver.OpPacketUpdate:
			j := live(s.queues[op.Class-1], op.Packet.Seq)
			if j < 0 {
				return nil, nil, errNotFound, invalid
			}
			s.queues[op.Class-1][j] = op.Packet.Clone()
		case driver.OpPacketDelete:
			if j := live(s.queues[op.Class-1], op.Seq); j >= 0 {
				s.queues[op.Class-1] = slices.Delete(s.queues[op.Class-1], j, j+1)
			}
		case driver.OpPacketsDelete:
			s.queues[op.Class-1] = nil
		case driver.OpSubscriptionStore:
			if s.subs == nil {
				s.subs = map[string]persistence.Subscription{}
			}
			s.subs[op.Subscription.Filter] = op.Subscription
		case driver.OpSubscriptionDelete:
			delete(s.subs, op.Filter)
		case driver.OpSubscriptionsDeleteAll:
			s.subs = nil
		case driver.OpStateStore:
			s.state = op.State.Clone()
		case driver.OpStateDelete:
			s.state = nil
		case driver.OpExpiryStore:
			s.exp = op.Expiry
		case driver.OpExpiryDelete:
			s.exp = persistence.SessionExpiry{}
		}
	}
	return appended, appendKeys, errNil, invalid
}

func (r *modelRunner) opApply(ctx context.Context) {
	b, desc := r.genBatch()
	sim := r.m.clone()
	appended, keys, fail, invalid := simulate(sim, b.Ops())
	want := fail
	if invalid {
		want = errInvalid // the Store validates every operation before the driver sees any
	}
	r.begin("Apply[%s] (want %v)", strings.Join(desc, ", "), want)
	seqs, err := r.ss.Apply(ctx, b)
	r.expect(err, want)
	if want == errNil {
		if len(seqs) != len(appended) || len(seqs) != b.Appends() {
			r.failf("Apply returned %d sequence numbers for a batch with %d appends", len(seqs), b.Appends())
		}
		for i, seq := range seqs {
			r.newSeq(keys[i].id, keys[i].class, seq)
			appended[i].Seq = seq
		}
		r.m = sim
	}
	// On success the batch is all there; on failure nothing of it is.
	touched := map[string]bool{}
	for _, op := range b.Ops() {
		if !touched[op.ID] {
			touched[op.ID] = true
			r.checkSession(ctx, op.ID)
		}
	}
}
