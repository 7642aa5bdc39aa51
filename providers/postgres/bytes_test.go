package postgres_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
)

// Ids, filters and topics are arbitrary bytes of any length (NUL, invalid UTF-8,
// LIKE metacharacters, 64 KiB), and payloads up to 16 MiB round-trip exactly.
func TestArbitraryBytes(t *testing.T) {
	p := openDSN(t, pgtest.DSN(t))
	ctx := testCtx(t, 2*time.Minute)
	ss, rs := p.Sessions(), p.Retained()

	long := strings.Repeat("level/", 64*1024/6) + "\x00end"
	ids := []string{"nul\x00id", "\xff\xfe invalid utf-8 \xc3\x28", "%_\\ like metas", long, "\x00"}
	for _, id := range ids {
		if err := ss.Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5}); err != nil {
			t.Fatalf("Create(%d bytes): %v", len(id), err)
		}
	}
	// Ids differing only after a NUL or in their last byte are different sessions.
	if ok, err := ss.Exists(ctx, "nul"); err != nil || ok {
		t.Fatalf(`Exists("nul") = %v, %v; want false (only "nul\x00id" exists)`, ok, err)
	}
	var got []string
	if err := ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		got = append(got, ls.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("LoadForEach ids differ from the created ones")
	}

	subs := []persistence.Subscription{{Filter: long + "/#", QoS: 1}, {Filter: "a/\x00/+", QoS: 2}, {Filter: "\xff/#"}}
	if err := ss.SubscriptionsStore(ctx, long, subs...); err != nil {
		t.Fatal(err)
	}
	loaded, err := ss.SubscriptionsLoad(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	sortSubs := func(s []persistence.Subscription) {
		slices.SortFunc(s, func(a, b persistence.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	}
	sortSubs(loaded)
	sortSubs(subs)
	if !slices.Equal(loaded, subs) {
		t.Fatalf("subscriptions with binary and 64 KiB filters did not round-trip")
	}

	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	pk := &persistence.PersistedPacket{QoS: 1, PacketID: 7, ProtocolVersion: 5, Data: big}
	seq, err := ss.PacketAppend(ctx, "nul\x00id", persistence.ClassQoS12, pk)
	if err != nil {
		t.Fatalf("PacketAppend of 16 MiB: %v", err)
	}
	back, err := ss.PacketGet(ctx, "nul\x00id", persistence.ClassQoS12, seq)
	if err != nil || !bytes.Equal(back.Data, big) {
		t.Fatalf("16 MiB packet did not round-trip (err %v)", err)
	}

	topics := []string{long, long + "/x", "t/\x00/\xff", "t/%/_", "t/\\/x", "t/a/x", "$SYS/\x00"}
	for _, topic := range topics {
		data := []byte(topic)
		if topic == long {
			data = big
		}
		if err := rs.Put(ctx, topic, &persistence.PersistedPacket{Data: data}); err != nil {
			t.Fatalf("Put(%d-byte topic): %v", len(topic), err)
		}
	}
	if m, err := rs.Get(ctx, long); err != nil || !bytes.Equal(m.Data, big) {
		t.Fatalf("16 MiB retained message on a 64 KiB topic did not round-trip (err %v)", err)
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{long, []string{long}},
		{long + "/#", []string{long, long + "/x"}},
		{strings.Repeat("level/", 30) + "#", []string{long, long + "/x"}},
		{"t/+/_", []string{"t/%/_"}},
		{"t/%/+", []string{"t/%/_"}},
		{"t/\\/+", []string{"t/\\/x"}},
		{"t/+/x", []string{"t/\\/x", "t/a/x"}},
		{"t/\x00/#", []string{"t/\x00/\xff"}},
		{"+/+/+", []string{"t/\x00/\xff", "t/%/_", "t/\\/x", "t/a/x"}},
		{"$SYS/#", []string{"$SYS/\x00"}},
	} {
		var got []string
		err := rs.LoadMatching(ctx, []string{tc.filter}, func(m *persistence.RetainedMessage) error {
			got = append(got, m.Topic)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("LoadMatching(%.40q) = %.200q, want %.200q", tc.filter, got, tc.want)
		}
	}
}
