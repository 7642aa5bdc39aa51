package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// Shared machinery of the cases: every case gets a fresh store opened with a fake
// clock, a context bounded by the harness's CaseTimeout, and runs its body in a
// goroutine so that a driver call that hangs fails the case at the deadline instead
// of hanging the test binary.

// caseEpoch is where every case's fake clock starts. It has a sub-second part so
// that drivers that truncate times are caught.
var caseEpoch = time.Date(2031, 3, 4, 5, 6, 7, 891234567, time.UTC)

// errCase is the error a case's callbacks return to check that a callback error
// stops the iteration and is returned.
var errCase = errors.New("conformance: error returned by the case's callback")

// tcase is one named case of an area.
type tcase struct {
	name string
	run  func(e *env)
}

// env is what a case body works with. Its methods that report failures may be called
// from the body goroutine only.
type env struct {
	t     *testing.T
	h     Harness
	ctx   context.Context
	clock *Clock
	p     *persistence.Store
	ss    *persistence.Sessions
	rs    *persistence.Retained

	main chan func() // work the test goroutine must do (harness calls take t)

	mu       sync.Mutex
	finished bool   // the test goroutine gave up or returned: t must not be used
	skip     string // why the body skipped the case (see skipf)
}

// caseAbort unwinds the body goroutine after a fatal failure.
type caseAbort struct{}

// caseTimeout is the bound of one case.
func (h Harness) caseTimeout() time.Duration {
	if h.CaseTimeout > 0 {
		return h.CaseTimeout
	}
	return 30 * time.Second
}

// runCases runs cs as subtests of t.
func runCases(t *testing.T, h Harness, cs []tcase) {
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) { runCase(t, h, c.run) })
	}
}

// runCase runs body against a new store, bounded by the harness's CaseTimeout.
func runCase(t *testing.T, h Harness, body func(e *env)) {
	timeout := h.caseTimeout()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e := &env{t: t, h: h, ctx: ctx, clock: NewClock(caseEpoch), main: make(chan func())}
	e.setStore(e.newStore())

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(caseAbort); !ok {
					e.errorf("panic in the case: %v\n%s", r, debug.Stack())
				}
			}
		}()
		body(e)
	}()
	// A driver that honours the context fails the case by itself at the deadline; the
	// grace period only matters for one that hangs.
	grace := min(timeout/4, 5*time.Second)
	hang := time.NewTimer(timeout + grace)
	defer hang.Stop()
	defer func() {
		e.mu.Lock()
		e.finished = true
		e.mu.Unlock()
	}()
	for {
		select {
		case f := <-e.main:
			f()
		case <-done:
			e.mu.Lock()
			skip := e.skip
			e.mu.Unlock()
			if skip != "" {
				t.Skip(skip)
			}
			return
		case <-hang.C:
			e.mu.Lock()
			e.finished = true
			e.mu.Unlock()
			t.Fatalf("the case did not finish within %v (deadline %v plus %v grace): the driver hangs, "+
				"probably a lock held during a callback that calls back into the store", timeout+grace, timeout, grace)
		}
	}
}

// newStore opens a new store with the case's clock. It must run on the test
// goroutine.
func (e *env) newStore() *persistence.Store {
	p := e.h.New(e.h.bounded(e.t), persistence.WithClock(e.clock))
	if p == nil {
		e.t.Fatal("Harness.New returned a nil store")
	}
	return p
}

func (e *env) setStore(p *persistence.Store) {
	e.p, e.ss, e.rs = p, p.Sessions(), p.Retained()
}

// onMain runs f on the test goroutine and waits for it.
func (e *env) onMain(f func()) {
	ran := make(chan struct{})
	select {
	case e.main <- func() { defer close(ran); f() }:
	case <-e.ctx.Done():
		e.fatalf("deadline reached before the test goroutine could run a harness call")
	}
	select {
	case <-ran:
	case <-e.ctx.Done():
		e.fatalf("deadline reached during a harness call")
	}
}

// fresh opens another new, empty store with the case's clock.
func (e *env) fresh() *persistence.Store {
	var p *persistence.Store
	e.onMain(func() { p = e.newStore() })
	if p == nil {
		e.fatalf("Harness.New failed")
	}
	return p
}

// reopen reopens the case's store through Harness.Reopen (crash=false) or
// Harness.Crash and makes the new store the case's store.
func (e *env) reopen(crash bool) {
	var np *persistence.Store
	e.onMain(func() {
		if crash {
			np = e.h.Crash(e.h.bounded(e.t), e.p, persistence.WithClock(e.clock))
		} else {
			np = e.h.Reopen(e.h.bounded(e.t), e.p, persistence.WithClock(e.clock))
		}
	})
	if np == nil {
		e.fatalf("Harness.Reopen/Crash returned a nil store")
	}
	e.setStore(np)
}

func (e *env) errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.finished {
		e.t.Helper()
		e.t.Errorf(format, args...)
	}
}

// fatalf reports a failure and ends the case body.
func (e *env) fatalf(format string, args ...any) {
	e.errorf(format, args...)
	panic(caseAbort{})
}

// skipf ends the case body and skips the case; only physical limits the harness
// declared may skip a case.
func (e *env) skipf(format string, args ...any) {
	e.mu.Lock()
	e.skip = fmt.Sprintf(format, args...)
	e.mu.Unlock()
	panic(caseAbort{})
}

// ---- assertions ----

// ok fails the case unless err is nil.
func (e *env) ok(err error, what string, args ...any) {
	if err != nil {
		e.fatalf("%s: got error %s, want nil", fmt.Sprintf(what, args...), errStr(err))
	}
}

// is fails the case unless err matches target.
func (e *env) is(err, target error, what string, args ...any) {
	if !errors.Is(err, target) {
		e.fatalf("%s: got error %v, want one matching %q", fmt.Sprintf(what, args...), errStr(err), target)
	}
}

// errStr quotes err's message, shortened: some engines put whole values in theirs.
func errStr(err error) string {
	if err == nil {
		return "nil"
	}
	msg := err.Error()
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return fmt.Sprintf("%q", msg)
}

// eq fails the case when d (a diff) is not empty.
func (e *env) eq(d, what string, args ...any) {
	if d != "" {
		e.fatalf("%s: %s", fmt.Sprintf(what, args...), d)
	}
}

// ---- session helpers ----

// base returns a session base whose creation time is the clock's current time.
func (e *env) base() persistence.SessionBase {
	return persistence.SessionBase{CreatedAt: e.clock.Now(), ProtocolVersion: 5}
}

// create creates session id and fails the case on error.
func (e *env) create(ids ...string) {
	for _, id := range ids {
		e.ok(e.ss.Create(e.ctx, id, e.base()), "Create(%q)", id)
	}
}

// appendN appends n packets built by pkt(i) to (id, c) and returns them with their
// sequence numbers set.
func (e *env) appendN(id string, c persistence.PacketClass, n int) []*persistence.PersistedPacket {
	out := make([]*persistence.PersistedPacket, 0, n)
	for i := range n {
		p := pkt(i)
		seq, err := e.ss.PacketAppend(e.ctx, id, c, p)
		e.ok(err, "PacketAppend(%q, %s, #%d)", id, c, i)
		if len(out) > 0 && seq <= out[len(out)-1].Seq {
			e.fatalf("PacketAppend(%q, %s) assigned seq %d after %d: seqs must increase strictly", id, c, seq, out[len(out)-1].Seq)
		}
		p.Seq = seq
		out = append(out, p)
	}
	return out
}

// read returns the packets of (id, c) in the driver's FIFO order.
func (e *env) read(id string, c persistence.PacketClass) []*persistence.PersistedPacket {
	var got []*persistence.PersistedPacket
	err := e.ss.PacketsForEach(e.ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		got = append(got, p)
		return false, nil
	})
	e.ok(err, "PacketsForEach(%q, %s)", id, c)
	return got
}

// queue checks that (id, c) holds exactly want, in order, with the same seqs, and
// that PacketCount agrees.
func (e *env) queue(id string, c persistence.PacketClass, want []*persistence.PersistedPacket) {
	got := e.read(id, c)
	e.eq(diffQueue(got, want), "queue (%q, %s)", id, c)
	n, err := e.ss.PacketCount(e.ctx, id, c)
	e.ok(err, "PacketCount(%q, %s)", id, c)
	if n != uint64(len(want)) {
		e.fatalf("PacketCount(%q, %s) = %d, want %d", id, c, n, len(want))
	}
}

func diffQueue(got, want []*persistence.PersistedPacket) string {
	for i := range min(len(got), len(want)) {
		if d := diffPacket(got[i], want[i], true); d != "" {
			return fmt.Sprintf("packet #%d in FIFO order: %s (%s)", i, d, seqsAround(got, want, i))
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d packets, want %d (%s)", len(got), len(want), seqsAround(got, want, min(len(got), len(want))))
	}
	return ""
}

// seqsAround lists the seqs of got and want near index i (whole queues can be long).
func seqsAround(got, want []*persistence.PersistedPacket, i int) string {
	lo := max(0, i-5)
	cut := func(ps []*persistence.PersistedPacket) []*persistence.PersistedPacket {
		if lo >= len(ps) {
			return nil
		}
		return ps[lo:min(len(ps), i+6)]
	}
	return fmt.Sprintf("from #%d: %s", lo, seqList(cut(got), cut(want)))
}

// subsSet checks that id's subscriptions are exactly want, compared as a set.
func (e *env) subsSet(id string, want ...persistence.Subscription) {
	got, err := e.ss.SubscriptionsLoad(e.ctx, id)
	e.ok(err, "SubscriptionsLoad(%q)", id)
	m := make(map[string]persistence.Subscription, len(want))
	for _, s := range want {
		m[s.Filter] = s
	}
	e.eq(diffSubs(got, m), "SubscriptionsLoad(%q)", id)
}

// retainedSet checks that LoadMatching(filters) (Load when filters is nil) delivers
// exactly the topics want, each once, with the packets Get returns.
func (e *env) matching(filters []string, want ...string) {
	got := e.loadTopics(filters)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		what := "Load()"
		if filters != nil {
			what = fmt.Sprintf("LoadMatching(%q)", filters)
		}
		e.fatalf("%s delivered topics %q, want %q", what, got, w)
	}
}

// loadTopics returns the topics LoadMatching(filters) (Load when nil) delivers,
// failing on a topic delivered twice.
func (e *env) loadTopics(filters []string) []string {
	var got []string
	seen := map[string]bool{}
	var dup string
	fn := func(m *persistence.RetainedMessage) error {
		if m == nil || m.Packet == nil {
			dup = "<nil message or packet>"
			return errCase
		}
		if seen[m.Topic] {
			dup = m.Topic
		}
		seen[m.Topic] = true
		got = append(got, m.Topic)
		return nil
	}
	var err error
	if filters == nil {
		err = e.rs.Load(e.ctx, fn)
	} else {
		err = e.rs.LoadMatching(e.ctx, filters, fn)
	}
	if dup != "" {
		e.fatalf("LoadMatching(%q) delivered %q twice (or a nil message)", filters, dup)
	}
	e.ok(err, "LoadMatching(%q)", filters)
	return got
}

// ---- value builders ----

// pkt returns a distinct valid packet: its Data names i, its Seq is junk the driver
// must ignore, and every other field is set, ExpireAt to the nanosecond.
func pkt(i int) *persistence.PersistedPacket {
	return &persistence.PersistedPacket{
		Seq:             0xdead0000 + uint64(i),
		PacketID:        uint16(i*7 + 1),
		QoS:             uint8(1 + i%2),
		ProtocolVersion: []uint8{3, 4, 5}[i%3],
		ExpireAt:        caseEpoch.Add(time.Duration(i)*time.Hour + time.Duration(i)*time.Nanosecond),
		Data:            fmt.Appendf(nil, "\x30packet-%d\x00\xff", i),
	}
}

// pktData returns a packet carrying data.
func pktData(data []byte) *persistence.PersistedPacket {
	return &persistence.PersistedPacket{QoS: 1, PacketID: 1, ProtocolVersion: 5, Data: data}
}

// sub returns a subscription with every option set from i.
func sub(filter string, i int) persistence.Subscription {
	return persistence.Subscription{
		Filter:            filter,
		QoS:               uint8(i % 3),
		NoLocal:           i%2 == 1,
		RetainAsPublished: i%3 == 1,
		RetainHandling:    uint8((i + 1) % 3),
		ID:                uint32(i * 1000),
	}
}

// state returns a session state with every field set, will included.
func state(i int) *persistence.SessionState {
	will := pkt(i + 100)
	will.Seq = 0
	return &persistence.SessionState{
		ProtocolVersion: 5,
		ExpiryInterval:  time.Duration(i+1) * time.Minute,
		Username:        fmt.Sprintf("user-%d\x00\xff", i),
		Will:            will,
		WillDelay:       time.Duration(i) * time.Second,
		DisconnectedAt:  caseEpoch.Add(time.Duration(i)*time.Second + 123),
		UserData:        fmt.Appendf(nil, "userdata-%d\x00", i),
	}
}

// bigData returns n bytes with every byte value, in a pattern that a truncation or a
// shifted chunk would break.
func bigData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// maxPayload is the largest payload the suite stores in the driver.
func (h Harness) maxPayload() int {
	const want = 16 << 20
	if h.Caps.MaxPayload > 0 && h.Caps.MaxPayload < want {
		return h.Caps.MaxPayload
	}
	return want
}

// sameBytes reports a readable difference between two byte slices.
func sameBytes(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	return fmt.Sprintf("data %s, want %s", fmtData(got), fmtData(want))
}
