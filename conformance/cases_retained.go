package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Retained messages: per-topic put/get/delete, replace-all Store, Load, Wipe, Count,
// and matching by MQTT topic filters (Retained/Match/...).

func runRetained(t *testing.T, h Harness) {
	runCases(t, h, retainedCases)
	t.Run("Match", func(t *testing.T) {
		var cs []tcase
		for _, m := range matchCases {
			cs = append(cs, tcase{m.name, func(e *env) {
				for i, topic := range m.topics {
					e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put(%q)", topic)
				}
				e.matching(m.filters, m.want...)
			}})
		}
		cs = append(cs, matchExtraCases...)
		runCases(t, h, cs)
	})
}

// matchCase stores topics and checks which LoadMatching(filters) delivers.
type matchCase struct {
	name    string
	topics  []string
	filters []string
	want    []string
}

// hello is the topic set of aedes-persistence's wildcard cases, plus neighbours that
// a prefix match or a misplaced level would wrongly deliver.
// deep has a five-level topic and, for each level, the same topic with that level
// changed, plus neighbours one level shorter and longer.
var deep = []string{"a/b/c/d/e", "x/b/c/d/e", "a/x/c/d/e", "a/b/x/d/e", "a/b/c/x/e", "a/b/c/d/x", "a/b/c/d", "a/b/c/d/e/f", "a/b/c/d/"}

var hello = []string{"hello/world", "hello", "hello/world/there", "hel", "hello/worlds", "other/hello", "hello/there/world/creatures"}

var matchCases = []matchCase{
	{"Exact", hello, []string{"hello/world"}, []string{"hello/world"}},
	{"Hash", hello, []string{"#"}, hello},
	{"HashMatchesParentLevel", hello, []string{"hello/world/#"}, []string{"hello/world", "hello/world/there"}},
	{"Plus", hello, []string{"hello/+"}, []string{"hello/world", "hello/worlds"}},
	{"PlusFirst", hello, []string{"+/world"}, []string{"hello/world"}},
	{"PlusHash", hello, []string{"+/#"}, hello},
	{"PlusAndHashWithLevelsBetween", hello, []string{"hello/+/world/#"}, []string{"hello/there/world/creatures"}},
	{"SeveralFiltersDeliverOnce", hello, []string{"hello/+", "other/hello", "hello/world", "#"}, hello},
	{"SeveralWildcardFilters", hello, []string{"hello/+", "hel/#", "hello/world/there/+"}, []string{"hello/world", "hello/worlds", "hel"}},
	{"HashIsNotAPrefixMatch", hello, []string{"hel/#", "hello/wor/#"}, []string{"hel"}},
	{"NoFiltersMatchNothing", hello, []string{}, nil},
	{"PlusMatchesEmptyLevel", []string{"a//b", "a/x/b", "a/b", "/b", "a/"}, []string{"a/+/b"}, []string{"a//b", "a/x/b"}},
	{"PlusMatchesEmptyLastLevel", []string{"a/", "a", "a/b"}, []string{"a/+"}, []string{"a/", "a/b"}},
	{"PlusMatchesEmptyFirstLevel", []string{"/a", "a", "x/a"}, []string{"+/a"}, []string{"/a", "x/a"}},
	{"HashAfterEmptyLevel", []string{"/", "/a", "a", "//"}, []string{"/#"}, []string{"/", "/a", "//"}},
	{"SlashOnlyTopics", []string{"/", "//", "a"}, []string{"+/+"}, []string{"/"}},
	{"DollarTopics", []string{"$SYS/uptime", "$SYS", "$other/x", "sys/uptime", "a/$x"},
		[]string{"#", "+/uptime", "+", "+/#", "+/x"}, []string{"sys/uptime", "a/$x"}},
	{"DollarTopicsByExplicitFilter", []string{"$SYS/uptime", "$SYS", "$SYS/a/b", "SYS/uptime"},
		[]string{"$SYS/#"}, []string{"$SYS/uptime", "$SYS", "$SYS/a/b"}},
	{"DollarTopicsBySecondLevelWildcard", []string{"$SYS/uptime", "$SYS/load", "$SYS/a/b"},
		[]string{"$SYS/+"}, []string{"$SYS/uptime", "$SYS/load"}},
	{"CaseSensitive", []string{"A/b", "a/B", "a/b"}, []string{"a/b", "a/+"}, []string{"a/b", "a/B"}},
	{"NoNormalisation", []string{"caf\u00e9", "cafe\u0301", "\ufeffcafe", "cafe", "a b", "a  b"}, []string{"caf\u00e9", "a b"}, []string{"caf\u00e9", "a b"}},
	{"DeepTopics", []string{"a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g", "a/b/c/d/e/f/g/h/i"},
		[]string{"a/+/c/+/e/+/g/+"}, []string{"a/b/c/d/e/f/g/h"}},
	{"BinaryTopics", []string{"a\x00b", "a\x00", "\xff/x", "a/\x00"}, []string{"a\x00b", "\xff/+", "a/+"}, []string{"a\x00b", "\xff/x", "a/\x00"}},
	// Matching at every depth: '$' only matters as the first character of the
	// first level; empty levels and a trailing '/' are levels; a filter longer or
	// shorter than the topic matches only through '#'.
	{"DollarBelowFirstLevel", []string{"a/$b", "a/$b/c", "a/b/$", "$a/b", "a/b"},
		[]string{"a/+", "a/#", "+/+/c", "+/b/+"}, []string{"a/$b", "a/$b/c", "a/b/$", "a/b"}},
	{"DollarOnlyAtTopicStart", []string{"x$/y", "$/y", "$", "$$", "x/$"}, []string{"+/y", "#", "+"}, []string{"x$/y", "x/$"}},
	{"DollarTopicByPlusAfterExplicitFirstLevel", []string{"$SYS/a/b", "$SYS/a", "$SYS/c/b"}, []string{"$SYS/+/b"}, []string{"$SYS/a/b", "$SYS/c/b"}},
	{"EmptyLevelsByPlusAtEveryDepth", []string{"//", "///", "a//", "/a/", "//a", "a/b/c", "a"}, []string{"+/+/+"},
		[]string{"//", "a//", "/a/", "//a", "a/b/c"}},
	{"TrailingSlashIsALevel", []string{"a/b/", "a/b", "a/b//", "a/b/c"}, []string{"a/b/"}, []string{"a/b/"}},
	{"TrailingSlashByPlus", []string{"a/b/", "a/b", "a/b//", "a/b/c"}, []string{"a/b/+"}, []string{"a/b/", "a/b/c"}},
	{"TrailingSlashByHash", []string{"a/b/", "a/b", "a/b//", "a/bc"}, []string{"a/b/#"}, []string{"a/b/", "a/b", "a/b//"}},
	{"FilterLongerThanTopic", []string{"a", "a/b", "b/c"}, []string{"a/b/c", "a/+/+", "+/+/+", "a/b/c/#", "a/b/+/#"}, nil},
	{"FilterShorterThanTopic", []string{"a/b/c", "a/b/c/d", "x/y/z"}, []string{"a/b", "a", "+", "+/+", "a/+"}, nil},
	{"HashAtEveryDepth", []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/x/c"}, []string{"a/b/c/#"}, []string{"a/b/c", "a/b/c/d"}},
	{"PlusAtDepth1", deep, []string{"+/b/c/d/e"}, []string{"a/b/c/d/e", "x/b/c/d/e"}},
	{"PlusAtDepth2", deep, []string{"a/+/c/d/e"}, []string{"a/b/c/d/e", "a/x/c/d/e"}},
	{"PlusAtDepth3", deep, []string{"a/b/+/d/e"}, []string{"a/b/c/d/e", "a/b/x/d/e"}},
	{"PlusAtDepth4", deep, []string{"a/b/c/+/e"}, []string{"a/b/c/d/e", "a/b/c/x/e"}},
	{"PlusAtDepth5", deep, []string{"a/b/c/d/+"}, []string{"a/b/c/d/e", "a/b/c/d/x", "a/b/c/d/"}},
	{"UnicodeLevels", []string{"мир/温度/😀", "мир/x/😀", "мир"}, []string{"мир/+/😀"}, []string{"мир/温度/😀", "мир/x/😀"}},
}

var matchExtraCases = []tcase{
	{"InvalidFiltersMatchNothing", func(e *env) {
		// A misplaced wildcard matches nothing; a driver may instead refuse the call
		// with ErrInvalidArgument, but never deliver anything.
		for i, topic := range []string{"a", "a/b", "a/b/c", "b/a"} {
			e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put(%q)", topic)
		}
		for _, f := range []string{"a/#/b", "a+", "a/b#", "#/a", "a/+b", "a/#/"} {
			n := 0
			err := e.rs.LoadMatching(e.ctx, []string{f}, func(*persistence.RetainedMessage) error { n++; return nil })
			if err != nil {
				e.is(err, persistence.ErrInvalidArgument, "LoadMatching(%q)", f)
			}
			if n != 0 {
				e.fatalf("LoadMatching(%q) delivered %d messages for an invalid filter, want 0", f, n)
			}
		}
	}},
	{"LongTopic", func(e *env) {
		// [MQTT-4.7.3-3] topics up to 65535 bytes.
		long := strings.Repeat("l", 32000) + "/" + strings.Repeat("m", 33534)
		e.ok(e.rs.Put(e.ctx, long, pkt(1)), "Put of a %d-byte topic", len(long))
		e.ok(e.rs.Put(e.ctx, "l/other", pkt(2)), "Put")
		e.matching([]string{strings.Repeat("l", 32000) + "/+"}, long)
		e.matching([]string{"+/" + strings.Repeat("m", 33534)}, long)
		got, err := e.rs.Get(e.ctx, long)
		e.ok(err, "Get of the long topic")
		e.eq(diffPacket(got, pkt(1), false), "Get of the long topic")
	}},
	{"ManyTopicsByWildcard", func(e *env) {
		var want []string
		msgs := make([]*persistence.RetainedMessage, 0, 3000)
		for i := range 3000 {
			topic := fmt.Sprintf("site/%d/dev/%d/temp", i%30, i)
			msgs = append(msgs, &persistence.RetainedMessage{Topic: topic, Packet: pkt(i)})
			if i%30 == 7 {
				want = append(want, topic)
			}
		}
		e.ok(e.rs.Store(e.ctx, msgs), "Store of 3000 messages")
		e.matching([]string{"site/7/#"}, want...)
		e.matching([]string{"site/7/dev/+/temp"}, want...)
		e.matching([]string{"site/+/dev/7/temp"}, "site/7/dev/7/temp")
	}},
	{"MatchesAfterDeleteAndReplace", func(e *env) {
		for i, topic := range []string{"a/1", "a/2", "a/3"} {
			e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put")
		}
		e.ok(e.rs.Delete(e.ctx, "a/2"), "Delete")
		e.ok(e.rs.Put(e.ctx, "a/3", pkt(9)), "Put (replace)")
		e.matching([]string{"a/+"}, "a/1", "a/3")
		var got *persistence.PersistedPacket
		err := e.rs.LoadMatching(e.ctx, []string{"a/3"}, func(m *persistence.RetainedMessage) error {
			got = m.Packet
			return nil
		})
		e.ok(err, "LoadMatching")
		e.eq(diffPacket(got, pkt(9), false), "LoadMatching after a replace")
	}},
}

var retainedCases = []tcase{
	{"PutGet", func(e *env) {
		p := pkt(3)
		e.ok(e.rs.Put(e.ctx, "a/b", p), "Put")
		got, err := e.rs.Get(e.ctx, "a/b")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(3), false), "Get")
	}},
	{"GetMissingIsErrNotFound", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "a/b", pkt(1)), "Put")
		for _, topic := range []string{"a", "a/b/c", "a/+", "#", "A/b"} {
			got, err := e.rs.Get(e.ctx, topic)
			e.is(err, persistence.ErrNotFound, "Get(%q)", topic)
			if got != nil {
				e.fatalf("Get(%q) returned a packet along with its error", topic)
			}
		}
	}},
	{"WildcardsAreLiteralToGet", func(e *env) {
		// Topic names cannot hold wildcards, but the store does not interpret bytes.
		e.ok(e.rs.Put(e.ctx, "a/b", pkt(1)), "Put")
		_, err := e.rs.Get(e.ctx, "a/#")
		e.is(err, persistence.ErrNotFound, "Get(a/#)")
	}},
	{"PutReplaces", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		e.ok(e.rs.Put(e.ctx, "t", pkt(2)), "Put again")
		got, err := e.rs.Get(e.ctx, "t")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(2), false), "Get after replace")
		e.count(1)
	}},
	{"Delete", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		e.ok(e.rs.Put(e.ctx, "t/x", pkt(2)), "Put")
		e.ok(e.rs.Delete(e.ctx, "t"), "Delete")
		_, err := e.rs.Get(e.ctx, "t")
		e.is(err, persistence.ErrNotFound, "Get after Delete")
		e.matching(nil, "t/x")
		e.count(1)
	}},
	{"DeleteMissingIsNoop", func(e *env) {
		e.ok(e.rs.Delete(e.ctx, "nope"), "Delete of a missing topic")
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		e.ok(e.rs.Delete(e.ctx, "t"), "Delete")
		e.ok(e.rs.Delete(e.ctx, "t"), "Delete twice")
		e.count(0)
	}},
	{"CountAndLoad", func(e *env) {
		e.count(0)
		e.matching(nil)
		topics := []string{"a", "a/b", "b", "$SYS/x", "/"}
		for i, topic := range topics {
			e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put")
		}
		e.count(uint64(len(topics)))
		e.matching(nil, topics...) // Load delivers '$' topics too
	}},
	{"LoadDeliversThePackets", func(e *env) {
		for i := range 20 {
			e.ok(e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i), pkt(i)), "Put")
		}
		n := 0
		var bad string
		err := e.rs.Load(e.ctx, func(m *persistence.RetainedMessage) error {
			var i int
			fmt.Sscanf(m.Topic, "t/%d", &i)
			if d := diffPacket(m.Packet, pkt(i), false); d != "" {
				bad = m.Topic + ": " + d
			}
			n++
			return nil
		})
		e.ok(err, "Load")
		if bad != "" || n != 20 {
			e.fatalf("Load delivered %d messages, mismatch %q", n, bad)
		}
	}},
	{"StoreReplacesEverything", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "old/1", pkt(1)), "Put")
		e.ok(e.rs.Put(e.ctx, "keep", pkt(2)), "Put")
		msgs := []*persistence.RetainedMessage{{Topic: "keep", Packet: pkt(7)}, {Topic: "new/1", Packet: pkt(8)}}
		e.ok(e.rs.Store(e.ctx, msgs), "Store")
		e.matching(nil, "keep", "new/1")
		got, err := e.rs.Get(e.ctx, "keep")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(7), false), "Get(keep) after Store")
		_, err = e.rs.Get(e.ctx, "old/1")
		e.is(err, persistence.ErrNotFound, "Get of a topic Store did not include")
	}},
	{"StoreLaterMessageWins", func(e *env) {
		msgs := []*persistence.RetainedMessage{{Topic: "t", Packet: pkt(1)}, {Topic: "u", Packet: pkt(2)}, {Topic: "t", Packet: pkt(3)}}
		e.ok(e.rs.Store(e.ctx, msgs), "Store")
		got, err := e.rs.Get(e.ctx, "t")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(3), false), "Get(t)")
		e.count(2)
	}},
	{"StoreEmptyClears", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		e.ok(e.rs.Store(e.ctx, nil), "Store(nil)")
		e.count(0)
	}},
	{"StoreInvalidChangesNothing", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		bad := pkt(2)
		bad.QoS = 3
		for _, msgs := range [][]*persistence.RetainedMessage{
			{{Topic: "ok", Packet: pkt(1)}, {Topic: "", Packet: pkt(2)}},
			{{Topic: "ok", Packet: pkt(1)}, {Topic: "q", Packet: bad}},
			{{Topic: "ok", Packet: pkt(1)}, {Topic: "n", Packet: nil}},
		} {
			e.is(e.rs.Store(e.ctx, msgs), persistence.ErrInvalidArgument, "Store with an invalid message")
			e.matching(nil, "t")
		}
	}},
	{"Wipe", func(e *env) {
		for i := range 10 {
			e.ok(e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i), pkt(i)), "Put")
		}
		e.ok(e.rs.Wipe(e.ctx), "Wipe")
		e.count(0)
		e.matching(nil)
		e.matching([]string{"#"})
		e.ok(e.rs.Wipe(e.ctx), "Wipe of an empty store")
		e.ok(e.rs.Put(e.ctx, "t/1", pkt(1)), "Put after Wipe")
		e.count(1)
	}},
	{"PutInvalidIsErrInvalidArgument", func(e *env) {
		bad := pkt(1)
		bad.QoS = 3
		e.is(e.rs.Put(e.ctx, "", pkt(1)), persistence.ErrInvalidArgument, "Put on an empty topic")
		e.is(e.rs.Put(e.ctx, "t", nil), persistence.ErrInvalidArgument, "Put of a nil packet")
		e.is(e.rs.Put(e.ctx, "t", bad), persistence.ErrInvalidArgument, "Put of a QoS 3 packet")
		e.count(0)
	}},
	{"EmptyPayloadIsStored", func(e *env) {
		// Deleting on an empty payload is the broker's job [MQTT-3.3.1-6]; the store
		// keeps what it is given.
		e.ok(e.rs.Put(e.ctx, "t", pktData(nil)), "Put of an empty payload")
		got, err := e.rs.Get(e.ctx, "t")
		e.ok(err, "Get")
		if len(got.Data) != 0 {
			e.fatalf("Get returned %d bytes, want 0", len(got.Data))
		}
	}},
	{"LoadStopIteration", func(e *env) {
		for i := range 5 {
			e.ok(e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i), pkt(i)), "Put")
		}
		for _, load := range []string{"Load", "LoadMatching"} {
			n := 0
			fn := func(*persistence.RetainedMessage) error {
				n++
				if n == 2 {
					return persistence.ErrStopIteration
				}
				return nil
			}
			var err error
			if load == "Load" {
				err = e.rs.Load(e.ctx, fn)
			} else {
				err = e.rs.LoadMatching(e.ctx, []string{"t/+"}, fn)
			}
			e.ok(err, "%s stopped with ErrStopIteration", load)
			if n != 2 {
				e.fatalf("%s: callback called %d times, want 2", load, n)
			}
		}
	}},
	{"LoadCallbackErrorReturned", func(e *env) {
		for i := range 5 {
			e.ok(e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i), pkt(i)), "Put")
		}
		for _, load := range []string{"Load", "LoadMatching"} {
			n := 0
			fn := func(*persistence.RetainedMessage) error { n++; return errCase }
			var err error
			if load == "Load" {
				err = e.rs.Load(e.ctx, fn)
			} else {
				err = e.rs.LoadMatching(e.ctx, []string{"#"}, fn)
			}
			e.is(err, errCase, "%s whose callback fails", load)
			if n != 1 {
				e.fatalf("%s: callback called %d times after an error, want 1", load, n)
			}
		}
	}},
	{"LoadCallbackMayCallAnyMethod", func(e *env) {
		for i := range 5 {
			e.ok(e.rs.Put(e.ctx, fmt.Sprintf("t/%d", i), pkt(i)), "Put")
		}
		e.create("s")
		err := e.rs.LoadMatching(e.ctx, []string{"t/+"}, func(m *persistence.RetainedMessage) error {
			if err := e.rs.Delete(e.ctx, m.Topic); err != nil {
				return err
			}
			if err := e.rs.Put(e.ctx, "moved/"+m.Topic, m.Packet); err != nil {
				return err
			}
			if _, err := e.rs.Count(e.ctx); err != nil {
				return err
			}
			_, err := e.ss.PacketAppend(e.ctx, "s", persistence.ClassQoS12, m.Packet)
			return err
		})
		e.ok(err, "LoadMatching whose callback calls the store")
		e.matching([]string{"t/#"})
		e.matching([]string{"moved/#"}, "moved/t/0", "moved/t/1", "moved/t/2", "moved/t/3", "moved/t/4")
	}},
	{"BinaryTopics", func(e *env) {
		topics := []string{"a\x00b", "a\x00", "a", "\xff\xfe", "a:b", "a%2Fb", " ", "\x00"}
		for i, topic := range topics {
			e.ok(e.rs.Put(e.ctx, topic, pkt(i)), "Put(%q)", topic)
		}
		for i, topic := range topics {
			got, err := e.rs.Get(e.ctx, topic)
			e.ok(err, "Get(%q)", topic)
			e.eq(diffPacket(got, pkt(i), false), "Get(%q)", topic)
		}
		e.ok(e.rs.Delete(e.ctx, "a"), "Delete(a)")
		e.matching(nil, append(topics[:2:2], topics[3:]...)...)
	}},
	{"StoredAndReturnedAreCopies", func(e *env) {
		p := pkt(1)
		e.ok(e.rs.Put(e.ctx, "t", p), "Put")
		scribble(p.Data)
		got, err := e.rs.Get(e.ctx, "t")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(1), false), "Get after mutating the slice given to Put")
		scribble(got.Data)
		err = e.rs.Load(e.ctx, func(m *persistence.RetainedMessage) error { scribble(m.Packet.Data); return nil })
		e.ok(err, "Load")
		got, err = e.rs.Get(e.ctx, "t")
		e.ok(err, "Get")
		e.eq(diffPacket(got, pkt(1), false), "Get after mutating returned slices")
		msgs := []*persistence.RetainedMessage{{Topic: "s", Packet: pkt(2)}, {Topic: "t", Packet: pkt(1)}}
		e.ok(e.rs.Store(e.ctx, msgs), "Store")
		scribble(msgs[0].Packet.Data)
		msgs[1].Topic = "scribbled"
		for i, topic := range []string{"s", "t"} {
			got, err := e.rs.Get(e.ctx, topic)
			e.ok(err, "Get(%q)", topic)
			e.eq(diffPacket(got, pkt(2-i), false), "Get(%q) after mutating the messages given to Store", topic)
		}
	}},
	{"NotTouchedBySessions", func(e *env) {
		e.ok(e.rs.Put(e.ctx, "t", pkt(1)), "Put")
		e.create("t")
		e.ok(e.ss.Delete(e.ctx, "t"), "Delete of the session named like the topic")
		e.count(1)
	}},
}

// count checks Retained.Count.
func (e *env) count(want uint64) {
	n, err := e.rs.Count(e.ctx)
	e.ok(err, "Retained.Count")
	if n != want {
		e.fatalf("Retained.Count = %d, want %d", n, want)
	}
}
