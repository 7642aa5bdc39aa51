package persistence_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
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

	want := []driver.Op{
		{Kind: driver.OpCreate, ID: "s1", Base: base},
		{Kind: driver.OpPacketAppend, ID: "s1", Class: persistence.ClassQoS12, Packet: pkt},
		{Kind: driver.OpPacketUpdate, ID: "s1", Class: persistence.ClassUnAck, Packet: pkt},
		{Kind: driver.OpPacketDelete, ID: "s1", Class: persistence.ClassQoS12, Seq: 17},
		{Kind: driver.OpPacketsDelete, ID: "s1", Class: persistence.ClassQoS0},
		{Kind: driver.OpSubscriptionStore, ID: "s1", Subscription: sub},
		{Kind: driver.OpSubscriptionDelete, ID: "s1", Filter: "b/#"},
		{Kind: driver.OpSubscriptionsDeleteAll, ID: "s2"},
		{Kind: driver.OpStateStore, ID: "s1", State: st},
		{Kind: driver.OpStateDelete, ID: "s2"},
		{Kind: driver.OpExpiryStore, ID: "s1", Expiry: exp},
		{Kind: driver.OpExpiryDelete, ID: "s2"},
		{Kind: driver.OpPacketAppend, ID: "s2", Class: persistence.ClassIncoming, Packet: pkt},
		{Kind: driver.OpDelete, ID: "s3"},
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

// tNanos is a time with every field set, down to the nanosecond.
var tNanos = time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)

// sameOp compares ops by value: packets and states are compared by content because
// the batch holds copies.
func sameOp(a, b driver.Op) bool { return reflect.DeepEqual(a, b) }

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
	if b.Len() != 2 || b.Appends() != 1 || b.Ops()[0].Kind != driver.OpDelete {
		t.Fatalf("reused batch: Len %d, Appends %d, first op %+v", b.Len(), b.Appends(), b.Ops()[0])
	}
}

func TestOpValidate(t *testing.T) {
	okPacket := &persistence.PersistedPacket{QoS: 2, Data: []byte("x")}
	tests := []struct {
		name    string
		op      driver.Op
		wantErr string // "" for valid
	}{
		{"Create", driver.Op{Kind: driver.OpCreate, ID: "s"}, ""},
		{"Delete", driver.Op{Kind: driver.OpDelete, ID: "s"}, ""},
		{"SubscriptionsDeleteAll", driver.Op{Kind: driver.OpSubscriptionsDeleteAll, ID: "s"}, ""},
		{"StateDelete", driver.Op{Kind: driver.OpStateDelete, ID: "s"}, ""},
		{"ExpiryDelete", driver.Op{Kind: driver.OpExpiryDelete, ID: "s"}, ""},
		{"ExpiryStore", driver.Op{Kind: driver.OpExpiryStore, ID: "s", Expiry: persistence.SessionExpiry{ExpireAt: tNanos}}, ""},
		{"ExpiryStoreZero", driver.Op{Kind: driver.OpExpiryStore, ID: "s"}, ""},

		{"PacketAppend", driver.Op{Kind: driver.OpPacketAppend, Class: persistence.ClassQoS12, Packet: okPacket}, ""},
		{"PacketAppendEveryClass", driver.Op{Kind: driver.OpPacketAppend, Class: persistence.ClassIncoming, Packet: okPacket}, ""},
		{"PacketAppendClass0", driver.Op{Kind: driver.OpPacketAppend, Class: 0, Packet: okPacket}, "packet class 0"},
		{"PacketAppendClass5", driver.Op{Kind: driver.OpPacketAppend, Class: 5, Packet: okPacket}, "packet class 5"},
		{"PacketAppendNilPacket", driver.Op{Kind: driver.OpPacketAppend, Class: persistence.ClassQoS0}, "nil packet"},
		{"PacketAppendQoS3", driver.Op{Kind: driver.OpPacketAppend, Class: persistence.ClassQoS0, Packet: &persistence.PersistedPacket{QoS: 3}}, "QoS 3"},
		{"PacketUpdate", driver.Op{Kind: driver.OpPacketUpdate, Class: persistence.ClassUnAck, Packet: okPacket}, ""},
		{"PacketUpdateBadClass", driver.Op{Kind: driver.OpPacketUpdate, Class: 9, Packet: okPacket}, "packet class 9"},
		{"PacketUpdateNilPacket", driver.Op{Kind: driver.OpPacketUpdate, Class: persistence.ClassUnAck}, "nil packet"},
		{"PacketUpdateQoS255", driver.Op{Kind: driver.OpPacketUpdate, Class: persistence.ClassUnAck, Packet: &persistence.PersistedPacket{QoS: 255}}, "QoS 255"},
		{"PacketDelete", driver.Op{Kind: driver.OpPacketDelete, Class: persistence.ClassQoS0, Seq: 1}, ""},
		{"PacketDeleteBadClass", driver.Op{Kind: driver.OpPacketDelete, Class: 0}, "packet class 0"},
		{"PacketsDelete", driver.Op{Kind: driver.OpPacketsDelete, Class: persistence.ClassIncoming}, ""},
		{"PacketsDeleteBadClass", driver.Op{Kind: driver.OpPacketsDelete, Class: 200}, "packet class 200"},

		{"SubscriptionStore", driver.Op{Kind: driver.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a/#", QoS: 2, RetainHandling: 2}}, ""},
		{"SubscriptionStoreEmptyFilter", driver.Op{Kind: driver.OpSubscriptionStore, Subscription: persistence.Subscription{}}, "empty topic filter"},
		{"SubscriptionStoreQoS3", driver.Op{Kind: driver.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a", QoS: 3}}, "QoS 3"},
		{"SubscriptionStoreRetainHandling3", driver.Op{Kind: driver.OpSubscriptionStore, Subscription: persistence.Subscription{Filter: "a", RetainHandling: 3}}, "retain handling 3"},
		{"SubscriptionDelete", driver.Op{Kind: driver.OpSubscriptionDelete, Filter: "a"}, ""},
		{"SubscriptionDeleteEmptyFilter", driver.Op{Kind: driver.OpSubscriptionDelete}, "empty topic filter"},

		{"StateStore", driver.Op{Kind: driver.OpStateStore, State: &persistence.SessionState{}}, ""},
		{"StateStoreWithWill", driver.Op{Kind: driver.OpStateStore, State: &persistence.SessionState{Will: okPacket}}, ""},
		{"StateStoreNil", driver.Op{Kind: driver.OpStateStore}, "nil session state"},
		{"StateStoreWillQoS3", driver.Op{Kind: driver.OpStateStore, State: &persistence.SessionState{Will: &persistence.PersistedPacket{QoS: 3}}}, "QoS 3"},

		{"KindZero", driver.Op{}, "unknown batch operation 0"},
		{"FenceEpochZero", driver.Op{Kind: driver.OpFence, ID: "s"}, "epoch 0"},
		{"NotifyBadChannel", driver.Op{Kind: driver.OpNotify, Channel: "A", Payload: "p"}, "notification channel"},
		{"KindUnknown", driver.Op{Kind: driver.OpNotify + 1}, "unknown batch operation"},
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
