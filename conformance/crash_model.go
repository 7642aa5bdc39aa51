package conformance

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// The crash workload and its model. Each writer of the child owns two sessions
// ("crash/w<N>/s0", "…/s1") and eight retained topics ("crash/w<N>/t<M>") and runs
// one operation at a time, so that at a kill each writer has at most one operation
// in flight. The model of a writer is a map from item keys to a canonical text of
// the item's value (crashModel); the store is read into the same form (observe), so
// checking is comparing maps.

// crashStep is one write of a crash operation; an operation of one step is made with
// the single-call API, one of several with a Batch (retained steps are always alone).
type crashStep struct {
	K     string                       `json:"k"` // see crashStep.exec
	ID    string                       `json:"id,omitempty"`
	Class persistence.PacketClass      `json:"c,omitempty"`
	Seq   uint64                       `json:"seq,omitempty"`
	Pkt   *persistence.PersistedPacket `json:"p,omitempty"`
	Base  persistence.SessionBase      `json:"b,omitzero"`
	Sub   *persistence.Subscription    `json:"sub,omitempty"`
	State *persistence.SessionState    `json:"st,omitempty"`
	Exp   *persistence.SessionExpiry   `json:"e,omitempty"`
	Topic string                       `json:"t,omitempty"`
}

type crashOp struct {
	Steps []crashStep `json:"s"`
}

func (o crashOp) String() string {
	parts := make([]string, len(o.Steps))
	for i, s := range o.Steps {
		switch s.K {
		case "create", "delete", "unstate", "unexp":
			parts[i] = fmt.Sprintf("%s(%s)", s.K, s.ID)
		case "append":
			parts[i] = fmt.Sprintf("append(%s, %s, %s)", s.ID, s.Class, canonData(s.Pkt.Data))
		case "update":
			parts[i] = fmt.Sprintf("update(%s, %s, seq %d, %s)", s.ID, s.Class, s.Seq, canonData(s.Pkt.Data))
		case "ack":
			parts[i] = fmt.Sprintf("ack(%s, %s, seq %d)", s.ID, s.Class, s.Seq)
		case "clear":
			parts[i] = fmt.Sprintf("PacketsDelete(%s, %s)", s.ID, s.Class)
		case "sub", "unsub":
			parts[i] = fmt.Sprintf("%s(%s, %q)", s.K, s.ID, s.Sub.Filter)
		case "state":
			parts[i] = fmt.Sprintf("state(%s)", s.ID)
		case "exp":
			parts[i] = fmt.Sprintf("expiry(%s, %s)", s.ID, canonExpiry(*s.Exp))
		case "retain":
			parts[i] = fmt.Sprintf("retain(%q, %s)", s.Topic, canonData(s.Pkt.Data))
		case "unretain":
			parts[i] = fmt.Sprintf("unretain(%q)", s.Topic)
		default:
			parts[i] = s.K
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "Batch[" + strings.Join(parts, ", ") + "]"
}

// exec makes the operation through the SDK and returns the sequence numbers of its
// appends.
func (o crashOp) exec(ctx context.Context, p *persistence.Store) ([]uint64, error) {
	ss := p.Sessions()
	if len(o.Steps) > 1 {
		var b persistence.Batch
		for _, s := range o.Steps {
			switch s.K {
			case "create":
				b.Create(s.ID, s.Base)
			case "delete":
				b.Delete(s.ID)
			case "append":
				b.PacketAppend(s.ID, s.Class, s.Pkt)
			case "update":
				b.PacketUpdate(s.ID, s.Class, s.Pkt)
			case "ack":
				b.PacketDelete(s.ID, s.Class, s.Seq)
			case "clear":
				b.PacketsDelete(s.ID, s.Class)
			case "sub":
				b.SubscriptionStore(s.ID, *s.Sub)
			case "unsub":
				b.SubscriptionDelete(s.ID, s.Sub.Filter)
			case "state":
				b.StateStore(s.ID, s.State)
			case "unstate":
				b.StateDelete(s.ID)
			case "exp":
				b.ExpiryStore(s.ID, *s.Exp)
			case "unexp":
				b.ExpiryDelete(s.ID)
			default:
				return nil, fmt.Errorf("crash: step %q cannot be batched", s.K)
			}
		}
		return ss.Apply(ctx, &b)
	}
	s := o.Steps[0]
	switch s.K {
	case "create":
		return nil, ss.Create(ctx, s.ID, s.Base)
	case "delete":
		return nil, ss.Delete(ctx, s.ID)
	case "append":
		seq, err := ss.PacketAppend(ctx, s.ID, s.Class, s.Pkt)
		return []uint64{seq}, err
	case "update":
		return nil, ss.PacketUpdate(ctx, s.ID, s.Class, s.Pkt)
	case "ack":
		return nil, ss.PacketDelete(ctx, s.ID, s.Class, s.Seq)
	case "clear":
		return nil, ss.PacketsDelete(ctx, s.ID, s.Class)
	case "sub":
		return nil, ss.SubscriptionsStore(ctx, s.ID, *s.Sub)
	case "unsub":
		return nil, ss.SubscriptionsDelete(ctx, s.ID, s.Sub.Filter)
	case "state":
		return nil, ss.StateStore(ctx, s.ID, s.State)
	case "unstate":
		return nil, ss.StateDelete(ctx, s.ID)
	case "exp":
		return nil, ss.ExpiryStore(ctx, s.ID, *s.Exp)
	case "unexp":
		return nil, ss.ExpiryDelete(ctx, s.ID)
	case "retain":
		return nil, p.Retained().Put(ctx, s.Topic, s.Pkt)
	case "unretain":
		return nil, p.Retained().Delete(ctx, s.Topic)
	}
	return nil, fmt.Errorf("crash: unknown step %q", s.K)
}

// crashModel maps item keys to the canonical text of their values.
type crashModel map[string]string

func sessKey(id string) string { return "s " + id + "|" }
func pktPrefix(id string, c persistence.PacketClass) string {
	return sessKey(id) + "p" + strconv.Itoa(int(c)) + " "
}
func pktKey(id string, c persistence.PacketClass, seq uint64) string {
	return pktPrefix(id, c) + fmt.Sprintf("%020d", seq)
}
func subKey(id, filter string) string { return sessKey(id) + "sub " + filter }
func stateKey(id string) string       { return sessKey(id) + "state" }
func expKey(id string) string         { return sessKey(id) + "expiry" }
func retKey(topic string) string      { return "r " + topic }

// placeholder is the key of an append whose sequence number is not known (the
// operation in flight at the kill); resolve replaces it with the stored one.
func placeholder(id string, c persistence.PacketClass, i int) string {
	return pktPrefix(id, c) + fmt.Sprintf("?%03d", i)
}

func canonTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func canonData(d []byte) string {
	head := d
	if i := slices.Index(head, ' '); i >= 0 {
		head = head[:i]
	}
	if len(head) > 24 {
		head = head[:24]
	}
	return fmt.Sprintf("%q(%dB crc %08x)", head, len(d), crc32.ChecksumIEEE(d))
}

func canonPkt(p *persistence.PersistedPacket) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("pid=%d qos=%d v%d exp=%s data=%s", p.PacketID, p.QoS, p.ProtocolVersion, canonTime(p.ExpireAt), canonData(p.Data))
}

func canonBase(b persistence.SessionBase) string {
	return fmt.Sprintf("session created=%s v%d", canonTime(b.CreatedAt), b.ProtocolVersion)
}

func canonSub(s persistence.Subscription) string {
	return fmt.Sprintf("qos=%d nl=%t rap=%t rh=%d id=%d", s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling, s.ID)
}

func canonState(s *persistence.SessionState) string {
	return fmt.Sprintf("v%d expiry=%d user=%q will={%s} delay=%d disconnected=%s data=%s",
		s.ProtocolVersion, s.ExpiryInterval, s.Username, canonPkt(s.Will), s.WillDelay, canonTime(s.DisconnectedAt), canonData(s.UserData))
}

func canonExpiry(e persistence.SessionExpiry) string {
	return fmt.Sprintf("expire=%s will=%s", canonTime(e.ExpireAt), canonTime(e.WillAt))
}

// apply applies op to m. seqs are the sequence numbers of its appends, or nil when
// they are unknown (placeholders are used). touched, when not nil, collects the keys
// the operation may change.
func (m crashModel) apply(op crashOp, seqs []uint64, touched map[string]bool) {
	touch := func(k string) {
		if touched != nil {
			touched[k] = true
		}
	}
	del := func(prefix string) {
		for k := range m {
			if strings.HasPrefix(k, prefix) {
				delete(m, k)
				touch(k)
			}
		}
		touch(prefix)
	}
	set := func(k, v string) { m[k] = v; touch(k) }
	n := 0
	for _, s := range op.Steps {
		switch s.K {
		case "create":
			set(sessKey(s.ID), canonBase(s.Base))
		case "delete":
			del(sessKey(s.ID))
		case "append":
			k := placeholder(s.ID, s.Class, n)
			if seqs != nil {
				k = pktKey(s.ID, s.Class, seqs[n])
			} else {
				touch(pktPrefix(s.ID, s.Class) + "?") // a new key of that queue, whatever its seq
			}
			n++
			set(k, canonPkt(s.Pkt))
		case "update":
			set(pktKey(s.ID, s.Class, s.Seq), canonPkt(s.Pkt))
		case "ack":
			k := pktKey(s.ID, s.Class, s.Seq)
			delete(m, k)
			touch(k)
		case "clear":
			del(pktPrefix(s.ID, s.Class))
		case "sub":
			set(subKey(s.ID, s.Sub.Filter), canonSub(*s.Sub))
		case "unsub":
			k := subKey(s.ID, s.Sub.Filter)
			delete(m, k)
			touch(k)
		case "state":
			set(stateKey(s.ID), canonState(s.State))
		case "unstate":
			delete(m, stateKey(s.ID))
			touch(stateKey(s.ID))
		case "exp":
			set(expKey(s.ID), canonExpiry(*s.Exp))
		case "unexp":
			delete(m, expKey(s.ID))
			touch(expKey(s.ID))
		case "retain":
			set(retKey(s.Topic), canonPkt(s.Pkt))
		case "unretain":
			delete(m, retKey(s.Topic))
			touch(retKey(s.Topic))
		}
	}
}

// writerOf returns the writer a key belongs to, or -1.
func writerOf(k string) int {
	_, rest, ok := strings.Cut(k, " crash/w")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, "/")
	if !ok {
		return -1
	}
	w, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return w
}

// split returns the part of m of each of writers, and the keys of no writer.
func (m crashModel) split(writers int) ([]crashModel, []string) {
	out := make([]crashModel, writers)
	for i := range out {
		out[i] = crashModel{}
	}
	var stray []string
	for k, v := range m {
		if w := writerOf(k); w >= 0 && w < writers {
			out[w][k] = v
		} else {
			stray = append(stray, k)
		}
	}
	slices.Sort(stray)
	return out, stray
}

// head returns the lowest sequence number in (id, class), or false.
func (m crashModel) head(id string, c persistence.PacketClass) (uint64, bool) {
	prefix := pktPrefix(id, c)
	var best uint64
	found := false
	for k := range m {
		if s, ok := strings.CutPrefix(k, prefix); ok {
			if seq, err := strconv.ParseUint(s, 10, 64); err == nil && (!found || seq < best) {
				best, found = seq, true
			}
		}
	}
	return best, found
}

func (m crashModel) subs(id string) []string {
	var out []string
	for k := range m {
		if f, ok := strings.CutPrefix(k, sessKey(id)+"sub "); ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

var crashEpoch = time.Unix(1_900_000_000, 0).UTC()

// genOp returns the next operation of writer w, whose part of the store is m.
func genOp(rng *rand.Rand, w, round, k int, m crashModel) crashOp {
	sid := func(j int) string { return fmt.Sprintf("crash/w%d/s%d", w, j) }
	j := rng.IntN(2)
	id, other := sid(j), sid(1-j)
	tag := fmt.Sprintf("w%d.r%d.k%d", w, round, k)
	n := 0
	pkt := func(qos uint8) *persistence.PersistedPacket {
		size := 8 + rng.IntN(300)
		if rng.IntN(25) == 0 {
			size = 2000 + rng.IntN(6000)
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte('a' + rng.IntN(26))
		}
		head := fmt.Sprintf("%s.%d ", tag, n)
		n++
		copy(data, head)
		p := &persistence.PersistedPacket{QoS: qos, ProtocolVersion: uint8(4 + rng.IntN(2)), PacketID: uint16(rng.IntN(65536)), Data: data}
		if rng.IntN(4) == 0 {
			p.ExpireAt = crashEpoch.Add(time.Duration(rng.Int64N(1e15)))
		}
		return p
	}
	when := func() time.Time { return crashEpoch.Add(time.Duration(rng.Int64N(1e15))) }
	sub := func(sess string) *persistence.Subscription {
		return &persistence.Subscription{Filter: fmt.Sprintf("crash/w%d/+/f%d", w, rng.IntN(6)), QoS: uint8(rng.IntN(3)),
			NoLocal: rng.IntN(2) == 0, RetainHandling: uint8(rng.IntN(3)), ID: uint32(rng.IntN(1000))}
	}
	state := func() *persistence.SessionState {
		st := &persistence.SessionState{ProtocolVersion: 5, ExpiryInterval: time.Duration(rng.IntN(3600)) * time.Second,
			Username: tag, WillDelay: time.Duration(rng.IntN(60)) * time.Second, DisconnectedAt: when(), UserData: []byte(tag)}
		if rng.IntN(2) == 0 {
			st.Will = pkt(1)
		}
		return st
	}
	exp := func() *persistence.SessionExpiry {
		e := &persistence.SessionExpiry{ExpireAt: when()}
		if rng.IntN(2) == 0 {
			e.WillAt = when()
		}
		return e
	}
	step := func(s ...crashStep) crashOp { return crashOp{Steps: s} }
	base := func() persistence.SessionBase {
		return persistence.SessionBase{CreatedAt: when(), ProtocolVersion: uint8(4 + rng.IntN(2))}
	}
	if _, ok := m[sessKey(id)]; !ok {
		op := step(crashStep{K: "create", ID: id, Base: base()})
		if rng.IntN(2) == 0 { // a broker's connect: session, subscription and state at once
			op.Steps = append(op.Steps, crashStep{K: "sub", ID: id, Sub: sub(id)}, crashStep{K: "state", ID: id, State: state()})
		}
		return op
	}
	_, otherExists := m[sessKey(other)]
	switch r := rng.IntN(100); {
	case r < 22: // queue 1 to 3 messages
		op := step()
		for range 1 + rng.IntN(3) {
			op.Steps = append(op.Steps, crashStep{K: "append", ID: id, Class: persistence.ClassQoS12, Pkt: pkt(1)})
		}
		return op
	case r < 34: // send the head: from the queue to in-flight
		if seq, ok := m.head(id, persistence.ClassQoS12); ok {
			return step(crashStep{K: "ack", ID: id, Class: persistence.ClassQoS12, Seq: seq},
				crashStep{K: "append", ID: id, Class: persistence.ClassUnAck, Pkt: pkt(1)})
		}
		return step(crashStep{K: "append", ID: id, Class: persistence.ClassUnAck, Pkt: pkt(2)})
	case r < 46: // PUBACK, or PUBREC (the in-flight packet becomes a PUBREL)
		if seq, ok := m.head(id, persistence.ClassUnAck); ok {
			if rng.IntN(3) == 0 {
				p := pkt(2)
				p.Seq = seq
				return step(crashStep{K: "update", ID: id, Class: persistence.ClassUnAck, Seq: seq, Pkt: p})
			}
			return step(crashStep{K: "ack", ID: id, Class: persistence.ClassUnAck, Seq: seq})
		}
		return step(crashStep{K: "append", ID: id, Class: persistence.ClassQoS12, Pkt: pkt(1)})
	case r < 52: // incoming QoS 2: PUBLISH stored, or released
		if seq, ok := m.head(id, persistence.ClassIncoming); ok && rng.IntN(2) == 0 {
			return step(crashStep{K: "ack", ID: id, Class: persistence.ClassIncoming, Seq: seq})
		}
		return step(crashStep{K: "append", ID: id, Class: persistence.ClassIncoming, Pkt: pkt(2)})
	case r < 55:
		return step(crashStep{K: "append", ID: id, Class: persistence.ClassQoS0, Pkt: pkt(0)})
	case r < 63:
		if subs := m.subs(id); len(subs) > 0 && rng.IntN(3) == 0 {
			return step(crashStep{K: "unsub", ID: id, Sub: &persistence.Subscription{Filter: subs[rng.IntN(len(subs))]}})
		}
		return step(crashStep{K: "sub", ID: id, Sub: sub(id)})
	case r < 68:
		if rng.IntN(4) == 0 {
			return step(crashStep{K: "unstate", ID: id})
		}
		return step(crashStep{K: "state", ID: id, State: state()})
	case r < 73:
		if rng.IntN(3) == 0 {
			return step(crashStep{K: "unexp", ID: id})
		}
		return step(crashStep{K: "exp", ID: id, Exp: exp()})
	case r < 85:
		topic := fmt.Sprintf("crash/w%d/t%d", w, rng.IntN(8))
		if rng.IntN(4) == 0 {
			return step(crashStep{K: "unretain", Topic: topic})
		}
		return step(crashStep{K: "retain", Topic: topic, Pkt: pkt(uint8(rng.IntN(3)))})
	case r < 93: // one message for both sessions, plus a deadline: a cross-session batch
		if !otherExists {
			return step(crashStep{K: "create", ID: other, Base: base()})
		}
		return step(crashStep{K: "append", ID: id, Class: persistence.ClassQoS12, Pkt: pkt(1)},
			crashStep{K: "append", ID: other, Class: persistence.ClassQoS12, Pkt: pkt(1)},
			crashStep{K: "exp", ID: other, Exp: exp()},
			crashStep{K: "state", ID: id, State: state()})
	case r < 96:
		c := persistence.PacketClasses[rng.IntN(4)]
		if rng.IntN(2) == 0 {
			return step(crashStep{K: "clear", ID: id, Class: c})
		}
		return step(crashStep{K: "clear", ID: id, Class: c}, crashStep{K: "unexp", ID: id}, crashStep{K: "state", ID: id, State: state()})
	case r < 98:
		return step(crashStep{K: "delete", ID: id})
	}
	// A clean start: the old session goes and a new one comes, in one commit.
	return step(crashStep{K: "delete", ID: id}, crashStep{K: "create", ID: id, Base: base()},
		crashStep{K: "sub", ID: id, Sub: sub(id)}, crashStep{K: "append", ID: id, Class: persistence.ClassQoS12, Pkt: pkt(1)})
}

// observe reads the whole store into a crashModel, checking on the way that its
// views agree with each other (counts, LoadForEach against the per-session reads,
// FIFO order, the expiry index). An error is such a disagreement or a failed read.
func observe(ctx context.Context, p *persistence.Store) (crashModel, error) {
	m := crashModel{}
	ss := p.Sessions()
	loaded := map[string]*persistence.LoadedSession{}
	if err := ss.LoadForEach(ctx, func(s *persistence.LoadedSession) error {
		if _, dup := loaded[s.ID]; dup {
			return fmt.Errorf("LoadForEach visited session %q twice", s.ID)
		}
		loaded[s.ID] = s
		return nil
	}); err != nil {
		return nil, fmt.Errorf("LoadForEach: %w", err)
	}
	if n, err := ss.Count(ctx); err != nil || n != uint64(len(loaded)) {
		return nil, fmt.Errorf("Sessions.Count = %d, %v; LoadForEach visited %d sessions", n, err, len(loaded))
	}
	withExpiry := map[string]persistence.SessionExpiry{}
	for _, id := range slices.Sorted(maps.Keys(loaded)) {
		s := loaded[id]
		m[sessKey(id)] = canonBase(s.Base)
		for _, sub := range s.Subscriptions {
			m[subKey(id, sub.Filter)] = canonSub(sub)
		}
		subs, err := ss.SubscriptionsLoad(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("SubscriptionsLoad(%s): %w", id, err)
		}
		if got, want := len(subs), len(s.Subscriptions); got != want {
			return nil, fmt.Errorf("SubscriptionsLoad(%s) returned %d subscriptions, LoadForEach %d", id, got, want)
		}
		for _, sub := range subs {
			if v, ok := m[subKey(id, sub.Filter)]; !ok || v != canonSub(sub) {
				return nil, fmt.Errorf("SubscriptionsLoad(%s) returned %q as {%s}; LoadForEach as {%s}", id, sub.Filter, canonSub(sub), v)
			}
		}
		st, err := ss.StateGet(ctx, id)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			if s.State != nil {
				return nil, fmt.Errorf("StateGet(%s) = ErrNotFound; LoadForEach returned a state", id)
			}
		case err != nil:
			return nil, fmt.Errorf("StateGet(%s): %w", id, err)
		case s.State == nil || canonState(st) != canonState(s.State):
			return nil, fmt.Errorf("StateGet(%s) and LoadForEach disagree", id)
		default:
			m[stateKey(id)] = canonState(st)
		}
		e, err := ss.ExpiryGet(ctx, id)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			if s.Expiry != nil {
				return nil, fmt.Errorf("ExpiryGet(%s) = ErrNotFound; LoadForEach returned deadlines", id)
			}
		case err != nil:
			return nil, fmt.Errorf("ExpiryGet(%s): %w", id, err)
		case s.Expiry == nil || canonExpiry(e) != canonExpiry(*s.Expiry):
			return nil, fmt.Errorf("ExpiryGet(%s) and LoadForEach disagree", id)
		default:
			m[expKey(id)] = canonExpiry(e)
			withExpiry[id] = e
		}
		for _, c := range persistence.PacketClasses {
			var last uint64
			n := 0
			err := ss.PacketsForEach(ctx, id, c, func(pk *persistence.PersistedPacket) (bool, error) {
				if n > 0 && pk.Seq <= last {
					return false, fmt.Errorf("seq %d follows seq %d: not FIFO order", pk.Seq, last)
				}
				last = pk.Seq
				n++
				m[pktKey(id, c, pk.Seq)] = canonPkt(pk)
				return false, nil
			})
			if err != nil {
				return nil, fmt.Errorf("PacketsForEach(%s, %s): %w", id, c, err)
			}
			if cnt, err := ss.PacketCount(ctx, id, c); err != nil || cnt != uint64(n) {
				return nil, fmt.Errorf("PacketCount(%s, %s) = %d, %v; PacketsForEach visited %d packets", id, c, cnt, err, n)
			}
		}
	}
	var due []string
	var prev time.Time
	err := ss.ExpiredForEach(ctx, crashEpoch.Add(100*365*24*time.Hour), func(id string, e persistence.SessionExpiry) error {
		want, ok := withExpiry[id]
		switch {
		case !ok:
			return fmt.Errorf("ExpiredForEach returned %q, which has no deadlines (or no session)", id)
		case canonExpiry(want) != canonExpiry(e):
			return fmt.Errorf("ExpiredForEach returned %q with {%s}; ExpiryGet says {%s}", id, canonExpiry(e), canonExpiry(want))
		case e.Next().Before(prev):
			return fmt.Errorf("ExpiredForEach returned %q (due %s) after a session due %s: not earliest first", id, e.Next(), prev)
		}
		prev = e.Next()
		due = append(due, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ExpiredForEach: %w", err)
	}
	if len(due) != len(withExpiry) {
		return nil, fmt.Errorf("ExpiredForEach returned %d sessions; %d have deadlines", len(due), len(withExpiry))
	}
	r := p.Retained()
	var topics []string
	if err := r.Load(ctx, func(msg *persistence.RetainedMessage) error {
		topics = append(topics, msg.Topic)
		m[retKey(msg.Topic)] = canonPkt(msg.Packet)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("Retained.Load: %w", err)
	}
	if n, err := r.Count(ctx); err != nil || n != uint64(len(topics)) {
		return nil, fmt.Errorf("Retained.Count = %d, %v; Load returned %d messages", n, err, len(topics))
	}
	for _, t := range topics {
		pk, err := r.Get(ctx, t)
		if err != nil || canonPkt(pk) != m[retKey(t)] {
			return nil, fmt.Errorf("Retained.Get(%q) = {%s}, %v; Load returned {%s}", t, canonPkt(pk), err, m[retKey(t)])
		}
	}
	return m, nil
}
