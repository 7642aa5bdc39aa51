package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
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
//
// The model is split by area: model_state.go holds the reference, model_runner.go
// runs a sequence, model_values.go draws the random values, model_check.go compares
// the whole state, and model_sessions.go, model_packets.go, model_subscriptions.go,
// model_expiry.go, model_retained.go, model_batch.go and model_lifecycle.go hold the
// steps of each area.

const (
	modelSeedEnv    = "MQTTSTORE_MODEL_SEED"
	modelOpsEnv     = "MQTTSTORE_MODEL_OPS"
	modelDefaultOps = 300
	modelCheckEvery = 25 // steps between two full-state comparisons
)

// modelDefaultSeeds are the sequences run when MQTTSTORE_MODEL_SEED is not set. They
// are fixed so that a failure in CI reproduces with the same command.
var modelDefaultSeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8}

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

	p := h.New(h.bounded(t))
	if p == nil {
		t.Fatal("Harness.New returned a nil store")
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
				np = h.Crash(h.bounded(t), req.old)
			} else {
				np = h.Reopen(h.bounded(t), req.old)
			}
			if np == nil {
				t.Fatalf("Harness.Reopen/Crash returned a nil store")
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
