package persistence_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

func TestBatchRecordsOperationsInOrder(t *testing.T) {
	var b persistence.Batch // the zero value is ready to use
	if b.Len() != 0 || b.Appends() != 0 || len(b.Ops()) != 0 {
		t.Fatalf("zero Batch: Len %d, Appends %d, Ops %v", b.Len(), b.Appends(), b.Ops())
	}
	base := persistence.SessionBase{CreatedAt: tNanos, ProtocolVersion: 5}
	pkt := &persistence.PersistedPacket{QoS: 1, PacketID: 3, Data: []byte("p")}
	sub := persistence.Subscription{Filter: "a/+", QoS: 1}
	st := &persistence.SessionState{Username: "u"}
	exp := persistence.SessionExpiry{ExpireAt: tNanos}

	b.Create("s1", base).
		PacketAppend("s1", persistence.ClassQoS12, pkt).
		PacketUpdate("s1", persistence.ClassUnAck, pkt).
		PacketDelete("s1", persistence.ClassQoS12, 17).
		PacketsDelete("s1", persistence.ClassQoS0).
		SubscriptionStore("s1", sub).
		SubscriptionDelete("s1", "b/#").
		SubscriptionsDeleteAll("s2").
		StateStore("s1", st).
		StateDelete("s2").
		ExpiryStore("s1", exp).
		ExpiryDelete("s2").
		PacketAppend("s2", persistence.ClassIncoming, pkt).
		Delete("s3")

	want := []persistence.Op{
		{Kind: persistence.OpCreate, ID: "s1", Base: base},
		{Kind: persistence.OpPacketAppend, ID: "s1", Class: persistence.ClassQoS12, Packet: pkt},
		{Kind: persistence.OpPacketUpdate, ID: "s1", Class: persistence.ClassUnAck, Packet: pkt},
		{Kind: persistence.OpPacketDelete, ID: "s1", Class: persistence.ClassQoS12, Seq: 17},
		{Kind: persistence.OpPacketsDelete, ID: "s1", Class: persistence.ClassQoS0},
		{Kind: persistence.OpSubscriptionStore, ID: "s1", Subscription: sub},
		{Kind: persistence.OpSubscriptionDelete, ID: "s1", Filter: "b/#"},
		{Kind: persistence.OpSubscriptionsDeleteAll, ID: "s2"},
		{Kind: persistence.OpStateStore, ID: "s1", State: st},
		{Kind: persistence.OpStateDelete, ID: "s2"},
		{Kind: persistence.OpExpiryStore, ID: "s1", Expiry: exp},
		{Kind: persistence.OpExpiryDelete, ID: "s2"},
		{Kind: persistence.OpPacketAppend, ID: "s2", Class: persistence.ClassIncoming, Packet: pkt},
		{Kind: persistence.OpDelete, ID: "s3"},
	}
	ops := b.Ops()
	if len(ops) != len(want) || b.Len() != len(want) {
		t.Fatalf("Len %d, %d ops; want %d", b.Len(), len(ops), len(want))
	}
	for i, w := range want {
		if !sameOp(ops[i], w) {
			t.Errorf("op %d = %+v\nwant   %+v", i, ops[i], w)
		}
	}
	if b.Appends() != 2 {
		t.Errorf("Appends() = %d, want 2 (only PacketAppend counts)", b.Appends())
	}
}

// sameOp compares ops by value: packets and states are compared by content because
// the batch holds copies.
func sameOp(a, b persistence.Op) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Class == b.Class && a.Seq == b.Seq &&
		samePacket(a.Packet, b.Packet) && a.Subscription == b.Subscription &&
		a.Filter == b.Filter && sameState(a.State, b.State) && sameExpiry(a.Expiry, b.Expiry) &&
		sameBase(a.Base, b.Base)
}

// The batch owns copies: a broker reuses its packet buffers as soon as the call
// returns, and that must not change what Apply later writes.
func TestBatchCopiesPacketsAndStates(t *testing.T) {
	pkt := &persistence.PersistedPacket{Seq: 4, PacketID: 1, QoS: 1, ExpireAt: tNanos, Data: []byte("original")}
	will := &persistence.PersistedPacket{QoS: 2, Data: []byte("will")}
	st := &persistence.SessionState{Username: "u", Will: will, UserData: []byte("user")}

	var b persistence.Batch
	b.PacketAppend("s", persistence.ClassQoS12, pkt).
		PacketUpdate("s", persistence.ClassUnAck, pkt).
		StateStore("s", st)

	copy(pkt.Data, "XXXXXXXX")
	pkt.QoS, pkt.PacketID, pkt.Seq, pkt.ExpireAt = 2, 99, 5, time.Time{}
	copy(will.Data, "XXXX")
	will.QoS = 0
	copy(st.UserData, "XXXX")
	st.Username = "changed"
	st.Will = nil

	for i, op := range b.Ops()[:2] {
		p := op.Packet
		if p == pkt {
			t.Fatalf("op %d holds the caller's packet pointer", i)
		}
		if string(p.Data) != "original" || p.QoS != 1 || p.PacketID != 1 || p.Seq != 4 || !p.ExpireAt.Equal(tNanos) {
			t.Errorf("op %d packet changed with the caller's: %+v", i, p)
		}
	}
	got := b.Ops()[2].State
	if got == st || got.Username != "u" || string(got.UserData) != "user" {
		t.Errorf("state changed with the caller's: %+v", got)
	}
	if got.Will == nil || got.Will == will || string(got.Will.Data) != "will" || got.Will.QoS != 2 {
		t.Errorf("state's will changed with the caller's: %+v", got.Will)
	}
}

func TestBatchKeepsNilData(t *testing.T) {
	var b persistence.Batch
	b.PacketAppend("s", persistence.ClassQoS0, &persistence.PersistedPacket{})
	b.StateStore("s", &persistence.SessionState{})
	if d := b.Ops()[0].Packet.Data; d != nil {
		t.Errorf("nil Data became %#v", d)
	}
	if d := b.Ops()[1].State.UserData; d != nil {
		t.Errorf("nil UserData became %#v", d)
	}
}

func TestBatchResetEmptiesForReuse(t *testing.T) {
	var b persistence.Batch
	pkt := &persistence.PersistedPacket{Data: []byte("x")}
	b.Create("s", persistence.SessionBase{}).PacketAppend("s", persistence.ClassQoS0, pkt).PacketAppend("s", persistence.ClassQoS0, pkt)
	old := b.Ops()

	b.Reset()
	if b.Len() != 0 || b.Appends() != 0 || len(b.Ops()) != 0 {
		t.Fatalf("after Reset: Len %d, Appends %d, Ops %v", b.Len(), b.Appends(), b.Ops())
	}
	// Reset drops its references so that reused batches do not pin old packets.
	for i, op := range old {
		if op.Packet != nil || op.Kind != 0 {
			t.Errorf("slot %d still holds %+v after Reset", i, op)
		}
	}

	b.Delete("t").PacketAppend("t", persistence.ClassUnAck, pkt)
	if b.Len() != 2 || b.Appends() != 1 || b.Ops()[0].Kind != persistence.OpDelete {
		t.Fatalf("reused batch: Len %d, Appends %d, first op %+v", b.Len(), b.Appends(), b.Ops()[0])
	}
}

func TestOpValidate(t *testing.T) {
	okPacket := &persistence.PersistedPacket{QoS: 2, Data: []byte("x")}
	tests := []struct {
		name    string
		op      persistence.Op
		wantErr string // "" for valid
	}{
		{"Create", persistence.Op{Kind: persistence.OpCreate, ID: "s"}, ""},
		{"Delete", persistence.Op{Kind: persistence.OpDelete, ID: "s"}, ""},
		{"SubscriptionsDeleteAll", persistence.Op{Kind: persistence.OpSubscriptionsDeleteAll, ID: "s"}, ""},
		{"StateDelete", persistence.Op{Kind: persistence.OpStateDelete, ID: "s"}, ""},
		{"ExpiryDelete", persistence.Op{Kind: persistence.OpExpiryDelete, ID: "s"}, ""},
		{"ExpiryStore", persistence.Op{Kind: persistence.OpExpiryStore, ID: "s", Expiry: persistence.SessionExpiry{ExpireAt: tNanos}}, ""},
		{"ExpiryStoreZero", persistence.Op{Kind: persistence.OpExpiryStore, ID: "s"}, ""},

		{"PacketAppend", persistence.Op{Kind: persistence.OpPacketAppend, Class: persistence.ClassQoS12, Packet: okPacket}, ""},
		{"PacketAppendEveryClass", persistence.Op{Kind: persistence.OpPacketAppend, Class: persistence.ClassIncoming, Packet: okPacket}, ""},
		{"PacketAppendClass0", persistence.Op{Kind: persistence.OpPacketAppend, Class: 0, Packet: okPacket}, "packet class 0"},
		{"PacketAppendClass5", persistence.Op{Kind: persistence.OpPacketAppend, Class: 5, Packet: okPacket}, "packet class 5"},
		{"PacketAppendNilPacket", persistence.Op{Kind: persistence.OpPacketAppend, Class: persistence.ClassQoS0}, "nil packet"},
		{"PacketAppendQoS3", persistence.Op{Kind: persistence.OpPacketAppend, Class: persistence.ClassQoS0, Packet: &persistence.PersistedPacket{QoS: 3}}, "QoS 3"},
		{"PacketUpdate", persistence.Op{Kind: persistence.OpPacketUpdate, Class: persistence.ClassUnAck, Packet: okPacket}, ""},
		{"PacketUpdateBadClass", persistence.Op{Kind: persistence.OpPacketUpdate, Class: 9, Packet: okPacket}, "packet class 9"},
		{"PacketUpdateNilPacket", persistence.Op{Kind: persistence.OpPacketUpdate, Class: persistence.ClassUnAck}, "nil packet"},
		{"PacketUpdateQoS255", persistence.Op{Kind: persistence.OpPacketUpdate, Class: persistence.ClassUnAck, Packet: &persistence.PersistedPacket{QoS: 255}}, "QoS 255"},
		{"PacketDelete", persistence.Op{Kind: persistence.OpPacketDelete, Class: persistence.ClassQoS0, Seq: 1}, ""},
		{"PacketDeleteBadClass", persistence.Op{Kind: persistence.OpPacketDelete, Class: 0}, "packet class 0"},
		{"PacketsDelete", persistence.Op{Kind: persistence.OpPacketsDelete, Class: persistence.ClassIncoming}, ""},
		{"PacketsDeleteBadClass", persistence.Op{Kind: persistence.OpPacketsDelete, Class: 200}, "packet class 200"},

		{"SubscriptionStore", persistence.Op{Kind: persistence.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a/#", QoS: 2, RetainHandling: 2}}, ""},
		{"SubscriptionStoreEmptyFilter", persistence.Op{Kind: persistence.OpSubscriptionStore, Subscription: persistence.Subscription{}}, "empty topic filter"},
		{"SubscriptionStoreQoS3", persistence.Op{Kind: persistence.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a", QoS: 3}}, "QoS 3"},
		{"SubscriptionStoreRetainHandling3", persistence.Op{Kind: persistence.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a", RetainHandling: 3}}, "retain handling 3"},
		{"SubscriptionDelete", persistence.Op{Kind: persistence.OpSubscriptionDelete, Filter: "a"}, ""},
		{"SubscriptionDeleteEmptyFilter", persistence.Op{Kind: persistence.OpSubscriptionDelete}, "empty topic filter"},

		{"StateStore", persistence.Op{Kind: persistence.OpStateStore, State: &persistence.SessionState{}}, ""},
		{"StateStoreWithWill", persistence.Op{Kind: persistence.OpStateStore, State: &persistence.SessionState{Will: okPacket}}, ""},
		{"StateStoreNil", persistence.Op{Kind: persistence.OpStateStore}, "nil session state"},
		{"StateStoreWillQoS3", persistence.Op{Kind: persistence.OpStateStore, State: &persistence.SessionState{Will: &persistence.PersistedPacket{QoS: 3}}}, "QoS 3"},

		{"KindZero", persistence.Op{}, "unknown batch operation 0"},
		{"KindUnknown", persistence.Op{Kind: persistence.OpExpiryDelete + 1}, "unknown batch operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, persistence.ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want an error matching ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// The builder's ops validate like hand-made ones: a nil packet passed to
// PacketAppend or a nil state to StateStore is caught by Validate, not by a panic in
// the builder.
func TestBatchBuilderOpsValidate(t *testing.T) {
	var b persistence.Batch
	b.PacketAppend("s", persistence.ClassQoS0, nil).
		StateStore("s", nil).
		PacketAppend("s", 7, &persistence.PersistedPacket{}).
		PacketAppend("s", persistence.ClassQoS0, &persistence.PersistedPacket{QoS: 1})
	wants := []string{"nil packet", "nil session state", "packet class 7", ""}
	for i, op := range b.Ops() {
		err := op.Validate()
		if wants[i] == "" {
			if err != nil {
				t.Errorf("op %d: Validate() = %v", i, err)
			}
			continue
		}
		if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), wants[i]) {
			t.Errorf("op %d: Validate() = %v, want ErrInvalidArgument mentioning %q", i, err, wants[i])
		}
	}
	if b.Appends() != 3 {
		t.Errorf("Appends() = %d, want 3 (invalid appends still count: Apply rejects the batch)", b.Appends())
	}
}

func TestPacketClass(t *testing.T) {
	names := map[persistence.PacketClass]string{
		persistence.ClassQoS0: "QoS0", persistence.ClassQoS12: "QoS12",
		persistence.ClassUnAck: "UnAck", persistence.ClassIncoming: "Incoming",
	}
	if len(persistence.PacketClasses) != 4 {
		t.Fatalf("PacketClasses = %v", persistence.PacketClasses)
	}
	for _, c := range persistence.PacketClasses {
		if !c.Valid() || c.String() != names[c] {
			t.Errorf("class %d: Valid %v, String %q", uint8(c), c.Valid(), c.String())
		}
	}
	for _, c := range []persistence.PacketClass{0, 5, 255} {
		if c.Valid() || !strings.Contains(c.String(), "PacketClass(") {
			t.Errorf("invalid class %d: Valid %v, String %q", uint8(c), c.Valid(), c.String())
		}
	}
}
