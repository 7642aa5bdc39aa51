package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
)

// Model steps on the packet queues: appends, gets, updates, deletes, counts, bulk
// stores and deletes, and iterations that delete from the callback.

func (r *modelRunner) opPacketAppend(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	p, bad := r.maybeInvalidPacket(3)
	want := r.sessionWant(id, bad || !c.Valid())
	r.begin("PacketAppend(%q, %s, %s)", id, c, fmtPacket(p))
	var junk uint64
	mp := p.Clone()
	if p != nil {
		junk = p.Seq
	}
	seq, err := r.ss.PacketAppend(ctx, id, c, p)
	r.expect(err, want)
	if p != nil && p.Seq != junk {
		r.failf("PacketAppend changed the caller's p.Seq from %d to %d; it must leave it untouched", junk, p.Seq)
	}
	if want != errNil {
		return
	}
	r.newSeq(id, c, seq)
	mp.Seq = seq
	s := r.m.sessions[id]
	s.queues[c-1] = append(s.queues[c-1], mp)
	scribblePacket(p)
}

func fmtPacket(p *persistence.PersistedPacket) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("{id %d, QoS %d, v%d, %s}", p.PacketID, p.QoS, p.ProtocolVersion, fmtData(p.Data))
}

// find returns the index of seq in q, or -1.
func find(q []*persistence.PersistedPacket, seq uint64) int {
	return slices.IndexFunc(q, func(p *persistence.PersistedPacket) bool { return p.Seq == seq })
}

func (r *modelRunner) opPacketGet(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	r.begin("PacketGet(%q, %s, %d)", id, c, seq)
	got, err := r.ss.PacketGet(ctx, id, c, seq)
	want := r.sessionWant(id, !c.Valid())
	if want != errNil {
		r.expect(err, want)
		return
	}
	q := r.m.sessions[id].queues[c-1]
	i := find(q, seq)
	if i < 0 {
		r.expect(err, errNotFound)
		if err != nil && got != nil {
			r.failf("PacketGet of a missing packet returned a packet along with its error")
		}
		return
	}
	r.expect(err, errNil)
	if d := diffPacket(got, q[i], true); d != "" {
		r.failf("PacketGet: %s", d)
	}
	scribblePacket(got)
}

func (r *modelRunner) opPacketUpdate(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	p, bad := r.maybeInvalidPacket(3)
	if p != nil {
		p.Seq = seq
	}
	r.begin("PacketUpdate(%q, %s, seq %d, %s)", id, c, seq, fmtPacket(p))
	mp := p.Clone()
	err := r.ss.PacketUpdate(ctx, id, c, p)
	want := r.sessionWant(id, bad || !c.Valid())
	if s := r.m.sessions[id]; s != nil && c.Valid() && find(s.queues[c-1], seq) < 0 {
		// A missing packet: ErrNotFound, unless the driver checks the arguments first.
		want = want&^errNil | errNotFound
	}
	r.expect(err, want)
	if want != errNil {
		return
	}
	q := r.m.sessions[id].queues[c-1]
	q[find(q, seq)] = mp // in place: an update keeps the packet's position
	scribblePacket(p)
	if r.pct(30) {
		r.checkClass(ctx, id, c)
	}
}

func (r *modelRunner) opPacketDelete(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	r.begin("PacketDelete(%q, %s, %d)", id, c, seq)
	err := r.ss.PacketDelete(ctx, id, c, seq)
	want := r.sessionWant(id, !c.Valid())
	r.expect(err, want)
	if want != errNil {
		return
	}
	s := r.m.sessions[id]
	if i := find(s.queues[c-1], seq); i >= 0 {
		s.queues[c-1] = slices.Delete(s.queues[c-1], i, i+1)
	}
}

func (r *modelRunner) opPacketCount(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	r.begin("PacketCount(%q, %s)", id, c)
	n, err := r.ss.PacketCount(ctx, id, c)
	want := r.sessionWant(id, !c.Valid())
	r.expect(err, want)
	if want == errNil && n != uint64(len(r.m.sessions[id].queues[c-1])) {
		r.failf("PacketCount(%q, %s) = %d, want %d", id, c, n, len(r.m.sessions[id].queues[c-1]))
	}
}

func (r *modelRunner) opPacketsStore(ctx context.Context) {
	id := r.pickID()
	pp := &persistence.PersistedPackets{}
	var added [4][]*persistence.PersistedPacket
	bad := false
	var desc []string
	for _, c := range persistence.PacketClasses {
		n := r.rng.IntN(4)
		for range n {
			p, inv := r.maybeInvalidPacket(2)
			if p == nil { // PersistedPackets has no use for nil entries; make it QoS 3
				p, inv = r.packet(), true
				p.QoS = 3
			}
			bad = bad || inv
			added[c-1] = append(added[c-1], p.Clone())
			switch c {
			case persistence.ClassQoS0:
				pp.QoS0 = append(pp.QoS0, p)
			case persistence.ClassQoS12:
				pp.QoS12 = append(pp.QoS12, p)
			case persistence.ClassUnAck:
				pp.UnAck = append(pp.UnAck, p)
			case persistence.ClassIncoming:
				pp.Incoming = append(pp.Incoming, p)
			}
		}
		if n > 0 {
			desc = append(desc, fmt.Sprintf("%s×%d", c, n))
		}
	}
	r.begin("PacketsStore(%q, {%s}, invalid %v)", id, strings.Join(desc, " "), bad)
	err := r.ss.PacketsStore(ctx, id, pp)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil {
			r.checkSession(ctx, id) // atomic: nothing of a failed call is stored
		}
		return
	}
	for _, c := range persistence.PacketClasses {
		scribbleAll(pp.Class(c))
	}
	// The seqs PacketsStore assigned are not returned: read them back. The new packets
	// are at the tail, in slice order.
	s := r.m.sessions[id]
	for _, c := range persistence.PacketClasses {
		if len(added[c-1]) == 0 {
			continue
		}
		old := s.queues[c-1]
		got := r.readClass(ctx, id, c)
		if len(got) != len(old)+len(added[c-1]) {
			r.failf("after PacketsStore of %d packets to (%q, %s), which held %d, the queue holds %d",
				len(added[c-1]), id, c, len(old), len(got))
		}
		for i, p := range got {
			if i < len(old) {
				if d := diffPacket(p, old[i], true); d != "" {
					r.failf("after PacketsStore, queue (%q, %s) packet #%d: %s", id, c, i, d)
				}
				continue
			}
			w := added[c-1][i-len(old)]
			if d := diffPacket(p, w, false); d != "" {
				r.failf("after PacketsStore, queue (%q, %s) packet #%d (stored #%d): %s", id, c, i, i-len(old), d)
			}
			r.newSeq(id, c, p.Seq)
			w.Seq = p.Seq
			s.queues[c-1] = append(s.queues[c-1], w)
		}
	}
}

func (r *modelRunner) opPacketsDelete(ctx context.Context) {
	id := r.pickID()
	var classes []persistence.PacketClass
	for range r.rng.IntN(4) {
		classes = append(classes, r.pickClass())
	}
	bad := slices.ContainsFunc(classes, func(c persistence.PacketClass) bool { return !c.Valid() })
	r.begin("PacketsDelete(%q, %v)", id, classes)
	err := r.ss.PacketsDelete(ctx, id, classes...)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil {
			r.checkSession(ctx, id)
		}
		return
	}
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	s := r.m.sessions[id]
	for _, c := range classes {
		s.queues[c-1] = nil
	}
}

// opPacketsForEach iterates one queue, deleting some packets from the callback,
// sometimes stopping early or failing, sometimes calling back into the store.
func (r *modelRunner) opPacketsForEach(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	pDel := pick(r, []float64{0, 0, 0.3, 0.7, 1})
	var pStop, pErr float64
	switch r.rng.IntN(4) {
	case 0:
		pStop = 0.15
	case 1:
		pErr = 0.15
	}
	rng := rand.New(rand.NewPCG(r.rng.Uint64(), 1))
	want := r.sessionWant(id, !c.Valid())
	r.begin("PacketsForEach(%q, %s, delete %.1f, stop %.2f, error %.2f)", id, c, pDel, pStop, pErr)
	var snap []*persistence.PersistedPacket
	s := r.m.sessions[id]
	if want == errNil {
		snap = s.queues[c-1]
	}
	var (
		i        int
		dels     = map[uint64]bool{}
		ended    string
		mismatch string
	)
	err := r.ss.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		switch {
		case p == nil:
			mismatch = "the callback got a nil packet"
		case ended != "":
			mismatch = fmt.Sprintf("callback called again (seq %d) after it stopped the iteration (%s)", p.Seq, ended)
		case want != errNil:
			mismatch = "the callback was called, but the call should fail with " + want.String()
		case i >= len(snap):
			mismatch = fmt.Sprintf("visited packet #%d (seq %d), but the queue holds %d", i, p.Seq, len(snap))
		default:
			if d := diffPacket(p, snap[i], true); d != "" {
				mismatch = fmt.Sprintf("packet #%d in FIFO order: %s", i, d)
			}
		}
		if mismatch != "" {
			return false, errModelMismatch
		}
		i++
		del := rng.Float64() < pDel
		if del {
			dels[p.Seq] = true
		}
		scribblePacket(p)
		if rng.IntN(10) == 0 {
			// Call back into the store: no lock may be held while the callback runs.
			oc := persistence.PacketClasses[(int(c)+rng.IntN(3))%4]
			n, err := r.ss.PacketCount(ctx, id, oc)
			if err != nil || n != uint64(len(s.queues[oc-1])) {
				mismatch = fmt.Sprintf("PacketCount(%q, %s) from inside the callback = %d, %v; want %d, nil",
					id, oc, n, errString(err), len(s.queues[oc-1]))
				return false, errModelMismatch
			}
		}
		switch x := rng.Float64(); {
		case x < pStop:
			ended = "stop"
			return del, persistence.ErrStopIteration
		case x < pStop+pErr:
			ended = "error"
			return del, errModelCallback
		}
		return del, nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	switch ended {
	case "error":
		r.expect(err, errCallback)
	default:
		r.expect(err, want)
	}
	if want != errNil {
		return
	}
	if ended == "" && i != len(snap) {
		r.failf("the iteration visited %d packets, but the queue holds %d", i, len(snap))
	}
	if len(dels) > 0 {
		// Deletions asked for by the callback are applied, even those of the call
		// that stopped the iteration.
		s.queues[c-1] = slices.DeleteFunc(slices.Clone(snap), func(p *persistence.PersistedPacket) bool { return dels[p.Seq] })
		r.checkClass(ctx, id, c)
	}
}
