package mem

import (
	"cmp"
	"slices"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// qent is one slot of a queue: a packet and its sequence number. p is nil once the
// packet has been deleted; the slot stays until the next compaction.
type qent struct {
	seq uint64
	p   *driver.PersistedPacket
}

// queue is one (session, class) FIFO. Slots are in increasing seq order (appends get
// ever larger seqs), so a packet is found by binary search; deletion marks its slot
// dead and compaction drops dead slots once they outnumber live ones. Append is O(1)
// amortized, lookup, update and delete are O(log n), iteration is in order.
//
// Stored packets are never mutated: an update replaces the slot's pointer. Readers
// may therefore copy a packet after releasing the lock.
type queue struct {
	ents []qent
	head int // ents[:head] are all dead
	live int
}

// compactMin is the number of dead slots below which a queue is never compacted.
const compactMin = 64

// push appends p, whose Seq must be larger than every stored one.
func (q *queue) push(p *driver.PersistedPacket) {
	q.ents = append(q.ents, qent{seq: p.Seq, p: p})
	q.live++
}

// index returns the slot of the live packet seq, or -1.
func (q *queue) index(seq uint64) int {
	e := q.ents[q.head:]
	i, found := slices.BinarySearchFunc(e, seq, func(x qent, s uint64) int { return cmp.Compare(x.seq, s) })
	if !found || e[i].p == nil {
		return -1
	}
	return q.head + i
}

// remove deletes the live packet at slot i.
func (q *queue) remove(i int) {
	q.ents[i].p = nil
	q.live--
	if q.live == 0 {
		q.reset()
		return
	}
	for q.ents[q.head].p == nil {
		q.head++
	}
	for q.ents[len(q.ents)-1].p == nil {
		q.ents = q.ents[:len(q.ents)-1]
	}
	if dead := len(q.ents) - q.live; dead >= compactMin && dead > q.live {
		q.compact()
	}
}

// compact moves the live slots to the front, dropping dead ones.
func (q *queue) compact() {
	n := 0
	for _, e := range q.ents[q.head:] {
		if e.p != nil {
			q.ents[n] = e
			n++
		}
	}
	clear(q.ents[n:])
	q.ents = q.ents[:n]
	q.head = 0
	if c := cap(q.ents); c > 1024 && c > 4*n {
		q.ents = append(make([]qent, 0, 2*n), q.ents...)
	}
}

// reset deletes every packet.
func (q *queue) reset() {
	if cap(q.ents) > 1024 {
		q.ents = nil
	} else {
		clear(q.ents)
		q.ents = q.ents[:0]
	}
	q.head = 0
	q.live = 0
}

// next returns the slot of the first live packet with a seq greater than after, or
// -1. hint is the slot where after was last seen (-1 when unknown); when it still
// holds after, the search is O(1).
func (q *queue) next(after uint64, hint int) int {
	var i int
	if hint >= q.head && hint < len(q.ents) && q.ents[hint].seq == after {
		i = hint + 1
	} else {
		e := q.ents[q.head:]
		j, found := slices.BinarySearchFunc(e, after, func(x qent, s uint64) int { return cmp.Compare(x.seq, s) })
		if found {
			j++
		}
		i = q.head + j
	}
	for ; i < len(q.ents); i++ {
		if q.ents[i].p != nil {
			return i
		}
	}
	return -1
}
