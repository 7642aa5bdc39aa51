package conformance

import (
	"math"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// The random values the model draws: ids, classes, sequence numbers, packets,
// subscriptions, states and deadlines from a small universe.

// The small universe the sequences draw from. Session ids include binary ids (NUL,
// invalid UTF-8), delimiter bytes and ids that are prefixes of each other; topics
// include '$' topics, empty levels and NUL.
var (
	modelEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	modelIDs = []string{
		"a", "ab", "a:", "a:b", "a\x00", "a\x00b", "\x00", "b/c", "\xff\xfe",
		"a-much-longer-client-identifier-0123456789",
	}
	modelFilters = []string{
		"a/b", "a/+", "a/#", "#", "+/b", "$share/g/a/#", "$SYS/#", "a\x00b", "a/b/c", "x:y",
	}
	modelTopics = []string{
		"a", "a/b", "a/b/c", "a/", "/a", "/", "$SYS/uptime", "$SYS", "a/b\x00", "a:b", "b", "\xff",
	}
	modelMatchFilters = []string{
		"#", "+", "a/#", "a/+", "+/b", "$SYS/#", "+/+", "/#", "a/b", "a", "$SYS", "+/#",
		"a/+/c", "a/#/x", "$SYS/+", "b/#", "a/b\x00",
	}
	modelUsernames = []string{"", "alice", "b\x00b", "\xff"}
)

func (r *modelRunner) pct(n int) bool { return r.rng.IntN(100) < n }

func pick[T any](r *modelRunner, s []T) T { return s[r.rng.IntN(len(s))] }

// pickID returns the id of an existing session most of the time, otherwise any id of
// the universe (which may not exist).
func (r *modelRunner) pickID() string {
	if ids := r.m.ids(); len(ids) > 0 && r.pct(85) {
		return pick(r, ids)
	}
	return pick(r, modelIDs)
}

// missingID returns an id of the universe with no session, or "" when all exist.
func (r *modelRunner) missingID() string {
	var ids []string
	for _, id := range modelIDs {
		if r.m.sessions[id] == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return pick(r, ids)
}

var invalidClasses = []persistence.PacketClass{0, 5, 255}

func (r *modelRunner) pickClass() persistence.PacketClass {
	if r.pct(3) {
		return pick(r, invalidClasses)
	}
	return pick(r, persistence.PacketClasses)
}

// pickSeq returns a sequence number to get, update or delete in (id, class): mostly a
// live one, otherwise one of another queue, a deleted one, 0, the largest uint64 or one
// never assigned.
func (r *modelRunner) pickSeq(id string, c persistence.PacketClass) uint64 {
	if s := r.m.sessions[id]; s != nil && c.Valid() {
		if q := s.queues[c-1]; len(q) > 0 && r.pct(70) {
			return pick(r, q).Seq
		}
	}
	switch n := r.rng.IntN(10); {
	case n < 6 && len(r.seqPool) > 0:
		return pick(r, r.seqPool)
	case n < 7:
		return 0
	case n < 8:
		return math.MaxUint64
	default:
		return r.highSeq + 1 + r.rng.Uint64N(1000)
	}
}

// when returns a time within ten minutes of modelEpoch; half of them have a
// sub-millisecond part, since times must come back equal to the nanosecond.
func (r *modelRunner) when() time.Time {
	t := modelEpoch.Add(time.Duration(r.rng.IntN(600_000)) * time.Millisecond)
	if r.pct(50) {
		t = t.Add(time.Duration(r.rng.IntN(1_000_000)))
	}
	return t
}

func (r *modelRunner) bytes() []byte {
	var n int
	switch x := r.rng.IntN(100); {
	case x < 8:
		return nil
	case x < 12:
		return []byte{}
	case x < 90:
		n = 1 + r.rng.IntN(64)
	default:
		n = 200 + r.rng.IntN(4000)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.rng.UintN(256))
	}
	if n > 2 && r.pct(30) {
		b[r.rng.IntN(n)] = 0
	}
	return b
}

// packet returns a valid packet whose Seq is junk the driver must ignore.
func (r *modelRunner) packet() *persistence.PersistedPacket {
	p := &persistence.PersistedPacket{
		Seq:             r.rng.Uint64(),
		PacketID:        uint16(r.rng.UintN(65536)),
		QoS:             uint8(r.rng.IntN(3)),
		ProtocolVersion: pick(r, []uint8{3, 4, 5}),
		Data:            r.bytes(),
	}
	if r.pct(30) {
		p.ExpireAt = r.when()
	}
	return p
}

// maybeInvalidPacket returns a packet and whether it is invalid (nil or QoS 3).
func (r *modelRunner) maybeInvalidPacket(pctInvalid int) (*persistence.PersistedPacket, bool) {
	if !r.pct(pctInvalid) {
		return r.packet(), false
	}
	if r.pct(30) {
		return nil, true
	}
	p := r.packet()
	p.QoS = 3
	return p, true
}

func (r *modelRunner) subscription() persistence.Subscription {
	s := persistence.Subscription{
		Filter:            pick(r, modelFilters),
		QoS:               uint8(r.rng.IntN(3)),
		NoLocal:           r.pct(50),
		RetainAsPublished: r.pct(50),
		RetainHandling:    uint8(r.rng.IntN(3)),
	}
	if r.pct(50) {
		s.ID = 1 + r.rng.Uint32N(268435455)
	}
	return s
}

func (r *modelRunner) invalidSubscription() persistence.Subscription {
	s := r.subscription()
	switch r.rng.IntN(3) {
	case 0:
		s.QoS = 3
	case 1:
		s.RetainHandling = 3
	default:
		s.Filter = ""
	}
	return s
}

func (r *modelRunner) state() *persistence.SessionState {
	st := &persistence.SessionState{
		ProtocolVersion: pick(r, []uint8{3, 4, 5}),
		ExpiryInterval:  time.Duration(r.rng.IntN(100_000)) * time.Second,
		Username:        pick(r, modelUsernames),
		WillDelay:       time.Duration(r.rng.IntN(1000)) * time.Second,
		UserData:        r.bytes(),
	}
	if r.pct(20) {
		st.ExpiryInterval = -1
	}
	if r.pct(40) {
		st.Will = r.packet()
		st.Will.Seq = 0
	}
	if r.pct(50) {
		st.DisconnectedAt = r.when()
	}
	return st
}

// expiry returns deadlines; one or both may be zero (both zero: a delete).
func (r *modelRunner) expiry() persistence.SessionExpiry {
	var e persistence.SessionExpiry
	switch r.rng.IntN(10) {
	case 0:
	case 1, 2, 3:
		e.ExpireAt = r.when()
	case 4, 5:
		e.WillAt = r.when()
	default:
		e.ExpireAt, e.WillAt = r.when(), r.when()
	}
	return e
}

// cbRand gives iteration callbacks decisions that depend only on the item visited, so
// that a sequence stays reproducible whatever order the driver visits items in.
type cbRand uint64

func (c cbRand) of(key string) uint64 {
	h := uint64(c) ^ 0xcbf29ce484222325
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	// splitmix64 finalizer
	h += 0x9e3779b97f4a7c15
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
	h = (h ^ (h >> 27)) * 0x94d049bb133111eb
	return h ^ (h >> 31)
}
