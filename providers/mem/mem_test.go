package mem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

type fakeClock struct{ now time.Time }

func (c fakeClock) Now() time.Time { return c.now }

// testCtx returns a context that bounds one test: a driver that deadlocks fails at
// the deadline instead of hanging the test binary.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// within runs f on another goroutine and fails the test if it does not return
// before ctx is done (a deadlock, typically a lock held during a callback).
func within(t *testing.T, ctx context.Context, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("deadlock: call did not return before the test deadline")
	}
}

func open(t *testing.T) persistence.Provider {
	t.Helper()
	p, err := persistence.Open(testCtx(t), "mem://", persistence.WithClock(fakeClock{t0}))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func pkt(i int) *persistence.PersistedPacket {
	return &persistence.PersistedPacket{PacketID: uint16(i), QoS: 1, ProtocolVersion: 5, Data: []byte(fmt.Sprintf("packet-%d", i))}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// check is must for goroutines other than the test's.
func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one matching %v", err, target)
	}
}

// packets returns the packets of (id, c) in iteration order.
func packets(t *testing.T, ss persistence.Sessions, id string, c persistence.PacketClass) []*persistence.PersistedPacket {
	t.Helper()
	var out []*persistence.PersistedPacket
	must(t, ss.PacketsForEach(testCtx(t), id, c, func(p *persistence.PersistedPacket) (bool, error) {
		out = append(out, p)
		return false, nil
	}))
	return out
}

func dataOf(ps []*persistence.PersistedPacket) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Data)
	}
	return out
}

// dump is everything a store holds, for before/after comparisons.
type dump struct {
	Sessions map[string]sessionDump
	Retained map[string]string
}

type sessionDump struct {
	Base    persistence.SessionBase
	Packets [4][]persistence.PersistedPacket
	Subs    []persistence.Subscription
	State   *persistence.SessionState
	Expiry  *persistence.SessionExpiry
}

func snapshot(t *testing.T, p persistence.Provider) dump {
	t.Helper()
	ctx := testCtx(t)
	d := dump{Sessions: map[string]sessionDump{}, Retained: map[string]string{}}
	ss := p.Sessions()
	must(t, ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		sd := sessionDump{Base: ls.Base, Subs: ls.Subscriptions, State: ls.State, Expiry: ls.Expiry}
		sort.Slice(sd.Subs, func(i, j int) bool { return sd.Subs[i].Filter < sd.Subs[j].Filter })
		for _, c := range persistence.PacketClasses {
			for _, pk := range packets(t, ss, ls.ID, c) {
				sd.Packets[c-1] = append(sd.Packets[c-1], *pk)
			}
		}
		d.Sessions[ls.ID] = sd
		return nil
	}))
	must(t, p.Retained().Load(ctx, func(m *persistence.RetainedMessage) error {
		d.Retained[m.Topic] = string(m.Packet.Data)
		return nil
	}))
	return d
}

func TestOpen(t *testing.T) {
	ctx := testCtx(t)
	if !slices.Contains(persistence.Drivers(), "mem") {
		t.Fatalf("Drivers() = %v, want mem among them", persistence.Drivers())
	}
	p, err := persistence.Open(ctx, "MEM://", persistence.WithClock(fakeClock{t0}))
	must(t, err)
	info, err := p.System().GetInfo(ctx)
	must(t, err)
	want := persistence.SystemInfo{SchemaVersion: persistence.SchemaVersion, CreatedAt: t0, SDKVersion: persistence.SDKVersion, Driver: "mem"}
	if info != want {
		t.Fatalf("GetInfo = %+v, want %+v", info, want)
	}
	must(t, p.Close())

	for _, tc := range []struct{ dsn, mention string }{
		{"mem://?bogus=1", `"bogus"`},
		{"mem://?sync=always&bogus=1", `"sync"`},
		{"mem://foo", `host "foo"`},
		{"mem:///var/lib/x", `path "/var/lib/x"`},
		{"mem://user@", `user info`},
		{"mem:foo", `opaque`},
		{"mem://#frag", `fragment`},
		{"mem://?a=%zz", `options`},
	} {
		_, err := persistence.Open(ctx, tc.dsn)
		wantErr(t, err, persistence.ErrInvalidConfig)
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Open(%q) error %q does not mention %s", tc.dsn, err, tc.mention)
		}
	}
	_, err = persistence.Open(ctx, "nosuch://")
	wantErr(t, err, persistence.ErrUnknownProvider)

	// New works without the registry; a nil clock is the system clock.
	q := mem.New(nil)
	info, err = q.System().GetInfo(ctx)
	must(t, err)
	if info.CreatedAt.IsZero() || info.Driver != "mem" {
		t.Fatalf("New(nil) info = %+v", info)
	}
	must(t, q.Close())
}

func TestMissingSession(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	const id = "nobody"
	c := persistence.ClassQoS12
	ok, err := ss.Exists(ctx, id)
	if err != nil || ok {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	_, err = ss.PacketAppend(ctx, id, c, pkt(1))
	wantErr(t, err, persistence.ErrNotFound)
	_, err = ss.PacketGet(ctx, id, c, 1)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.PacketUpdate(ctx, id, c, pkt(1)), persistence.ErrNotFound)
	wantErr(t, ss.PacketDelete(ctx, id, c, 1), persistence.ErrNotFound)
	_, err = ss.PacketCount(ctx, id, c)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.PacketsForEach(ctx, id, c, func(*persistence.PersistedPacket) (bool, error) { return false, nil }), persistence.ErrNotFound)
	wantErr(t, ss.PacketsStore(ctx, id, &persistence.PersistedPackets{}), persistence.ErrNotFound)
	wantErr(t, ss.PacketsDelete(ctx, id), persistence.ErrNotFound)
	wantErr(t, ss.SubscriptionsStore(ctx, id, persistence.Subscription{Filter: "a"}), persistence.ErrNotFound)
	wantErr(t, ss.SubscriptionsDelete(ctx, id, "a"), persistence.ErrNotFound)
	wantErr(t, ss.SubscriptionsDeleteAll(ctx, id), persistence.ErrNotFound)
	_, err = ss.SubscriptionsLoad(ctx, id)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.StateStore(ctx, id, &persistence.SessionState{}), persistence.ErrNotFound)
	_, err = ss.StateGet(ctx, id)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.StateDelete(ctx, id), persistence.ErrNotFound)
	wantErr(t, ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: t0}), persistence.ErrNotFound)
	_, err = ss.ExpiryGet(ctx, id)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.ExpiryDelete(ctx, id), persistence.ErrNotFound)
	must(t, ss.Delete(ctx, id))
	must(t, ss.Delete(ctx, id))
	if n, err := ss.Count(ctx); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v; nothing may be created implicitly", n, err)
	}

	// Missing items of an existing session.
	must(t, ss.Create(ctx, id, persistence.SessionBase{CreatedAt: t0}))
	wantErr(t, ss.Create(ctx, id, persistence.SessionBase{}), persistence.ErrAlreadyExists)
	_, err = ss.PacketGet(ctx, id, c, 42)
	wantErr(t, err, persistence.ErrNotFound)
	wantErr(t, ss.PacketUpdate(ctx, id, c, &persistence.PersistedPacket{Seq: 42}), persistence.ErrNotFound)
	must(t, ss.PacketDelete(ctx, id, c, 42))
	_, err = ss.StateGet(ctx, id)
	wantErr(t, err, persistence.ErrNotFound)
	_, err = ss.ExpiryGet(ctx, id)
	wantErr(t, err, persistence.ErrNotFound)
	must(t, ss.StateDelete(ctx, id))
	must(t, ss.ExpiryDelete(ctx, id))
	must(t, ss.SubscriptionsDelete(ctx, id, "nope"))
	subs, err := ss.SubscriptionsLoad(ctx, id)
	if err != nil || subs == nil || len(subs) != 0 {
		t.Fatalf("SubscriptionsLoad = %#v, %v; want an empty slice", subs, err)
	}
	_, err = p.Retained().Get(ctx, "t")
	wantErr(t, err, persistence.ErrNotFound)
	must(t, p.Retained().Delete(ctx, "t"))
}

func TestInvalidArguments(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	for _, c := range []persistence.PacketClass{0, 5, 255} {
		_, err := ss.PacketAppend(ctx, "s", c, pkt(1))
		wantErr(t, err, persistence.ErrInvalidArgument)
		_, err = ss.PacketCount(ctx, "s", c)
		wantErr(t, err, persistence.ErrInvalidArgument)
		wantErr(t, ss.PacketsDelete(ctx, "s", c), persistence.ErrInvalidArgument)
	}
	_, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS0, nil)
	wantErr(t, err, persistence.ErrInvalidArgument)
	_, err = ss.PacketAppend(ctx, "s", persistence.ClassQoS0, &persistence.PersistedPacket{QoS: 3})
	wantErr(t, err, persistence.ErrInvalidArgument)
	wantErr(t, ss.SubscriptionsStore(ctx, "s", persistence.Subscription{Filter: "a"}, persistence.Subscription{}), persistence.ErrInvalidArgument)
	wantErr(t, ss.StateStore(ctx, "s", nil), persistence.ErrInvalidArgument)
	wantErr(t, ss.PacketsStore(ctx, "s", &persistence.PersistedPackets{UnAck: []*persistence.PersistedPacket{pkt(1), nil}}), persistence.ErrInvalidArgument)
	wantErr(t, p.Retained().Put(ctx, "", pkt(1)), persistence.ErrInvalidArgument)
	wantErr(t, p.Retained().Put(ctx, "t", nil), persistence.ErrInvalidArgument)
	_, err = ss.Apply(ctx, nil)
	wantErr(t, err, persistence.ErrInvalidArgument)
	// Nothing of the rejected calls was written.
	if subs, _ := ss.SubscriptionsLoad(ctx, "s"); len(subs) != 0 {
		t.Fatalf("rejected SubscriptionsStore stored %v", subs)
	}
	if n, _ := ss.PacketCount(ctx, "s", persistence.ClassUnAck); n != 0 {
		t.Fatalf("rejected PacketsStore stored %d packets", n)
	}
}

func TestPacketsFIFO(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	must(t, ss.Create(ctx, "s2", persistence.SessionBase{}))
	const n = 1000
	var last uint64
	seqs := map[persistence.PacketClass][]uint64{}
	for i := range n {
		for _, c := range persistence.PacketClasses {
			in := pkt(i)
			in.Seq = 777
			seq, err := ss.PacketAppend(ctx, "s", c, in)
			must(t, err)
			if in.Seq != 777 {
				t.Fatal("PacketAppend modified its argument")
			}
			if seq <= last {
				t.Fatalf("seq %d after %d: not strictly increasing", seq, last)
			}
			last = seq
			seqs[c] = append(seqs[c], seq)
			// Interleave another session: the counter is store-wide.
			_, err = ss.PacketAppend(ctx, "s2", c, pkt(i))
			must(t, err)
		}
	}
	for _, c := range persistence.PacketClasses {
		t.Run(c.String(), func(t *testing.T) {
			want := make([]string, 0, n)
			// Delete every third packet, and the first 400 (acks from the front).
			for i, seq := range seqs[c] {
				if i%3 == 0 || i < 400 {
					must(t, ss.PacketDelete(ctx, "s", c, seq))
					must(t, ss.PacketDelete(ctx, "s", c, seq)) // idempotent
				} else {
					want = append(want, fmt.Sprintf("packet-%d", i))
				}
			}
			// Update one in the middle: it keeps its position.
			upd := pkt(0)
			upd.Seq = seqs[c][500]
			upd.Data = []byte("pubrel")
			must(t, ss.PacketUpdate(ctx, "s", c, upd))
			want[slices.Index(want, "packet-500")] = "pubrel"

			got := packets(t, ss, "s", c)
			if !slices.Equal(dataOf(got), want) {
				t.Fatalf("order after deletes and update:\ngot  %v\nwant %v", dataOf(got), want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatalf("iteration not in seq order at %d", i)
				}
			}
			if cnt, err := ss.PacketCount(ctx, "s", c); err != nil || cnt != uint64(len(want)) {
				t.Fatalf("PacketCount = %d, %v; want %d", cnt, err, len(want))
			}
			g, err := ss.PacketGet(ctx, "s", c, seqs[c][500])
			must(t, err)
			if string(g.Data) != "pubrel" || g.Seq != seqs[c][500] {
				t.Fatalf("PacketGet = %+v", g)
			}
			_, err = ss.PacketGet(ctx, "s", c, seqs[c][0])
			wantErr(t, err, persistence.ErrNotFound)
			// A seq of another class is not found in this one.
			other := persistence.ClassQoS0
			if c == other {
				other = persistence.ClassIncoming
			}
			_, err = ss.PacketGet(ctx, "s", c, seqs[other][999])
			wantErr(t, err, persistence.ErrNotFound)
		})
	}
	// The other session is untouched.
	for _, c := range persistence.PacketClasses {
		if got := packets(t, ss, "s2", c); len(got) != n {
			t.Fatalf("s2 %s has %d packets", c, len(got))
		}
	}
	// New appends after deleting everything still get larger seqs.
	must(t, ss.PacketsDelete(ctx, "s", persistence.ClassQoS0))
	seq, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS0, pkt(1))
	must(t, err)
	if seq <= last {
		t.Fatalf("seq %d reused after PacketsDelete (last was %d)", seq, last)
	}
	if cnt, _ := ss.PacketCount(ctx, "s", persistence.ClassQoS12); cnt == 0 {
		t.Fatal("PacketsDelete of one class emptied another")
	}
	must(t, ss.PacketsDelete(ctx, "s"))
	for _, c := range persistence.PacketClasses {
		if cnt, _ := ss.PacketCount(ctx, "s", c); cnt != 0 {
			t.Fatalf("PacketsDelete() left %d %s packets", cnt, c)
		}
	}
}

func TestPacketsStore(t *testing.T) {
	ctx := testCtx(t)
	ss := open(t).Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	pp := &persistence.PersistedPackets{
		QoS0:     []*persistence.PersistedPacket{pkt(1), pkt(2)},
		UnAck:    []*persistence.PersistedPacket{pkt(3)},
		Incoming: []*persistence.PersistedPacket{pkt(4), pkt(5), pkt(6)},
	}
	must(t, ss.PacketsStore(ctx, "s", pp))
	pp.QoS0[0].Data[0] = 'X'
	want := map[persistence.PacketClass][]string{
		persistence.ClassQoS0:     {"packet-1", "packet-2"},
		persistence.ClassQoS12:    nil,
		persistence.ClassUnAck:    {"packet-3"},
		persistence.ClassIncoming: {"packet-4", "packet-5", "packet-6"},
	}
	for c, w := range want {
		if got := dataOf(packets(t, ss, "s", c)); !slices.Equal(got, w) {
			t.Errorf("%s: got %v, want %v", c, got, w)
		}
	}
}

func TestCopies(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	in := pkt(1)
	seq, err := ss.PacketAppend(ctx, "s", persistence.ClassUnAck, in)
	must(t, err)
	in.Data[0] = 'X'
	out, err := ss.PacketGet(ctx, "s", persistence.ClassUnAck, seq)
	must(t, err)
	if string(out.Data) != "packet-1" {
		t.Fatalf("stored packet changed with the caller's slice: %q", out.Data)
	}
	out.Data[0] = 'Y'
	must(t, ss.PacketsForEach(ctx, "s", persistence.ClassUnAck, func(p *persistence.PersistedPacket) (bool, error) {
		if string(p.Data) != "packet-1" {
			t.Errorf("stored packet changed with a returned slice: %q", p.Data)
		}
		p.Data[0] = 'Z'
		return false, nil
	}))
	if g, _ := ss.PacketGet(ctx, "s", persistence.ClassUnAck, seq); string(g.Data) != "packet-1" {
		t.Fatalf("stored packet changed by a callback: %q", g.Data)
	}

	st := &persistence.SessionState{Username: "u", Will: pkt(9), UserData: []byte("ud")}
	must(t, ss.StateStore(ctx, "s", st))
	st.Will.Data[0] = 'X'
	st.UserData[0] = 'X'
	got, err := ss.StateGet(ctx, "s")
	must(t, err)
	if string(got.Will.Data) != "packet-9" || string(got.UserData) != "ud" {
		t.Fatalf("stored state changed with the caller's slices: %+v", got)
	}
	got.Will.Data[0] = 'Y'
	if again, _ := ss.StateGet(ctx, "s"); string(again.Will.Data) != "packet-9" {
		t.Fatal("stored state changed with a returned slice")
	}

	r := p.Retained()
	rin := pkt(3)
	must(t, r.Put(ctx, "a/b", rin))
	rin.Data[0] = 'X'
	rout, err := r.Get(ctx, "a/b")
	must(t, err)
	if string(rout.Data) != "packet-3" {
		t.Fatal("stored retained message changed with the caller's slice")
	}
	rout.Data[0] = 'Y'
	if again, _ := r.Get(ctx, "a/b"); string(again.Data) != "packet-3" {
		t.Fatal("stored retained message changed with a returned slice")
	}

	// A batch applied twice stores two independent packets.
	var b persistence.Batch
	b.PacketAppend("s", persistence.ClassQoS0, pkt(5))
	s1, err := ss.Apply(ctx, &b)
	must(t, err)
	s2, err := ss.Apply(ctx, &b)
	must(t, err)
	if s1[0] == s2[0] {
		t.Fatal("re-applied batch reused a seq")
	}
	if g, _ := ss.PacketGet(ctx, "s", persistence.ClassQoS0, s1[0]); g.Seq != s1[0] {
		t.Fatalf("first packet's seq changed to %d by the second Apply", g.Seq)
	}
}

func TestCallbacksRunUnlocked(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	r := p.Retained()
	for i := range 5 {
		id := fmt.Sprint("s", i)
		check(t, ss.Create(ctx, id, persistence.SessionBase{}))
		check(t, ss.SubscriptionsStore(ctx, id, persistence.Subscription{Filter: "a/#", QoS: 1}))
		check(t, ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: t0.Add(time.Duration(i) * time.Second)}))
		for j := range 5 {
			_, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, pkt(j))
			check(t, err)
		}
	}
	check(t, r.Put(ctx, "a/b", pkt(1)))

	// Every kind of call from inside every kind of callback, including on another
	// goroutine (a held lock would deadlock it even where a re-entrant one would not).
	busy := func(id string) {
		_, err := ss.PacketAppend(ctx, id, persistence.ClassQoS0, pkt(1))
		check(t, err)
		_, err = ss.Count(ctx)
		check(t, err)
		check(t, r.Put(ctx, "x/y", pkt(2)))
		var wg sync.WaitGroup
		wg.Go(func() {
			check(t, ss.Create(ctx, "other-"+id, persistence.SessionBase{}))
			check(t, ss.Delete(ctx, "other-"+id))
			check(t, r.Delete(ctx, "x/y"))
		})
		wg.Wait()
	}
	within(t, ctx, func() {
		visited := 0
		check(t, ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
			visited++
			busy(ls.ID)
			return ss.Delete(ctx, ls.ID) // delete the session being visited
		}))
		if visited != 5 {
			t.Errorf("LoadForEach visited %d sessions, want 5", visited)
		}
	})
	if n, _ := ss.Count(ctx); n != 0 {
		t.Fatalf("Count = %d after deleting every session from LoadForEach", n)
	}

	check(t, ss.Create(ctx, "q", persistence.SessionBase{}))
	for j := range 10 {
		_, err := ss.PacketAppend(ctx, "q", persistence.ClassUnAck, pkt(j))
		check(t, err)
	}
	within(t, ctx, func() {
		var got []string
		check(t, ss.PacketsForEach(ctx, "q", persistence.ClassUnAck, func(pk *persistence.PersistedPacket) (bool, error) {
			got = append(got, string(pk.Data))
			busy("q")
			switch string(pk.Data) {
			case "packet-2":
				// Delete a later packet: it is not visited.
				var lastSeq uint64
				check(t, ss.PacketsForEach(ctx, "q", persistence.ClassUnAck, func(pk *persistence.PersistedPacket) (bool, error) {
					lastSeq = pk.Seq
					return false, nil
				}))
				check(t, ss.PacketDelete(ctx, "q", persistence.ClassUnAck, lastSeq))
			case "packet-5":
				return true, ss.Delete(ctx, "q") // delete the session being iterated
			}
			return true, nil
		}))
		if want := []string{"packet-0", "packet-1", "packet-2", "packet-3", "packet-4", "packet-5"}; !slices.Equal(got, want) {
			t.Errorf("PacketsForEach visited %v, want %v", got, want)
		}
	})

	check(t, ss.Create(ctx, "e1", persistence.SessionBase{}))
	check(t, ss.ExpiryStore(ctx, "e1", persistence.SessionExpiry{WillAt: t0}))
	within(t, ctx, func() {
		check(t, ss.ExpiredForEach(ctx, t0, func(id string, e persistence.SessionExpiry) error {
			busy(id)
			return ss.Delete(ctx, id)
		}))
	})
	must(t, ss.Create(ctx, "r", persistence.SessionBase{}))
	within(t, ctx, func() {
		for _, load := range []func(persistence.RetainedLoader) error{
			func(fn persistence.RetainedLoader) error { return r.Load(ctx, fn) },
			func(fn persistence.RetainedLoader) error { return r.LoadMatching(ctx, []string{"#"}, fn) },
		} {
			check(t, r.Put(ctx, "a/b", pkt(1)))
			calls := 0
			check(t, load(func(m *persistence.RetainedMessage) error {
				calls++
				busy("r")
				check(t, r.Wipe(ctx))
				return nil
			}))
			if calls != 1 {
				t.Errorf("retained load called back %d times, want 1", calls)
			}
		}
	})
}

func TestIterationErrors(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	for j := range 10 {
		_, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS12, pkt(j))
		must(t, err)
	}
	// A callback that moves every packet to the tail terminates: packets appended
	// during the iteration are not visited.
	calls := 0
	must(t, ss.PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		calls++
		_, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS12, pk)
		return true, err
	}))
	if calls != 10 {
		t.Fatalf("re-queueing iteration made %d calls, want 10", calls)
	}
	boom := errors.New("boom")
	calls = 0
	err := ss.PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		calls++
		if calls == 4 {
			return true, boom // deletes this one too
		}
		return calls%2 == 1, nil // deletes packets 0 and 2
	})
	if !errors.Is(err, boom) || calls != 4 {
		t.Fatalf("PacketsForEach = %v after %d calls, want boom after 4", err, calls)
	}
	want := []string{"packet-1", "packet-4", "packet-5", "packet-6", "packet-7", "packet-8", "packet-9"}
	if got := dataOf(packets(t, ss, "s", persistence.ClassQoS12)); !slices.Equal(got, want) {
		t.Fatalf("after the failing iteration: %v, want %v", got, want)
	}
	calls = 0
	must(t, ss.PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		calls++
		return true, persistence.ErrStopIteration
	}))
	if calls != 1 {
		t.Fatalf("ErrStopIteration did not stop the iteration: %d calls", calls)
	}
	if n, _ := ss.PacketCount(ctx, "s", persistence.ClassQoS12); n != 6 {
		t.Fatalf("count = %d, want 6 (deletion of the stopping callback applied)", n)
	}

	must(t, ss.Create(ctx, "t", persistence.SessionBase{}))
	calls = 0
	if err := ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { calls++; return boom }); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("LoadForEach = %v after %d calls", err, calls)
	}
	calls = 0
	if err := ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { calls++; return persistence.ErrStopIteration }); err != nil || calls != 1 {
		t.Fatalf("LoadForEach = %v after %d calls", err, calls)
	}

	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = ss.PacketsForEach(cctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		calls++
		cancel()
		return true, nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("PacketsForEach with a context cancelled in the callback = %v after %d calls", err, calls)
	}
	if n, _ := ss.PacketCount(ctx, "s", persistence.ClassQoS12); n != 5 {
		t.Fatalf("count = %d, want 5: the deletion asked for before the cancel is applied", n)
	}
}

func TestDeleteCascades(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "a", persistence.SessionBase{}))
	must(t, ss.Create(ctx, "ab", persistence.SessionBase{})) // "a" is a prefix of it
	for _, id := range []string{"a", "ab"} {
		for _, c := range persistence.PacketClasses {
			_, err := ss.PacketAppend(ctx, id, c, pkt(1))
			must(t, err)
		}
		must(t, ss.SubscriptionsStore(ctx, id, persistence.Subscription{Filter: "x"}))
		must(t, ss.StateStore(ctx, id, &persistence.SessionState{Username: id}))
		must(t, ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: t0}))
	}
	must(t, p.Retained().Put(ctx, "x", pkt(1)))
	before := snapshot(t, p)
	must(t, ss.Delete(ctx, "a"))
	must(t, ss.Create(ctx, "a", persistence.SessionBase{}))
	after := snapshot(t, p)
	if a := after.Sessions["a"]; !reflect.DeepEqual(a, sessionDump{Subs: []persistence.Subscription{}}) {
		t.Fatalf("re-created session kept data of the deleted one: %+v", a)
	}
	if !reflect.DeepEqual(before.Sessions["ab"], after.Sessions["ab"]) || !reflect.DeepEqual(before.Retained, after.Retained) {
		t.Fatal("Delete touched another session or the retained messages")
	}
	var expired []string
	must(t, ss.ExpiredForEach(ctx, t0, func(id string, _ persistence.SessionExpiry) error {
		expired = append(expired, id)
		return nil
	}))
	if !slices.Equal(expired, []string{"ab"}) {
		t.Fatalf("expiry index after Delete: %v", expired)
	}
}

func TestApplyAtomic(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	seq1, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS12, pkt(1))
	must(t, err)
	seq2, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS12, pkt(2))
	must(t, err)
	must(t, ss.SubscriptionsStore(ctx, "s", persistence.Subscription{Filter: "f"}))

	upd := func(seq uint64) *persistence.PersistedPacket { q := pkt(9); q.Seq = seq; return q }
	// Each batch does some valid work first, then fails.
	prefix := func() *persistence.Batch {
		b := new(persistence.Batch)
		b.PacketAppend("s", persistence.ClassUnAck, pkt(3)).
			PacketDelete("s", persistence.ClassQoS12, seq1).
			SubscriptionDelete("s", "f").
			StateStore("s", &persistence.SessionState{Username: "x"}).
			ExpiryStore("s", persistence.SessionExpiry{ExpireAt: t0}).
			Create("new", persistence.SessionBase{})
		return b
	}
	for _, tc := range []struct {
		name string
		b    *persistence.Batch
		want error
	}{
		{"MissingSession", prefix().PacketAppend("nobody", persistence.ClassQoS0, pkt(1)), persistence.ErrNotFound},
		{"DeletedInBatch", prefix().Delete("s").StateStore("s", &persistence.SessionState{}), persistence.ErrNotFound},
		{"CreateExisting", prefix().Create("s", persistence.SessionBase{}), persistence.ErrAlreadyExists},
		{"CreateTwice", prefix().Create("new", persistence.SessionBase{}), persistence.ErrAlreadyExists},
		{"UpdateMissing", prefix().PacketUpdate("s", persistence.ClassQoS12, upd(12345)), persistence.ErrNotFound},
		{"UpdateDeletedInBatch", prefix().PacketUpdate("s", persistence.ClassQoS12, upd(seq1)), persistence.ErrNotFound},
		{"UpdateClearedInBatch", prefix().PacketsDelete("s", persistence.ClassQoS12).PacketUpdate("s", persistence.ClassQoS12, upd(seq2)), persistence.ErrNotFound},
		{"UpdateAfterRecreate", prefix().Delete("s").Create("s", persistence.SessionBase{}).PacketUpdate("s", persistence.ClassQoS12, upd(seq2)), persistence.ErrNotFound},
		{"UpdateWrongClass", prefix().PacketUpdate("s", persistence.ClassUnAck, upd(seq2)), persistence.ErrNotFound},
		{"InvalidClass", prefix().PacketAppend("s", 9, pkt(1)), persistence.ErrInvalidArgument},
		{"InvalidSubscription", prefix().SubscriptionStore("s", persistence.Subscription{}), persistence.ErrInvalidArgument},
		{"NilState", prefix().StateStore("s", nil), persistence.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, p)
			seqs, err := ss.Apply(ctx, tc.b)
			wantErr(t, err, tc.want)
			if seqs != nil {
				t.Errorf("failed Apply returned seqs %v", seqs)
			}
			if after := snapshot(t, p); !reflect.DeepEqual(before, after) {
				t.Fatalf("failed batch changed the store:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}

	// A valid batch: move a packet to in-flight, recreate a session, fan out.
	var b persistence.Batch
	b.PacketDelete("s", persistence.ClassQoS12, seq1).
		PacketAppend("s", persistence.ClassUnAck, pkt(1)).
		PacketUpdate("s", persistence.ClassQoS12, upd(seq2)).
		Create("n", persistence.SessionBase{ProtocolVersion: 5}).
		PacketAppend("n", persistence.ClassQoS0, pkt(7)).
		Delete("n").
		Create("n", persistence.SessionBase{ProtocolVersion: 4}).
		PacketAppend("n", persistence.ClassQoS0, pkt(8)).
		SubscriptionsDeleteAll("s").
		ExpiryStore("n", persistence.SessionExpiry{WillAt: t0})
	seqs, err := ss.Apply(ctx, &b)
	must(t, err)
	if len(seqs) != 3 || !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) {
		t.Fatalf("Apply seqs = %v", seqs)
	}
	d := snapshot(t, p)
	s, n := d.Sessions["s"], d.Sessions["n"]
	if got := dataOf(packets(t, ss, "s", persistence.ClassQoS12)); !slices.Equal(got, []string{"packet-9"}) {
		t.Errorf("s QoS12 = %v", got)
	}
	if len(s.Packets[persistence.ClassUnAck-1]) != 1 || s.Packets[persistence.ClassUnAck-1][0].Seq != seqs[0] {
		t.Errorf("s UnAck = %+v, want the packet of seq %d", s.Packets[persistence.ClassUnAck-1], seqs[0])
	}
	if len(s.Subs) != 0 {
		t.Errorf("s subscriptions = %v", s.Subs)
	}
	if n.Base.ProtocolVersion != 4 || len(n.Packets[0]) != 1 || n.Packets[0][0].Seq != seqs[2] || n.Expiry == nil {
		t.Errorf("n = %+v", n)
	}
	// An empty batch is fine.
	if seqs, err := ss.Apply(ctx, new(persistence.Batch)); err != nil || len(seqs) != 0 {
		t.Fatalf("empty Apply = %v, %v", seqs, err)
	}
}

func TestClose(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ssBefore, rBefore, syBefore := p.Sessions(), p.Retained(), p.System()
	must(t, ssBefore.Create(ctx, "s", persistence.SessionBase{}))
	must(t, p.Close())
	must(t, p.Close())
	for _, ss := range []persistence.Sessions{ssBefore, p.Sessions()} {
		calls := map[string]error{}
		calls["Create"] = ss.Create(ctx, "s2", persistence.SessionBase{})
		_, calls["Exists"] = ss.Exists(ctx, "s")
		_, calls["Count"] = ss.Count(ctx)
		calls["LoadForEach"] = ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { return nil })
		calls["Delete"] = ss.Delete(ctx, "s")
		_, calls["Apply"] = ss.Apply(ctx, new(persistence.Batch).Create("x", persistence.SessionBase{}))
		_, calls["PacketAppend"] = ss.PacketAppend(ctx, "s", persistence.ClassQoS0, pkt(1))
		_, calls["PacketGet"] = ss.PacketGet(ctx, "s", persistence.ClassQoS0, 1)
		calls["PacketUpdate"] = ss.PacketUpdate(ctx, "s", persistence.ClassQoS0, pkt(1))
		calls["PacketDelete"] = ss.PacketDelete(ctx, "s", persistence.ClassQoS0, 1)
		_, calls["PacketCount"] = ss.PacketCount(ctx, "s", persistence.ClassQoS0)
		calls["PacketsForEach"] = ss.PacketsForEach(ctx, "s", persistence.ClassQoS0, func(*persistence.PersistedPacket) (bool, error) { return false, nil })
		calls["PacketsStore"] = ss.PacketsStore(ctx, "s", &persistence.PersistedPackets{})
		calls["PacketsDelete"] = ss.PacketsDelete(ctx, "s")
		calls["SubscriptionsStore"] = ss.SubscriptionsStore(ctx, "s", persistence.Subscription{Filter: "a"})
		calls["SubscriptionsDelete"] = ss.SubscriptionsDelete(ctx, "s", "a")
		calls["SubscriptionsDeleteAll"] = ss.SubscriptionsDeleteAll(ctx, "s")
		_, calls["SubscriptionsLoad"] = ss.SubscriptionsLoad(ctx, "s")
		calls["StateStore"] = ss.StateStore(ctx, "s", &persistence.SessionState{})
		_, calls["StateGet"] = ss.StateGet(ctx, "s")
		calls["StateDelete"] = ss.StateDelete(ctx, "s")
		calls["ExpiryStore"] = ss.ExpiryStore(ctx, "s", persistence.SessionExpiry{ExpireAt: t0})
		_, calls["ExpiryGet"] = ss.ExpiryGet(ctx, "s")
		calls["ExpiryDelete"] = ss.ExpiryDelete(ctx, "s")
		calls["ExpiredForEach"] = ss.ExpiredForEach(ctx, t0, func(string, persistence.SessionExpiry) error { return nil })
		for name, err := range calls {
			if !errors.Is(err, persistence.ErrClosed) {
				t.Errorf("Sessions.%s after Close = %v, want ErrClosed", name, err)
			}
		}
	}
	for _, r := range []persistence.Retained{rBefore, p.Retained()} {
		calls := map[string]error{}
		calls["Put"] = r.Put(ctx, "t", pkt(1))
		_, calls["Get"] = r.Get(ctx, "t")
		calls["Delete"] = r.Delete(ctx, "t")
		calls["LoadMatching"] = r.LoadMatching(ctx, []string{"#"}, func(*persistence.RetainedMessage) error { return nil })
		calls["Load"] = r.Load(ctx, func(*persistence.RetainedMessage) error { return nil })
		calls["Store"] = r.Store(ctx, nil)
		_, calls["Count"] = r.Count(ctx)
		calls["Wipe"] = r.Wipe(ctx)
		for name, err := range calls {
			if !errors.Is(err, persistence.ErrClosed) {
				t.Errorf("Retained.%s after Close = %v, want ErrClosed", name, err)
			}
		}
	}
	for _, sy := range []persistence.System{syBefore, p.System()} {
		if _, err := sy.GetInfo(ctx); !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("System.GetInfo after Close = %v, want ErrClosed", err)
		}
	}
}

func TestCloseDuringIteration(t *testing.T) {
	ctx := testCtx(t)
	p := mem.New(fakeClock{t0})
	ss := p.Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	for j := range 3 {
		_, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS0, pkt(j))
		must(t, err)
	}
	within(t, ctx, func() {
		err := ss.PacketsForEach(ctx, "s", persistence.ClassQoS0, func(*persistence.PersistedPacket) (bool, error) {
			return true, p.Close()
		})
		if !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("PacketsForEach after a Close from its callback = %v, want ErrClosed", err)
		}
	})
}

func TestContextDone(t *testing.T) {
	p := open(t)
	ss := p.Sessions()
	ctx := testCtx(t)
	must(t, ss.Create(ctx, "s", persistence.SessionBase{}))
	seq, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS0, pkt(1))
	must(t, err)
	before := snapshot(t, p)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, t0)
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		errs := []error{
			ss.Create(c.ctx, "n", persistence.SessionBase{}),
			ss.Delete(c.ctx, "s"),
			ss.PacketDelete(c.ctx, "s", persistence.ClassQoS0, seq),
			ss.PacketsDelete(c.ctx, "s"),
			ss.SubscriptionsStore(c.ctx, "s", persistence.Subscription{Filter: "a"}),
			ss.StateStore(c.ctx, "s", &persistence.SessionState{}),
			ss.ExpiryStore(c.ctx, "s", persistence.SessionExpiry{ExpireAt: t0}),
			ss.PacketsStore(c.ctx, "s", &persistence.PersistedPackets{QoS0: []*persistence.PersistedPacket{pkt(2)}}),
			p.Retained().Put(c.ctx, "t", pkt(1)),
			p.Retained().Store(c.ctx, []*persistence.RetainedMessage{{Topic: "t", Packet: pkt(1)}}),
			ss.LoadForEach(c.ctx, func(*persistence.LoadedSession) error { t.Error("callback ran"); return nil }),
		}
		_, err := ss.PacketAppend(c.ctx, "s", persistence.ClassQoS0, pkt(2))
		errs = append(errs, err)
		_, err = ss.Apply(c.ctx, new(persistence.Batch).Create("n", persistence.SessionBase{}))
		errs = append(errs, err)
		_, err = p.System().GetInfo(c.ctx)
		errs = append(errs, err)
		for i, err := range errs {
			if !errors.Is(err, c.want) {
				t.Errorf("call %d with a done context = %v, want %v", i, err, c.want)
			}
		}
	}
	if after := snapshot(t, p); !reflect.DeepEqual(before, after) {
		t.Fatalf("calls with a done context changed the store")
	}
}

func TestExpiredForEach(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	deadlines := map[string]persistence.SessionExpiry{
		"e5":    {ExpireAt: at(5)},
		"w2":    {WillAt: at(2), ExpireAt: at(100)}, // due by its will
		"both3": {WillAt: at(3), ExpireAt: at(3)},
		"e1":    {ExpireAt: at(1)},
		"late":  {ExpireAt: at(11)},
		"w10":   {WillAt: at(10)},
		"never": {},
	}
	for id, e := range deadlines {
		must(t, ss.Create(ctx, id, persistence.SessionBase{}))
		must(t, ss.ExpiryStore(ctx, id, e))
	}
	// A deadline carrying a monotonic clock reading is ordered by its wall clock.
	mono := time.Now()
	mono = mono.Add(at(5).Sub(mono))
	must(t, ss.ExpiryStore(ctx, "e5", persistence.SessionExpiry{ExpireAt: mono}))
	got, err := ss.ExpiryGet(ctx, "w2")
	must(t, err)
	if got != deadlines["w2"] {
		t.Fatalf("ExpiryGet = %+v", got)
	}
	_, err = ss.ExpiryGet(ctx, "never") // a zero expiry is no expiry
	wantErr(t, err, persistence.ErrNotFound)

	collect := func(now time.Time) []string {
		var ids []string
		must(t, ss.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error {
			if !e.Due(now) {
				t.Errorf("%s handed over with %+v, not due at %v", id, e, now)
			}
			ids = append(ids, id)
			return nil
		}))
		return ids
	}
	if ids := collect(at(0)); len(ids) != 0 {
		t.Fatalf("at 0: %v", ids)
	}
	if ids, want := collect(at(5)), []string{"e1", "w2", "both3", "e5"}; !slices.Equal(ids, want) {
		t.Fatalf("at 5: %v, want %v (earliest first, deadline inclusive)", ids, want)
	}

	// fn deletes sessions, moves deadlines (its own and a later one's), and is never
	// called twice for a session in one call.
	var ids []string
	must(t, ss.ExpiredForEach(ctx, at(10), func(id string, e persistence.SessionExpiry) error {
		ids = append(ids, id)
		switch id {
		case "e1":
			return ss.Delete(ctx, id)
		case "w2": // will published: keep the session's own deadline, now in the future
			must(t, ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: e.ExpireAt}))
			must(t, ss.ExpiryStore(ctx, "e5", persistence.SessionExpiry{ExpireAt: at(50)})) // not visited now
		case "both3": // re-stored still due: not visited again in this call
			return ss.ExpiryStore(ctx, id, persistence.SessionExpiry{ExpireAt: at(4)})
		}
		return nil
	}))
	if want := []string{"e1", "w2", "both3", "w10"}; !slices.Equal(ids, want) {
		t.Fatalf("at 10 with changes: %v, want %v", ids, want)
	}
	if ids, want := collect(at(1000)), []string{"both3", "w10", "late", "e5", "w2"}; !slices.Equal(ids, want) {
		t.Fatalf("at 1000: %v, want %v", ids, want)
	}
	must(t, ss.ExpiryDelete(ctx, "late"))
	must(t, ss.ExpiryStore(ctx, "w10", persistence.SessionExpiry{}))
	boom := errors.New("boom")
	calls := 0
	err = ss.ExpiredForEach(ctx, at(1000), func(string, persistence.SessionExpiry) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("ExpiredForEach = %v after %d calls", err, calls)
	}
	if ids, want := collect(at(1000)), []string{"both3", "e5", "w2"}; !slices.Equal(ids, want) {
		t.Fatalf("after deletes: %v, want %v", ids, want)
	}
}

func TestSubscriptionsAndState(t *testing.T) {
	ctx := testCtx(t)
	ss := open(t).Sessions()
	must(t, ss.Create(ctx, "s", persistence.SessionBase{CreatedAt: t0, ProtocolVersion: 5}))
	must(t, ss.SubscriptionsStore(ctx, "s",
		persistence.Subscription{Filter: "a/+", QoS: 0},
		persistence.Subscription{Filter: "b/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 7},
		persistence.Subscription{Filter: "a/+", QoS: 2}, // last one wins
		persistence.Subscription{Filter: "$share/g/c", QoS: 1},
	))
	must(t, ss.SubscriptionsDelete(ctx, "s", "$share/g/c", "missing"))
	subs, err := ss.SubscriptionsLoad(ctx, "s")
	must(t, err)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Filter < subs[j].Filter })
	want := []persistence.Subscription{
		{Filter: "a/+", QoS: 2},
		{Filter: "b/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 7},
	}
	if !reflect.DeepEqual(subs, want) {
		t.Fatalf("subscriptions = %+v, want %+v", subs, want)
	}
	var loaded *persistence.LoadedSession
	must(t, ss.StateStore(ctx, "s", &persistence.SessionState{ProtocolVersion: 5, ExpiryInterval: -1, Username: "u\x00", WillDelay: time.Second}))
	must(t, ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error { loaded = ls; return nil }))
	if loaded.ID != "s" || loaded.Base.CreatedAt != t0 || loaded.State.Username != "u\x00" || len(loaded.Subscriptions) != 2 || loaded.Expiry != nil {
		t.Fatalf("loaded %+v", loaded)
	}
	must(t, ss.SubscriptionsDeleteAll(ctx, "s"))
	must(t, ss.StateDelete(ctx, "s"))
	if subs, _ := ss.SubscriptionsLoad(ctx, "s"); len(subs) != 0 {
		t.Fatal("SubscriptionsDeleteAll left subscriptions")
	}
	if _, err := ss.StateGet(ctx, "s"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatal("StateDelete left the state")
	}
}

func TestRetained(t *testing.T) {
	ctx := testCtx(t)
	r := open(t).Retained()
	topics := []string{"hello/world", "hello", "hello/", "$SYS/x", "a/b/c", "hel/lo", "a\x00b"}
	for i, tp := range topics {
		must(t, r.Put(ctx, tp, pkt(i)))
	}
	must(t, r.Put(ctx, "hello", pkt(100))) // replaces
	match := func(filters ...string) []string {
		var out []string
		must(t, r.LoadMatching(ctx, filters, func(m *persistence.RetainedMessage) error {
			out = append(out, m.Topic)
			return nil
		}))
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, nil},
		{[]string{"hello"}, []string{"hello"}},
		{[]string{"hello", "hello", "nope"}, []string{"hello"}},
		{[]string{"#"}, []string{"a\x00b", "a/b/c", "hel/lo", "hello", "hello/", "hello/world"}},
		{[]string{"hello/#"}, []string{"hello", "hello/", "hello/world"}},
		{[]string{"hello/+", "hello/world", "hel/#"}, []string{"hel/lo", "hello/", "hello/world"}},
		{[]string{"+/+"}, []string{"hel/lo", "hello/", "hello/world"}},
		{[]string{"$SYS/#"}, []string{"$SYS/x"}},
		{[]string{"+/x"}, nil},
		{[]string{"a\x00b"}, []string{"a\x00b"}},
		{[]string{"a/#/c"}, nil},
	} {
		if got := match(tc.filters...); !slices.Equal(got, tc.want) {
			t.Errorf("LoadMatching(%q) = %q, want %q", tc.filters, got, tc.want)
		}
	}
	g, err := r.Get(ctx, "hello")
	must(t, err)
	if string(g.Data) != "packet-100" {
		t.Fatalf("Get after replace = %q", g.Data)
	}
	n, err := r.Count(ctx)
	must(t, err)
	if n != uint64(len(topics)) {
		t.Fatalf("Count = %d", n)
	}
	// Store replaces everything, atomically.
	err = r.Store(ctx, []*persistence.RetainedMessage{{Topic: "x", Packet: pkt(1)}, {Topic: "", Packet: pkt(2)}})
	wantErr(t, err, persistence.ErrInvalidArgument)
	if n2, _ := r.Count(ctx); n2 != n {
		t.Fatal("failed Store changed the store")
	}
	must(t, r.Store(ctx, []*persistence.RetainedMessage{{Topic: "x", Packet: pkt(1)}, {Topic: "y", Packet: pkt(2)}, {Topic: "x", Packet: pkt(3)}}))
	if got := match("#"); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("after Store: %v", got)
	}
	if g, _ := r.Get(ctx, "x"); !bytes.Equal(g.Data, []byte("packet-3")) {
		t.Fatalf("Store: later message for a topic must win, got %q", g.Data)
	}
	must(t, r.Wipe(ctx))
	if n, _ := r.Count(ctx); n != 0 {
		t.Fatal("Wipe left messages")
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := testCtx(t)
	p := open(t)
	ss := p.Sessions()
	const writers, per = 16, 200
	ids := []string{"shared", "a", "b", "c"}
	for _, id := range ids {
		must(t, ss.Create(ctx, id, persistence.SessionBase{}))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				for _, id := range []string{"shared", ids[1+w%3]} {
					q := &persistence.PersistedPacket{QoS: 1, Data: fmt.Appendf(nil, "%d/%d", w, i)}
					if _, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, q); err != nil {
						t.Error(err)
						return
					}
				}
				if i%10 == 0 {
					_ = ss.SubscriptionsStore(ctx, ids[w%4], persistence.Subscription{Filter: fmt.Sprint(w)})
					_, _ = ss.Count(ctx)
					_ = p.Retained().Put(ctx, fmt.Sprint(w), &persistence.PersistedPacket{})
				}
			}
		})
	}
	// Concurrent readers and an acknowledging consumer.
	wg.Go(func() {
		for range 20 {
			_ = ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { return nil })
			_ = ss.PacketsForEach(ctx, "a", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
				return false, nil
			})
		}
	})
	wg.Wait()
	// Each writer's packets appear in its own order, in every session.
	for _, id := range ids {
		next := make([]int, writers)
		var last uint64
		for _, q := range packets(t, ss, id, persistence.ClassQoS12) {
			var w, i int
			fmt.Sscanf(string(q.Data), "%d/%d", &w, &i)
			if i != next[w] || q.Seq <= last {
				t.Fatalf("%s: writer %d packet %d (seq %d) out of order", id, w, i, q.Seq)
			}
			next[w]++
			last = q.Seq
		}
	}
	if n, _ := ss.PacketCount(ctx, "shared", persistence.ClassQoS12); n != writers*per {
		t.Fatalf("shared has %d packets, want %d", n, writers*per)
	}
}

func benchStore(b *testing.B) persistence.Provider {
	p := mem.New(fakeClock{t0})
	b.Cleanup(func() { p.Close() })
	return p
}

func BenchmarkPacketAppend(b *testing.B) {
	ctx := context.Background()
	data := make([]byte, 256)
	b.Run("Writers1", func(b *testing.B) {
		ss := benchStore(b).Sessions()
		must(b, ss.Create(ctx, "s", persistence.SessionBase{}))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ss.PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, shared := range []bool{false, true} {
		name := "Writers64/OwnSession"
		if shared {
			name = "Writers64/SharedSession"
		}
		b.Run(name, func(b *testing.B) {
			ss := benchStore(b).Sessions()
			for i := range 64 {
				must(b, ss.Create(ctx, fmt.Sprint(i), persistence.SessionBase{}))
			}
			var next atomicInt
			b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprint(next.add() % 64)
				if shared {
					id = "0"
				}
				for pb.Next() {
					if _, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: data}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkIterateAndAck100k(b *testing.B) {
	ctx := context.Background()
	data := make([]byte, 64)
	ss := benchStore(b).Sessions()
	must(b, ss.Create(ctx, "s", persistence.SessionBase{}))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		pp := &persistence.PersistedPackets{QoS12: make([]*persistence.PersistedPacket, 100_000)}
		for i := range pp.QoS12 {
			pp.QoS12[i] = &persistence.PersistedPacket{QoS: 1, Data: data}
		}
		must(b, ss.PacketsStore(ctx, "s", pp))
		b.StartTimer()
		n := 0
		must(b, ss.PacketsForEach(ctx, "s", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
			n++
			return true, nil
		}))
		if n != 100_000 {
			b.Fatalf("visited %d", n)
		}
	}
}

func BenchmarkRetainedLoadWildcard100k(b *testing.B) {
	ctx := context.Background()
	r := benchStore(b).Retained()
	msgs := make([]*persistence.RetainedMessage, 0, 100_000)
	for i := range 100_000 {
		msgs = append(msgs, &persistence.RetainedMessage{Topic: fmt.Sprintf("site/%d/sensor/%d", i%100, i), Packet: &persistence.PersistedPacket{Data: []byte("x")}})
	}
	must(b, r.Store(ctx, msgs))
	for _, f := range []string{"site/7/#", "site/+/sensor/12345", "#"} {
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				must(b, r.LoadMatching(ctx, []string{f}, func(*persistence.RetainedMessage) error { return nil }))
			}
		})
	}
}

func BenchmarkCountLoadForEach100k(b *testing.B) {
	ctx := context.Background()
	ss := benchStore(b).Sessions()
	for i := range 100_000 {
		id := fmt.Sprint("client-", i)
		must(b, ss.Create(ctx, id, persistence.SessionBase{}))
		must(b, ss.SubscriptionsStore(ctx, id, persistence.Subscription{Filter: "a/b", QoS: 1}, persistence.Subscription{Filter: "c/#"}))
		_, err := ss.PacketAppend(ctx, id, persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("x")})
		must(b, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := ss.Count(ctx)
		must(b, err)
		seen := uint64(0)
		must(b, ss.LoadForEach(ctx, func(*persistence.LoadedSession) error { seen++; return nil }))
		if seen != n {
			b.Fatalf("visited %d of %d", seen, n)
		}
	}
}

type atomicInt struct {
	mu sync.Mutex
	n  int
}

func (a *atomicInt) add() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.n
}

// model is a plain reference for the packet and session operations, used by
// TestRandomAgainstModel.
type model map[string]*[4][]persistence.PersistedPacket

func (m model) clone() model {
	c := make(model, len(m))
	for id, qs := range m {
		var n [4][]persistence.PersistedPacket
		for i := range qs {
			n[i] = slices.Clone(qs[i])
		}
		c[id] = &n
	}
	return c
}

// apply applies op to m, with seq as the seq of an append, and returns the error
// class the store must give.
func (m model) apply(op persistence.Op, seq uint64) error {
	qs := m[op.ID]
	switch op.Kind {
	case persistence.OpCreate:
		if qs != nil {
			return persistence.ErrAlreadyExists
		}
		m[op.ID] = new([4][]persistence.PersistedPacket)
		return nil
	case persistence.OpDelete:
		delete(m, op.ID)
		return nil
	}
	if qs == nil {
		return persistence.ErrNotFound
	}
	q := &qs[op.Class-1]
	switch op.Kind {
	case persistence.OpPacketAppend:
		p := *op.Packet
		p.Seq = seq
		*q = append(*q, p)
	case persistence.OpPacketUpdate:
		i := slices.IndexFunc(*q, func(p persistence.PersistedPacket) bool { return p.Seq == op.Packet.Seq })
		if i < 0 {
			return persistence.ErrNotFound
		}
		(*q)[i] = *op.Packet
	case persistence.OpPacketDelete:
		*q = slices.DeleteFunc(*q, func(p persistence.PersistedPacket) bool { return p.Seq == op.Seq })
	case persistence.OpPacketsDelete:
		*q = nil
	}
	return nil
}

// TestRandomAgainstModel runs random single calls and batches against the store
// and the model and compares results and contents after every step.
func TestRandomAgainstModel(t *testing.T) {
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(7, 8))
	p := open(t)
	ss := p.Sessions()
	m := model{}
	ids := []string{"a", "b", "a/b", "a\x00"}
	var seqs []uint64 // every seq handed out, for picking existing and deleted ones
	var maxSeq uint64
	randOp := func() persistence.Op {
		op := persistence.Op{ID: ids[rng.IntN(len(ids))], Class: persistence.PacketClasses[rng.IntN(4)]}
		pickSeq := func() uint64 {
			if len(seqs) == 0 || rng.IntN(10) == 0 {
				return uint64(rng.IntN(1000))
			}
			return seqs[len(seqs)-1-rng.IntN(min(len(seqs), 20))]
		}
		switch k := rng.IntN(20); {
		case k < 1:
			op.Kind = persistence.OpCreate
		case k < 2:
			op.Kind = persistence.OpDelete
		case k < 10:
			op.Kind = persistence.OpPacketAppend
			op.Packet = &persistence.PersistedPacket{QoS: uint8(rng.IntN(3)), Data: fmt.Appendf(nil, "%d", rng.Int())}
		case k < 13:
			op.Kind = persistence.OpPacketUpdate
			op.Packet = &persistence.PersistedPacket{Seq: pickSeq(), Data: []byte("updated")}
		case k < 19:
			op.Kind = persistence.OpPacketDelete
			op.Seq = pickSeq()
		default:
			op.Kind = persistence.OpPacketsDelete
		}
		return op
	}
	single := func(op persistence.Op) (uint64, error) {
		switch op.Kind {
		case persistence.OpCreate:
			return 0, ss.Create(ctx, op.ID, persistence.SessionBase{})
		case persistence.OpDelete:
			return 0, ss.Delete(ctx, op.ID)
		case persistence.OpPacketAppend:
			return ss.PacketAppend(ctx, op.ID, op.Class, op.Packet)
		case persistence.OpPacketUpdate:
			return 0, ss.PacketUpdate(ctx, op.ID, op.Class, op.Packet)
		case persistence.OpPacketDelete:
			return 0, ss.PacketDelete(ctx, op.ID, op.Class, op.Seq)
		default:
			return 0, ss.PacketsDelete(ctx, op.ID, op.Class)
		}
	}
	sameErr := func(step int, got, want error) {
		t.Helper()
		if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Fatalf("step %d: error %v, want %v", step, got, want)
		}
	}
	for step := range 3000 {
		if rng.IntN(4) > 0 {
			op := randOp()
			seq, err := single(op)
			want := m.apply(op, seq)
			sameErr(step, err, want)
			if op.Kind == persistence.OpPacketAppend && err == nil {
				if seq <= maxSeq {
					t.Fatalf("step %d: seq %d not above %d", step, seq, maxSeq)
				}
				maxSeq = seq
				seqs = append(seqs, seq)
			}
		} else {
			var b persistence.Batch
			n := 1 + rng.IntN(6)
			ops := make([]persistence.Op, n)
			for i := range ops {
				ops[i] = randOp()
				switch op := ops[i]; op.Kind {
				case persistence.OpCreate:
					b.Create(op.ID, persistence.SessionBase{})
				case persistence.OpDelete:
					b.Delete(op.ID)
				case persistence.OpPacketAppend:
					b.PacketAppend(op.ID, op.Class, op.Packet)
				case persistence.OpPacketUpdate:
					b.PacketUpdate(op.ID, op.Class, op.Packet)
				case persistence.OpPacketDelete:
					b.PacketDelete(op.ID, op.Class, op.Seq)
				default:
					b.PacketsDelete(op.ID, op.Class)
				}
			}
			got, err := ss.Apply(ctx, &b)
			next := m.clone()
			var want error
			k := 0
			for _, op := range ops {
				var seq uint64
				if op.Kind == persistence.OpPacketAppend && k < len(got) {
					seq = got[k]
					k++
				}
				if want = next.apply(op, seq); want != nil {
					break
				}
			}
			sameErr(step, err, want)
			if err == nil {
				m = next
				if len(got) != b.Appends() {
					t.Fatalf("step %d: %d seqs for %d appends", step, len(got), b.Appends())
				}
				for _, seq := range got {
					if seq <= maxSeq {
						t.Fatalf("step %d: seq %d not above %d", step, seq, maxSeq)
					}
					maxSeq = seq
					seqs = append(seqs, seq)
				}
			}
		}
		if rng.IntN(10) == 0 { // iterate, deleting some
			id, c := ids[rng.IntN(len(ids))], persistence.PacketClasses[rng.IntN(4)]
			err := ss.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
				return rng.IntN(3) == 0, nil
			})
			if qs := m[id]; qs == nil {
				sameErr(step, err, persistence.ErrNotFound)
			} else {
				must(t, err)
			}
			// Bring the model in line with whatever the iteration deleted.
			if qs := m[id]; qs != nil {
				kept := packets(t, ss, id, c)
				qs[c-1] = slices.DeleteFunc(qs[c-1], func(p persistence.PersistedPacket) bool {
					return !slices.ContainsFunc(kept, func(k *persistence.PersistedPacket) bool { return k.Seq == p.Seq })
				})
			}
		}
		// Compare everything.
		n, err := ss.Count(ctx)
		must(t, err)
		if n != uint64(len(m)) {
			t.Fatalf("step %d: Count %d, model %d", step, n, len(m))
		}
		for id, qs := range m {
			for _, c := range persistence.PacketClasses {
				got := packets(t, ss, id, c)
				want := qs[c-1]
				if len(got) != len(want) {
					t.Fatalf("step %d: %q %s has %d packets, model %d", step, id, c, len(got), len(want))
				}
				for i := range got {
					if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Data, want[i].Data) {
						t.Fatalf("step %d: %q %s packet %d = %d %q, model %d %q", step, id, c, i, got[i].Seq, got[i].Data, want[i].Seq, want[i].Data)
					}
				}
				if cnt, _ := ss.PacketCount(ctx, id, c); cnt != uint64(len(want)) {
					t.Fatalf("step %d: %q %s PacketCount %d, model %d", step, id, c, cnt, len(want))
				}
			}
		}
	}
}
