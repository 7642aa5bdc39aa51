package broker

import (
	"errors"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// fanIn is one message of publishAll/fanOutAll and, in rc, its outcome. A
// message whose rc is already set when fanOutAll is called is skipped.
type fanIn struct {
	msg      *packet.Publish
	expireAt time.Time
	targets  []target
	mark     *incomingMark
	rc       packet.ReasonCode
	plans    [2]int // fanOutAll's plans of this message: plans[0]:plans[1]
	markSeq  bool   // the mark has an append in the batch
}

// publishAll is publish for consecutive messages from one client, in order, with
// one fan-out commit for all of them (publish_batch.go).
func (b *Broker) publishAll(from string, ins []fanIn) {
	var prev *fanIn
	for i := range ins {
		in := &ins[i]
		if in.msg.Retain {
			if rc := b.retain(in.msg, in.expireAt); rc != packet.Success {
				in.rc = rc
				continue
			}
		}
		if prev != nil && prev.msg.Topic == in.msg.Topic && prev.msg.QoS == in.msg.QoS && !anyShared(prev.targets) {
			// The same subscribers: a run is routed as of one moment. Not
			// for shared subscriptions, whose member is chosen per message.
			in.targets = prev.targets
		} else {
			in.targets = b.match(from, in.msg.Topic, in.msg.QoS)
		}
		prev = in
	}
	b.fanOutAll(ins)
}

// batchPool keeps the batches of the message path (fan-out, moves in flight,
// acknowledgement deletes), which the store does not keep after Apply, so that
// their operation slices (a few hundred bytes per operation) are not grown again
// for every message.
var batchPool = sync.Pool{New: func() any { return new(persistence.Batch) }}

// getBatch returns an empty batch from batchPool; putBatch gives it back.
func getBatch() *persistence.Batch { return batchPool.Get().(*persistence.Batch) }

// putBatch resets b and puts it back in batchPool; b is not used afterwards.
func putBatch(b *persistence.Batch) {
	b.Reset()
	batchPool.Put(b)
}

// fanOutAll is fanOut for several messages, in order, in one commit; each gets
// its own rc.
func (b *Broker) fanOutAll(ins []fanIn) {
	fenced := b.fanOutAllOnce(ins)
	if fenced == nil {
		return
	}
	// Cluster mode: a session this node served was taken by another node since
	// it planned; those it lost are dropped, then the rest is tried again, the
	// lost sessions now getting their messages in their stored queue. A message
	// whose publisher's own session moved fails.
	ctx, cancel := b.storeCtx()
	defer cancel()
	for _, s := range fenced {
		s.mu.Lock()
		own := s.own
		s.mu.Unlock()
		if own.Epoch == 0 {
			continue
		}
		cur, err := b.sess.Owner(ctx, s.id)
		if err != nil && !errors.Is(err, persistence.ErrNotFound) {
			b.storageError("Sessions.Owner", s.id, err)
			failAll(ins)
			return
		}
		if cur.Epoch == own.Epoch {
			continue
		}
		b.lostSession(s, "publish", persistence.ErrFenced)
		for i := range ins {
			if m := ins[i].mark; m != nil && m.s == s {
				ins[i].rc = packet.UnspecifiedError
			}
		}
	}
	if b.fanOutAllOnce(ins) != nil {
		failAll(ins)
	}
}

// failAll sets the rc of every message not failed yet to UnspecifiedError.
func failAll(ins []fanIn) {
	for i := range ins {
		if ins[i].rc == packet.Success {
			ins[i].rc = packet.UnspecifiedError
		}
	}
}

// fanOutAllOnce is one attempt of fanOutAll. On persistence.ErrFenced it sets no
// rc and returns the sessions whose fences the batch carried (cluster mode).
func (b *Broker) fanOutAllOnce(ins []fanIn) []*session {
	// The sessions' pending acknowledgement deletes go first and every append
	// after them, so that a driver sees one run of each (one statement each on
	// PostgreSQL, whatever the number of sessions).
	batch, appends := getBatch(), getBatch()
	defer putBatch(batch)
	defer putBatch(appends)
	var planBuf [4]plan
	plans := planBuf[:0]
	for !b.planAll(ins, &plans, batch, appends) {
		// A message could not be encoded (its rc says so): plan the others again
		// without it.
		b.undoPlans(plans)
		plans = plans[:0]
		batch.Reset()
		appends.Reset()
	}
	batch.Concat(appends)
	var fenced []*session
	var remote []string
	for _, p := range plans {
		switch {
		case p.kind == planRemote:
			remote = append(remote, p.s.id)
		case p.fenced:
			fenced = append(fenced, p.s)
		}
	}
	for i := range ins {
		if m := ins[i].mark; m != nil && ins[i].rc == packet.Success && m.fenced {
			fenced = append(fenced, m.s)
		}
	}
	wakeNotes(batch, remote) // cluster.go
	var seqs []uint64
	if batch.Len() > 0 {
		ctx, cancel := b.storeCtx()
		began := time.Now()
		var err error
		seqs, err = b.sess.Apply(ctx, batch)
		b.observeStore(time.Since(began))
		cancel()
		if err != nil {
			b.undoPlans(plans)
			if errors.Is(err, persistence.ErrFenced) && len(fenced) > 0 {
				return fenced
			}
			b.storageError("Sessions.Apply(publish)", ins[0].msg.Topic, err)
			failAll(ins)
			return nil
		}
	}
	i := 0
	var heldBuf [4]*conn
	held := heldOut(heldBuf[:0])
	defer held.signal()
	for k := range ins {
		in := &ins[k]
		if in.rc != packet.Success {
			continue
		}
		for _, p := range plans[in.plans[0]:in.plans[1]] {
			var seq uint64
			if p.append {
				seq = seqs[i]
				i++
			}
			b.commitPlan(p, seq, &held)
		}
		if mark := in.mark; mark != nil {
			var seq uint64
			if in.markSeq {
				seq = seqs[i]
				i++
			}
			if mark.pid != 0 {
				mark.s.mu.Lock()
				mark.s.incoming[mark.pid] = seq
				mark.s.mu.Unlock()
			}
		}
	}
	return nil
}

// planAll plans every message of ins whose rc is Success (0) for each of its
// targets, in order. It reports false, with that message's rc set, when a
// message cannot be encoded for the store.
func (b *Broker) planAll(ins []fanIn, plans *[]plan, batch, appends *persistence.Batch) bool {
	for k := range ins {
		in := &ins[k]
		if in.rc != packet.Success {
			continue
		}
		in.plans[0] = len(*plans)
		vs := variants{msg: in.msg, expireAt: in.expireAt}
		for i := range in.targets {
			t := &in.targets[i]
			p, ok, err := b.planFor(t.s, vs.forTarget(t), t.share, batch, appends)
			if err != nil {
				b.log.Error("broker: cannot encode message", "topic", in.msg.Topic, "err", err)
				in.rc = packet.ImplementationSpecific
				return false
			}
			if ok {
				*plans = append(*plans, p)
			}
		}
		in.plans[1] = len(*plans)
		in.markSeq = false
		if mark := in.mark; mark != nil {
			mark.s.mu.Lock()
			if mark.s.stored && mark.pid != 0 {
				appends.PacketAppend(mark.s.id, persistence.ClassIncoming, &persistence.PersistedPacket{
					PacketID: mark.pid, QoS: 2, ProtocolVersion: packet.Version5, Data: b.mustEncode(in.msg, mark.pid),
				})
				in.markSeq = true
			}
			mark.fenced = b.cl != nil && mark.s.own.Epoch != 0
			if mark.fenced {
				batch.Fence(mark.s.own)
			}
			mark.s.mu.Unlock()
			if mark.after != nil {
				appends.Concat(mark.after)
			}
		}
	}
	return true
}

func anyShared(ts []target) bool {
	for i := range ts {
		if ts[i].share != nil {
			return true
		}
	}
	return false
}
