package conformance

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Comparisons and value scribbling shared by the cases and the model: each diff
// returns "" when got matches want, or what differs.

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func fmtData(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%d bytes %x…", len(b), b[:16])
	}
	return fmt.Sprintf("%d bytes %x", len(b), b)
}

// diffPacket describes how got differs from want ("" when equal). Seq is compared
// only when withSeq is set.
func diffPacket(got, want *persistence.PersistedPacket, withSeq bool) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil:
		return "got a nil packet"
	case want == nil:
		return fmt.Sprintf("got a packet (seq %d), want none", got.Seq)
	}
	var d []string
	if withSeq && got.Seq != want.Seq {
		d = append(d, fmt.Sprintf("Seq %d, want %d", got.Seq, want.Seq))
	}
	if got.PacketID != want.PacketID {
		d = append(d, fmt.Sprintf("PacketID %d, want %d", got.PacketID, want.PacketID))
	}
	if got.QoS != want.QoS {
		d = append(d, fmt.Sprintf("QoS %d, want %d", got.QoS, want.QoS))
	}
	if got.ProtocolVersion != want.ProtocolVersion {
		d = append(d, fmt.Sprintf("ProtocolVersion %d, want %d", got.ProtocolVersion, want.ProtocolVersion))
	}
	if !got.ExpireAt.Equal(want.ExpireAt) {
		d = append(d, fmt.Sprintf("ExpireAt %s, want %s", fmtTime(got.ExpireAt), fmtTime(want.ExpireAt)))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %s, want %s", fmtData(got.Data), fmtData(want.Data)))
	}
	return strings.Join(d, "; ")
}

func diffState(got, want *persistence.SessionState) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil:
		return "got a nil state"
	case want == nil:
		return "got a state, want none"
	}
	var d []string
	if got.ProtocolVersion != want.ProtocolVersion {
		d = append(d, fmt.Sprintf("ProtocolVersion %d, want %d", got.ProtocolVersion, want.ProtocolVersion))
	}
	if got.ExpiryInterval != want.ExpiryInterval {
		d = append(d, fmt.Sprintf("ExpiryInterval %v, want %v", got.ExpiryInterval, want.ExpiryInterval))
	}
	if got.Username != want.Username {
		d = append(d, fmt.Sprintf("Username %q, want %q", got.Username, want.Username))
	}
	if pd := diffPacket(got.Will, want.Will, true); pd != "" {
		d = append(d, "Will: "+pd)
	}
	if got.WillDelay != want.WillDelay {
		d = append(d, fmt.Sprintf("WillDelay %v, want %v", got.WillDelay, want.WillDelay))
	}
	if !got.DisconnectedAt.Equal(want.DisconnectedAt) {
		d = append(d, fmt.Sprintf("DisconnectedAt %s, want %s", fmtTime(got.DisconnectedAt), fmtTime(want.DisconnectedAt)))
	}
	if !bytes.Equal(got.UserData, want.UserData) {
		d = append(d, fmt.Sprintf("UserData %s, want %s", fmtData(got.UserData), fmtData(want.UserData)))
	}
	return strings.Join(d, "; ")
}

func diffExpiry(got, want persistence.SessionExpiry) string {
	if got.ExpireAt.Equal(want.ExpireAt) && got.WillAt.Equal(want.WillAt) {
		return ""
	}
	return fmt.Sprintf("deadlines {ExpireAt %s, WillAt %s}, want {ExpireAt %s, WillAt %s}",
		fmtTime(got.ExpireAt), fmtTime(got.WillAt), fmtTime(want.ExpireAt), fmtTime(want.WillAt))
}

// diffSubs compares subscriptions as sets keyed by filter.
func diffSubs(got []persistence.Subscription, want map[string]persistence.Subscription) string {
	seen := make(map[string]bool, len(got))
	var d []string
	for _, s := range got {
		if seen[s.Filter] {
			d = append(d, fmt.Sprintf("filter %q listed twice", s.Filter))
			continue
		}
		seen[s.Filter] = true
		w, ok := want[s.Filter]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("unexpected subscription %+v", s))
		case s != w:
			d = append(d, fmt.Sprintf("subscription %+v, want %+v", s, w))
		}
	}
	for _, f := range slices.Sorted(maps.Keys(want)) {
		if !seen[f] {
			d = append(d, fmt.Sprintf("missing subscription %+v", want[f]))
		}
	}
	return strings.Join(d, "; ")
}

func seqList(got, want []*persistence.PersistedPacket) string {
	f := func(ps []*persistence.PersistedPacket) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.FormatUint(p.Seq, 10)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return "got seqs " + f(got) + ", want " + f(want)
}

// scribble overwrites b, to check that the store does not share it with the caller.
func scribble(b []byte) {
	for i := range b {
		b[i] ^= 0xa5
	}
}

func scribblePacket(p *persistence.PersistedPacket) {
	if p != nil {
		scribble(p.Data)
	}
}

func scribbleState(st *persistence.SessionState) {
	if st != nil {
		scribble(st.UserData)
		scribblePacket(st.Will)
	}
}

func scribbleAll(ps []*persistence.PersistedPacket) {
	for _, p := range ps {
		scribblePacket(p)
	}
}
