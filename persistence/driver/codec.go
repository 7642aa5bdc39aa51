package driver

import (
	"encoding/binary"

	"fmt"
	"hash/crc32"
	"time"
)

// The blob codec: everything a driver stores is one of these blobs. The format is
// specified in FORMAT.md beside this file; in short every blob is
//
//	kind (1 byte) | format version (1 byte) | body | CRC-32C of all preceding bytes (4 bytes, big-endian)
//
// and decoding checks all three, so a truncated, corrupted or misplaced blob is
// reported as ErrBrokenEntry instead of being misread.

// Blob kinds: the first byte of every blob.
const (
	blobPacket       byte = 'P'
	blobSubscription byte = 'S'
	blobState        byte = 'T'
	blobExpiry       byte = 'E'
	blobBase         byte = 'B'
	blobSystem       byte = 'Y'
)

// codecVersion is the blob format version this SDK writes and the newest it reads.
const codecVersion byte = 1

const blobOverhead = 2 + 4 // header + CRC

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ---- writing ----

func beginBlob(dst []byte, kind byte) ([]byte, int) {
	start := len(dst)
	return append(dst, kind, codecVersion), start
}

func endBlob(dst []byte, start int) []byte {
	sum := crc32.Checksum(dst[start:], castagnoli)
	return binary.BigEndian.AppendUint32(dst, sum)
}

func appendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendTime writes seconds (signed varint) and nanoseconds (uvarint); callers record
// a zero time as an absent flag instead.
func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// ---- reading ----

type blobReader struct {
	b   []byte
	err error
}

func openBlob(b []byte, kind byte, what string) (*blobReader, error) {
	if len(b) < blobOverhead {
		return nil, brokenf("%s blob of %d bytes is too short", what, len(b))
	}
	if b[0] != kind {
		return nil, brokenf("%s blob has kind byte %#x, want %#x", what, b[0], kind)
	}
	if b[1] == 0 || b[1] > codecVersion {
		return nil, brokenf("%s blob has format version %d, this SDK reads up to %d", what, b[1], codecVersion)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, brokenf("%s blob checksum mismatch (corrupted)", what)
	}
	return &blobReader{b: body[2:]}, nil
}

func (r *blobReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = brokenf(format, args...)
	}
}

func (r *blobReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *blobReader) uint16() uint16 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 2 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *blobReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad unsigned varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad signed varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d exceeds the %d bytes left", n, len(r.b))
		return nil
	}
	out := make([]byte, n)
	copy(out, r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *blobReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d exceeds the %d bytes left", n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *blobReader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *blobReader) duration() time.Duration { return time.Duration(r.varint()) }

// close reports the first error, or trailing bytes.
func (r *blobReader) close(what string) error {
	if r.err != nil {
		return fmt.Errorf("%w (%s blob)", r.err, what)
	}
	if len(r.b) != 0 {
		return brokenf("%s blob has %d trailing bytes", what, len(r.b))
	}
	return nil
}

func brokenf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBrokenEntry}, args...)...)
}

// ---- packets ----

const (
	packetHasExpiry = 1 << 0
	packetFlagsMask = packetHasExpiry
)

// EncodePacket appends the blob of p to dst and returns the result. p.Seq is not
// encoded: it is the packet's key, which the driver stores beside the blob.
func EncodePacket(dst []byte, p *PersistedPacket) []byte {
	dst, start := beginBlob(dst, blobPacket)
	var flags byte
	if !p.ExpireAt.IsZero() {
		flags |= packetHasExpiry
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	dst = append(dst, p.QoS, p.ProtocolVersion)
	if flags&packetHasExpiry != 0 {
		dst = appendTime(dst, p.ExpireAt)
	}
	dst = appendBytes(dst, p.Data)
	return endBlob(dst, start)
}

// DecodePacket decodes a blob written by [EncodePacket]. Any problem, including a
// checksum mismatch, returns an error matching [ErrBrokenEntry]; it never panics.
// The result's Seq is 0 and Data never aliases b.
func DecodePacket(b []byte) (*PersistedPacket, error) {
	r, err := openBlob(b, blobPacket, "packet")
	if err != nil {
		return nil, err
	}
	p := decodePacketBody(r)
	if err := r.close("packet"); err != nil {
		return nil, err
	}
	return p, nil
}

func decodePacketBody(r *blobReader) *PersistedPacket {
	p := &PersistedPacket{}
	flags := r.byte()
	if flags&^packetFlagsMask != 0 {
		r.fail("unknown packet flags %#x", flags)
	}
	p.PacketID = r.uint16()
	p.QoS = r.byte()
	p.ProtocolVersion = r.byte()
	if p.QoS > 2 {
		r.fail("packet QoS %d", p.QoS)
	}
	if flags&packetHasExpiry != 0 {
		p.ExpireAt = r.time()
	}
	p.Data = r.bytes()
	return p
}

// ---- subscriptions ----

const (
	subNoLocal           = 1 << 0
	subRetainAsPublished = 1 << 1
	subFlagsMask         = subNoLocal | subRetainAsPublished
)

// EncodeSubscription appends the blob of s to dst.
func EncodeSubscription(dst []byte, s Subscription) []byte {
	dst, start := beginBlob(dst, blobSubscription)
	var flags byte
	if s.NoLocal {
		flags |= subNoLocal
	}
	if s.RetainAsPublished {
		flags |= subRetainAsPublished
	}
	dst = append(dst, flags, s.QoS, s.RetainHandling)
	dst = binary.AppendUvarint(dst, uint64(s.ID))
	dst = appendString(dst, s.Filter)
	return endBlob(dst, start)
}

// DecodeSubscription decodes a blob written by [EncodeSubscription]; errors match
// [ErrBrokenEntry].
func DecodeSubscription(b []byte) (Subscription, error) {
	r, err := openBlob(b, blobSubscription, "subscription")
	if err != nil {
		return Subscription{}, err
	}
	var s Subscription
	flags := r.byte()
	if flags&^subFlagsMask != 0 {
		r.fail("unknown subscription flags %#x", flags)
	}
	s.NoLocal = flags&subNoLocal != 0
	s.RetainAsPublished = flags&subRetainAsPublished != 0
	s.QoS = r.byte()
	s.RetainHandling = r.byte()
	id := r.uvarint()
	if id > 0xFFFFFFFF {
		r.fail("subscription identifier %d overflows", id)
	}
	s.ID = uint32(id)
	s.Filter = r.string()
	if r.err == nil && (s.QoS > 2 || s.RetainHandling > 2) {
		r.fail("subscription QoS %d / retain handling %d", s.QoS, s.RetainHandling)
	}
	if err := r.close("subscription"); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// ---- session state ----

const (
	stateHasWill         = 1 << 0
	stateHasDisconnected = 1 << 1
	stateFlagsMask       = stateHasWill | stateHasDisconnected
)

// EncodeState appends the blob of st to dst. The will, when present, is embedded as a
// complete packet blob.
func EncodeState(dst []byte, st *SessionState) []byte {
	dst, start := beginBlob(dst, blobState)
	var flags byte
	if st.Will != nil {
		flags |= stateHasWill
	}
	if !st.DisconnectedAt.IsZero() {
		flags |= stateHasDisconnected
	}
	dst = append(dst, flags, st.ProtocolVersion)
	dst = binary.AppendVarint(dst, int64(st.ExpiryInterval))
	dst = appendString(dst, st.Username)
	dst = binary.AppendVarint(dst, int64(st.WillDelay))
	if flags&stateHasDisconnected != 0 {
		dst = appendTime(dst, st.DisconnectedAt)
	}
	if st.Will != nil {
		dst = appendBytes(dst, EncodePacket(nil, st.Will))
	}
	dst = appendBytes(dst, st.UserData)
	return endBlob(dst, start)
}

// DecodeState decodes a blob written by [EncodeState]; errors match [ErrBrokenEntry].
func DecodeState(b []byte) (*SessionState, error) {
	r, err := openBlob(b, blobState, "session state")
	if err != nil {
		return nil, err
	}
	st := &SessionState{}
	flags := r.byte()
	if flags&^stateFlagsMask != 0 {
		r.fail("unknown session state flags %#x", flags)
	}
	st.ProtocolVersion = r.byte()
	st.ExpiryInterval = r.duration()
	st.Username = r.string()
	st.WillDelay = r.duration()
	if flags&stateHasDisconnected != 0 {
		st.DisconnectedAt = r.time()
	}
	if flags&stateHasWill != 0 {
		will := r.bytes()
		if r.err == nil {
			st.Will, err = DecodePacket(will)
			if err != nil {
				return nil, fmt.Errorf("%w (will of session state)", err)
			}
		}
	}
	st.UserData = r.bytes()
	if len(st.UserData) == 0 {
		st.UserData = nil
	}
	if err := r.close("session state"); err != nil {
		return nil, err
	}
	return st, nil
}

// ---- expiry ----

const (
	expiryHasExpireAt = 1 << 0
	expiryHasWillAt   = 1 << 1
	expiryFlagsMask   = expiryHasExpireAt | expiryHasWillAt
)

// EncodeExpiry appends the blob of e to dst.
func EncodeExpiry(dst []byte, e SessionExpiry) []byte {
	dst, start := beginBlob(dst, blobExpiry)
	var flags byte
	if !e.ExpireAt.IsZero() {
		flags |= expiryHasExpireAt
	}
	if !e.WillAt.IsZero() {
		flags |= expiryHasWillAt
	}
	dst = append(dst, flags)
	if flags&expiryHasExpireAt != 0 {
		dst = appendTime(dst, e.ExpireAt)
	}
	if flags&expiryHasWillAt != 0 {
		dst = appendTime(dst, e.WillAt)
	}
	return endBlob(dst, start)
}

// DecodeExpiry decodes a blob written by [EncodeExpiry]; errors match [ErrBrokenEntry].
func DecodeExpiry(b []byte) (SessionExpiry, error) {
	r, err := openBlob(b, blobExpiry, "expiry")
	if err != nil {
		return SessionExpiry{}, err
	}
	var e SessionExpiry
	flags := r.byte()
	if flags&^expiryFlagsMask != 0 {
		r.fail("unknown expiry flags %#x", flags)
	}
	if flags&expiryHasExpireAt != 0 {
		e.ExpireAt = r.time()
	}
	if flags&expiryHasWillAt != 0 {
		e.WillAt = r.time()
	}
	if err := r.close("expiry"); err != nil {
		return SessionExpiry{}, err
	}
	return e, nil
}

// ---- session base ----

const baseHasCreatedAt = 1 << 0

// EncodeSessionBase appends the blob of base to dst.
func EncodeSessionBase(dst []byte, base SessionBase) []byte {
	dst, start := beginBlob(dst, blobBase)
	var flags byte
	if !base.CreatedAt.IsZero() {
		flags |= baseHasCreatedAt
	}
	dst = append(dst, flags, base.ProtocolVersion)
	if flags&baseHasCreatedAt != 0 {
		dst = appendTime(dst, base.CreatedAt)
	}
	return endBlob(dst, start)
}

// DecodeSessionBase decodes a blob written by [EncodeSessionBase]; errors match
// [ErrBrokenEntry].
func DecodeSessionBase(b []byte) (SessionBase, error) {
	r, err := openBlob(b, blobBase, "session")
	if err != nil {
		return SessionBase{}, err
	}
	var base SessionBase
	flags := r.byte()
	if flags&^baseHasCreatedAt != 0 {
		r.fail("unknown session flags %#x", flags)
	}
	base.ProtocolVersion = r.byte()
	if flags&baseHasCreatedAt != 0 {
		base.CreatedAt = r.time()
	}
	if err := r.close("session"); err != nil {
		return SessionBase{}, err
	}
	return base, nil
}

// ---- system info ----

// EncodeSystemInfo appends the blob of info to dst.
func EncodeSystemInfo(dst []byte, info SystemInfo) []byte {
	dst, start := beginBlob(dst, blobSystem)
	dst = binary.AppendUvarint(dst, uint64(info.SchemaVersion))
	dst = appendTime(dst, info.CreatedAt)
	dst = appendString(dst, info.SDKVersion)
	dst = appendString(dst, info.Driver)
	return endBlob(dst, start)
}

// DecodeSystemInfo decodes a blob written by [EncodeSystemInfo]; errors match
// [ErrBrokenEntry].
func DecodeSystemInfo(b []byte) (SystemInfo, error) {
	r, err := openBlob(b, blobSystem, "system info")
	if err != nil {
		return SystemInfo{}, err
	}
	var info SystemInfo
	v := r.uvarint()
	if v > 0xFFFFFFFF {
		r.fail("schema version %d overflows", v)
	}
	info.SchemaVersion = uint32(v)
	info.CreatedAt = r.time()
	info.SDKVersion = r.string()
	info.Driver = r.string()
	if err := r.close("system info"); err != nil {
		return SystemInfo{}, err
	}
	return info, nil
}
