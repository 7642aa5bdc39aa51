package broker

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// session is the in-memory side of one MQTT session. A stored session (one that
// outlives its connection) mirrors what the store holds and writes every change
// through it; the rest lives only here and ends with its connection.
//
// Memory held per session is bounded by the window, not the queue: in-flight
// packets (at most the receive maximum) and incoming QoS 2 packet ids are kept, the
// queue of a stored session is only counted and read from the store in pages.
type session struct {
	id string

	// Everything below is guarded by mu.
	mu     sync.Mutex
	stored bool // exists in the store
	gone   bool // deleted (expired or cleaned); a stale pointer must not be used
	// ending is set with gone when the session's store records are still to be
	// deleted, and closed once they are (endStored); attach waits for it.
	ending chan struct{}
	subs   map[string]persistence.Subscription
	state  persistence.SessionState
	expiry persistence.SessionExpiry // mirror of the stored deadlines
	conn   *conn                     // nil while offline
	ready  bool                      // conn's redelivery is done: new messages may go in flight directly

	inflight map[uint16]*flight // outbound QoS 1/2 awaiting acknowledgement, by packet id
	nextPID  uint16
	localSeq uint64 // orders flights of sessions that are not stored

	queued      int         // messages committed to ClassQoS12 (stored) or in memQueue
	queuedBytes int64       // their encoded size
	pendingQ    int         // appends to ClassQoS12 reserved by a batch not yet committed
	memQueue    []queuedMsg // the queue of a session that is not stored

	// acked holds the ClassUnAck sequence numbers of flights the client has
	// acknowledged but whose deletion is not committed yet. Deleting them one
	// commit per acknowledgement would cap a connection at one fsync per message;
	// instead they ride along with the next write for the session, or are flushed
	// by the delivery pump, which the acknowledgement wakes. A batch that appends
	// to ClassUnAck for the session carries them, so that a reused packet id and
	// the delete of its previous flight usually commit together; when a flush and
	// such an append race, a crash can leave both records, and restore keeps the
	// newer. A crash before the flush redelivers the acknowledged messages with
	// DUP, which QoS 1 and 2 allow.
	acked []uint64

	incoming map[uint16]uint64 // inbound QoS 2 awaiting PUBREL: packet id → seq in ClassIncoming

	// head is what the delivery pump holds of the stored queue's head, read and
	// not yet moved in flight (deliver_ahead.go); nil when nothing.
	head *queueHead

	// Cluster mode (cluster.go): own is this node's claim of the session (zero:
	// another node's, or nobody's, and only its subscriptions are kept here, for
	// routing); owner is the node that owns it and online whether its client is
	// connected there, as far as this node knows.
	own     persistence.Ownership
	owner   string
	online  bool
	stale   bool // another node appended to the stored queue: the pump recounts it
	fullLog bool // a queue-full drop was logged since the queue last had room
}

// flight is one outbound packet awaiting acknowledgement.
type flight struct {
	seq      uint64 // in ClassUnAck (or localSeq); 0 while its batch is not committed
	pid      uint16
	qos      byte
	rel      bool                         // the PUBLISH was PUBREC'd; the PUBREL awaits PUBCOMP
	pkt      *persistence.PersistedPacket // the stored record (stored sessions, or a PUBREL)
	msg      *wireMsg                     // the message; nil for a restored flight until redelivered
	share    *shareGroup                  // the shared subscription it was sent for, if any
	reserved bool                         // the append that puts it in flight is not committed yet
}

// queuedMsg is a message in the memory queue of a session that is not stored.
type queuedMsg struct {
	m     *wireMsg
	share *shareGroup
	size  int // what it counts against the queue's byte limit
}

func newSession(id string) *session {
	return &session{
		id:       id,
		subs:     map[string]persistence.Subscription{},
		inflight: map[uint16]*flight{},
		incoming: map[uint16]uint64{},
		nextPID:  1,
	}
}

// isGone reports whether s was deleted; it takes s.mu (callers that hold b.mu may
// call it: b.mu is always taken before s.mu).
func (s *session) isGone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// ended reports whether s is nil or gone and, for a gone session whose store
// records are still being deleted, the channel closed once they are (nil
// otherwise). It takes s.mu, as isGone does.
func (s *session) ended() (gone bool, ending chan struct{}) {
	if s == nil {
		return true, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone, s.ending // ending is only ever set with gone
}

// allocPID returns a free packet id, or 0 when all 65535 are in flight. Caller holds mu.
func (s *session) allocPID() uint16 {
	for range 65535 {
		id := s.nextPID
		s.nextPID++
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		if _, used := s.inflight[id]; !used {
			return id
		}
	}
	return 0
}

// committedFlights returns the committed in-flight packets in the order they were
// put in flight, which is the order MQTT requires for redelivery. Caller holds mu.
func (s *session) committedFlights() []*flight {
	fs := make([]*flight, 0, len(s.inflight))
	for _, f := range s.inflight {
		if !f.reserved {
			fs = append(fs, f)
		}
	}
	slices.SortFunc(fs, func(a, b *flight) int { return cmp.Compare(a.seq, b.seq) })
	return fs
}

// takeAcked moves the pending acknowledgement deletes into batch and returns them,
// so that a failed batch can give them back with returnAcked. Caller holds mu.
func (s *session) takeAcked(batch *persistence.Batch) []uint64 {
	acked := s.acked
	s.acked = nil
	for _, seq := range acked {
		batch.PacketDelete(s.id, persistence.ClassUnAck, seq)
	}
	return acked
}

// returnAcked puts back deletes taken by takeAcked whose batch failed. Caller
// holds mu.
func (s *session) returnAcked(acked []uint64) {
	if len(acked) > 0 && s.stored {
		s.acked = append(acked, s.acked...)
	}
}

// hasQueue reports whether messages wait to go in flight (committed or about to
// be), in which case a new message must queue behind them to keep order. Caller
// holds mu.
func (s *session) hasQueue() bool { return s.queued+s.pendingQ > 0 }

// deadlinesAt computes the deadlines of a session that disconnects at t. Caller
// holds mu.
func (s *session) deadlinesAt(t time.Time, withWill bool) persistence.SessionExpiry {
	var e persistence.SessionExpiry
	iv := s.state.ExpiryInterval
	if iv >= 0 {
		e.ExpireAt = t.Add(iv)
	}
	if withWill && s.state.Will != nil {
		d := s.state.WillDelay
		if iv >= 0 && iv < d {
			d = iv // the will is published at the latest when the session ends
		}
		e.WillAt = t.Add(d)
	}
	return e
}
