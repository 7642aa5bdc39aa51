package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/mqttstore/mqttstore/persistence"
)

// The model's sequence runner: picking operations, recording history, failing with
// a reproducible message, acceptable errors and sequence-number checks.

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
	r.setStore(p)
	return r
}

func (r *modelRunner) setStore(p *persistence.Store) {
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

// errModelCallback is what the model's iteration callbacks return to check that a
// callback error stops the iteration and is returned.
var errModelCallback = errors.New("conformance: error returned by the model's callback")

// errModelMismatch stops an iteration whose callback saw something the model did not
// expect; the mismatch itself is reported after the iteration returns.
var errModelMismatch = errors.New("conformance: model mismatch inside a callback")

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

// sessionWant returns the acceptable error of a session-scoped call on id: nil when
// the session exists and the arguments are valid, ErrInvalidArgument for an invalid
// argument (checked first, by the Store), otherwise ErrNotFound.
func (r *modelRunner) sessionWant(id string, invalid bool) errKind {
	switch {
	case invalid:
		// The Store validates arguments before the driver sees the call, so an
		// invalid argument is ErrInvalidArgument whether or not the session exists.
		return errInvalid
	case r.m.sessions[id] == nil:
		return errNotFound
	}
	return errNil
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
