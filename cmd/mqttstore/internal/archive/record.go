// Package archive reads and writes the mqttstore archive format (ARCHIVE.md in the
// command's directory): a versioned, driver-neutral, checksummed stream of every
// record of a store, written and read one record at a time so that a store larger
// than memory is exported and imported in bounded memory.
//
// It also defines the per-kind content digest the tool uses to verify a copy: an
// order-independent sum of one SHA-256 per record, so two stores hold the same data
// exactly when their digests are equal, whatever order their drivers list it in.
package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Kind is the type of one record of a store.
type Kind byte

// The record kinds. The byte values are the frame types of the archive format.
const (
	KindSession      Kind = 'S' // a session: ID and Base
	KindSubscription Kind = 'U' // one subscription of session ID
	KindState        Kind = 'T' // the state of session ID
	KindExpiry       Kind = 'E' // the deadlines of session ID
	KindPacket       Kind = 'P' // one packet of (ID, Class), in FIFO order
	KindRetained     Kind = 'R' // one retained message: Topic and Packet
)

// Kinds lists every record kind in archive order.
var Kinds = []Kind{KindSession, KindSubscription, KindState, KindExpiry, KindPacket, KindRetained}

// String returns the kind's plural name as used in reports and the trailer.
func (k Kind) String() string {
	switch k {
	case KindSession:
		return "sessions"
	case KindSubscription:
		return "subscriptions"
	case KindState:
		return "states"
	case KindExpiry:
		return "expiries"
	case KindPacket:
		return "packets"
	case KindRetained:
		return "retained"
	}
	return fmt.Sprintf("kind(%#x)", byte(k))
}

// Record is one record of a store. Only the fields its Kind names are set.
type Record struct {
	Kind   Kind
	ID     string // the session (every kind but KindRetained)
	Base   persistence.SessionBase
	Sub    persistence.Subscription
	State  *persistence.SessionState
	Expiry persistence.SessionExpiry
	Class  persistence.PacketClass
	// Index is a packet's position in its FIFO (0 for the head). It is not written
	// to the archive: the reader counts it, as packet order is record order.
	Index  uint64
	Packet *persistence.PersistedPacket // KindPacket, KindRetained
	Topic  string                       // KindRetained
}

// Errors of this package; every one matches ErrCorrupt or ErrVersion.
var (
	// ErrCorrupt reports an archive that cannot be read: truncated, a checksum that
	// does not match, a malformed frame or record, or data after the trailer.
	ErrCorrupt = errors.New("archive: corrupt")
	// ErrVersion reports an archive written in a newer format than this tool reads.
	ErrVersion = errors.New("archive: unsupported format version")
	// ErrInvalidRecord reports a record that cannot be written (unknown kind, nil packet).
	ErrInvalidRecord = errors.New("archive: invalid record")
)

// AppendBody appends the archive body of r (without its frame) to dst. The body is
// the session id (or topic) as a uvarint-prefixed string, a class byte for packets,
// and the record's value as a blob of the SDK codec (persistence/FORMAT.md).
func AppendBody(dst []byte, r *Record) ([]byte, error) {
	switch r.Kind {
	case KindSession:
		dst = appendString(dst, r.ID)
		return driver.EncodeSessionBase(dst, r.Base), nil
	case KindSubscription:
		dst = appendString(dst, r.ID)
		return driver.EncodeSubscription(dst, r.Sub), nil
	case KindState:
		if r.State == nil {
			return dst, fmt.Errorf("%w: nil state for session %q", ErrInvalidRecord, r.ID)
		}
		dst = appendString(dst, r.ID)
		return driver.EncodeState(dst, r.State), nil
	case KindExpiry:
		dst = appendString(dst, r.ID)
		return driver.EncodeExpiry(dst, r.Expiry), nil
	case KindPacket:
		if r.Packet == nil || !r.Class.Valid() {
			return dst, fmt.Errorf("%w: packet of session %q: nil packet or bad class %d", ErrInvalidRecord, r.ID, r.Class)
		}
		dst = appendString(dst, r.ID)
		dst = append(dst, byte(r.Class))
		return driver.EncodePacket(dst, r.Packet), nil
	case KindRetained:
		if r.Packet == nil {
			return dst, fmt.Errorf("%w: retained %q: nil packet", ErrInvalidRecord, r.Topic)
		}
		dst = appendString(dst, r.Topic)
		return driver.EncodePacket(dst, r.Packet), nil
	}
	return dst, fmt.Errorf("%w: unknown kind %#x", ErrInvalidRecord, byte(r.Kind))
}

// ParseBody decodes the body of a record of kind k. Errors match ErrCorrupt.
func ParseBody(k Kind, b []byte) (*Record, error) {
	r := &Record{Kind: k}
	name, rest, err := readString(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s record: %v", ErrCorrupt, k, err)
	}
	switch k {
	case KindSession:
		r.ID = name
		r.Base, err = driver.DecodeSessionBase(rest)
	case KindSubscription:
		r.ID = name
		r.Sub, err = driver.DecodeSubscription(rest)
	case KindState:
		r.ID = name
		r.State, err = driver.DecodeState(rest)
	case KindExpiry:
		r.ID = name
		r.Expiry, err = driver.DecodeExpiry(rest)
	case KindPacket:
		r.ID = name
		if len(rest) < 1 {
			return nil, fmt.Errorf("%w: packet record of %q: no class", ErrCorrupt, name)
		}
		r.Class = persistence.PacketClass(rest[0])
		if !r.Class.Valid() {
			return nil, fmt.Errorf("%w: packet record of %q: class %d", ErrCorrupt, name, rest[0])
		}
		r.Packet, err = driver.DecodePacket(rest[1:])
	case KindRetained:
		r.Topic = name
		r.Packet, err = driver.DecodePacket(rest)
	default:
		return nil, fmt.Errorf("%w: unknown record kind %#x", ErrCorrupt, byte(k))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s record %q: %w", ErrCorrupt, k, name, err)
	}
	return r, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return "", nil, errors.New("malformed length")
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return "", nil, errors.New("length beyond the record")
	}
	return string(b[:n]), b[n:], nil
}

// DigestKey names one digest of a [Summary]: a record kind, and for packets their
// class (so that a difference says which queue class it is in).
type DigestKey string

// KeyOf returns the digest key of r.
func KeyOf(r *Record) DigestKey {
	if r.Kind == KindPacket {
		return DigestKey("packets/" + r.Class.String())
	}
	return DigestKey(r.Kind.String())
}

// Keys lists every digest key in report order.
func Keys() []DigestKey {
	keys := []DigestKey{"sessions", "subscriptions", "states", "expiries"}
	for _, c := range persistence.PacketClasses {
		keys = append(keys, DigestKey("packets/"+c.String()))
	}
	return append(keys, "retained")
}

// Digest is the content digest of a set of records: their number, the bytes of
// their archive bodies, and the sum modulo 2²⁵⁶ of one SHA-256 per record (over its
// kind, body and, for packets, FIFO index), which does not depend on record order.
type Digest struct {
	Count uint64   `json:"count"`
	Bytes uint64   `json:"bytes"`
	Sum   HexBytes `json:"digest"` // 32 bytes, big-endian
}

var mod = new(big.Int).Lsh(big.NewInt(1), 256)

func (d *Digest) add(h [32]byte, n int) {
	s := new(big.Int).SetBytes(d.Sum)
	s.Add(s, new(big.Int).SetBytes(h[:]))
	s.Mod(s, mod)
	d.Sum = s.FillBytes(make([]byte, 32))
	d.Count++
	d.Bytes += uint64(n)
}

// Equal reports whether d and o describe the same records.
func (d Digest) Equal(o Digest) bool {
	return d.Count == o.Count && d.Bytes == o.Bytes && string(pad(d.Sum)) == string(pad(o.Sum))
}

func pad(b []byte) []byte {
	if len(b) == 32 {
		return b
	}
	return new(big.Int).SetBytes(b).FillBytes(make([]byte, 32))
}

// Summary holds one digest per key.
type Summary map[DigestKey]Digest

// Add adds r to s. It fails only for a record AppendBody refuses.
func (s Summary) Add(r *Record) error {
	body, err := AppendBody([]byte{byte(r.Kind)}, r)
	if err != nil {
		return err
	}
	n := len(body) - 1
	if r.Kind == KindPacket {
		body = binary.BigEndian.AppendUint64(body, r.Index)
	}
	k := KeyOf(r)
	d := s[k]
	d.add(sha256.Sum256(body), n)
	s[k] = d
	return nil
}

// Diff returns the keys whose digests differ between s and o, in report order.
func (s Summary) Diff(o Summary) []DigestKey {
	var out []DigestKey
	for _, k := range Keys() {
		if !s[k].Equal(o[k]) {
			out = append(out, k)
		}
	}
	return out
}
