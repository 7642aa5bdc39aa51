package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// The catalogue of every method of the API, called with valid arguments on a
// prepared store. The Errors, Close and Context areas run each of them in a
// situation where it must fail, and check how.

// fixture is the state prepare builds: session "s" with two packets in every class,
// subscriptions, state and deadlines, and two retained messages.
type fixture struct {
	seqs map[persistence.PacketClass][]uint64
}

func (e *env) prepare() *fixture {
	f := &fixture{seqs: map[persistence.PacketClass][]uint64{}}
	e.create("s")
	for _, c := range persistence.PacketClasses {
		for _, p := range e.appendN("s", c, 2) {
			f.seqs[c] = append(f.seqs[c], p.Seq)
		}
	}
	e.ok(e.ss.SubscriptionsStore(e.ctx, "s", sub("a/+", 1), sub("b/#", 2)), "SubscriptionsStore")
	e.ok(e.ss.StateStore(e.ctx, "s", state(1)), "StateStore")
	e.setExpiry("s", persistence.SessionExpiry{ExpireAt: e.at(-time.Second), WillAt: e.at(time.Hour)})
	e.ok(e.rs.Put(e.ctx, "r/1", pkt(1)), "Retained.Put")
	e.ok(e.rs.Put(e.ctx, "r/2", pkt(2)), "Retained.Put")
	return f
}

// apiCall is one method called with valid arguments.
type apiCall struct {
	name string
	// session marks calls scoped to one session (id is the session they act on).
	session bool
	// write marks calls that change the store.
	write bool
	fn    func(e *env, ctx context.Context, f *fixture, id string) error
}

// cb is a callback that counts its calls.
type cb struct{ n int }

func (c *cb) packet(*persistence.PersistedPacket) (bool, error) { c.n++; return true, nil }
func (c *cb) session(*persistence.LoadedSession) error          { c.n++; return nil }
func (c *cb) retained(*persistence.RetainedMessage) error       { c.n++; return nil }
func (c *cb) expired(string, persistence.SessionExpiry) error   { c.n++; return nil }

const cq = persistence.ClassQoS12

func seqOf(f *fixture) uint64 {
	if f == nil || len(f.seqs[cq]) == 0 {
		return 1
	}
	return f.seqs[cq][0]
}

var apiCalls = []apiCall{
	{"Create", false, true, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		return e.ss.Create(ctx, "new", persistence.SessionBase{CreatedAt: caseEpoch, ProtocolVersion: 5})
	}},
	{"Exists", false, false, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.Exists(ctx, id)
		return err
	}},
	{"Count", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		_, err := e.ss.Count(ctx)
		return err
	}},
	{"LoadForEach", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		var c cb
		return e.ss.LoadForEach(ctx, c.session)
	}},
	{"Delete", false, true, func(e *env, ctx context.Context, _ *fixture, id string) error { return e.ss.Delete(ctx, id) }},
	{"Apply", true, true, func(e *env, ctx context.Context, f *fixture, id string) error {
		var b persistence.Batch
		b.PacketAppend(id, cq, pkt(5)).PacketDelete(id, persistence.ClassQoS0, 1).StateDelete(id)
		_, err := e.ss.Apply(ctx, &b)
		return err
	}},
	{"PacketAppend", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.PacketAppend(ctx, id, cq, pkt(5))
		return err
	}},
	{"PacketGet", true, false, func(e *env, ctx context.Context, f *fixture, id string) error {
		_, err := e.ss.PacketGet(ctx, id, cq, seqOf(f))
		return err
	}},
	{"PacketUpdate", true, true, func(e *env, ctx context.Context, f *fixture, id string) error {
		p := pkt(6)
		p.Seq = seqOf(f)
		return e.ss.PacketUpdate(ctx, id, cq, p)
	}},
	{"PacketDelete", true, true, func(e *env, ctx context.Context, f *fixture, id string) error {
		return e.ss.PacketDelete(ctx, id, cq, seqOf(f))
	}},
	{"PacketCount", true, false, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.PacketCount(ctx, id, cq)
		return err
	}},
	{"PacketsForEach", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		var c cb // deletes what it visits: a write
		return e.ss.PacketsForEach(ctx, id, cq, c.packet)
	}},
	{"PacketsStore", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.PacketsStore(ctx, id, &persistence.PersistedPackets{QoS12: []*persistence.PersistedPacket{pkt(7)}, UnAck: []*persistence.PersistedPacket{pkt(8)}})
	}},
	{"PacketsDelete", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.PacketsDelete(ctx, id)
	}},
	{"SubscriptionsStore", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.SubscriptionsStore(ctx, id, sub("new/#", 1))
	}},
	{"SubscriptionsDelete", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.SubscriptionsDelete(ctx, id, "a/+")
	}},
	{"SubscriptionsDeleteAll", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.SubscriptionsDeleteAll(ctx, id)
	}},
	{"SubscriptionsLoad", true, false, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.SubscriptionsLoad(ctx, id)
		return err
	}},
	{"StateStore", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.StateStore(ctx, id, state(2))
	}},
	{"StateGet", true, false, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.StateGet(ctx, id)
		return err
	}},
	{"StateDelete", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.StateDelete(ctx, id)
	}},
	{"ExpiryStore", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: caseEpoch.Add(time.Minute)})
	}},
	{"ExpiryGet", true, false, func(e *env, ctx context.Context, _ *fixture, id string) error {
		_, err := e.ss.ExpiryGet(ctx, id)
		return err
	}},
	{"ExpiryDelete", true, true, func(e *env, ctx context.Context, _ *fixture, id string) error {
		return e.ss.ExpiryDelete(ctx, id)
	}},
	{"ExpiredForEach", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		var c cb
		return e.ss.ExpiredForEach(ctx, caseEpoch.Add(time.Hour), c.expired)
	}},
	{"Retained.Put", false, true, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		return e.rs.Put(ctx, "r/new", pkt(3))
	}},
	{"Retained.Get", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		_, err := e.rs.Get(ctx, "r/1")
		return err
	}},
	{"Retained.Delete", false, true, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		return e.rs.Delete(ctx, "r/1")
	}},
	{"Retained.LoadMatching", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		var c cb
		return e.rs.LoadMatching(ctx, []string{"r/+"}, c.retained)
	}},
	{"Retained.Load", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		var c cb
		return e.rs.Load(ctx, c.retained)
	}},
	{"Retained.Store", false, true, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		return e.rs.Store(ctx, []*persistence.RetainedMessage{{Topic: "only", Packet: pkt(4)}})
	}},
	{"Retained.Count", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		_, err := e.rs.Count(ctx)
		return err
	}},
	{"Retained.Wipe", false, true, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		return e.rs.Wipe(ctx)
	}},
	{"System.GetInfo", false, false, func(e *env, ctx context.Context, _ *fixture, _ string) error {
		_, err := e.p.Info(ctx)
		return err
	}},
}

// snapshot renders the whole observable state of the store as text, in a canonical
// order, so that two snapshots compare with ==.
func (e *env) snapshot() string {
	var b strings.Builder
	all := e.loadAll()
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ls := all[id]
		fmt.Fprintf(&b, "session %q base %s v%d\n", id, fmtTime(ls.Base.CreatedAt), ls.Base.ProtocolVersion)
		subs := slices.Clone(ls.Subscriptions)
		slices.SortFunc(subs, func(x, y persistence.Subscription) int { return strings.Compare(x.Filter, y.Filter) })
		for _, s := range subs {
			fmt.Fprintf(&b, "  sub %+v\n", s)
		}
		if st := ls.State; st != nil {
			fmt.Fprintf(&b, "  state v%d %v %q will{%s} %v %s %x\n", st.ProtocolVersion, st.ExpiryInterval, st.Username,
				fmtPkt(st.Will), st.WillDelay, fmtTime(st.DisconnectedAt), st.UserData)
		}
		if x := ls.Expiry; x != nil {
			fmt.Fprintf(&b, "  expiry %s %s\n", fmtTime(x.ExpireAt), fmtTime(x.WillAt))
		}
		for _, c := range persistence.PacketClasses {
			for _, p := range e.read(id, c) {
				fmt.Fprintf(&b, "  %s %s\n", c, fmtPkt(p))
			}
		}
	}
	var ret []string
	err := e.rs.Load(e.ctx, func(m *persistence.RetainedMessage) error {
		ret = append(ret, fmt.Sprintf("retained %q %s\n", m.Topic, fmtPkt(m.Packet)))
		return nil
	})
	e.ok(err, "Retained.Load")
	slices.Sort(ret)
	for _, r := range ret {
		b.WriteString(r)
	}
	var due []string
	err = e.ss.ExpiredForEach(e.ctx, caseEpoch.Add(24*time.Hour), func(id string, _ persistence.SessionExpiry) error {
		due = append(due, id)
		return nil
	})
	e.ok(err, "ExpiredForEach")
	slices.Sort(due)
	fmt.Fprintf(&b, "expiry index %q\n", due)
	return b.String()
}

func fmtPkt(p *persistence.PersistedPacket) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("seq %d id %d q%d v%d exp %s data %x", p.Seq, p.PacketID, p.QoS, p.ProtocolVersion, fmtTime(p.ExpireAt), p.Data)
}

// diffSnap describes the first differing line of two snapshots.
func diffSnap(got, want string) string {
	if got == want {
		return ""
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "differs"
}
