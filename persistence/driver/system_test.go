package driver

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckSchemaRefusesNewerAndZero(t *testing.T) {
	if err := CheckSchema(SchemaVersion); err != nil {
		t.Fatalf("CheckSchema(current) = %v, want nil", err)
	}
	err := CheckSchema(SchemaVersion + 1)
	if !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("CheckSchema(newer) = %v, want ErrSchemaVersion", err)
	}
	if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("message %q does not tell the user what to do", err)
	}
	if err := CheckSchema(0); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("CheckSchema(0) = %v, want ErrSchemaVersion", err)
	}
}

func TestPacketExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		expireAt time.Time
		want     bool
	}{
		{time.Time{}, false},
		{now.Add(time.Nanosecond), false},
		{now, true},
		{now.Add(-time.Second), true},
	}
	for _, c := range cases {
		p := &PersistedPacket{ExpireAt: c.expireAt}
		if got := p.Expired(now); got != c.want {
			t.Errorf("Expired(%v) with ExpireAt %v = %v, want %v", now, c.expireAt, got, c.want)
		}
	}
}

func TestSessionExpiryDueAndNext(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	early, late := now.Add(-time.Minute), now.Add(time.Minute)
	cases := []struct {
		name string
		e    SessionExpiry
		due  bool
		next time.Time
	}{
		{"none", SessionExpiry{}, false, time.Time{}},
		{"expire passed", SessionExpiry{ExpireAt: early}, true, early},
		{"expire pending", SessionExpiry{ExpireAt: late}, false, late},
		{"will passed, expire pending", SessionExpiry{ExpireAt: late, WillAt: early}, true, early},
		{"will pending only", SessionExpiry{WillAt: late}, false, late},
		{"expire earlier than will", SessionExpiry{ExpireAt: early, WillAt: late}, true, early},
	}
	for _, c := range cases {
		if got := c.e.Due(now); got != c.due {
			t.Errorf("%s: Due = %v, want %v", c.name, got, c.due)
		}
		if got := c.e.Next(); !got.Equal(c.next) {
			t.Errorf("%s: Next = %v, want %v", c.name, got, c.next)
		}
		if got := c.e.IsZero(); got != (c.name == "none") {
			t.Errorf("%s: IsZero = %v", c.name, got)
		}
	}
}

func TestPersistedPacketsClass(t *testing.T) {
	p := func(id uint16) *PersistedPacket { return &PersistedPacket{PacketID: id} }
	pp := &PersistedPackets{QoS0: []*PersistedPacket{p(1)}, QoS12: []*PersistedPacket{p(2)}, UnAck: []*PersistedPacket{p(3)}, Incoming: []*PersistedPacket{p(4)}}
	for i, c := range PacketClasses {
		got := pp.Class(c)
		if len(got) != 1 || got[0].PacketID != uint16(i+1) {
			t.Errorf("Class(%v) = %v", c, got)
		}
		if !c.Valid() || c.String() == "" {
			t.Errorf("class %d: Valid=%v String=%q", c, c.Valid(), c.String())
		}
	}
	if pp.Class(PacketClass(9)) != nil || PacketClass(0).Valid() || PacketClass(5).Valid() {
		t.Error("invalid classes must be rejected")
	}
}
