package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// The model-based randomized test. runModel applies random operation sequences to the
// driver and to a reference model made of plain maps and slices, compares every
// result with the model's after every step, compares the whole observable state every
// few steps, and, when the harness can, reopens or crashes the store mid-sequence and
// compares everything again.
//
// Environment:
//
//	MQTTSTORE_MODEL_SEED=7        run only seed 7 (a comma-separated list runs several;
//	                              "random" picks one and logs it)
//	MQTTSTORE_MODEL_OPS=2000      operations per sequence (default 300)

const (
	modelSeedEnv    = "MQTTSTORE_MODEL_SEED"
	modelOpsEnv     = "MQTTSTORE_MODEL_OPS"
	modelDefaultOps = 300
	modelCheckEvery = 25 // steps between two full-state comparisons
)

// modelDefaultSeeds are the sequences run when MQTTSTORE_MODEL_SEED is not set. They
// are fixed so that a failure in CI reproduces with the same command.
var modelDefaultSeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8}

// The small universe the sequences draw from. Session ids include binary ids (NUL,
// invalid UTF-8), delimiter bytes and ids that are prefixes of each other; topics
// include '$' topics, empty levels and NUL.
var (
	modelEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	modelIDs = []string{
		"a", "ab", "a:", "a:b", "a\x00", "a\x00b", "\x00", "b/c", "\xff\xfe",
		"a-much-longer-client-identifier-0123456789",
	}
	modelFilters = []string{
		"a/b", "a/+", "a/#", "#", "+/b", "$share/g/a/#", "$SYS/#", "a\x00b", "a/b/c", "x:y",
	}
	modelTopics = []string{
		"a", "a/b", "a/b/c", "a/", "/a", "/", "$SYS/uptime", "$SYS", "a/b\x00", "a:b", "b", "\xff",
	}
	modelMatchFilters = []string{
		"#", "+", "a/#", "a/+", "+/b", "$SYS/#", "+/+", "/#", "a/b", "a", "$SYS", "+/#",
		"a/+/c", "a/#/x", "$SYS/+", "b/#", "a/b\x00",
	}
	modelUsernames = []string{"", "alice", "b\x00b", "\xff"}
)

// errModelCallback is what the model's iteration callbacks return to check that a
// callback error stops the iteration and is returned.
var errModelCallback = errors.New("conformance: error returned by the model's callback")

// errModelMismatch stops an iteration whose callback saw something the model did not
// expect; the mismatch itself is reported after the iteration returns.
var errModelMismatch = errors.New("conformance: model mismatch inside a callback")

// runModel runs the model-based test: one subtest per seed (Model/Seed=N).
func runModel(t *testing.T, h Harness) {
	seeds, ops := modelConfig(t)
	hung := false
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("Seed=%d", seed), func(t *testing.T) {
			if hung {
				t.Skip("not run: an earlier seed hung, and its goroutine may still hold the driver's locks")
			}
			runModelSequence(t, h, seed, ops, &hung)
		})
	}
}

// modelConfig reads the seeds and the sequence length from the environment.
func modelConfig(t *testing.T) (seeds []uint64, ops int) {
	t.Helper()
	seeds = modelDefaultSeeds
	if testing.Short() {
		seeds = seeds[:4]
	}
	if v := strings.TrimSpace(os.Getenv(modelSeedEnv)); v != "" {
		seeds = nil
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if f == "random" {
				seeds = append(seeds, rand.Uint64()>>1)
				continue
			}
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("%s=%q: want a seed (unsigned integer), a comma-separated list of seeds or \"random\"", modelSeedEnv, v)
			}
			seeds = append(seeds, n)
		}
	}
	ops = modelDefaultOps
	if v := strings.TrimSpace(os.Getenv(modelOpsEnv)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of operations", modelOpsEnv, v)
		}
		ops = n
	}
	return seeds, ops
}

// reopenRequest asks the test goroutine to reopen (or crash and reopen) old; the
// harness functions take the *testing.T and may call t.Fatal, so they must run there.
type reopenRequest struct {
	crash bool
	old   *persistence.Store
	reply chan *persistence.Store
}

// runModelSequence runs one sequence. The sequence runs in its own goroutine so that a
// driver that deadlocks fails the test at the deadline instead of hanging it; *hung is
// set when it did (before t.Fatal ends the test goroutine).
func runModelSequence(t *testing.T, h Harness, seed uint64, ops int, hung *bool) {
	timeout := h.CaseTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	t.Logf("seed %d, %d operations (reproduce: %s=%d go test -run '^%s$')",
		seed, ops, modelSeedEnv, seed, strings.ReplaceAll(t.Name(), "/", "$/^"))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	p := h.New(t)
	if p == nil {
		t.Fatal("Harness.New returned a nil provider")
	}
	reqs := make(chan reopenRequest)
	r := newModelRunner(seed, ops, p)
	r.canReopen, r.canCrash = h.Reopen != nil, h.Crash != nil
	r.reopen = func(crash bool) *persistence.Store {
		req := reopenRequest{crash: crash, old: r.p, reply: make(chan *persistence.Store, 1)}
		select {
		case reqs <- req:
		case <-ctx.Done():
			panic(modelAbort{})
		}
		select {
		case np := <-req.reply:
			return np
		case <-ctx.Done():
			panic(modelAbort{})
		}
	}

	done := make(chan error, 1)
	go func() { done <- r.run(ctx) }()

	// A driver that honours the context fails the sequence by itself at the deadline;
	// the grace period only matters for one that hangs.
	grace := min(timeout/4, 5*time.Second)
	hang := time.NewTimer(timeout + grace)
	defer hang.Stop()
	for {
		select {
		case req := <-reqs:
			var np *persistence.Store
			if req.crash {
				np = h.Crash(t, req.old)
			} else {
				np = h.Reopen(t, req.old)
			}
			if np == nil {
				t.Fatalf("Harness.Reopen/Crash returned a nil provider")
			}
			req.reply <- np
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("seed %d: %d operations, %d full-state comparisons, %d reopens, %d crashes: model and driver agree",
				seed, ops, r.checks, r.reopens, r.crashes)
			return
		case <-hang.C:
			*hung = true
			t.Fatalf("seed %d: the sequence did not finish within %v (deadline %v plus %v grace): the driver "+
				"hangs, probably a lock held during a callback that calls back into the store; "+
				"current and last operations:\n%s", seed, timeout+grace, timeout, grace, r.history())
		}
	}
}

// modelFailure carries a mismatch from the sequence goroutine's failf to run.
type modelFailure struct{ msg string }

// modelAbort ends the sequence goroutine when the test goroutine gave up on it.
type modelAbort struct{}

// mSession is the model of one session.
type mSession struct {
	base   persistence.SessionBase
	queues [4][]*persistence.PersistedPacket // FIFO; packets are never mutated once in
	subs   map[string]persistence.Subscription
	state  *persistence.SessionState
	exp    persistence.SessionExpiry // zero: none
}

func (s *mSession) clone() *mSession {
	c := &mSession{base: s.base, state: s.state.Clone(), exp: s.exp, subs: maps.Clone(s.subs)}
	for i, q := range s.queues {
		c.queues[i] = slices.Clone(q)
	}
	return c
}

// model is the reference: the whole observable state of a store in plain maps.
type model struct {
	sessions map[string]*mSession
	retained map[string]*persistence.PersistedPacket // packets never mutated once in
}

func newModel() *model {
	return &model{sessions: map[string]*mSession{}, retained: map[string]*persistence.PersistedPacket{}}
}

func (m *model) clone() *model {
	c := &model{sessions: make(map[string]*mSession, len(m.sessions)), retained: maps.Clone(m.retained)}
	for id, s := range m.sessions {
		c.sessions[id] = s.clone()
	}
	return c
}

// ids returns the ids of the model's sessions, sorted so that choices are reproducible.
func (m *model) ids() []string { return slices.Sorted(maps.Keys(m.sessions)) }

// seqKey names one (session, class) queue across the whole history of the sequence.
type seqKey struct {
	id    string
	class persistence.PacketClass
}

// modelRunner drives one sequence. Everything but the history runs in the sequence
// goroutine.
type modelRunner struct {
	seed uint64
	rng  *rand.Rand
	ops  int
	m    *model

	p  *persistence.Store
	ss *persistence.Sessions
	rs *persistence.Retained

	canReopen, canCrash bool
	reopen              func(crash bool) *persistence.Store

	// Sequence numbers: the model cannot predict them, so it records each one the
	// driver assigns and checks that it is greater than every one assigned before in
	// the same (session, class), across deletes and reopens.
	maxSeq  map[seqKey]uint64
	seqPool []uint64 // every seq assigned so far, to ask for stale ones
	highSeq uint64

	step                      int
	desc                      string
	checks, reopens, crashes  int
	histMu                    sync.Mutex
	hist                      []string // ring of the last operations
	histNext                  int
	opTable                   []modelOp
	opTotal                   int
	lastCheckStep, lastReopen int
}

type modelOp struct {
	weight int
	run    func(r *modelRunner, ctx context.Context)
}

const modelHistory = 40

func newModelRunner(seed uint64, ops int, p *persistence.Store) *modelRunner {
	r := &modelRunner{
		seed:   seed,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ops:    ops,
		m:      newModel(),
		maxSeq: map[seqKey]uint64{},
	}
	r.setProvider(p)
	return r
}

func (r *modelRunner) setProvider(p *persistence.Store) {
	r.p, r.ss, r.rs = p, p.Sessions(), p.Retained()
}

// begin records the operation about to run; failures name it.
func (r *modelRunner) begin(format string, args ...any) {
	r.desc = fmt.Sprintf(format, args...)
	r.histMu.Lock()
	line := fmt.Sprintf("step %d: %s", r.step, r.desc)
	if len(r.hist) < modelHistory {
		r.hist = append(r.hist, line)
	} else {
		r.hist[r.histNext] = line
		r.histNext = (r.histNext + 1) % modelHistory
	}
	r.histMu.Unlock()
}

// history returns the last operations, oldest first. Safe from any goroutine.
func (r *modelRunner) history() string {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	var b strings.Builder
	for i := range r.hist {
		b.WriteString("\t")
		b.WriteString(r.hist[(r.histNext+i)%len(r.hist)])
		b.WriteString("\n")
	}
	return b.String()
}

// failf stops the sequence with a mismatch.
func (r *modelRunner) failf(format string, args ...any) {
	panic(modelFailure{fmt.Sprintf(format, args...)})
}

// run runs the whole sequence and returns the first mismatch.
func (r *modelRunner) run(ctx context.Context) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		var msg string
		switch v := v.(type) {
		case modelAbort:
			err = errors.New("sequence aborted")
			return
		case modelFailure:
			msg = v.msg
		default:
			msg = fmt.Sprintf("panic: %v\n%s", v, debug.Stack())
		}
		if ctx.Err() != nil {
			msg += fmt.Sprintf(" (the sequence's deadline passed: %v)", ctx.Err())
		}
		err = fmt.Errorf("model mismatch: seed %d, step %d of %d: %s\n  in: %s\nlast operations (oldest first):\n%s"+
			"reproduce with %s=%d", r.seed, r.step, r.ops, msg, r.desc, r.history(), modelSeedEnv, r.seed)
	}()
	r.buildOpTable()
	for r.step = 1; r.step <= r.ops; r.step++ {
		if ctx.Err() != nil {
			r.begin("(deadline passed)")
			r.failf("the sequence's deadline passed before the last operation: the driver is too slow or hangs")
		}
		r.pickOp().run(r, ctx)
		if r.step-r.lastCheckStep >= modelCheckEvery {
			r.checkAll(ctx, "periodic")
		}
	}
	r.step = r.ops
	r.checkAll(ctx, "end of sequence")
	return nil
}

func (r *modelRunner) buildOpTable() {
	ops := []modelOp{
		{6, (*modelRunner).opCreate},
		{3, (*modelRunner).opDelete},
		{2, (*modelRunner).opExists},
		{1, (*modelRunner).opCount},
		{14, (*modelRunner).opPacketAppend},
		{6, (*modelRunner).opPacketUpdate},
		{6, (*modelRunner).opPacketDelete},
		{5, (*modelRunner).opPacketGet},
		{3, (*modelRunner).opPacketCount},
		{3, (*modelRunner).opPacketsStore},
		{2, (*modelRunner).opPacketsDelete},
		{6, (*modelRunner).opPacketsForEach},
		{5, (*modelRunner).opSubscriptionsStore},
		{3, (*modelRunner).opSubscriptionsDelete},
		{1, (*modelRunner).opSubscriptionsDeleteAll},
		{2, (*modelRunner).opSubscriptionsLoad},
		{3, (*modelRunner).opStateStore},
		{2, (*modelRunner).opStateGet},
		{1, (*modelRunner).opStateDelete},
		{6, (*modelRunner).opExpiryStore},
		{2, (*modelRunner).opExpiryGet},
		{1, (*modelRunner).opExpiryDelete},
		{3, (*modelRunner).opExpiredForEach},
		{4, (*modelRunner).opRetainedPut},
		{2, (*modelRunner).opRetainedGet},
		{2, (*modelRunner).opRetainedDelete},
		{3, (*modelRunner).opRetainedLoadMatching},
		{1, (*modelRunner).opRetainedStore},
		{1, (*modelRunner).opRetainedWipeOrLoad},
		{1, (*modelRunner).opRetainedCount},
		{7, (*modelRunner).opApply},
		{2, (*modelRunner).opLoadForEach},
		{1, (*modelRunner).opCancelled},
	}
	if r.canReopen {
		ops = append(ops, modelOp{2, func(r *modelRunner, ctx context.Context) { r.opReopen(ctx, false) }})
	}
	if r.canCrash {
		ops = append(ops, modelOp{2, func(r *modelRunner, ctx context.Context) { r.opReopen(ctx, true) }})
	}
	r.opTable = ops
	r.opTotal = 0
	for _, op := range ops {
		r.opTotal += op.weight
	}
}

func (r *modelRunner) pickOp() modelOp {
	n := r.rng.IntN(r.opTotal)
	for _, op := range r.opTable {
		if n < op.weight {
			return op
		}
		n -= op.weight
	}
	panic("unreachable")
}

// ---- errors ----

// errKind is a set of acceptable outcomes of a call.
type errKind uint8

const (
	errNil errKind = 1 << iota
	errNotFound
	errExists
	errInvalid
	errCanceled
	errCallback
)

func (k errKind) String() string {
	var s []string
	for _, e := range []struct {
		k    errKind
		name string
	}{
		{errNil, "nil"}, {errNotFound, "ErrNotFound"}, {errExists, "ErrAlreadyExists"},
		{errInvalid, "ErrInvalidArgument"}, {errCanceled, "context.Canceled"},
		{errCallback, "the callback's error"},
	} {
		if k&e.k != 0 {
			s = append(s, e.name)
		}
	}
	return strings.Join(s, " or ")
}

func errMatches(err error, k errKind) bool {
	switch {
	case err == nil:
		return k&errNil != 0
	case k&errNotFound != 0 && errors.Is(err, persistence.ErrNotFound),
		k&errExists != 0 && errors.Is(err, persistence.ErrAlreadyExists),
		k&errInvalid != 0 && errors.Is(err, persistence.ErrInvalidArgument),
		k&errCanceled != 0 && errors.Is(err, context.Canceled),
		k&errCallback != 0 && errors.Is(err, errModelCallback):
		return true
	}
	return false
}

// expect fails unless err is one of want.
func (r *modelRunner) expect(err error, want errKind) {
	if !errMatches(err, want) {
		r.failf("got error %v, want %v", errString(err), want)
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", err.Error())
}

// sessionWant returns the acceptable errors of a session-scoped call on id: nil when
// the session exists and the arguments are valid, otherwise the errors that apply (a
// driver may check the arguments or the session first).
func (r *modelRunner) sessionWant(id string, invalid bool) errKind {
	var k errKind
	if invalid {
		k |= errInvalid
	}
	if r.m.sessions[id] == nil {
		k |= errNotFound
	}
	if k == 0 {
		k = errNil
	}
	return k
}

// ---- random values ----

func (r *modelRunner) pct(n int) bool { return r.rng.IntN(100) < n }

func pick[T any](r *modelRunner, s []T) T { return s[r.rng.IntN(len(s))] }

// pickID returns the id of an existing session most of the time, otherwise any id of
// the universe (which may not exist).
func (r *modelRunner) pickID() string {
	if ids := r.m.ids(); len(ids) > 0 && r.pct(85) {
		return pick(r, ids)
	}
	return pick(r, modelIDs)
}

// missingID returns an id of the universe with no session, or "" when all exist.
func (r *modelRunner) missingID() string {
	var ids []string
	for _, id := range modelIDs {
		if r.m.sessions[id] == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return pick(r, ids)
}

var invalidClasses = []persistence.PacketClass{0, 5, 255}

func (r *modelRunner) pickClass() persistence.PacketClass {
	if r.pct(3) {
		return pick(r, invalidClasses)
	}
	return pick(r, persistence.PacketClasses)
}

// pickSeq returns a sequence number to get, update or delete in (id, class): mostly a
// live one, otherwise one of another queue, a deleted one, 0, the largest uint64 or one
// never assigned.
func (r *modelRunner) pickSeq(id string, c persistence.PacketClass) uint64 {
	if s := r.m.sessions[id]; s != nil && c.Valid() {
		if q := s.queues[c-1]; len(q) > 0 && r.pct(70) {
			return pick(r, q).Seq
		}
	}
	switch n := r.rng.IntN(10); {
	case n < 6 && len(r.seqPool) > 0:
		return pick(r, r.seqPool)
	case n < 7:
		return 0
	case n < 8:
		return math.MaxUint64
	default:
		return r.highSeq + 1 + r.rng.Uint64N(1000)
	}
}

// when returns a time within ten minutes of modelEpoch; half of them have a
// sub-millisecond part, since times must come back equal to the nanosecond.
func (r *modelRunner) when() time.Time {
	t := modelEpoch.Add(time.Duration(r.rng.IntN(600_000)) * time.Millisecond)
	if r.pct(50) {
		t = t.Add(time.Duration(r.rng.IntN(1_000_000)))
	}
	return t
}

func (r *modelRunner) bytes() []byte {
	var n int
	switch x := r.rng.IntN(100); {
	case x < 8:
		return nil
	case x < 12:
		return []byte{}
	case x < 90:
		n = 1 + r.rng.IntN(64)
	default:
		n = 200 + r.rng.IntN(4000)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.rng.UintN(256))
	}
	if n > 2 && r.pct(30) {
		b[r.rng.IntN(n)] = 0
	}
	return b
}

// packet returns a valid packet whose Seq is junk the driver must ignore.
func (r *modelRunner) packet() *persistence.PersistedPacket {
	p := &persistence.PersistedPacket{
		Seq:             r.rng.Uint64(),
		PacketID:        uint16(r.rng.UintN(65536)),
		QoS:             uint8(r.rng.IntN(3)),
		ProtocolVersion: pick(r, []uint8{3, 4, 5}),
		Data:            r.bytes(),
	}
	if r.pct(30) {
		p.ExpireAt = r.when()
	}
	return p
}

// maybeInvalidPacket returns a packet and whether it is invalid (nil or QoS 3).
func (r *modelRunner) maybeInvalidPacket(pctInvalid int) (*persistence.PersistedPacket, bool) {
	if !r.pct(pctInvalid) {
		return r.packet(), false
	}
	if r.pct(30) {
		return nil, true
	}
	p := r.packet()
	p.QoS = 3
	return p, true
}

func (r *modelRunner) subscription() persistence.Subscription {
	s := persistence.Subscription{
		Filter:            pick(r, modelFilters),
		QoS:               uint8(r.rng.IntN(3)),
		NoLocal:           r.pct(50),
		RetainAsPublished: r.pct(50),
		RetainHandling:    uint8(r.rng.IntN(3)),
	}
	if r.pct(50) {
		s.ID = 1 + r.rng.Uint32N(268435455)
	}
	return s
}

func (r *modelRunner) invalidSubscription() persistence.Subscription {
	s := r.subscription()
	switch r.rng.IntN(3) {
	case 0:
		s.QoS = 3
	case 1:
		s.RetainHandling = 3
	default:
		s.Filter = ""
	}
	return s
}

func (r *modelRunner) state() *persistence.SessionState {
	st := &persistence.SessionState{
		ProtocolVersion: pick(r, []uint8{3, 4, 5}),
		ExpiryInterval:  time.Duration(r.rng.IntN(100_000)) * time.Second,
		Username:        pick(r, modelUsernames),
		WillDelay:       time.Duration(r.rng.IntN(1000)) * time.Second,
		UserData:        r.bytes(),
	}
	if r.pct(20) {
		st.ExpiryInterval = -1
	}
	if r.pct(40) {
		st.Will = r.packet()
		st.Will.Seq = 0
	}
	if r.pct(50) {
		st.DisconnectedAt = r.when()
	}
	return st
}

// expiry returns deadlines; one or both may be zero (both zero: a delete).
func (r *modelRunner) expiry() persistence.SessionExpiry {
	var e persistence.SessionExpiry
	switch r.rng.IntN(10) {
	case 0:
	case 1, 2, 3:
		e.ExpireAt = r.when()
	case 4, 5:
		e.WillAt = r.when()
	default:
		e.ExpireAt, e.WillAt = r.when(), r.when()
	}
	return e
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

// cbRand gives iteration callbacks decisions that depend only on the item visited, so
// that a sequence stays reproducible whatever order the driver visits items in.
type cbRand uint64

func (c cbRand) of(key string) uint64 {
	h := uint64(c) ^ 0xcbf29ce484222325
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	// splitmix64 finalizer
	h += 0x9e3779b97f4a7c15
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
	h = (h ^ (h >> 27)) * 0x94d049bb133111eb
	return h ^ (h >> 31)
}

// ---- comparisons ----

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

func diffLoaded(ls *persistence.LoadedSession, s *mSession) string {
	var d []string
	if !ls.Base.CreatedAt.Equal(s.base.CreatedAt) || ls.Base.ProtocolVersion != s.base.ProtocolVersion {
		d = append(d, fmt.Sprintf("Base {%s, v%d}, want {%s, v%d}", fmtTime(ls.Base.CreatedAt), ls.Base.ProtocolVersion,
			fmtTime(s.base.CreatedAt), s.base.ProtocolVersion))
	}
	if sd := diffState(ls.State, s.state); sd != "" {
		d = append(d, "State: "+sd)
	}
	if sd := diffSubs(ls.Subscriptions, s.subs); sd != "" {
		d = append(d, "Subscriptions: "+sd)
	}
	switch {
	case ls.Expiry == nil && !s.exp.IsZero():
		d = append(d, "Expiry nil, want "+diffExpiry(persistence.SessionExpiry{}, s.exp))
	case ls.Expiry != nil && s.exp.IsZero():
		d = append(d, fmt.Sprintf("Expiry %+v, want nil", *ls.Expiry))
	case ls.Expiry != nil:
		if ed := diffExpiry(*ls.Expiry, s.exp); ed != "" {
			d = append(d, "Expiry: "+ed)
		}
	}
	return strings.Join(d, "; ")
}

// ---- sequence numbers ----

// newSeq records seq, just assigned by the driver in (id, class).
func (r *modelRunner) newSeq(id string, c persistence.PacketClass, seq uint64) {
	k := seqKey{id, c}
	if prev, ok := r.maxSeq[k]; ok && seq <= prev {
		r.failf("driver assigned sequence number %d in (%q, %s), but %d was assigned there before: "+
			"sequence numbers must increase strictly in append order and never be reused (not even after "+
			"a delete or a reopen)", seq, id, c, prev)
	}
	r.maxSeq[k] = seq
	r.seqPool = append(r.seqPool, seq)
	r.highSeq = max(r.highSeq, seq)
}

// ---- full-state comparison ----

// readClass returns the packets of (id, c) in the driver's FIFO order.
func (r *modelRunner) readClass(ctx context.Context, id string, c persistence.PacketClass) []*persistence.PersistedPacket {
	var got []*persistence.PersistedPacket
	err := r.ss.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		got = append(got, p)
		return false, nil
	})
	if err != nil {
		r.failf("PacketsForEach(%q, %s) to read the queue: got error %v, want nil", id, c, errString(err))
	}
	return got
}

// checkClass compares (id, c) with the model: FIFO order, contents, seqs and count.
func (r *modelRunner) checkClass(ctx context.Context, id string, c persistence.PacketClass) {
	want := r.m.sessions[id].queues[c-1]
	got := r.readClass(ctx, id, c)
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			r.failf("queue (%q, %s) in FIFO order: packet #%d (seq %d) missing; got %d packets, want %d: %s",
				id, c, i, want[i].Seq, len(got), len(want), seqList(got, want))
		case i >= len(want):
			r.failf("queue (%q, %s) in FIFO order: unexpected packet #%d (seq %d); got %d packets, want %d: %s",
				id, c, i, got[i].Seq, len(got), len(want), seqList(got, want))
		}
		if d := diffPacket(got[i], want[i], true); d != "" {
			r.failf("queue (%q, %s) in FIFO order: packet #%d: %s (%s)", id, c, i, d, seqList(got, want))
		}
		scribblePacket(got[i])
	}
	n, err := r.ss.PacketCount(ctx, id, c)
	if err != nil || n != uint64(len(want)) {
		r.failf("PacketCount(%q, %s) = %d, %v; want %d, nil", id, c, n, errString(err), len(want))
	}
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

// checkSession compares everything the driver has for id with the model.
func (r *modelRunner) checkSession(ctx context.Context, id string) {
	s := r.m.sessions[id]
	ok, err := r.ss.Exists(ctx, id)
	if err != nil || ok != (s != nil) {
		r.failf("Exists(%q) = %v, %v; want %v, nil", id, ok, errString(err), s != nil)
	}
	if s == nil {
		if _, err := r.ss.PacketCount(ctx, id, persistence.ClassQoS12); !errMatches(err, errNotFound) {
			r.failf("PacketCount(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.SubscriptionsLoad(ctx, id); !errMatches(err, errNotFound) {
			r.failf("SubscriptionsLoad(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.StateGet(ctx, id); !errMatches(err, errNotFound) {
			r.failf("StateGet(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		if _, err := r.ss.ExpiryGet(ctx, id); !errMatches(err, errNotFound) {
			r.failf("ExpiryGet(%q) of a missing session: got error %v, want ErrNotFound", id, errString(err))
		}
		return
	}
	for _, c := range persistence.PacketClasses {
		r.checkClass(ctx, id, c)
	}
	subs, err := r.ss.SubscriptionsLoad(ctx, id)
	if err != nil {
		r.failf("SubscriptionsLoad(%q): got error %v, want nil", id, errString(err))
	}
	if d := diffSubs(subs, s.subs); d != "" {
		r.failf("SubscriptionsLoad(%q): %s", id, d)
	}
	st, err := r.ss.StateGet(ctx, id)
	if s.state == nil {
		if !errMatches(err, errNotFound) {
			r.failf("StateGet(%q) of a session without state: got error %v, want ErrNotFound", id, errString(err))
		}
	} else if err != nil {
		r.failf("StateGet(%q): got error %v, want nil", id, errString(err))
	} else if d := diffState(st, s.state); d != "" {
		r.failf("StateGet(%q): %s", id, d)
	}
	e, err := r.ss.ExpiryGet(ctx, id)
	if s.exp.IsZero() {
		if !errMatches(err, errNotFound) {
			r.failf("ExpiryGet(%q) of a session without deadlines: got %+v, %v; want ErrNotFound", id, e, errString(err))
		}
	} else if err != nil {
		r.failf("ExpiryGet(%q): got error %v, want nil", id, errString(err))
	} else if d := diffExpiry(e, s.exp); d != "" {
		r.failf("ExpiryGet(%q): %s", id, d)
	}
}

// checkAll compares the whole observable state of the driver with the model.
func (r *modelRunner) checkAll(ctx context.Context, why string) {
	r.begin("compare the full state (%s)", why)
	r.checks++
	r.lastCheckStep = r.step
	n, err := r.ss.Count(ctx)
	if err != nil || n != uint64(len(r.m.sessions)) {
		r.failf("Count() = %d, %v; want %d, nil (sessions %q)", n, errString(err), len(r.m.sessions), r.m.ids())
	}
	seen := map[string]bool{}
	var mismatch string
	err = r.ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		s := r.m.sessions[ls.ID]
		switch {
		case seen[ls.ID]:
			mismatch = fmt.Sprintf("LoadForEach visited session %q twice", ls.ID)
		case s == nil:
			mismatch = fmt.Sprintf("LoadForEach visited session %q, which does not exist", ls.ID)
		default:
			if d := diffLoaded(ls, s); d != "" {
				mismatch = fmt.Sprintf("LoadForEach: session %q: %s", ls.ID, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[ls.ID] = true
		scribbleState(ls.State)
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	if err != nil {
		r.failf("LoadForEach: got error %v, want nil", errString(err))
	}
	for _, id := range r.m.ids() {
		if !seen[id] {
			r.failf("LoadForEach did not visit session %q", id)
		}
	}
	for _, id := range modelIDs {
		r.checkSession(ctx, id)
	}
	r.checkRetained(ctx)
}

// checkRetained compares every retained message with the model.
func (r *modelRunner) checkRetained(ctx context.Context) {
	n, err := r.rs.Count(ctx)
	if err != nil || n != uint64(len(r.m.retained)) {
		r.failf("Retained.Count() = %d, %v; want %d, nil", n, errString(err), len(r.m.retained))
	}
	r.loadRetained(ctx, "Retained.Load()", nil, true, 0)
	for _, topic := range modelTopics {
		got, err := r.rs.Get(ctx, topic)
		want := r.m.retained[topic]
		if want == nil {
			if !errMatches(err, errNotFound) {
				r.failf("Retained.Get(%q) of a topic with no retained message: got error %v, want ErrNotFound", topic, errString(err))
			}
			continue
		}
		if err != nil {
			r.failf("Retained.Get(%q): got error %v, want nil", topic, errString(err))
		}
		if d := diffPacket(got, want, false); d != "" {
			r.failf("Retained.Get(%q): %s", topic, d)
		}
		scribblePacket(got)
	}
}

// loadRetained runs Load (all) or LoadMatching(filters) and compares what it delivers
// with the model. stopAt > 0 stops after that many messages.
func (r *modelRunner) loadRetained(ctx context.Context, what string, filters []string, all bool, stopAt int) {
	want := map[string]*persistence.PersistedPacket{}
	for topic, p := range r.m.retained {
		if all || slices.ContainsFunc(filters, func(f string) bool { return persistence.MatchTopic(f, topic) }) {
			want[topic] = p
		}
	}
	seen := map[string]bool{}
	var mismatch string
	fn := func(m *persistence.RetainedMessage) error {
		w := want[m.Topic]
		switch {
		case stopAt > 0 && len(seen) >= stopAt:
			mismatch = fmt.Sprintf("callback called again (topic %q) after it returned ErrStopIteration", m.Topic)
		case seen[m.Topic]:
			mismatch = fmt.Sprintf("topic %q delivered twice", m.Topic)
		case w == nil && r.m.retained[m.Topic] == nil:
			mismatch = fmt.Sprintf("delivered topic %q, which has no retained message", m.Topic)
		case w == nil:
			mismatch = fmt.Sprintf("delivered topic %q, which matches none of the filters", m.Topic)
		default:
			if d := diffPacket(m.Packet, w, false); d != "" {
				mismatch = fmt.Sprintf("topic %q: %s", m.Topic, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[m.Topic] = true
		scribblePacket(m.Packet)
		if stopAt > 0 && len(seen) == stopAt {
			return persistence.ErrStopIteration
		}
		return nil
	}
	var err error
	if all {
		err = r.rs.Load(ctx, fn)
	} else {
		err = r.rs.LoadMatching(ctx, filters, fn)
	}
	if mismatch != "" {
		r.failf("%s: %s", what, mismatch)
	}
	if err != nil {
		r.failf("%s: got error %v, want nil", what, errString(err))
	}
	if stopAt > 0 {
		return
	}
	for _, topic := range slices.Sorted(maps.Keys(want)) {
		if !seen[topic] {
			r.failf("%s did not deliver topic %q (delivered %d of %d)", what, topic, len(seen), len(want))
		}
	}
}

// ---- session operations ----

func (r *modelRunner) opCreate(ctx context.Context) {
	id := pick(r, modelIDs)
	if len(r.m.sessions) < 5 || r.pct(50) {
		if m := r.missingID(); m != "" {
			id = m
		}
	}
	base := persistence.SessionBase{CreatedAt: r.when(), ProtocolVersion: pick(r, []uint8{3, 4, 5})}
	r.begin("Create(%q, {%s, v%d})", id, fmtTime(base.CreatedAt), base.ProtocolVersion)
	err := r.ss.Create(ctx, id, base)
	if r.m.sessions[id] != nil {
		r.expect(err, errExists)
		return
	}
	r.expect(err, errNil)
	r.m.sessions[id] = &mSession{base: base}
}

func (r *modelRunner) opDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("Delete(%q)", id)
	r.expect(r.ss.Delete(ctx, id), errNil)
	delete(r.m.sessions, id)
	if r.pct(50) {
		r.checkSession(ctx, id)
	}
}

func (r *modelRunner) opExists(ctx context.Context) {
	id := pick(r, modelIDs)
	r.begin("Exists(%q)", id)
	ok, err := r.ss.Exists(ctx, id)
	r.expect(err, errNil)
	if want := r.m.sessions[id] != nil; ok != want {
		r.failf("Exists(%q) = %v, want %v", id, ok, want)
	}
}

func (r *modelRunner) opCount(ctx context.Context) {
	r.begin("Count()")
	n, err := r.ss.Count(ctx)
	r.expect(err, errNil)
	if n != uint64(len(r.m.sessions)) {
		r.failf("Count() = %d, want %d", n, len(r.m.sessions))
	}
}

// opLoadForEach iterates the sessions, sometimes stopping early, sometimes deleting
// the visited session from inside the callback.
func (r *modelRunner) opLoadForEach(ctx context.Context) {
	mode := r.rng.IntN(3) // 0: plain, 1: stop after k sessions, 2: delete some from the callback
	cb := cbRand(r.rng.Uint64())
	total := len(r.m.sessions)
	k := 1 + r.rng.IntN(max(total, 1))
	r.begin("LoadForEach(mode %d, k %d)", mode, k)
	seen := map[string]bool{}
	var mismatch string
	err := r.ss.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		s := r.m.sessions[ls.ID]
		switch {
		case mode == 1 && len(seen) >= k:
			mismatch = fmt.Sprintf("callback called again (session %q) after it returned ErrStopIteration", ls.ID)
		case seen[ls.ID]:
			mismatch = fmt.Sprintf("visited session %q twice", ls.ID)
		case s == nil:
			mismatch = fmt.Sprintf("visited session %q, which does not exist", ls.ID)
		default:
			if d := diffLoaded(ls, s); d != "" {
				mismatch = fmt.Sprintf("session %q: %s", ls.ID, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[ls.ID] = true
		if mode == 1 && len(seen) == k {
			return persistence.ErrStopIteration
		}
		if mode == 2 && cb.of(ls.ID)%3 == 0 {
			// A callback may call any method of the store, including Delete of the
			// session it is given.
			if err := r.ss.Delete(ctx, ls.ID); err != nil {
				mismatch = fmt.Sprintf("Delete(%q) from inside the LoadForEach callback: got error %v, want nil", ls.ID, errString(err))
				return errModelMismatch
			}
			delete(r.m.sessions, ls.ID)
		}
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	r.expect(err, errNil)
	want := total
	if mode == 1 {
		want = min(k, total)
	}
	if len(seen) != want {
		r.failf("LoadForEach visited %d sessions, want %d", len(seen), want)
	}
}

// ---- packets ----

func (r *modelRunner) opPacketAppend(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	p, bad := r.maybeInvalidPacket(3)
	want := r.sessionWant(id, bad || !c.Valid())
	r.begin("PacketAppend(%q, %s, %s)", id, c, fmtPacket(p))
	var junk uint64
	mp := p.Clone()
	if p != nil {
		junk = p.Seq
	}
	seq, err := r.ss.PacketAppend(ctx, id, c, p)
	r.expect(err, want)
	if p != nil && p.Seq != junk {
		r.failf("PacketAppend changed the caller's p.Seq from %d to %d; it must leave it untouched", junk, p.Seq)
	}
	if want != errNil {
		return
	}
	r.newSeq(id, c, seq)
	mp.Seq = seq
	s := r.m.sessions[id]
	s.queues[c-1] = append(s.queues[c-1], mp)
	scribblePacket(p)
}

func fmtPacket(p *persistence.PersistedPacket) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("{id %d, QoS %d, v%d, %s}", p.PacketID, p.QoS, p.ProtocolVersion, fmtData(p.Data))
}

// find returns the index of seq in q, or -1.
func find(q []*persistence.PersistedPacket, seq uint64) int {
	return slices.IndexFunc(q, func(p *persistence.PersistedPacket) bool { return p.Seq == seq })
}

func (r *modelRunner) opPacketGet(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	r.begin("PacketGet(%q, %s, %d)", id, c, seq)
	got, err := r.ss.PacketGet(ctx, id, c, seq)
	want := r.sessionWant(id, !c.Valid())
	if want != errNil {
		r.expect(err, want)
		return
	}
	q := r.m.sessions[id].queues[c-1]
	i := find(q, seq)
	if i < 0 {
		r.expect(err, errNotFound)
		if err != nil && got != nil {
			r.failf("PacketGet of a missing packet returned a packet along with its error")
		}
		return
	}
	r.expect(err, errNil)
	if d := diffPacket(got, q[i], true); d != "" {
		r.failf("PacketGet: %s", d)
	}
	scribblePacket(got)
}

func (r *modelRunner) opPacketUpdate(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	p, bad := r.maybeInvalidPacket(3)
	if p != nil {
		p.Seq = seq
	}
	r.begin("PacketUpdate(%q, %s, seq %d, %s)", id, c, seq, fmtPacket(p))
	mp := p.Clone()
	err := r.ss.PacketUpdate(ctx, id, c, p)
	want := r.sessionWant(id, bad || !c.Valid())
	if s := r.m.sessions[id]; s != nil && c.Valid() && find(s.queues[c-1], seq) < 0 {
		// A missing packet: ErrNotFound, unless the driver checks the arguments first.
		want = want&^errNil | errNotFound
	}
	r.expect(err, want)
	if want != errNil {
		return
	}
	q := r.m.sessions[id].queues[c-1]
	q[find(q, seq)] = mp // in place: an update keeps the packet's position
	scribblePacket(p)
	if r.pct(30) {
		r.checkClass(ctx, id, c)
	}
}

func (r *modelRunner) opPacketDelete(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	seq := r.pickSeq(id, c)
	r.begin("PacketDelete(%q, %s, %d)", id, c, seq)
	err := r.ss.PacketDelete(ctx, id, c, seq)
	want := r.sessionWant(id, !c.Valid())
	r.expect(err, want)
	if want != errNil {
		return
	}
	s := r.m.sessions[id]
	if i := find(s.queues[c-1], seq); i >= 0 {
		s.queues[c-1] = slices.Delete(s.queues[c-1], i, i+1)
	}
}

func (r *modelRunner) opPacketCount(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	r.begin("PacketCount(%q, %s)", id, c)
	n, err := r.ss.PacketCount(ctx, id, c)
	want := r.sessionWant(id, !c.Valid())
	r.expect(err, want)
	if want == errNil && n != uint64(len(r.m.sessions[id].queues[c-1])) {
		r.failf("PacketCount(%q, %s) = %d, want %d", id, c, n, len(r.m.sessions[id].queues[c-1]))
	}
}

func (r *modelRunner) opPacketsStore(ctx context.Context) {
	id := r.pickID()
	pp := &persistence.PersistedPackets{}
	var added [4][]*persistence.PersistedPacket
	bad := false
	var desc []string
	for _, c := range persistence.PacketClasses {
		n := r.rng.IntN(4)
		for range n {
			p, inv := r.maybeInvalidPacket(2)
			if p == nil { // PersistedPackets has no use for nil entries; make it QoS 3
				p, inv = r.packet(), true
				p.QoS = 3
			}
			bad = bad || inv
			added[c-1] = append(added[c-1], p.Clone())
			switch c {
			case persistence.ClassQoS0:
				pp.QoS0 = append(pp.QoS0, p)
			case persistence.ClassQoS12:
				pp.QoS12 = append(pp.QoS12, p)
			case persistence.ClassUnAck:
				pp.UnAck = append(pp.UnAck, p)
			case persistence.ClassIncoming:
				pp.Incoming = append(pp.Incoming, p)
			}
		}
		if n > 0 {
			desc = append(desc, fmt.Sprintf("%s×%d", c, n))
		}
	}
	r.begin("PacketsStore(%q, {%s}, invalid %v)", id, strings.Join(desc, " "), bad)
	err := r.ss.PacketsStore(ctx, id, pp)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil {
			r.checkSession(ctx, id) // atomic: nothing of a failed call is stored
		}
		return
	}
	for _, c := range persistence.PacketClasses {
		scribbleAll(pp.Class(c))
	}
	// The seqs PacketsStore assigned are not returned: read them back. The new packets
	// are at the tail, in slice order.
	s := r.m.sessions[id]
	for _, c := range persistence.PacketClasses {
		if len(added[c-1]) == 0 {
			continue
		}
		old := s.queues[c-1]
		got := r.readClass(ctx, id, c)
		if len(got) != len(old)+len(added[c-1]) {
			r.failf("after PacketsStore of %d packets to (%q, %s), which held %d, the queue holds %d",
				len(added[c-1]), id, c, len(old), len(got))
		}
		for i, p := range got {
			if i < len(old) {
				if d := diffPacket(p, old[i], true); d != "" {
					r.failf("after PacketsStore, queue (%q, %s) packet #%d: %s", id, c, i, d)
				}
				continue
			}
			w := added[c-1][i-len(old)]
			if d := diffPacket(p, w, false); d != "" {
				r.failf("after PacketsStore, queue (%q, %s) packet #%d (stored #%d): %s", id, c, i, i-len(old), d)
			}
			r.newSeq(id, c, p.Seq)
			w.Seq = p.Seq
			s.queues[c-1] = append(s.queues[c-1], w)
		}
	}
}

func scribbleAll(ps []*persistence.PersistedPacket) {
	for _, p := range ps {
		scribblePacket(p)
	}
}

func (r *modelRunner) opPacketsDelete(ctx context.Context) {
	id := r.pickID()
	var classes []persistence.PacketClass
	for range r.rng.IntN(4) {
		classes = append(classes, r.pickClass())
	}
	bad := slices.ContainsFunc(classes, func(c persistence.PacketClass) bool { return !c.Valid() })
	r.begin("PacketsDelete(%q, %v)", id, classes)
	err := r.ss.PacketsDelete(ctx, id, classes...)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil {
			r.checkSession(ctx, id)
		}
		return
	}
	if len(classes) == 0 {
		classes = persistence.PacketClasses
	}
	s := r.m.sessions[id]
	for _, c := range classes {
		s.queues[c-1] = nil
	}
}

// opPacketsForEach iterates one queue, deleting some packets from the callback,
// sometimes stopping early or failing, sometimes calling back into the store.
func (r *modelRunner) opPacketsForEach(ctx context.Context) {
	id, c := r.pickID(), r.pickClass()
	pDel := pick(r, []float64{0, 0, 0.3, 0.7, 1})
	var pStop, pErr float64
	switch r.rng.IntN(4) {
	case 0:
		pStop = 0.15
	case 1:
		pErr = 0.15
	}
	rng := rand.New(rand.NewPCG(r.rng.Uint64(), 1))
	want := r.sessionWant(id, !c.Valid())
	r.begin("PacketsForEach(%q, %s, delete %.1f, stop %.2f, error %.2f)", id, c, pDel, pStop, pErr)
	var snap []*persistence.PersistedPacket
	s := r.m.sessions[id]
	if want == errNil {
		snap = s.queues[c-1]
	}
	var (
		i        int
		dels     = map[uint64]bool{}
		ended    string
		mismatch string
	)
	err := r.ss.PacketsForEach(ctx, id, c, func(p *persistence.PersistedPacket) (bool, error) {
		switch {
		case p == nil:
			mismatch = "the callback got a nil packet"
		case ended != "":
			mismatch = fmt.Sprintf("callback called again (seq %d) after it stopped the iteration (%s)", p.Seq, ended)
		case want != errNil:
			mismatch = "the callback was called, but the call should fail with " + want.String()
		case i >= len(snap):
			mismatch = fmt.Sprintf("visited packet #%d (seq %d), but the queue holds %d", i, p.Seq, len(snap))
		default:
			if d := diffPacket(p, snap[i], true); d != "" {
				mismatch = fmt.Sprintf("packet #%d in FIFO order: %s", i, d)
			}
		}
		if mismatch != "" {
			return false, errModelMismatch
		}
		i++
		del := rng.Float64() < pDel
		if del {
			dels[p.Seq] = true
		}
		scribblePacket(p)
		if rng.IntN(10) == 0 {
			// Call back into the store: no lock may be held while the callback runs.
			oc := persistence.PacketClasses[(int(c)+rng.IntN(3))%4]
			n, err := r.ss.PacketCount(ctx, id, oc)
			if err != nil || n != uint64(len(s.queues[oc-1])) {
				mismatch = fmt.Sprintf("PacketCount(%q, %s) from inside the callback = %d, %v; want %d, nil",
					id, oc, n, errString(err), len(s.queues[oc-1]))
				return false, errModelMismatch
			}
		}
		switch x := rng.Float64(); {
		case x < pStop:
			ended = "stop"
			return del, persistence.ErrStopIteration
		case x < pStop+pErr:
			ended = "error"
			return del, errModelCallback
		}
		return del, nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	switch ended {
	case "error":
		r.expect(err, errCallback)
	default:
		r.expect(err, want)
	}
	if want != errNil {
		return
	}
	if ended == "" && i != len(snap) {
		r.failf("the iteration visited %d packets, but the queue holds %d", i, len(snap))
	}
	if len(dels) > 0 {
		// Deletions asked for by the callback are applied, even those of the call
		// that stopped the iteration.
		s.queues[c-1] = slices.DeleteFunc(slices.Clone(snap), func(p *persistence.PersistedPacket) bool { return dels[p.Seq] })
		r.checkClass(ctx, id, c)
	}
}

// ---- subscriptions ----

func (r *modelRunner) opSubscriptionsStore(ctx context.Context) {
	id := r.pickID()
	subs := make([]persistence.Subscription, 1+r.rng.IntN(3))
	bad := false
	for i := range subs {
		if r.pct(3) {
			subs[i], bad = r.invalidSubscription(), true
		} else {
			subs[i] = r.subscription()
		}
	}
	r.begin("SubscriptionsStore(%q, %+v)", id, subs)
	err := r.ss.SubscriptionsStore(ctx, id, subs...)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		if r.m.sessions[id] != nil && r.pct(50) {
			r.checkSession(ctx, id)
		}
		return
	}
	s := r.m.sessions[id]
	if s.subs == nil {
		s.subs = map[string]persistence.Subscription{}
	}
	for _, sub := range subs {
		s.subs[sub.Filter] = sub // the last one for a filter wins
	}
}

func (r *modelRunner) opSubscriptionsDelete(ctx context.Context) {
	id := r.pickID()
	filters := make([]string, 1+r.rng.IntN(3))
	for i := range filters {
		filters[i] = pick(r, modelFilters)
	}
	r.begin("SubscriptionsDelete(%q, %q)", id, filters)
	err := r.ss.SubscriptionsDelete(ctx, id, filters...)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		for _, f := range filters {
			delete(r.m.sessions[id].subs, f)
		}
	}
}

func (r *modelRunner) opSubscriptionsDeleteAll(ctx context.Context) {
	id := r.pickID()
	r.begin("SubscriptionsDeleteAll(%q)", id)
	err := r.ss.SubscriptionsDeleteAll(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].subs = nil
	}
}

func (r *modelRunner) opSubscriptionsLoad(ctx context.Context) {
	id := r.pickID()
	r.begin("SubscriptionsLoad(%q)", id)
	got, err := r.ss.SubscriptionsLoad(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want != errNil {
		return
	}
	if d := diffSubs(got, r.m.sessions[id].subs); d != "" {
		r.failf("SubscriptionsLoad: %s", d)
	}
	for i := range got {
		got[i].Filter, got[i].QoS = "scribbled", 2
	}
}

// ---- state ----

func (r *modelRunner) opStateStore(ctx context.Context) {
	id := r.pickID()
	st, bad := r.state(), false
	switch {
	case r.pct(2):
		st, bad = nil, true
	case r.pct(2) && st.Will != nil:
		st.Will.QoS, bad = 3, true
	}
	r.begin("StateStore(%q, invalid %v)", id, bad)
	mst := st.Clone()
	err := r.ss.StateStore(ctx, id, st)
	want := r.sessionWant(id, bad)
	r.expect(err, want)
	if want != errNil {
		return
	}
	r.m.sessions[id].state = mst
	scribbleState(st)
}

func (r *modelRunner) opStateGet(ctx context.Context) {
	id := r.pickID()
	r.begin("StateGet(%q)", id)
	got, err := r.ss.StateGet(ctx, id)
	want := r.sessionWant(id, false)
	if want == errNil && r.m.sessions[id].state == nil {
		want = errNotFound
	}
	r.expect(err, want)
	if want != errNil {
		return
	}
	if d := diffState(got, r.m.sessions[id].state); d != "" {
		r.failf("StateGet: %s", d)
	}
	scribbleState(got)
}

func (r *modelRunner) opStateDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("StateDelete(%q)", id)
	err := r.ss.StateDelete(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].state = nil
	}
}

// ---- expiry ----

func (r *modelRunner) opExpiryStore(ctx context.Context) {
	id := r.pickID()
	e := r.expiry()
	r.begin("ExpiryStore(%q, {ExpireAt %s, WillAt %s})", id, fmtTime(e.ExpireAt), fmtTime(e.WillAt))
	err := r.ss.ExpiryStore(ctx, id, e)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].exp = e
	}
}

func (r *modelRunner) opExpiryGet(ctx context.Context) {
	id := r.pickID()
	r.begin("ExpiryGet(%q)", id)
	got, err := r.ss.ExpiryGet(ctx, id)
	want := r.sessionWant(id, false)
	if want == errNil && r.m.sessions[id].exp.IsZero() {
		want = errNotFound
	}
	r.expect(err, want)
	if want == errNil {
		if d := diffExpiry(got, r.m.sessions[id].exp); d != "" {
			r.failf("ExpiryGet: %s", d)
		}
	}
}

func (r *modelRunner) opExpiryDelete(ctx context.Context) {
	id := r.pickID()
	r.begin("ExpiryDelete(%q)", id)
	err := r.ss.ExpiryDelete(ctx, id)
	want := r.sessionWant(id, false)
	r.expect(err, want)
	if want == errNil {
		r.m.sessions[id].exp = persistence.SessionExpiry{}
	}
}

// opExpiredForEach iterates the due sessions at a random now; the callback deletes
// some, clears or postpones the deadlines of others, and sometimes stops or fails.
func (r *modelRunner) opExpiredForEach(ctx context.Context) {
	now := modelEpoch.Add(time.Duration(r.rng.IntN(700_000)-20_000) * time.Millisecond)
	var deadlines []time.Time
	for _, id := range r.m.ids() {
		if e := r.m.sessions[id].exp; !e.IsZero() {
			deadlines = append(deadlines, e.ExpireAt, e.WillAt)
		}
	}
	deadlines = slices.DeleteFunc(deadlines, time.Time.IsZero)
	if len(deadlines) > 0 && r.pct(25) {
		now = pick(r, deadlines) // exactly at a deadline: "at or before now" is due
	}
	cb := cbRand(r.rng.Uint64())
	due := map[string]persistence.SessionExpiry{}
	for id, s := range r.m.sessions {
		if !s.exp.IsZero() && s.exp.Due(now) {
			due[id] = s.exp
		}
	}
	r.begin("ExpiredForEach(now %s) with %d due", fmtTime(now), len(due))
	var (
		visited  []string
		seen     = map[string]bool{}
		lastNext time.Time
		ended    string
		mismatch string
	)
	err := r.ss.ExpiredForEach(ctx, now, func(id string, e persistence.SessionExpiry) error {
		w, ok := due[id]
		switch {
		case ended != "":
			mismatch = fmt.Sprintf("callback called again (session %q) after it stopped the iteration (%s)", id, ended)
		case seen[id]:
			mismatch = fmt.Sprintf("called twice for session %q", id)
		case !ok && r.m.sessions[id] == nil:
			mismatch = fmt.Sprintf("called for session %q, which does not exist", id)
		case !ok:
			mismatch = fmt.Sprintf("called for session %q, whose deadlines {ExpireAt %s, WillAt %s} are not at or before now %s",
				id, fmtTime(r.m.sessions[id].exp.ExpireAt), fmtTime(r.m.sessions[id].exp.WillAt), fmtTime(now))
		case len(visited) > 0 && e.Next().Before(lastNext):
			mismatch = fmt.Sprintf("not earliest deadline first: session %q (deadline %s) after one with deadline %s",
				id, fmtTime(e.Next()), fmtTime(lastNext))
		default:
			if d := diffExpiry(e, w); d != "" {
				mismatch = fmt.Sprintf("session %q: %s", id, d)
			}
		}
		if mismatch != "" {
			return errModelMismatch
		}
		seen[id] = true
		visited = append(visited, id)
		lastNext = e.Next()
		// The callback may delete the session or change its deadlines.
		var err error
		var what string
		switch h := cb.of(id) % 20; {
		case h < 3:
			what = "Delete"
			if err = r.ss.Delete(ctx, id); err == nil {
				delete(r.m.sessions, id)
			}
		case h < 5:
			what = "ExpiryDelete"
			if err = r.ss.ExpiryDelete(ctx, id); err == nil {
				r.m.sessions[id].exp = persistence.SessionExpiry{}
			}
		case h < 7:
			what = "ExpiryStore (postpone)"
			ne := persistence.SessionExpiry{ExpireAt: now.Add(time.Duration(1+cb.of(id)%100) * time.Second)}
			if err = r.ss.ExpiryStore(ctx, id, ne); err == nil {
				r.m.sessions[id].exp = ne
			}
		case h < 8:
			ended = "stop"
			return persistence.ErrStopIteration
		case h < 9:
			ended = "error"
			return errModelCallback
		}
		if err != nil {
			mismatch = fmt.Sprintf("%s(%q) from inside the callback: got error %v, want nil", what, id, errString(err))
			return errModelMismatch
		}
		return nil
	})
	if mismatch != "" {
		r.failf("%s", mismatch)
	}
	if ended == "error" {
		r.expect(err, errCallback)
	} else {
		r.expect(err, errNil)
	}
	if ended == "" {
		for _, id := range slices.Sorted(maps.Keys(due)) {
			if !seen[id] {
				r.failf("not called for session %q, whose deadline %s is at or before now %s",
					id, fmtTime(due[id].Next()), fmtTime(now))
			}
		}
		return
	}
	for id, e := range due {
		if !seen[id] && e.Next().Before(lastNext) {
			r.failf("stopped after session with deadline %s, but session %q with the earlier deadline %s was not visited",
				fmtTime(lastNext), id, fmtTime(e.Next()))
		}
	}
}

// ---- retained ----

func (r *modelRunner) retainedPacket() *persistence.PersistedPacket {
	p := r.packet()
	p.Seq = 0
	return p
}

func (r *modelRunner) opRetainedPut(ctx context.Context) {
	topic := pick(r, modelTopics)
	p, bad := r.retainedPacket(), false
	switch x := r.rng.IntN(100); {
	case x < 2:
		topic, bad = "", true
	case x < 3:
		p, bad = nil, true
	case x < 4:
		p.QoS, bad = 3, true
	}
	r.begin("Retained.Put(%q, %s)", topic, fmtPacket(p))
	mp := p.Clone()
	err := r.rs.Put(ctx, topic, p)
	if bad {
		r.expect(err, errInvalid)
		return
	}
	r.expect(err, errNil)
	r.m.retained[topic] = mp
	scribblePacket(p)
}

func (r *modelRunner) opRetainedGet(ctx context.Context) {
	topic := pick(r, modelTopics)
	if r.pct(10) {
		topic = pick(r, modelMatchFilters) // wildcards are literal bytes to Get
	}
	r.begin("Retained.Get(%q)", topic)
	got, err := r.rs.Get(ctx, topic)
	want := r.m.retained[topic]
	if want == nil {
		r.expect(err, errNotFound)
		return
	}
	r.expect(err, errNil)
	if d := diffPacket(got, want, false); d != "" {
		r.failf("Retained.Get: %s", d)
	}
	scribblePacket(got)
}

func (r *modelRunner) opRetainedDelete(ctx context.Context) {
	topic := pick(r, modelTopics)
	r.begin("Retained.Delete(%q)", topic)
	r.expect(r.rs.Delete(ctx, topic), errNil)
	delete(r.m.retained, topic)
}

func (r *modelRunner) opRetainedLoadMatching(ctx context.Context) {
	var filters []string
	for range r.rng.IntN(4) {
		filters = append(filters, pick(r, modelMatchFilters))
	}
	stopAt := 0
	if r.pct(20) {
		stopAt = 1 + r.rng.IntN(3)
	}
	r.begin("Retained.LoadMatching(%q, stop after %d)", filters, stopAt)
	r.loadRetained(ctx, fmt.Sprintf("Retained.LoadMatching(%q)", filters), filters, false, stopAt)
}

func (r *modelRunner) opRetainedStore(ctx context.Context) {
	msgs := make([]*persistence.RetainedMessage, r.rng.IntN(7))
	bad := false
	for i := range msgs {
		msgs[i] = &persistence.RetainedMessage{Topic: pick(r, modelTopics), Packet: r.retainedPacket()}
	}
	if len(msgs) > 0 && r.pct(10) {
		m := pick(r, msgs)
		if r.pct(50) {
			m.Topic = ""
		} else {
			m.Packet.QoS = 3
		}
		bad = true
	}
	topics := make([]string, len(msgs))
	for i, m := range msgs {
		topics[i] = m.Topic
	}
	r.begin("Retained.Store(%q, invalid %v)", topics, bad)
	want := map[string]*persistence.PersistedPacket{}
	for _, m := range msgs {
		want[m.Topic] = m.Packet.Clone() // later messages for a topic win
	}
	err := r.rs.Store(ctx, msgs)
	if bad {
		r.expect(err, errInvalid)
		r.checkRetained(ctx) // atomic: a failed Store changes nothing
		return
	}
	r.expect(err, errNil)
	r.m.retained = want
	for _, m := range msgs {
		scribblePacket(m.Packet)
	}
}

func (r *modelRunner) opRetainedWipeOrLoad(ctx context.Context) {
	if r.pct(30) {
		r.begin("Retained.Wipe()")
		r.expect(r.rs.Wipe(ctx), errNil)
		r.m.retained = map[string]*persistence.PersistedPacket{}
		return
	}
	r.begin("Retained.Load()")
	r.loadRetained(ctx, "Retained.Load()", nil, true, 0)
}

func (r *modelRunner) opRetainedCount(ctx context.Context) {
	r.begin("Retained.Count()")
	n, err := r.rs.Count(ctx)
	r.expect(err, errNil)
	if n != uint64(len(r.m.retained)) {
		r.failf("Retained.Count() = %d, want %d", n, len(r.m.retained))
	}
}

// ---- batches ----

// genBatch builds a random batch over one to three sessions; some batches carry an
// operation that makes the whole batch fail.
func (r *modelRunner) genBatch() (*persistence.Batch, []string) {
	var ids []string
	for range 1 + r.rng.IntN(3) {
		ids = append(ids, r.pickID())
	}
	type adder func(b *persistence.Batch) string
	var adds []adder
	for _, id := range ids {
		if r.m.sessions[id] == nil && r.pct(80) {
			base := persistence.SessionBase{CreatedAt: r.when(), ProtocolVersion: 5}
			adds = append(adds, func(b *persistence.Batch) string {
				b.Create(id, base)
				return fmt.Sprintf("Create(%q)", id)
			})
		}
	}
	n := r.rng.IntN(7)
	for range n {
		id := pick(r, ids)
		c := pick(r, persistence.PacketClasses)
		switch x := r.rng.IntN(100); {
		case x < 4:
			adds = append(adds, func(b *persistence.Batch) string {
				b.Create(id, persistence.SessionBase{CreatedAt: modelEpoch, ProtocolVersion: 4})
				return fmt.Sprintf("Create(%q)", id)
			})
		case x < 8:
			adds = append(adds, func(b *persistence.Batch) string { b.Delete(id); return fmt.Sprintf("Delete(%q)", id) })
		case x < 35:
			p := r.packet()
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketAppend(id, c, p)
				return fmt.Sprintf("PacketAppend(%q, %s)", id, c)
			})
		case x < 45:
			p := r.packet()
			p.Seq = r.pickSeq(id, c)
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketUpdate(id, c, p)
				return fmt.Sprintf("PacketUpdate(%q, %s, %d)", id, c, p.Seq)
			})
		case x < 55:
			seq := r.pickSeq(id, c)
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketDelete(id, c, seq)
				return fmt.Sprintf("PacketDelete(%q, %s, %d)", id, c, seq)
			})
		case x < 59:
			adds = append(adds, func(b *persistence.Batch) string {
				b.PacketsDelete(id, c)
				return fmt.Sprintf("PacketsDelete(%q, %s)", id, c)
			})
		case x < 69:
			sub := r.subscription()
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionStore(id, sub)
				return fmt.Sprintf("SubscriptionStore(%q, %q)", id, sub.Filter)
			})
		case x < 75:
			f := pick(r, modelFilters)
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionDelete(id, f)
				return fmt.Sprintf("SubscriptionDelete(%q, %q)", id, f)
			})
		case x < 78:
			adds = append(adds, func(b *persistence.Batch) string {
				b.SubscriptionsDeleteAll(id)
				return fmt.Sprintf("SubscriptionsDeleteAll(%q)", id)
			})
		case x < 84:
			st := r.state()
			adds = append(adds, func(b *persistence.Batch) string {
				b.StateStore(id, st)
				return fmt.Sprintf("StateStore(%q)", id)
			})
		case x < 87:
			adds = append(adds, func(b *persistence.Batch) string { b.StateDelete(id); return fmt.Sprintf("StateDelete(%q)", id) })
		case x < 95:
			e := r.expiry()
			adds = append(adds, func(b *persistence.Batch) string {
				b.ExpiryStore(id, e)
				return fmt.Sprintf("ExpiryStore(%q, %s)", id, fmtTime(e.Next()))
			})
		default:
			adds = append(adds, func(b *persistence.Batch) string { b.ExpiryDelete(id); return fmt.Sprintf("ExpiryDelete(%q)", id) })
		}
	}
	if len(adds) > 0 && r.pct(20) {
		// A poison operation: the whole batch must fail and write nothing.
		id := pick(r, ids)
		var poison adder
		switch r.rng.IntN(4) {
		case 0:
			seq := r.highSeq + 1 + r.rng.Uint64N(1000)
			poison = func(b *persistence.Batch) string {
				b.PacketUpdate(id, persistence.ClassUnAck, &persistence.PersistedPacket{Seq: seq, QoS: 1})
				return fmt.Sprintf("PacketUpdate(%q, UnAck, missing seq %d)", id, seq)
			}
		case 1:
			if m := r.missingID(); m != "" && !slices.Contains(ids, m) {
				poison = func(b *persistence.Batch) string {
					b.SubscriptionStore(m, r.subscription())
					return fmt.Sprintf("SubscriptionStore(missing %q)", m)
				}
				break
			}
			fallthrough
		case 2:
			if ex := r.m.ids(); len(ex) > 0 {
				e := pick(r, ex)
				poison = func(b *persistence.Batch) string {
					b.Create(e, persistence.SessionBase{})
					return fmt.Sprintf("Create(existing %q)", e)
				}
				break
			}
			fallthrough
		default:
			c := pick(r, invalidClasses)
			poison = func(b *persistence.Batch) string {
				b.PacketAppend(id, c, r.packet())
				return fmt.Sprintf("PacketAppend(%q, invalid class %d)", id, c)
			}
		}
		i := r.rng.IntN(len(adds) + 1)
		adds = slices.Insert(adds, i, poison)
	}
	b := &persistence.Batch{}
	desc := make([]string, len(adds))
	for i, add := range adds {
		desc[i] = add(b)
	}
	return b, desc
}

// simulate applies ops to m in order, as Apply must. It returns the packets the
// appends store (their Seq still unset), the first failure and whether any operation
// has an argument no store accepts.
func simulate(m *model, ops []driver.Op) (appended []*persistence.PersistedPacket, appendKeys []seqKey, fail errKind, invalid bool) {
	for i := range ops {
		if ops[i].Validate() != nil {
			invalid = true
		}
	}
	placeholder := map[*persistence.PersistedPacket]bool{}
	live := func(q []*persistence.PersistedPacket, seq uint64) int {
		return slices.IndexFunc(q, func(p *persistence.PersistedPacket) bool { return !placeholder[p] && p.Seq == seq })
	}
	for i := range ops {
		op := &ops[i]
		if op.Validate() != nil {
			return nil, nil, errInvalid, invalid
		}
		s := m.sessions[op.ID]
		switch op.Kind {
		case driver.OpCreate:
			if s != nil {
				return nil, nil, errExists, invalid
			}
			m.sessions[op.ID] = &mSession{base: op.Base}
			continue
		case driver.OpDelete:
			delete(m.sessions, op.ID)
			continue
		}
		if s == nil {
			return nil, nil, errNotFound, invalid
		}
		switch op.Kind {
		case driver.OpPacketAppend:
			p := op.Packet.Clone()
			placeholder[p] = true
			appended = append(appended, p)
			appendKeys = append(appendKeys, seqKey{op.ID, op.Class})
			s.queues[op.Class-1] = append(s.queues[op.Class-1], p)
		case driver.OpPacketUpdate:
			j := live(s.queues[op.Class-1], op.Packet.Seq)
			if j < 0 {
				return nil, nil, errNotFound, invalid
			}
			s.queues[op.Class-1][j] = op.Packet.Clone()
		case driver.OpPacketDelete:
			if j := live(s.queues[op.Class-1], op.Seq); j >= 0 {
				s.queues[op.Class-1] = slices.Delete(s.queues[op.Class-1], j, j+1)
			}
		case driver.OpPacketsDelete:
			s.queues[op.Class-1] = nil
		case driver.OpSubscriptionStore:
			if s.subs == nil {
				s.subs = map[string]persistence.Subscription{}
			}
			s.subs[op.Subscription.Filter] = op.Subscription
		case driver.OpSubscriptionDelete:
			delete(s.subs, op.Filter)
		case driver.OpSubscriptionsDeleteAll:
			s.subs = nil
		case driver.OpStateStore:
			s.state = op.State.Clone()
		case driver.OpStateDelete:
			s.state = nil
		case driver.OpExpiryStore:
			s.exp = op.Expiry
		case driver.OpExpiryDelete:
			s.exp = persistence.SessionExpiry{}
		}
	}
	return appended, appendKeys, errNil, invalid
}

func (r *modelRunner) opApply(ctx context.Context) {
	b, desc := r.genBatch()
	sim := r.m.clone()
	appended, keys, fail, invalid := simulate(sim, b.Ops())
	want := fail
	if invalid {
		want |= errInvalid
	}
	r.begin("Apply[%s] (want %v)", strings.Join(desc, ", "), want)
	seqs, err := r.ss.Apply(ctx, b)
	r.expect(err, want)
	if want == errNil {
		if len(seqs) != len(appended) || len(seqs) != b.Appends() {
			r.failf("Apply returned %d sequence numbers for a batch with %d appends", len(seqs), b.Appends())
		}
		for i, seq := range seqs {
			r.newSeq(keys[i].id, keys[i].class, seq)
			appended[i].Seq = seq
		}
		r.m = sim
	}
	// On success the batch is all there; on failure nothing of it is.
	touched := map[string]bool{}
	for _, op := range b.Ops() {
		if !touched[op.ID] {
			touched[op.ID] = true
			r.checkSession(ctx, op.ID)
		}
	}
}

// ---- cancellation, reopen ----

// opCancelled makes a write with a context that is already cancelled: it must return
// ctx.Err() and write nothing.
func (r *modelRunner) opCancelled(ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ids := r.m.ids()
	k := r.rng.IntN(8)
	if len(ids) == 0 && k < 6 {
		k = 6 + r.rng.IntN(2)
	}
	var id string
	if len(ids) > 0 {
		id = pick(r, ids)
	}
	var err error
	switch k {
	case 0:
		r.begin("PacketAppend(%q) with a cancelled context", id)
		_, err = r.ss.PacketAppend(cctx, id, persistence.ClassQoS12, r.packet())
	case 1:
		r.begin("PacketsDelete(%q) with a cancelled context", id)
		err = r.ss.PacketsDelete(cctx, id)
	case 2:
		r.begin("SubscriptionsStore(%q) with a cancelled context", id)
		err = r.ss.SubscriptionsStore(cctx, id, r.subscription())
	case 3:
		r.begin("StateStore(%q) with a cancelled context", id)
		err = r.ss.StateStore(cctx, id, r.state())
	case 4:
		r.begin("Delete(%q) with a cancelled context", id)
		err = r.ss.Delete(cctx, id)
	case 5:
		r.begin("Apply(%q: append, subscribe, expiry) with a cancelled context", id)
		b := (&persistence.Batch{}).PacketAppend(id, persistence.ClassQoS0, r.packet()).
			SubscriptionStore(id, r.subscription()).ExpiryStore(id, persistence.SessionExpiry{ExpireAt: r.when()})
		_, err = r.ss.Apply(cctx, b)
	case 6:
		if m := r.missingID(); m != "" {
			r.begin("Create(%q) with a cancelled context", m)
			err = r.ss.Create(cctx, m, persistence.SessionBase{CreatedAt: r.when()})
			break
		}
		fallthrough
	default:
		topic := pick(r, modelTopics)
		r.begin("Retained.Put(%q) with a cancelled context", topic)
		err = r.rs.Put(cctx, topic, r.retainedPacket())
	}
	r.expect(err, errCanceled)
	r.checkAll(ctx, "after a write with a cancelled context")
}

// opReopen closes and reopens the store (or abandons it, for a crash) and compares
// everything with the model.
func (r *modelRunner) opReopen(ctx context.Context, crash bool) {
	if r.step-r.lastReopen < 10 {
		return // keep reopens apart so that state builds up between them
	}
	r.lastReopen = r.step
	what := "Reopen"
	if crash {
		what = "Crash"
		r.crashes++
	} else {
		r.reopens++
	}
	r.begin("Harness.%s", what)
	r.setProvider(r.reopen(crash))
	r.checkAll(ctx, "after Harness."+what)
}
