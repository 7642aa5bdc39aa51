package driver_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- corruption: every decoder, every sample ----

// codecUnderTest erases the types of one Encode/Decode pair so that the corruption
// tests can run over all of them.
type codecUnderTest struct {
	name       string
	kind       byte
	decode     func([]byte) error // decodes and checks the zero value on error
	samples    [][]byte           // small valid blobs
	encodeWith func(dst []byte, i int) []byte
}

func erase[T any](name string, kind byte, values []T, encode func([]byte, T) []byte, decode func([]byte) (T, error)) codecUnderTest {
	c := codecUnderTest{name: name, kind: kind}
	for _, v := range values {
		c.samples = append(c.samples, encode(nil, v))
	}
	c.encodeWith = func(dst []byte, i int) []byte { return encode(dst, values[i]) }
	c.decode = func(b []byte) error {
		v, err := decode(b)
		if err != nil && !reflect.ValueOf(&v).Elem().IsZero() {
			return fmt.Errorf("decoder returned %+v with its error %w", v, err)
		}
		return err
	}
	return c
}

// allCodecs returns every codec with small samples (the 16 MiB and 64 KiB cases are
// left out so that the exhaustive bit-flip test stays fast).
func allCodecs() []codecUnderTest {
	var packets []*driver.PersistedPacket
	for _, c := range packetCases() {
		packets = append(packets, c.in)
	}
	var subs []driver.Subscription
	for _, c := range subscriptionCases() {
		if len(c.in.Filter) < 1024 {
			subs = append(subs, c.in)
		}
	}
	var states []*driver.SessionState
	for _, c := range stateCases() {
		states = append(states, c.in)
	}
	var expiries []driver.SessionExpiry
	for _, c := range expiryCases() {
		expiries = append(expiries, c.in)
	}
	var bases []driver.SessionBase
	for _, c := range baseCases() {
		bases = append(bases, c.in)
	}
	var systems []driver.SystemInfo
	for _, c := range systemCases() {
		systems = append(systems, c.in)
	}
	return []codecUnderTest{
		erase("Packet", kindPacket, packets, driver.EncodePacket, driver.DecodePacket),
		erase("Subscription", kindSubscription, subs, driver.EncodeSubscription, driver.DecodeSubscription),
		erase("State", kindState, states, driver.EncodeState, driver.DecodeState),
		erase("Expiry", kindExpiry, expiries, driver.EncodeExpiry, driver.DecodeExpiry),
		erase("SessionBase", kindBase, bases, driver.EncodeSessionBase, driver.DecodeSessionBase),
		erase("SystemInfo", kindSystem, systems, driver.EncodeSystemInfo, driver.DecodeSystemInfo),
	}
}

func wantBroken(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: decoded without error", what)
	}
	if !errors.Is(err, driver.ErrBrokenEntry) {
		t.Fatalf("%s: error %q does not match ErrBrokenEntry", what, err)
	}
}

func TestDecodeAcceptsEverySample(t *testing.T) {
	for _, c := range allCodecs() {
		for i, blob := range c.samples {
			if err := c.decode(blob); err != nil {
				t.Errorf("%s sample %d: %v", c.name, i, err)
			}
		}
	}
}

func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for _, c := range allCodecs() {
		t.Run(c.name, func(t *testing.T) {
			for i, blob := range c.samples {
				for n := range len(blob) {
					wantBroken(t, c.decode(blob[:n]), fmt.Sprintf("sample %d cut to %d of %d bytes", i, n, len(blob)))
				}
			}
			wantBroken(t, c.decode(nil), "nil input")
		})
	}
}

// CRC-32C detects every single-bit error, so no flipped bit anywhere in a blob
// (header, body or the checksum itself) may decode.
func TestDecodeRejectsEverySingleBitFlip(t *testing.T) {
	for _, c := range allCodecs() {
		t.Run(c.name, func(t *testing.T) {
			for i, blob := range c.samples {
				for bit := range len(blob) * 8 {
					b := bytes.Clone(blob)
					b[bit/8] ^= 1 << (bit % 8)
					wantBroken(t, c.decode(b), fmt.Sprintf("sample %d with bit %d flipped", i, bit))
				}
			}
		})
	}
}

func TestDecodeRejectsWrongKind(t *testing.T) {
	codecs := allCodecs()
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			blob := c.samples[0]
			// Another kind's blob, intact: a driver reading the wrong key.
			for _, other := range codecs {
				if other.kind != c.kind {
					wantBroken(t, c.decode(other.samples[0]), other.name+" blob")
				}
			}
			// The right body under another kind byte, with a valid checksum, so
			// the kind check itself must catch it.
			for _, k := range append([]byte{0, 'p', 0xFF}, allKinds...) {
				if k == c.kind {
					continue
				}
				b := bytes.Clone(blob)
				b[0] = k
				err := c.decode(reseal(b))
				wantBroken(t, err, fmt.Sprintf("kind byte %#x", k))
				if !strings.Contains(err.Error(), "kind") {
					t.Errorf("kind byte %#x: error %q does not mention the kind", k, err)
				}
			}
		})
	}
}

// A blob from a newer SDK must be refused, not misread; version 0 was never written.
func TestDecodeRejectsUnknownVersion(t *testing.T) {
	for _, c := range allCodecs() {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []byte{0, 2, 3, 0xFF} {
				b := bytes.Clone(c.samples[0])
				b[1] = v
				err := c.decode(reseal(b))
				wantBroken(t, err, fmt.Sprintf("version %d", v))
				if !strings.Contains(err.Error(), "version") {
					t.Errorf("version %d: error %q does not mention the version", v, err)
				}
			}
		})
	}
}

func TestDecodeRejectsTrailingBytes(t *testing.T) {
	for _, c := range allCodecs() {
		t.Run(c.name, func(t *testing.T) {
			for i, blob := range c.samples {
				// After the checksum: two blobs glued together, or garbage.
				for _, extra := range [][]byte{{0}, []byte("xyz"), blob} {
					wantBroken(t, c.decode(cat(blob, extra)), fmt.Sprintf("sample %d + %d bytes after the CRC", i, len(extra)))
				}
				// Before the checksum, with the checksum recomputed: only the
				// decoder's end-of-body check can catch it.
				body := blob[:len(blob)-4]
				for _, extra := range [][]byte{{0}, []byte("xyz")} {
					err := c.decode(withCRC(cat(body, extra)))
					wantBroken(t, err, fmt.Sprintf("sample %d + %d bytes before the CRC", i, len(extra)))
				}
			}
		})
	}
}

// TestDecodeRejectsMalformedFields feeds blobs with valid header and checksum whose
// body breaks one rule of FORMAT.md ("Decoding rules", point 5).
func TestDecodeRejectsMalformedFields(t *testing.T) {
	decodePacket := func(b []byte) error { _, err := driver.DecodePacket(b); return err }
	decodeSub := func(b []byte) error { _, err := driver.DecodeSubscription(b); return err }
	decodeState := func(b []byte) error { _, err := driver.DecodeState(b); return err }
	decodeExpiry := func(b []byte) error { _, err := driver.DecodeExpiry(b); return err }
	decodeBase := func(b []byte) error { _, err := driver.DecodeSessionBase(b); return err }
	decodeSystem := func(b []byte) error { _, err := driver.DecodeSystemInfo(b); return err }

	// Ten 0xFF bytes then 0x7F: a varint longer than 64 bits.
	overlong := append(bytes.Repeat([]byte{0xFF}, 10), 0x7F)
	badNanos := cat(sv(0), uv(1e9))
	validWill := seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(5), str("w"))
	corruptWill := bytes.Clone(validWill)
	corruptWill[len(corruptWill)-1] ^= 1
	newerWill := bytes.Clone(validWill)
	newerWill[1] = 2
	newerWill = reseal(newerWill)
	stateWith := func(will []byte) []byte {
		return seal(kindState, 1, u8(0x01), u8(5), sv(0), str(""), sv(0), uv(uint64(len(will))), will, str(""))
	}

	tests := []struct {
		name   string
		decode func([]byte) error
		blob   []byte
	}{
		{"Packet/UnknownFlagBit1", decodePacket, seal(kindPacket, 1, u8(0x02), u16(0), u8(0), u8(4), str(""))},
		{"Packet/UnknownFlagBit7", decodePacket, seal(kindPacket, 1, u8(0x80), u16(0), u8(0), u8(4), str(""))},
		{"Packet/QoS3", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(3), u8(4), str(""))},
		{"Packet/QoS255", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(0xFF), u8(4), str(""))},
		{"Packet/Nanoseconds1e9", decodePacket, seal(kindPacket, 1, u8(0x01), u16(0), u8(0), u8(4), badNanos, str(""))},
		{"Packet/OverlongSeconds", decodePacket, seal(kindPacket, 1, u8(0x01), u16(0), u8(0), u8(4), overlong, uv(0), str(""))},
		{"Packet/ExpiryFlagWithoutTime", decodePacket, seal(kindPacket, 1, u8(0x01), u16(0), u8(0), u8(4))},
		{"Packet/DataLengthBeyondEnd", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(4), uv(5), []byte("abcd"))},
		{"Packet/HugeDataLength", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(4), uv(math.MaxUint64))},
		{"Packet/OverlongDataLength", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(4), overlong)},
		{"Packet/MissingData", decodePacket, seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(4))},
		{"Packet/HalfPacketID", decodePacket, seal(kindPacket, 1, u8(0), u8(1))},
		{"Packet/EmptyBody", decodePacket, seal(kindPacket, 1)},

		{"Subscription/UnknownFlagBit2", decodeSub, seal(kindSubscription, 1, u8(0x04), u8(0), u8(0), uv(0), str("a"))},
		{"Subscription/QoS3", decodeSub, seal(kindSubscription, 1, u8(0), u8(3), u8(0), uv(0), str("a"))},
		{"Subscription/RetainHandling3", decodeSub, seal(kindSubscription, 1, u8(0), u8(0), u8(3), uv(0), str("a"))},
		{"Subscription/IDOverflows32Bits", decodeSub, seal(kindSubscription, 1, u8(0), u8(0), u8(0), uv(1<<32), str("a"))},
		{"Subscription/FilterLengthBeyondEnd", decodeSub, seal(kindSubscription, 1, u8(0), u8(0), u8(0), uv(0), uv(2), []byte("a"))},
		{"Subscription/MissingFilter", decodeSub, seal(kindSubscription, 1, u8(0), u8(0), u8(0), uv(0))},

		{"State/UnknownFlagBit2", decodeState, seal(kindState, 1, u8(0x04), u8(5), sv(0), str(""), sv(0), str(""))},
		{"State/DisconnectedNanoseconds1e9", decodeState, seal(kindState, 1, u8(0x02), u8(5), sv(0), str(""), sv(0), badNanos, str(""))},
		{"State/OverlongExpiryInterval", decodeState, seal(kindState, 1, u8(0), u8(5), overlong, str(""), sv(0), str(""))},
		{"State/MissingUserData", decodeState, seal(kindState, 1, u8(0), u8(5), sv(0), str(""), sv(0))},
		{"State/WillFlagWithoutWill", decodeState, seal(kindState, 1, u8(0x01), u8(5), sv(0), str(""), sv(0))},
		{"State/WillWithBadChecksum", decodeState, stateWith(corruptWill)},
		{"State/WillOfNewerVersion", decodeState, stateWith(newerWill)},
		{"State/WillOfWrongKind", decodeState, stateWith(seal(kindSubscription, 1, u8(0), u8(0), u8(0), uv(0), str("a")))},
		{"State/WillWithTrailingByte", decodeState, stateWith(withCRC(cat(validWill[:len(validWill)-4], u8(0))))},
		{"State/WillTooShort", decodeState, stateWith([]byte{kindPacket, 1})},

		{"Expiry/UnknownFlagBit2", decodeExpiry, seal(kindExpiry, 1, u8(0x04))},
		{"Expiry/WillAtNanoseconds1e9", decodeExpiry, seal(kindExpiry, 1, u8(0x02), badNanos)},
		{"Expiry/ExpireAtFlagWithoutTime", decodeExpiry, seal(kindExpiry, 1, u8(0x01))},
		{"Expiry/BothFlagsOneTime", decodeExpiry, seal(kindExpiry, 1, u8(0x03), tm(tNanos))},
		{"Expiry/EmptyBody", decodeExpiry, seal(kindExpiry, 1)},

		{"SessionBase/UnknownFlagBit1", decodeBase, seal(kindBase, 1, u8(0x02), u8(4))},
		{"SessionBase/CreatedAtNanoseconds1e9", decodeBase, seal(kindBase, 1, u8(0x01), u8(4), badNanos)},
		{"SessionBase/MissingProtocolVersion", decodeBase, seal(kindBase, 1, u8(0))},

		{"SystemInfo/SchemaVersionOverflows32Bits", decodeSystem, seal(kindSystem, 1, uv(1<<32), tm(tNanos), str(""), str(""))},
		{"SystemInfo/Nanoseconds1e9", decodeSystem, seal(kindSystem, 1, uv(1), badNanos, str(""), str(""))},
		{"SystemInfo/MissingDriver", decodeSystem, seal(kindSystem, 1, uv(1), tm(tNanos), str(""))},
		{"SystemInfo/MissingTime", decodeSystem, seal(kindSystem, 1, uv(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantBroken(t, tt.decode(tt.blob), tt.name)
		})
	}

	// The helpers above must build blobs the decoders accept when nothing is wrong,
	// or the cases would pass for the wrong reason.
	if err := decodeState(stateWith(validWill)); err != nil {
		t.Errorf("state with a valid will: %v", err)
	}
	if err := decodePacket(seal(kindPacket, 1, u8(0), u16(0), u8(0), u8(4), str(""))); err != nil {
		t.Errorf("minimal packet: %v", err)
	}
}
