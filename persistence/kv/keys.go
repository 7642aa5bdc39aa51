package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Key tags: the first byte of every key names its table (see LAYOUT.md).
const (
	tagMeta     byte = 'm'
	tagSession  byte = 's'
	tagHeader   byte = 'h'
	tagSub      byte = 'u'
	tagState    byte = 't'
	tagExpiry   byte = 'e'
	tagExpIndex byte = 'x'
	tagPacket   byte = 'p'
	tagRetained byte = 'r'
	tagGarbage  byte = 'g'
	// tagLongTopic holds the whole topic of a retained message whose key could not.
	tagLongTopic byte = 'l'
)

// Meta keys.
// keyPending prefixes the markers of retained tables being written by Store: a
// table whose marker is still there at open was interrupted and is collected.
var keyPending = []byte{tagMeta, 'p'}

var (
	keyInfo     = []byte{tagMeta, 'i'} // SystemInfo blob
	keySeq      = []byte{tagMeta, 'q'} // last sequence number handed out, u64
	keySessions = []byte{tagMeta, 's'} // number of sessions, u64
	keyRetained = []byte{tagMeta, 'r'} // number of retained messages, u64
	keyRetGen   = []byte{tagMeta, 'g'} // generation of the live retained table, u64
)

func tagged(tag byte, id string) []byte {
	k := make([]byte, 0, 1+len(id))
	return append(append(k, tag), id...)
}

// sessionKey length-prefixes the id like subPrefix does, so that sessions and
// subscriptions sort in the same order and LoadForEach reads the subscriptions of a
// page of sessions with one ordered scan.
func sessionKey(id string) []byte {
	k := subPrefix(id)
	k[0] = tagSession
	return k
}

// parseLenID splits a key made of a tag, a uvarint length and an id (then anything)
// into the id and the rest.
func parseLenID(k []byte) (id string, rest []byte, err error) {
	if len(k) < 2 {
		return "", nil, fmt.Errorf("%w: key of %d bytes", driver.ErrBrokenEntry, len(k))
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || n > uint64(len(k)-1-w) {
		return "", nil, fmt.Errorf("%w: key with a bad id length", driver.ErrBrokenEntry)
	}
	return string(k[1+w : 1+w+int(n)]), k[1+w+int(n):], nil
}
func headerKey(id string) []byte { return tagged(tagHeader, id) }
func stateKey(id string) []byte  { return tagged(tagState, id) }
func expiryKey(id string) []byte { return tagged(tagExpiry, id) }

// subPrefix is the prefix of every subscription key of session id. The id is
// length-prefixed (uvarint, which is prefix-free) because a filter follows it: "a"
// with filter "bc" and "ab" with filter "c" must not collide, and no id's prefix may
// be the prefix of another's.
func subPrefix(id string) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(id))
	k = append(k, tagSub)
	k = binary.AppendUvarint(k, uint64(len(id)))
	return append(k, id...)
}

func subKey(id, filter string) []byte {
	return append(subPrefix(id), filter...)
}

// packetPrefix is the prefix of the packets of one queue; qid names the queue.
func packetPrefix(qid uint64) []byte {
	k := make([]byte, 9, 17)
	k[0] = tagPacket
	binary.BigEndian.PutUint64(k[1:], qid)
	return k
}

func packetKey(qid, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(packetPrefix(qid), seq)
}

// countKey holds the number of packets of queue qid. It sorts after every packet
// of the queue, beside the newest ones, which is where appends write.
func countKey(qid uint64) []byte { return packetKey(qid, math.MaxUint64) }

// packetSeq returns the sequence number of a packet key.
func packetSeq(k []byte) (uint64, error) {
	if len(k) != 17 {
		return 0, fmt.Errorf("%w: packet key of %d bytes", driver.ErrBrokenEntry, len(k))
	}
	return binary.BigEndian.Uint64(k[9:]), nil
}

func retainedPrefix(gen uint64) []byte {
	k := make([]byte, 9, 9+16)
	k[0] = tagRetained
	binary.BigEndian.PutUint64(k[1:], gen)
	return k
}

func retainedKey(gen uint64, topic string) []byte {
	return append(retainedPrefix(gen), topic...)
}

// topicHashLen is the length of the hash that ends a long-form retained key.
const topicHashLen = sha256.Size

// longTopicPrefix is the prefix of the records holding the full topics of table
// gen's long-form keys.
func longTopicPrefix(gen uint64) []byte {
	k := retainedPrefix(gen)
	k[0] = tagLongTopic
	return k
}

// topicKey is the key of topic in table gen for an engine whose keys hold at most
// max bytes (0: no limit). A topic that fits is stored as is (retainedKey, shorter
// than max). A longer one gets a long-form key of exactly max bytes: as much of the
// topic as fits, so that prefix scans still find it, then the SHA-256 of the whole
// topic; the whole topic is kept under longTopicKey. Only long-form keys are max
// bytes long, so a scan tells the two apart by length.
func topicKey(gen uint64, topic string, max int) (key []byte, long bool) {
	k := retainedKey(gen, topic)
	if max == 0 || len(k) < max {
		return k, false
	}
	sum := sha256.Sum256([]byte(topic))
	k = append(k[:max-topicHashLen], sum[:]...)
	return k, true
}

// longTopicKey is where the whole topic of long-form key k (of table gen) is kept.
func longTopicKey(gen uint64, k []byte) []byte {
	return append(longTopicPrefix(gen), k[len(k)-topicHashLen:]...)
}

// scanPrefix cuts a topic prefix to what a long-form key holds of its topic.
func scanPrefix(prefix string, max int) string {
	if max == 0 {
		return prefix
	}
	return prefix[:min(len(prefix), max-9-topicHashLen)]
}

// expIndexKey orders sessions by their earlier deadline: seconds shifted to sort
// negative times first, nanoseconds, then the stamp of the ExpiryStore that wrote
// it (unique, so two sessions never share a key), then the id.
func expIndexKey(deadline [12]byte, stamp uint64, id string) []byte {
	k := make([]byte, 0, 21+len(id))
	k = append(k, tagExpIndex)
	k = append(k, deadline[:]...)
	k = binary.BigEndian.AppendUint64(k, stamp)
	return append(k, id...)
}

// deadlineBytes is the deadline part of an expiry index key: seconds shifted so that
// times before 1970 sort first, then nanoseconds, both big-endian.
func deadlineBytes(t time.Time) [12]byte {
	var d [12]byte
	binary.BigEndian.PutUint64(d[:], uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(d[8:], uint32(t.Nanosecond()))
	return d
}

// parseExpIndexKey returns the stamp and id of an expiry index key.
func parseExpIndexKey(k []byte) (stamp uint64, id string, err error) {
	if len(k) < 21 || k[0] != tagExpIndex {
		return 0, "", fmt.Errorf("%w: expiry index key of %d bytes", driver.ErrBrokenEntry, len(k))
	}
	return binary.BigEndian.Uint64(k[13:21]), string(k[21:]), nil
}

func garbageKey(prefix []byte) []byte {
	return append([]byte{tagGarbage}, prefix...)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func readU64(b []byte, what string) (uint64, error) {
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %s record of %d bytes, want 8", driver.ErrBrokenEntry, what, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// header is the fixed-size index record of a session: the stamp and deadline of its
// expiry index entry (stamp 0 when it has no deadline), so that the entry can be
// found without decoding the expiry blob, and, per packet class, the id of its queue
// (0 while the class is empty). Its presence is what makes a session exist. Packet
// counts are not here but at the tail of each queue (countKey), so that an append
// dirties one leaf of an ordered engine instead of two.
type header struct {
	stamp    uint64
	deadline [12]byte // the deadline part of its expiry index key, when stamp != 0
	qid      [4]uint64
}

const headerSize = 8 + 12 + 4*8

func (h *header) encode() []byte {
	b := make([]byte, 0, headerSize)
	b = binary.BigEndian.AppendUint64(b, h.stamp)
	b = append(b, h.deadline[:]...)
	for _, q := range h.qid {
		b = binary.BigEndian.AppendUint64(b, q)
	}
	return b
}

func decodeHeader(b []byte) (header, error) {
	var h header
	if len(b) != headerSize {
		return h, fmt.Errorf("%w: session header of %d bytes, want %d", driver.ErrBrokenEntry, len(b), headerSize)
	}
	h.stamp = binary.BigEndian.Uint64(b)
	copy(h.deadline[:], b[8:20])
	for i := range h.qid {
		h.qid[i] = binary.BigEndian.Uint64(b[20+8*i:])
	}
	return h, nil
}
