package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// CrashHarness tells [RunCrash] how to reach the driver's stores. Only NewTarget is
// required.
//
// The crash test runs the driver's test binary again as a child process that writes
// through the SDK from several goroutines (session creation and deletion, appends,
// acknowledgements, in-flight updates, batches across sessions, subscriptions,
// states, deadlines, retained messages) and reports every acknowledged operation to
// the parent through a pipe. The parent SIGKILLs the child after a random number of
// acknowledgements, reopens the same store and checks that every acknowledged
// operation is there, that the operation each goroutine had in flight is either
// wholly there or wholly absent, and that the store's views agree (counts,
// LoadForEach, FIFO order, the expiry index, sequence numbers never reused). Then
// the next child continues on the same store: recovery follows recovery.
type CrashHarness struct {
	// NewTarget returns where a new, empty store lives: for the default Open, a
	// store URL with the durability under test (e.g. "bolt:///tmp/…/state.db?sync=always").
	// It runs in the parent only, once per run, and registers its own cleanup.
	NewTarget func(t testing.TB) string
	// Open opens the store at target, in the child (to write) and in the parent (to
	// check). nil means persistence.Open(ctx, target).
	Open func(ctx context.Context, target string) (*persistence.Store, error)
	// AfterKill, when not nil, runs in the parent after each kill, before the store
	// is reopened: a power-loss test drops unsynced data there; a client-server
	// driver may wait for the server to finish with the dead client's sessions.
	AfterKill func(t testing.TB, target string)
	// Kills is how many times the child is killed; 0 means 24.
	Kills int
	// Writers is the number of goroutines writing in the child; 0 means 4.
	Writers int
	// MaxAcks bounds the random number of acknowledgements after which a child is
	// killed; 0 means 400 (60 under the race detector). One kill in eight comes right after the child opened the
	// store, before it writes.
	MaxAcks int
	// Budget bounds the whole run; 0 means 60 seconds. A run that reaches it stops
	// killing, and fails if it made fewer than 20 kills (or Kills, if smaller).
	Budget time.Duration
}

// CrashResult is what a crash run did.
type CrashResult struct {
	Kills int
	// Acked is the number of acknowledged operations checked.
	Acked int
	// InFlightKept and InFlightLost count the operations in flight at a kill that
	// were found wholly applied and wholly absent.
	InFlightKept, InFlightLost int
	Elapsed                    time.Duration
}

// The environment of a child.
const (
	envCrashTarget  = "MQTTSTORE_CRASH_TARGET"
	envCrashTest    = "MQTTSTORE_CRASH_TEST"
	envCrashWriters = "MQTTSTORE_CRASH_WRITERS"
	envCrashSeed    = "MQTTSTORE_CRASH_SEED"
	envCrashRound   = "MQTTSTORE_CRASH_ROUND"
	// crashChildMax bounds a child that the parent lost: it stops by itself.
	crashChildMax = 2 * time.Minute
	// crashRoundMax bounds the wait for the kill condition of one round.
	crashRoundMax = 20 * time.Second
)

// RunCrash runs the crash test and fails t with the first loss it finds. Call it
// from a test of the driver's package; the child process re-runs exactly that test
// (RunCrash then plays the child's part and never returns in it):
//
//	func TestCrash(t *testing.T) {
//		conformance.RunCrash(t, conformance.CrashHarness{
//			NewTarget: func(t testing.TB) string { return "bolt://" + t.TempDir() + "/s.db?sync=always" },
//		})
//	}
//
// A failure's first line says what was lost (or half-applied); the details and the
// seed that replays the child's choices (MQTTSTORE_CRASH_SEED) follow.
func RunCrash(t *testing.T, h CrashHarness) CrashResult {
	t.Helper()
	res, err := CrashRun(t, h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// CrashRun is [RunCrash] returning the loss it found instead of failing t, for
// tests that expect a broken driver to lose writes. Problems of the harness itself
// (a child that cannot start, a store that cannot be reopened) still fail t.
func CrashRun(t *testing.T, h CrashHarness) (CrashResult, error) {
	t.Helper()
	if target := os.Getenv(envCrashTarget); target != "" {
		if os.Getenv(envCrashTest) != t.Name() {
			t.Skip("crash child of another test")
		}
		crashChild(h, target) // never returns
	}
	if h.NewTarget == nil {
		t.Fatal("conformance: CrashHarness.NewTarget is required")
	}
	h = h.withDefaults()
	seed := rand.Uint64()
	if s := os.Getenv(envCrashSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envCrashSeed, s, err)
		}
	}
	target := h.NewTarget(t)
	r := &crashRun{t: t, h: h, target: target, seed: seed, rng: rand.New(rand.NewPCG(seed, 0xC4A54)),
		models: make([]crashModel, h.Writers), maxSeq: map[string]uint64{}, history: make([][]string, h.Writers),
		lastOp: make([]map[string]string, h.Writers)}
	for w := range r.models {
		r.models[w] = crashModel{}
		r.lastOp[w] = map[string]string{}
	}
	start := time.Now()
	minKills := min(h.Kills, 20)
	for r.res.Kills < h.Kills {
		if time.Since(start) > h.Budget {
			if r.res.Kills < minKills {
				t.Fatalf("crash: only %d kills in the budget of %s (want at least %d); the driver or the machine is too slow", r.res.Kills, h.Budget, minKills)
			}
			t.Logf("crash: budget of %s reached after %d kills", h.Budget, r.res.Kills)
			break
		}
		if err := r.round(); err != nil {
			r.res.Elapsed = time.Since(start)
			return r.res, err
		}
	}
	r.res.Elapsed = time.Since(start)
	t.Logf("crash: %d kills in %s, %d acknowledged operations checked, in flight at a kill: %d kept, %d absent (seed %d)",
		r.res.Kills, r.res.Elapsed.Round(time.Millisecond), r.res.Acked, r.res.InFlightKept, r.res.InFlightLost, seed)
	return r.res, nil
}

func (h CrashHarness) withDefaults() CrashHarness {
	if h.Open == nil {
		h.Open = func(ctx context.Context, target string) (*persistence.Store, error) {
			return persistence.Open(ctx, target)
		}
	}
	if h.Kills <= 0 {
		h.Kills = 24
	}
	if h.Writers <= 0 {
		h.Writers = 4
	}
	if h.MaxAcks <= 0 {
		h.MaxAcks = 400
		if raceEnabled {
			h.MaxAcks = 60
		}
	}
	if h.Budget <= 0 {
		h.Budget = 60 * time.Second
	}
	return h
}

// crashRun is the parent's state across rounds.
type crashRun struct {
	t      *testing.T
	h      CrashHarness
	target string
	seed   uint64
	rng    *rand.Rand
	res    CrashResult
	// models holds each writer's part of the store as last verified, plus the
	// operations acknowledged since.
	models []crashModel
	// maxSeq is the highest sequence number seen per (session, class) queue.
	maxSeq map[string]uint64
	// history holds each writer's last acknowledged operations, for failure reports.
	history [][]string
	// lastOp maps each writer's keys to the last acknowledged operation that wrote
	// or deleted them.
	lastOp []map[string]string
}

// crashEvent is one line of a child's report.
type crashEvent struct {
	begin bool // "B": an operation starts; else "A": it was acknowledged
	w     int
	op    crashOp
	seqs  []uint64
}

// round runs one child, kills it and checks the store.
func (r *crashRun) round() error {
	t, round := r.t, r.res.Kills+1
	afterAcks := 0
	if r.rng.IntN(8) != 0 {
		afterAcks = 1 + r.rng.IntN(r.h.MaxAcks)
	}
	events, stderr, err := r.runChild(round, afterAcks)
	if err != nil {
		t.Fatalf("crash: kill %d: %v\nchild's output:\n%s", round, err, stderr)
	}
	r.res.Kills++
	if r.h.AfterKill != nil {
		r.h.AfterKill(t, r.target)
	}

	// Replay the report: acknowledged operations go into the models.
	inFlight := make([]*crashOp, r.h.Writers)
	for _, e := range events {
		if e.begin {
			op := e.op
			inFlight[e.w] = &op
			continue
		}
		op := inFlight[e.w]
		if op == nil {
			t.Fatalf("crash: kill %d: the child acknowledged an operation of writer %d it never began", round, e.w)
		}
		inFlight[e.w] = nil
		if err := r.checkSeqs(*op, e.seqs, round); err != nil {
			return err
		}
		touched := map[string]bool{}
		r.models[e.w].apply(*op, e.seqs, touched)
		desc := fmt.Sprintf("%s (kill %d)", op, round)
		for k := range touched {
			r.lastOp[e.w][k] = desc
		}
		r.history[e.w] = append(r.history[e.w], desc)
		if len(r.history[e.w]) > 6 {
			r.history[e.w] = r.history[e.w][1:]
		}
		r.res.Acked++
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := r.h.Open(ctx, r.target)
	if err != nil {
		return fmt.Errorf("crash: kill %d: the store cannot be reopened after the kill: %v", round, err)
	}
	defer p.Close()
	obs, err := observe(ctx, p)
	if err != nil {
		return fmt.Errorf("crash: kill %d: the reopened store contradicts itself: %v", round, err)
	}
	parts, stray := obs.split(r.h.Writers)
	if len(stray) > 0 {
		return fmt.Errorf("crash: kill %d: the store holds %q = %s, which no writer wrote", round, stray[0], obs[stray[0]])
	}
	for w, got := range parts {
		if err := r.checkWriter(round, w, got, inFlight[w]); err != nil {
			return err
		}
	}
	if err := p.Close(); err != nil {
		return fmt.Errorf("crash: kill %d: close after checking: %v", round, err)
	}
	return nil
}

// checkSeqs checks that an acknowledged operation's sequence numbers are above every
// one seen before in their queue.
func (r *crashRun) checkSeqs(op crashOp, seqs []uint64, round int) error {
	n := 0
	for _, s := range op.Steps {
		if s.K != "append" {
			continue
		}
		if n >= len(seqs) {
			return fmt.Errorf("crash: kill %d: %s returned %d sequence numbers", round, op, len(seqs))
		}
		q := pktPrefix(s.ID, s.Class)
		if max, ok := r.maxSeq[q]; ok && seqs[n] <= max {
			return fmt.Errorf("crash: kill %d: a sequence number was reused: %s got seq %d, but seq %d of (%s, %s) was assigned before (seqs are never reused, not even after a crash)",
				round, op, seqs[n], max, s.ID, s.Class)
		}
		r.maxSeq[q] = seqs[n]
		n++
	}
	return nil
}

// checkWriter compares writer w's part of the reopened store with its model, with or
// without the operation that was in flight.
func (r *crashRun) checkWriter(round, w int, got crashModel, inFlight *crashOp) error {
	want := r.models[w]
	if maps.Equal(got, want) {
		if inFlight != nil {
			r.res.InFlightLost++
		}
		r.adopt(w, got)
		return nil
	}
	touched := map[string]bool{}
	var with crashModel
	if inFlight != nil {
		with = maps.Clone(want)
		with.apply(*inFlight, nil, touched)
		if r.resolve(with, got) && maps.Equal(got, with) {
			r.res.InFlightKept++
			r.adopt(w, got)
			for k := range touched {
				r.lastOp[w][k] = fmt.Sprintf("%s (in flight at kill %d, found applied)", inFlight, round)
			}
			return nil
		}
	}
	return r.explain(round, w, got, want, with, inFlight, touched)
}

// resolve gives the placeholder keys of with (appends whose sequence numbers the
// parent never learnt) the sequence numbers of the packets of got that with does not
// have, queue by queue, in order. It reports false when they cannot be matched.
func (r *crashRun) resolve(with, got crashModel) bool {
	byQueue := map[string][]string{}
	for k := range with {
		if i := strings.LastIndex(k, " ?"); i >= 0 {
			byQueue[k[:i+1]] = append(byQueue[k[:i+1]], k)
		}
	}
	for q, phs := range byQueue {
		slices.Sort(phs)
		var fresh []string
		for k := range got {
			if _, ok := with[k]; !ok && strings.HasPrefix(k, q) {
				fresh = append(fresh, k)
			}
		}
		slices.Sort(fresh) // zero-padded seqs sort numerically
		if len(fresh) != len(phs) {
			return false
		}
		for i, ph := range phs {
			seq, _ := strconv.ParseUint(strings.TrimPrefix(fresh[i], q), 10, 64)
			if seq <= r.maxSeq[q] {
				return false
			}
			with[fresh[i]] = with[ph]
			delete(with, ph)
		}
	}
	return true
}

// adopt makes the verified store contents the writer's model and notes every
// sequence number in it.
func (r *crashRun) adopt(w int, got crashModel) {
	r.models[w] = maps.Clone(got)
	for k := range got {
		if i := strings.LastIndexByte(k, ' '); i > 0 && strings.Contains(k, "|p") {
			if seq, err := strconv.ParseUint(k[i+1:], 10, 64); err == nil && seq > r.maxSeq[k[:i+1]] {
				r.maxSeq[k[:i+1]] = seq
			}
		}
	}
}

// explain builds the failure: one line saying what was lost, then the details.
func (r *crashRun) explain(round, w int, got, want, with crashModel, inFlight *crashOp, touched map[string]bool) error {
	// isTouched reports whether the operation in flight may have changed key k: one
	// it writes or deletes, one the store had under a prefix it deletes, or
	// (newKey) one its appends may have added. A key the store should not have is
	// never explained by a delete: a delete cannot add it.
	isTouched := func(k string, newKey bool) bool {
		if touched[k] {
			return true
		}
		for t := range touched {
			switch {
			case strings.HasSuffix(t, " ?"):
				if newKey && strings.HasPrefix(k, strings.TrimSuffix(t, "?")) {
					return true
				}
			case strings.HasSuffix(t, " ") || strings.HasSuffix(t, "|"):
				if !newKey && strings.HasPrefix(k, t) {
					return true
				}
			}
		}
		return false
	}
	var lost, extra, changed, half []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case ok && g == want[k]:
		case isTouched(k, false):
			half = append(half, k)
		case !ok:
			lost = append(lost, k)
		default:
			changed = append(changed, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			if isTouched(k, true) {
				half = append(half, k)
			} else {
				extra = append(extra, k)
			}
		}
	}
	by := func(k string) string {
		if op, ok := r.lastOp[w][k]; ok {
			return "acknowledged " + op
		}
		return "an operation acknowledged before kill " + strconv.Itoa(round)
	}
	var first string
	switch {
	case len(lost) > 0:
		k := lost[0]
		first = fmt.Sprintf("crash: kill %d lost an acknowledged write: %s (%s) is missing; written by %s", round, k, want[k], by(k))
	case len(changed) > 0:
		k := changed[0]
		first = fmt.Sprintf("crash: kill %d lost an acknowledged write: %s is {%s}, want {%s} from %s", round, k, got[k], want[k], by(k))
	case len(extra) > 0:
		k := extra[0]
		if _, deleted := r.lastOp[w][k]; deleted {
			first = fmt.Sprintf("crash: kill %d lost an acknowledged delete: %s (%s) is back; deleted by %s", round, k, got[k], by(k))
		} else {
			first = fmt.Sprintf("crash: kill %d: the store holds %s = %s, which was never written", round, k, got[k])
		}
	default:
		first = fmt.Sprintf("crash: kill %d half-applied the operation in flight: %s (%d of its items differ from both before and after it)", round, inFlight, len(half))
	}
	var b strings.Builder
	b.WriteString(first)
	fmt.Fprintf(&b, "\n\nwriter %d of %d, store %s, seed %d (set %s=%d to replay the child's choices)\n", w, r.h.Writers, r.target, r.seed, envCrashSeed, r.seed)
	if inFlight != nil {
		fmt.Fprintf(&b, "in flight at the kill: %s\n", inFlight)
	} else {
		b.WriteString("nothing was in flight at the kill\n")
	}
	b.WriteString("last acknowledged operations:\n")
	for _, h := range r.history[w] {
		fmt.Fprintf(&b, "  %s\n", h)
	}
	diff := func(title string, want crashModel) {
		fmt.Fprintf(&b, "%s (- expected, + in the store):\n", title)
		n := 0
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if g, ok := got[k]; !ok || g != want[k] {
				if n++; n <= 20 {
					fmt.Fprintf(&b, "  - %s = %s\n", k, want[k])
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if v, ok := want[k]; !ok || v != got[k] {
				if n++; n <= 20 {
					fmt.Fprintf(&b, "  + %s = %s\n", k, got[k])
				}
			}
		}
		if n > 20 {
			fmt.Fprintf(&b, "  … %d more lines\n", n-20)
		}
	}
	diff("against the acknowledged operations", want)
	if with != nil {
		diff("against the acknowledged operations and the one in flight", with)
	}
	return errors.New(b.String())
}
