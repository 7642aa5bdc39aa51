package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Bytes: identifiers, topics and payloads are arbitrary bytes.

func runBytes(t *testing.T, h Harness) {
	t.Run("IDs", func(t *testing.T) {
		var cs []tcase
		for _, c := range binaryIDs {
			cs = append(cs, tcase{c.name, func(e *env) { e.checkBinaryID(c.id, c.neighbours) }})
		}
		runCases(t, h, cs)
	})
	t.Run("Payloads", func(t *testing.T) {
		var cs []tcase
		for _, n := range []int{0, 1, 255, 256 << 10, 1<<20 + 3} {
			cs = append(cs, tcase{fmt.Sprintf("Size=%d", n), func(e *env) {
				if n > e.h.maxPayload() {
					e.skipf("beyond the harness's declared Caps.MaxPayload %d", e.h.maxPayload())
				}
				e.checkPayload(bigData(n))
			}})
		}
		cs = append(cs, tcase{"AllByteValues", func(e *env) {
			b := make([]byte, 512)
			for i := range b {
				b[i] = byte(i)
			}
			e.checkPayload(b)
		}})
		cs = append(cs, tcase{"Max", func(e *env) { e.checkPayload(bigData(e.h.maxPayload())) }})
		runCases(t, h, cs)
	})
	runCases(t, h, bytesCases)
}

// binaryID is a session id with ids that share a prefix or delimiter with it.
type binaryID struct {
	name       string
	id         string
	neighbours []string
}

var binaryIDs = []binaryID{
	{"NUL", "a\x00b", []string{"a", "a\x00", "a\x00c", "b"}},
	{"OnlyNUL", "\x00", []string{"\x00\x00", "0"}},
	{"InvalidUTF8", "\xff\xfe\xfd", []string{"\xff", "\xff\xfe"}},
	{"Slash", "a/b", []string{"a", "a/", "a/b/c", "a-b"}},
	{"Colon", "a:b", []string{"a", "a:", "a:b:c"}},
	{"Underscore", "SUB_a", []string{"SUB_", "SUB_a_b"}},
	{"Percent", "a%2Fb", []string{"a/b", "a%2F"}},
	{"Prefix", "a", []string{"ab", "a:b", "a/b", "a\x00", "a\xff"}},
	{"Spaces", " a ", []string{"a", " a", "a "}},
	{"Unicode", "客户端-😀", []string{"客户端", "客户端-"}},
	{"Long", strings.Repeat("x", 4096), []string{strings.Repeat("x", 4095), strings.Repeat("x", 4097)}},
	{"Empty", "", []string{"\x00", " "}},
	{"HighBytes", "\x80\x81", []string{"\x80", "\x80\x81\x82"}},
}

// checkBinaryID stores everything a session can hold under id and its neighbours
// and checks nothing leaks between them, including through Delete.
func (e *env) checkBinaryID(id string, neighbours []string) {
	all := append([]string{id}, neighbours...)
	for i, x := range all {
		e.create(x)
		for _, c := range persistence.PacketClasses {
			_, err := e.ss.PacketAppend(e.ctx, x, c, pkt(i))
			e.ok(err, "PacketAppend(%q)", x)
		}
		e.ok(e.ss.SubscriptionsStore(e.ctx, x, sub("f/"+x, i)), "SubscriptionsStore(%q)", x)
		e.ok(e.ss.StateStore(e.ctx, x, state(i)), "StateStore(%q)", x)
		e.setExpiry(x, persistence.SessionExpiry{ExpireAt: e.at(-1)})
	}
	loaded := e.loadAll()
	for i, x := range all {
		ls := loaded[x]
		if ls == nil {
			e.fatalf("LoadForEach did not return session %q", x)
		}
		e.eq(diffState(ls.State, state(i)), "state of %q", x)
		for _, c := range persistence.PacketClasses {
			got := e.read(x, c)
			if len(got) != 1 {
				e.fatalf("(%q, %s) holds %d packets, want 1", x, c, len(got))
			}
			e.eq(diffPacket(got[0], pkt(i), false), "(%q, %s)", x, c)
		}
		e.subsSet(x, sub("f/"+x, i))
	}
	e.expired(e.clock.Now(), all...)
	e.ok(e.ss.Delete(e.ctx, id), "Delete(%q)", id)
	e.checkGone(id)
	// Created again, the id starts empty.
	e.create(id)
	for _, c := range persistence.PacketClasses {
		e.queue(id, c, nil)
	}
	e.subsSet(id)
	e.ok(e.ss.Delete(e.ctx, id), "Delete(%q)", id)
	for i, x := range neighbours {
		st, err := e.ss.StateGet(e.ctx, x)
		e.ok(err, "StateGet(%q) after deleting %q", x, id)
		e.eq(diffState(st, state(i+1)), "StateGet(%q) after deleting %q", x, id)
		e.subsSet(x, sub("f/"+x, i+1))
	}
	n, err := e.ss.Count(e.ctx)
	e.ok(err, "Count")
	if n != uint64(len(neighbours)) {
		e.fatalf("Count = %d, want %d", n, len(neighbours))
	}
}

// checkPayload stores data as a packet of every class, as a will and as a retained
// message, and reads it back.
func (e *env) checkPayload(data []byte) {
	e.create("s")
	for _, c := range persistence.PacketClasses[:2] {
		seq, err := e.ss.PacketAppend(e.ctx, "s", c, pktData(data))
		e.ok(err, "PacketAppend(%s) of %d bytes", c, len(data))
		got, err := e.ss.PacketGet(e.ctx, "s", c, seq)
		e.ok(err, "PacketGet")
		e.eq(sameBytes(got.Data, data), "PacketGet(%s) of %d bytes", c, len(data))
	}
	if len(data) <= 256<<10 { // will and user data together stay under every MaxPayload
		st := state(1)
		st.Will.Data, st.UserData = data, data
		e.ok(e.ss.StateStore(e.ctx, "s", st), "StateStore with %d-byte will and user data", len(data))
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, st), "StateGet")
	}
	e.ok(e.rs.Put(e.ctx, "t", pktData(data)), "Retained.Put of %d bytes", len(data))
	got, err := e.rs.Get(e.ctx, "t")
	e.ok(err, "Retained.Get")
	e.eq(sameBytes(got.Data, data), "Retained.Get of %d bytes", len(data))
}

var bytesCases = []tcase{
	{"PayloadWithNULsAndHighBytes", func(e *env) {
		e.create("s")
		data := []byte{0, 0, 0xff, 0, 0xfe, '\n', '\r', 0}
		ps := []*persistence.PersistedPacket{pktData(data), pktData(data[:1]), pktData(data[2:])}
		for _, p := range ps {
			seq, err := e.ss.PacketAppend(e.ctx, "s", cq, p)
			e.ok(err, "PacketAppend")
			p.Seq = seq
		}
		e.queue("s", cq, ps)
	}},
	{"TopicsWithEmptyLevels", func(e *env) {
		topics := []string{"/", "//", "a//b", "a/", "/a", "a"}
		for i, topic := range topics {
			e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put(%q)", topic)
		}
		for i, topic := range topics {
			got, err := e.rs.Get(e.ctx, topic)
			e.ok(err, "Get(%q)", topic)
			e.eq(diffPacket(got, pkt(i), false), "Get(%q)", topic)
		}
		e.count(uint64(len(topics)))
	}},
	{"UsernameAndWillBinary", func(e *env) {
		e.create("s")
		st := state(1)
		st.Username = "\x00\xff/:%"
		st.Will.Data = []byte{0}
		e.ok(e.ss.StateStore(e.ctx, "s", st), "StateStore")
		got, err := e.ss.StateGet(e.ctx, "s")
		e.ok(err, "StateGet")
		e.eq(diffState(got, st), "StateGet")
	}},
}
