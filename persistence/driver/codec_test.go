package driver_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- hand-built blobs, written from FORMAT.md rather than from codec.go ----

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The kind bytes of FORMAT.md.
const (
	kindPacket       byte = 'P'
	kindSubscription byte = 'S'
	kindState        byte = 'T'
	kindExpiry       byte = 'E'
	kindBase         byte = 'B'
	kindSystem       byte = 'Y'
)

var allKinds = []byte{kindPacket, kindSubscription, kindState, kindExpiry, kindBase, kindSystem}

// seal builds a blob: kind, version, the body parts, CRC-32C of all of it.
func seal(kind, version byte, body ...[]byte) []byte {
	b := []byte{kind, version}
	for _, part := range body {
		b = append(b, part...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// reseal recomputes the CRC of a blob whose header or body a test changed, so that
// the decoder gets past the checksum and the check under test is the one that fires.
func reseal(blob []byte) []byte {
	b := bytes.Clone(blob[:len(blob)-4])
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// withCRC appends the CRC-32C of b, turning any "blob without trailer" into one with
// a valid checksum; the fuzz targets use it to explore bodies behind the checksum.
func withCRC(b []byte) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, castagnoli))
}

func u8(v byte) []byte       { return []byte{v} }
func u16(v uint16) []byte    { return binary.BigEndian.AppendUint16(nil, v) }
func uv(v uint64) []byte     { return binary.AppendUvarint(nil, v) }
func sv(v int64) []byte      { return binary.AppendVarint(nil, v) }
func str(s string) []byte    { return append(uv(uint64(len(s))), s...) }
func tm(t time.Time) []byte  { return append(sv(t.Unix()), uv(uint64(t.Nanosecond()))...) }
func cat(p ...[]byte) []byte { return bytes.Join(p, nil) }

// ---- comparisons that treat times as instants (Equal) and nil Data as empty ----

func samePacket(a, b *driver.PersistedPacket) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Seq == b.Seq && a.PacketID == b.PacketID && a.QoS == b.QoS &&
		a.ProtocolVersion == b.ProtocolVersion && a.ExpireAt.Equal(b.ExpireAt) &&
		bytes.Equal(a.Data, b.Data)
}

func sameSubscription(a, b driver.Subscription) bool { return a == b }

func sameState(a, b *driver.SessionState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ProtocolVersion == b.ProtocolVersion && a.ExpiryInterval == b.ExpiryInterval &&
		a.Username == b.Username && samePacket(a.Will, b.Will) && a.WillDelay == b.WillDelay &&
		a.DisconnectedAt.Equal(b.DisconnectedAt) && bytes.Equal(a.UserData, b.UserData)
}

func sameExpiry(a, b driver.SessionExpiry) bool {
	return a.ExpireAt.Equal(b.ExpireAt) && a.WillAt.Equal(b.WillAt)
}

func sameBase(a, b driver.SessionBase) bool {
	return a.ProtocolVersion == b.ProtocolVersion && a.CreatedAt.Equal(b.CreatedAt)
}

func sameSystem(a, b driver.SystemInfo) bool {
	return a.SchemaVersion == b.SchemaVersion && a.CreatedAt.Equal(b.CreatedAt) &&
		a.SDKVersion == b.SDKVersion && a.Driver == b.Driver
}

// ---- sample values ----

var (
	// A time with every nanosecond digit set.
	tNanos = time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)
	// Before 1970: negative Unix seconds with positive nanoseconds.
	tBefore1970 = time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)
	// One nanosecond into 1969-12-31T23:59:59: Unix() is -1, Nanosecond() is 1.
	tJustBefore1970 = time.Unix(-1, 1).UTC()
	// The smallest non-zero time: it must not be mistaken for "absent".
	tAfterZero = time.Time{}.Add(time.Nanosecond)
	// Before year 1 (Go allows negative years).
	tBC       = time.Date(-500, 3, 1, 12, 0, 0, 7, time.UTC)
	tFar      = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	tZoned    = time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("IST", 5*3600+1800))
	tWallOnly = time.Unix(1700000000, 42)
)

// allBytes holds every byte value, NUL and invalid UTF-8 included.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

type packetCase struct {
	name string
	in   *driver.PersistedPacket
	want *driver.PersistedPacket // nil: same as in
}

func packetCases() []packetCase {
	return []packetCase{
		{name: "Zero", in: &driver.PersistedPacket{}},
		{name: "Typical", in: &driver.PersistedPacket{PacketID: 7, QoS: 1, ProtocolVersion: 5, ExpireAt: tNanos, Data: []byte{0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x07}}},
		{name: "MaxValues", in: &driver.PersistedPacket{PacketID: math.MaxUint16, QoS: 2, ProtocolVersion: math.MaxUint8, ExpireAt: tFar, Data: allBytes()}},
		{name: "ExpiryBefore1970", in: &driver.PersistedPacket{QoS: 1, ExpireAt: tBefore1970, Data: []byte("x")}},
		{name: "ExpiryJustBefore1970", in: &driver.PersistedPacket{ExpireAt: tJustBefore1970}},
		{name: "ExpiryOneNanosecondAfterZeroTime", in: &driver.PersistedPacket{ExpireAt: tAfterZero}},
		{name: "ExpiryBeforeYear1", in: &driver.PersistedPacket{ExpireAt: tBC}},
		{name: "ExpiryInOtherZone", in: &driver.PersistedPacket{ExpireAt: tZoned}},
		{name: "ExpiryWithMonotonicReading", in: &driver.PersistedPacket{ExpireAt: time.Now()}},
		{name: "ExpiryLocalTime", in: &driver.PersistedPacket{ExpireAt: tWallOnly}},
		{name: "NULBytesInData", in: &driver.PersistedPacket{QoS: 2, PacketID: 1, Data: []byte{0, 0, 0}}},
		{
			// Seq is the driver's key, not part of the blob.
			name: "SeqIsNotEncoded",
			in:   &driver.PersistedPacket{Seq: 42, PacketID: 9, QoS: 1, ProtocolVersion: 4, Data: []byte("d")},
			want: &driver.PersistedPacket{Seq: 0, PacketID: 9, QoS: 1, ProtocolVersion: 4, Data: []byte("d")},
		},
	}
}

type subscriptionCase struct {
	name string
	in   driver.Subscription
}

func subscriptionCases() []subscriptionCase {
	return []subscriptionCase{
		{"Zero", driver.Subscription{}},
		{"Typical", driver.Subscription{Filter: "sport/tennis/+", QoS: 1}},
		{"MaxValues", driver.Subscription{Filter: "$share/g/a/+/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: math.MaxUint32}},
		{"NoLocalOnly", driver.Subscription{Filter: "a", NoLocal: true}},
		{"RetainAsPublishedOnly", driver.Subscription{Filter: "a", RetainAsPublished: true, RetainHandling: 1}},
		{"BinaryFilter", driver.Subscription{Filter: string(allBytes()), ID: 268435455}},
		{"LongFilter", driver.Subscription{Filter: strings.Repeat("ab/", 21845), ID: 1}},
	}
}

type stateCase struct {
	name string
	in   *driver.SessionState
	want *driver.SessionState // nil: same as in
}

func stateCases() []stateCase {
	will := &driver.PersistedPacket{PacketID: 0, QoS: 1, ProtocolVersion: 5, ExpireAt: tNanos, Data: []byte{0x30, 0x03, 0, 1, 'w'}}
	return []stateCase{
		{name: "Zero", in: &driver.SessionState{}},
		{name: "Typical", in: &driver.SessionState{ProtocolVersion: 5, ExpiryInterval: time.Hour, Username: "alice", WillDelay: 30 * time.Second, DisconnectedAt: tNanos, UserData: []byte("opaque")}},
		{name: "WillEmbedded", in: &driver.SessionState{ProtocolVersion: 5, Will: will, WillDelay: time.Minute, UserData: []byte{0}}},
		{name: "WillWithoutData", in: &driver.SessionState{Will: &driver.PersistedPacket{}}},
		{name: "WillWithAllFields", in: &driver.SessionState{Will: &driver.PersistedPacket{PacketID: math.MaxUint16, QoS: 2, ProtocolVersion: 4, ExpireAt: tBefore1970, Data: allBytes()}}},
		{
			name: "WillSeqIsNotEncoded",
			in:   &driver.SessionState{Will: &driver.PersistedPacket{Seq: 5, Data: []byte("w")}},
			want: &driver.SessionState{Will: &driver.PersistedPacket{Data: []byte("w")}},
		},
		{name: "NeverExpires", in: &driver.SessionState{ExpiryInterval: -1}},
		{name: "MaxDurations", in: &driver.SessionState{ExpiryInterval: math.MaxInt64, WillDelay: math.MaxInt64}},
		{name: "MinDurations", in: &driver.SessionState{ExpiryInterval: math.MinInt64, WillDelay: math.MinInt64}},
		{name: "DisconnectedBefore1970", in: &driver.SessionState{DisconnectedAt: tJustBefore1970, ProtocolVersion: 3}},
		{name: "BinaryUsername", in: &driver.SessionState{Username: string(allBytes())}},
		{
			// UserData of length 0 is not distinguishable from nil; it decodes as nil.
			name: "EmptyUserDataDecodesAsNil",
			in:   &driver.SessionState{UserData: []byte{}},
			want: &driver.SessionState{UserData: nil},
		},
	}
}

type expiryCase struct {
	name string
	in   driver.SessionExpiry
}

func expiryCases() []expiryCase {
	return []expiryCase{
		{"Zero", driver.SessionExpiry{}},
		{"ExpireAtOnly", driver.SessionExpiry{ExpireAt: tNanos}},
		{"WillAtOnly", driver.SessionExpiry{WillAt: tNanos}},
		{"Both", driver.SessionExpiry{ExpireAt: tFar, WillAt: tNanos}},
		{"Before1970", driver.SessionExpiry{ExpireAt: tBefore1970, WillAt: tJustBefore1970}},
		{"OneNanosecondAfterZeroTime", driver.SessionExpiry{ExpireAt: tAfterZero, WillAt: tAfterZero}},
		{"BeforeYear1", driver.SessionExpiry{WillAt: tBC}},
		{"OtherZone", driver.SessionExpiry{ExpireAt: tZoned}},
	}
}

type baseCase struct {
	name string
	in   driver.SessionBase
}

func baseCases() []baseCase {
	return []baseCase{
		{"Zero", driver.SessionBase{}},
		{"Typical", driver.SessionBase{CreatedAt: tNanos, ProtocolVersion: 4}},
		{"MaxProtocolVersion", driver.SessionBase{ProtocolVersion: math.MaxUint8, CreatedAt: tFar}},
		{"CreatedBefore1970", driver.SessionBase{CreatedAt: tBefore1970, ProtocolVersion: 5}},
		{"CreatedWithMonotonicReading", driver.SessionBase{CreatedAt: time.Now()}},
	}
}

type systemCase struct {
	name string
	in   driver.SystemInfo
}

func systemCases() []systemCase {
	return []systemCase{
		{"Zero", driver.SystemInfo{}},
		{"Typical", driver.SystemInfo{SchemaVersion: driver.SchemaVersion, CreatedAt: tNanos, SDKVersion: driver.SDKVersion, Driver: "bolt"}},
		{"MaxSchemaVersion", driver.SystemInfo{SchemaVersion: math.MaxUint32, CreatedAt: tFar}},
		{"CreatedBefore1970", driver.SystemInfo{SchemaVersion: 1, CreatedAt: tBefore1970}},
		{"CreatedBeforeYear1", driver.SystemInfo{SchemaVersion: 1, CreatedAt: tBC}},
		{"BinaryStrings", driver.SystemInfo{SDKVersion: string(allBytes()), Driver: "\x00"}},
	}
}

// ---- round trips ----

// checkRoundTrip encodes in, decodes it and compares with want; it also checks the
// properties every decoder promises: times come back in UTC, and re-encoding the
// decoded value gives the same bytes.
func checkRoundTrip[T any](t *testing.T, in, want T, encode func([]byte, T) []byte, decode func([]byte) (T, error), same func(a, b T) bool) {
	t.Helper()
	blob := encode(nil, in)
	got, err := decode(blob)
	if err != nil {
		t.Fatalf("decode(encode(%+v)): %v", in, err)
	}
	if !same(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if again := encode(nil, got); !bytes.Equal(again, blob) {
		t.Fatalf("re-encoding the decoded value changed the blob:\n%x\n%x", blob, again)
	}
	checkUTC(t, reflect.ValueOf(got))
}

// checkUTC fails if any non-zero time.Time reachable from v is not in UTC: decoders
// promise UTC so that stored times never depend on the reader's time zone.
func checkUTC(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkUTC(t, v.Elem())
		}
	case reflect.Struct:
		if tt, ok := v.Interface().(time.Time); ok {
			if !tt.IsZero() && tt.Location() != time.UTC {
				t.Errorf("decoded time %v is in %v, want UTC", tt, tt.Location())
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				checkUTC(t, v.Field(i))
			}
		}
	}
}

func TestPacketRoundTrip(t *testing.T) {
	for _, c := range packetCases() {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = c.in
			}
			checkRoundTrip(t, c.in, want, driver.EncodePacket, driver.DecodePacket, samePacket)
		})
	}
}

func TestSubscriptionRoundTrip(t *testing.T) {
	for _, c := range subscriptionCases() {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.in, c.in, driver.EncodeSubscription, driver.DecodeSubscription, sameSubscription)
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, c := range stateCases() {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == nil {
				want = c.in
			}
			checkRoundTrip(t, c.in, want, driver.EncodeState, driver.DecodeState, sameState)
		})
	}
}

func TestExpiryRoundTrip(t *testing.T) {
	for _, c := range expiryCases() {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.in, c.in, driver.EncodeExpiry, driver.DecodeExpiry, sameExpiry)
		})
	}
}

func TestSessionBaseRoundTrip(t *testing.T) {
	for _, c := range baseCases() {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.in, c.in, driver.EncodeSessionBase, driver.DecodeSessionBase, sameBase)
		})
	}
}

func TestSystemInfoRoundTrip(t *testing.T) {
	for _, c := range systemCases() {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.in, c.in, driver.EncodeSystemInfo, driver.DecodeSystemInfo, sameSystem)
		})
	}
}

// A zero time must come back as the zero time (IsZero), not as 1970 or year 1 in
// some other representation: drivers and brokers test deadlines with IsZero.
func TestZeroTimesDecodeAsZero(t *testing.T) {
	p, err := driver.DecodePacket(driver.EncodePacket(nil, &driver.PersistedPacket{}))
	if err != nil || !p.ExpireAt.IsZero() {
		t.Errorf("packet ExpireAt = %v, %v; want zero time", p.ExpireAt, err)
	}
	st, err := driver.DecodeState(driver.EncodeState(nil, &driver.SessionState{}))
	if err != nil || !st.DisconnectedAt.IsZero() || st.Will != nil {
		t.Errorf("state = %+v, %v; want zero DisconnectedAt and nil Will", st, err)
	}
	e, err := driver.DecodeExpiry(driver.EncodeExpiry(nil, driver.SessionExpiry{}))
	if err != nil || !e.IsZero() {
		t.Errorf("expiry = %+v, %v; want zero", e, err)
	}
	b, err := driver.DecodeSessionBase(driver.EncodeSessionBase(nil, driver.SessionBase{}))
	if err != nil || !b.CreatedAt.IsZero() {
		t.Errorf("base CreatedAt = %v, %v; want zero time", b.CreatedAt, err)
	}
	// SystemInfo always writes its time; the zero time must survive that too.
	s, err := driver.DecodeSystemInfo(driver.EncodeSystemInfo(nil, driver.SystemInfo{}))
	if err != nil || !s.CreatedAt.IsZero() {
		t.Errorf("system CreatedAt = %v, %v; want zero time", s.CreatedAt, err)
	}
}

// nil and empty Data are written identically (length 0), and both decode to a
// zero-length Data; the same holds for UserData, which decodes as nil.
func TestNilAndEmptyBytesEncodeTheSame(t *testing.T) {
	nilBlob := driver.EncodePacket(nil, &driver.PersistedPacket{QoS: 1, Data: nil})
	emptyBlob := driver.EncodePacket(nil, &driver.PersistedPacket{QoS: 1, Data: []byte{}})
	if !bytes.Equal(nilBlob, emptyBlob) {
		t.Fatalf("nil Data blob %x differs from empty Data blob %x", nilBlob, emptyBlob)
	}
	p, err := driver.DecodePacket(emptyBlob)
	if err != nil || len(p.Data) != 0 {
		t.Fatalf("DecodePacket = %+v, %v; want zero-length Data", p, err)
	}

	nilState := driver.EncodeState(nil, &driver.SessionState{UserData: nil})
	emptyState := driver.EncodeState(nil, &driver.SessionState{UserData: []byte{}})
	if !bytes.Equal(nilState, emptyState) {
		t.Fatalf("nil UserData blob %x differs from empty UserData blob %x", nilState, emptyState)
	}
	st, err := driver.DecodeState(emptyState)
	if err != nil || st.UserData != nil {
		t.Fatalf("DecodeState UserData = %#v, %v; want nil", st.UserData, err)
	}
}

// The SDK's largest payload (the conformance suite's 16 MiB) must survive, as packet
// Data, as state UserData and as the Data of an embedded will.
func TestRoundTrip16MiB(t *testing.T) {
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	p := &driver.PersistedPacket{PacketID: 1, QoS: 1, ProtocolVersion: 5, ExpireAt: tNanos, Data: big}
	checkRoundTrip(t, p, p, driver.EncodePacket, driver.DecodePacket, samePacket)

	st := &driver.SessionState{Will: &driver.PersistedPacket{Data: big}, UserData: big}
	checkRoundTrip(t, st, st, driver.EncodeState, driver.DecodeState, sameState)
}

// Encode… appends to dst: bytes already there are kept and are not part of the
// blob's checksum, so a driver can build a key and a value in one buffer.
func TestEncodeAppendsToDst(t *testing.T) {
	prefix := []byte("key:\x00\xff")
	for _, c := range allCodecs() {
		t.Run(c.name, func(t *testing.T) {
			for i, blob := range c.samples {
				out := c.encodeWith(bytes.Clone(prefix), i)
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("prefix lost: %x", out)
				}
				if tail := out[len(prefix):]; !bytes.Equal(tail, blob) {
					t.Fatalf("blob after a prefix %x differs from blob alone %x", tail, blob)
				}
				if err := c.decode(out[len(prefix):]); err != nil {
					t.Fatalf("decoding the appended blob: %v", err)
				}
			}
		})
	}
}

// Decoded byte slices are copies: a driver may reuse or unmap the buffer it decoded
// from (bbolt's memory is only valid inside a transaction).
func TestDecodedBytesDoNotAliasInput(t *testing.T) {
	scribble := func(b []byte) {
		for i := range b {
			b[i] = 0xEE
		}
	}

	blob := driver.EncodePacket(nil, &driver.PersistedPacket{QoS: 1, Data: []byte("payload")})
	p, err := driver.DecodePacket(blob)
	if err != nil {
		t.Fatal(err)
	}
	scribble(blob)
	if string(p.Data) != "payload" {
		t.Errorf("packet Data changed with the input buffer: %q", p.Data)
	}

	blob = driver.EncodeState(nil, &driver.SessionState{
		Username: "user",
		Will:     &driver.PersistedPacket{Data: []byte("will")},
		UserData: []byte("userdata"),
	})
	st, err := driver.DecodeState(blob)
	if err != nil {
		t.Fatal(err)
	}
	scribble(blob)
	if string(st.UserData) != "userdata" || string(st.Will.Data) != "will" || st.Username != "user" {
		t.Errorf("state changed with the input buffer: UserData %q, will Data %q, Username %q", st.UserData, st.Will.Data, st.Username)
	}

	blob = driver.EncodeSubscription(nil, driver.Subscription{Filter: "a/b"})
	s, err := driver.DecodeSubscription(blob)
	if err != nil {
		t.Fatal(err)
	}
	scribble(blob)
	if s.Filter != "a/b" {
		t.Errorf("subscription Filter changed with the input buffer: %q", s.Filter)
	}
}

// ---- the format itself ----

// TestEncodeMatchesFORMAT pins the encoder to FORMAT.md: each blob is built here by
// hand from the specification and must equal the encoder's output byte for byte,
// and decode to the value.
func TestEncodeMatchesFORMAT(t *testing.T) {
	will := &driver.PersistedPacket{QoS: 1, ProtocolVersion: 5, Data: []byte("w")}
	willBlob := seal(kindPacket, 1, u8(0), u16(0), u8(1), u8(5), str("w"))

	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{
			"PacketWithExpiry",
			driver.EncodePacket(nil, &driver.PersistedPacket{Seq: 99, PacketID: 0x1234, QoS: 2, ProtocolVersion: 5, ExpireAt: tBefore1970, Data: []byte("hi")}),
			seal(kindPacket, 1, u8(0x01), u16(0x1234), u8(2), u8(5), tm(tBefore1970), str("hi")),
		},
		{
			"PacketWithoutExpiry",
			driver.EncodePacket(nil, &driver.PersistedPacket{PacketID: 1, ProtocolVersion: 4}),
			seal(kindPacket, 1, u8(0), u16(1), u8(0), u8(4), uv(0)),
		},
		{
			"Subscription",
			driver.EncodeSubscription(nil, driver.Subscription{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 300}),
			seal(kindSubscription, 1, u8(0x03), u8(1), u8(2), uv(300), str("a/+")),
		},
		{
			"StateWithWillAndDisconnectedAt",
			driver.EncodeState(nil, &driver.SessionState{ProtocolVersion: 5, ExpiryInterval: -1, Username: "u", Will: will, WillDelay: time.Second, DisconnectedAt: tNanos, UserData: []byte{9}}),
			seal(kindState, 1, u8(0x03), u8(5), sv(-1), str("u"), sv(int64(time.Second)), tm(tNanos), uv(uint64(len(willBlob))), willBlob, str("\x09")),
		},
		{
			"StateMinimal",
			driver.EncodeState(nil, &driver.SessionState{}),
			seal(kindState, 1, u8(0), u8(0), sv(0), str(""), sv(0), str("")),
		},
		{
			"ExpiryBoth",
			driver.EncodeExpiry(nil, driver.SessionExpiry{ExpireAt: tNanos, WillAt: tJustBefore1970}),
			seal(kindExpiry, 1, u8(0x03), tm(tNanos), tm(tJustBefore1970)),
		},
		{
			"ExpiryWillAtOnly",
			driver.EncodeExpiry(nil, driver.SessionExpiry{WillAt: tNanos}),
			seal(kindExpiry, 1, u8(0x02), tm(tNanos)),
		},
		{
			"ExpiryNone",
			driver.EncodeExpiry(nil, driver.SessionExpiry{}),
			seal(kindExpiry, 1, u8(0)),
		},
		{
			"SessionBase",
			driver.EncodeSessionBase(nil, driver.SessionBase{CreatedAt: tNanos, ProtocolVersion: 4}),
			seal(kindBase, 1, u8(0x01), u8(4), tm(tNanos)),
		},
		{
			"SystemInfo",
			driver.EncodeSystemInfo(nil, driver.SystemInfo{SchemaVersion: 1, CreatedAt: tNanos, SDKVersion: "0.1.0", Driver: "mem"}),
			seal(kindSystem, 1, uv(1), tm(tNanos), str("0.1.0"), str("mem")),
		},
		{
			// FORMAT.md: the zero time is written as its Unix value.
			"SystemInfoZeroTime",
			driver.EncodeSystemInfo(nil, driver.SystemInfo{}),
			seal(kindSystem, 1, uv(0), sv(-62135596800), uv(0), str(""), str("")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Fatalf("encoder output differs from FORMAT.md:\n got %x\nwant %x", tt.got, tt.want)
			}
		})
	}
	if len(seal(kindExpiry, 1, u8(0))) != 7 {
		t.Errorf("FORMAT.md says an empty expiry blob is 7 bytes")
	}
}
