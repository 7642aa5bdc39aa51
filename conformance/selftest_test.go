package conformance

// The self-test: the suite must fail each deliberately broken driver (broken_test.go,
// broken_more_test.go) on the cases that pin the rule it breaks, and pass the
// controls, wrappers that break nothing.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- the catalogue ----

// brokenDriver is one deliberately broken driver.
type brokenDriver struct {
	name string
	// wrap breaks a real mem connection. It is called once per store.
	wrap func(c driver.Conn) driver.Conn
	// hangs marks drivers that deadlock instead of failing a check.
	hangs bool
}

// open opens a new in-memory store through d's wrapper, as a driver's Connector
// would hand it to persistence.OpenConnector.
func (d brokenDriver) open(ctx context.Context, opts ...persistence.OpenOption) (*persistence.Store, error) {
	return persistence.OpenConnector(ctx, wrapConnector{base: memConnector(), wrap: d.wrap}, opts...)
}

// The rules a driver could break before API v1 and no longer can, because the Store
// enforces them before and after every call of a driver.Conn, have no broken driver
// here: Close that is not idempotent, calls after Close that do not return
// ErrClosed, writes made with a done context, and a driver that ignores its context
// (including between callbacks). The suite's Close and Context cases still pin those
// rules, now for the Store.
var brokenDrivers = []brokenDriver{
	{name: "LIFOIteration", wrap: func(c driver.Conn) driver.Conn { return lifoConn{c} }},
	{name: "DeleteLeavesSubscriptions", wrap: func(c driver.Conn) driver.Conn {
		return &leftoverSubs{Conn: c, left: map[string][]persistence.Subscription{}}
	}},
	{name: "NoErrNotFound", wrap: func(c driver.Conn) driver.Conn { return nilOnMissing{c} }},
	{name: "LockHeldDuringCallbacks", wrap: lockedCallbacks, hangs: true},
	{name: "SeqReusedAfterDelete", wrap: func(c driver.Conn) driver.Conn { return newRemap(c, true, false) }},
	{name: "UpdateMovesToTail", wrap: func(c driver.Conn) driver.Conn { return newRemap(c, false, true) }},
	{name: "CallbackErrorSwallowed", wrap: func(c driver.Conn) driver.Conn { return swallowConn{c} }},
	{name: "StoredValueAliasesCaller", wrap: func(c driver.Conn) driver.Conn { return newAlias(c) }},
	{name: "ExpiredBeforeDeadline", wrap: func(c driver.Conn) driver.Conn { return expiredEarly{c} }},
	{name: "HashMatchesDollarTopics", wrap: func(c driver.Conn) driver.Conn { return dollarMatch{c} }},
	{name: "DeleteLeavesPackets", wrap: func(c driver.Conn) driver.Conn {
		return &leftoverPackets{Conn: c, left: map[string]map[persistence.PacketClass][]*persistence.PersistedPacket{}}
	}},
	{name: "NoErrAlreadyExists", wrap: func(c driver.Conn) driver.Conn { return noErrExists{c} }},
	{name: "RetainedDeleteNoop", wrap: func(c driver.Conn) driver.Conn { return retainedDeleteNoop{c} }},
	{name: "ApplyNotAtomic", wrap: func(c driver.Conn) driver.Conn { return applyOneByOne{c} }},
	{name: "CreatedAtNotFromClock", wrap: func(c driver.Conn) driver.Conn { return wallClockInfo{c} }},
}

// controlDrivers are wrappers that break nothing: the suite must pass them, which
// shows that a broken driver fails because of its one broken rule.
var controlDrivers = []brokenDriver{
	{name: "Mem", wrap: func(c driver.Conn) driver.Conn { return c }},
	{name: "RemapIdentity", wrap: func(c driver.Conn) driver.Conn { return newRemap(c, false, false) }},
	{name: "HookIdentity", wrap: func(c driver.Conn) driver.Conn {
		return &hookConn{Conn: c, hook: func(ctx context.Context, _ string, fn func(context.Context) error) error { return fn(ctx) }}
	}},
}

// ---- running the suite against broken drivers in child processes ----

// Run's *testing.T cannot be intercepted, so each broken driver runs the suite in a
// child process: the test binary re-executed with -test.run selecting
// TestBrokenDriverChild and the relevant areas only, and the driver named in
// selftestDriverEnv. The parent asserts that the child fails, that its output names
// the expected failing subtests, and that it failed by its deadlines rather than
// hanging.

const (
	selftestDriverEnv = "MQTTSTORE_SELFTEST_DRIVER"
	selftestChildTime = 3 * time.Minute // bound of one child process
)

// selftestCase is one child run.
type selftestCase struct {
	driver string // a name in brokenDrivers or controlDrivers
	// areas is a -test.run pattern for the levels below TestBrokenDriverChild
	// ("^(Packets|Model)$"); empty runs the whole suite.
	areas string
	// fails are regexps of subtests (below TestBrokenDriverChild/) that must be
	// reported as failed; none for a control, which must pass.
	fails []string
	// caseTimeout is the harness's CaseTimeout in the child (0: the default).
	caseTimeout time.Duration
}

// selftestCases run the suite's relevant areas (or single cases, for drivers that
// hang) against each broken driver; fails names subtests that must fail. The
// controls run the whole suite and must pass it.
var selftestCases = []selftestCase{
	{driver: "LIFOIteration", areas: "^(Packets|Model)$",
		fails: []string{`Packets/QoS12/FIFO`, `Packets/Inflight/PubrelKeepsPosition`, `Model/Seed=\d+`}},
	{driver: "DeleteLeavesSubscriptions", areas: "^(Sessions|Bytes)$",
		fails: []string{`Sessions/DeleteCascadesToEverything`, `Bytes/IDs/Prefix`}},
	{driver: "DeleteLeavesPackets", areas: "^(Sessions)$",
		fails: []string{`Sessions/DeleteCascadesToEverything`}},
	{driver: "NoErrNotFound", areas: "^(Packets|Retained|Errors)$",
		fails: []string{`Packets/QoS0/GetMissingIsErrNotFound`, `Retained/GetMissingIsErrNotFound`, `Errors/StateGetWithoutStateIsErrNotFound`}},
	{driver: "NoErrAlreadyExists", areas: "^(Sessions|Batch)$",
		fails: []string{`Sessions/CreateExistingIsErrAlreadyExists`}},
	// Each hanging case costs its deadline: run only a few of them.
	{driver: "LockHeldDuringCallbacks", areas: "^(Sessions|Packets)$/^(LoadForEachCallbackMayCallAnyMethod|Inflight)$/^(|ForEachCallbackMayCallAnyMethod)$",
		fails: []string{`Sessions/LoadForEachCallbackMayCallAnyMethod`, `Packets/Inflight/ForEachCallbackMayCallAnyMethod`}, caseTimeout: 2 * time.Second},
	{driver: "SeqReusedAfterDelete", areas: "^(Packets)$",
		fails: []string{`Packets/QoS12/SeqNeverReusedAfterDelete`}},
	{driver: "UpdateMovesToTail", areas: "^(Packets)$",
		fails: []string{`Packets/Inflight/PubrelKeepsPosition`, `Packets/QoS0/UpdateKeepsPosition`}},
	{driver: "CallbackErrorSwallowed", areas: "^(Sessions|Packets|Retained|Expiry)$",
		fails: []string{`Packets/QoS12/ForEachErrorKeepsEarlierDeletes`, `Sessions/LoadForEachCallbackErrorReturned`,
			`Retained/LoadCallbackErrorReturned`, `Expiry/CallbackErrorReturned`}},
	{driver: "StoredValueAliasesCaller", areas: "^(Packets|Retained)$",
		fails: []string{`Packets/QoS12/StoredPacketIsACopy`, `Retained/StoredAndReturnedAreCopies`}},
	{driver: "ExpiredBeforeDeadline", areas: "^(Expiry)$",
		fails: []string{`Expiry/OnlyDueSessions`, `Expiry/FakeClockDrivesExpiry`}},
	{driver: "HashMatchesDollarTopics", areas: "^(Retained)$",
		fails: []string{`Retained/Match/DollarTopics`}},
	{driver: "RetainedDeleteNoop", areas: "^(Retained)$", fails: []string{`Retained/Delete`}},
	{driver: "ApplyNotAtomic", areas: "^(Batch)$",
		fails: []string{`Batch/FailingUpdateChangesNothing`, `Batch/MissingSessionChangesNothing`}},
	{driver: "CreatedAtNotFromClock", areas: "^(System)$", fails: []string{`System/CreatedAtFromClock`}},
	{driver: "Mem"},
	{driver: "RemapIdentity"},
	{driver: "HookIdentity"},
}

// harness returns a harness whose stores are in-memory stores wrapped by d.
func (d brokenDriver) harness() Harness {
	return Harness{New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
		s, err := d.open(context.Background(), opts...)
		if err != nil {
			t.Fatalf("open mem wrapped by %s: %v", d.name, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}
}

func findDriver(name string) (brokenDriver, bool) {
	for _, d := range append(slices.Clone(brokenDrivers), controlDrivers...) {
		if d.name == name {
			return d, true
		}
	}
	return brokenDriver{}, false
}

// TestSelftestCatalogue checks that every broken and control driver has one child
// run in selftestCases and that every run names a known driver.
func TestSelftestCatalogue(t *testing.T) {
	runs := map[string]int{}
	for _, c := range selftestCases {
		if _, ok := findDriver(c.driver); !ok {
			t.Errorf("selftestCases names %q, which is no broken or control driver", c.driver)
		}
		runs[c.driver]++
	}
	for _, d := range append(slices.Clone(brokenDrivers), controlDrivers...) {
		if runs[d.name] != 1 {
			t.Errorf("driver %s has %d runs in selftestCases; want 1", d.name, runs[d.name])
		}
	}
}

// runSuite is what the children run.
func runSuite(t *testing.T, h Harness) { Run(t, h) }

// TestBrokenDriverChild runs the suite against the driver named in
// MQTTSTORE_SELFTEST_DRIVER. It does nothing unless started by TestBrokenDrivers.
func TestBrokenDriverChild(t *testing.T) {
	name := os.Getenv(selftestDriverEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestBrokenDrivers")
	}
	d, ok := findDriver(name)
	if !ok {
		t.Fatalf("%s=%q names no driver of the self-test", selftestDriverEnv, name)
	}
	h := d.harness()
	h.Caps.MaxPayload = 1 << 20 // sizes are not what the self-test is about
	if v := os.Getenv(selftestDriverEnv + "_CASE_TIMEOUT"); v != "" {
		ct, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("bad case timeout %q: %v", v, err)
		}
		h.CaseTimeout = ct
	}
	runSuite(t, h)
}

// TestBrokenDrivers proves that the suite catches each deliberately broken driver,
// and that it passes the unbroken ones.
func TestBrokenDrivers(t *testing.T) {
	if os.Getenv(selftestDriverEnv) != "" {
		t.Skip("already in a child process")
	}
	for _, c := range selftestCases {
		name := c.driver
		if len(c.fails) == 0 {
			name = "Control=" + name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, exit, timedOut := runChild(t, c)
			tail := lastLines(out, 60)
			switch {
			case timedOut:
				t.Fatalf("the child did not finish within %v: the suite hangs on this driver instead of failing by its deadline\n%s",
					selftestChildTime, tail)
			case strings.Contains(out, "panic: test timed out"):
				t.Fatalf("the child hit its -test.timeout: the suite hangs on this driver\n%s", tail)
			case len(c.fails) == 0:
				if exit != 0 || strings.Contains(out, "--- FAIL") {
					t.Fatalf("the suite fails a driver that breaks nothing (exit %d)\n%s", exit, failLines(out, tail))
				}
				if !strings.Contains(out, "--- PASS: TestBrokenDriverChild") {
					t.Fatalf("the child did not run the suite\n%s", tail)
				}
				t.Logf("passes: %d subtests", strings.Count(out, "--- PASS: TestBrokenDriverChild/"))
				return
			case exit == 0:
				t.Fatalf("the suite passes a driver that breaks a rule\n%s", tail)
			}
			for _, f := range c.fails {
				re := regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenDriverChild/` + f)
				if !re.MatchString(out) {
					t.Errorf("no failure of a subtest matching %q\n%s", f, failLines(out, tail))
				}
			}
			t.Logf("caught:\n%s", failLines(out, ""))
		})
	}
}

// runChild runs one child process, bounded by selftestChildTime.
func runChild(t *testing.T, c selftestCase) (out string, exit int, timedOut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), selftestChildTime)
	t.Cleanup(cancel)
	run := "^TestBrokenDriverChild$"
	if c.areas != "" {
		run += "/" + c.areas
	}
	args := []string{"-test.run=" + run, "-test.v", "-test.count=1",
		"-test.timeout=" + (selftestChildTime - 15*time.Second).String()}
	// Short mode keeps the children quick (fewer model seeds, shorter queues): they
	// check rules, not sizes, and providers/mem runs the full suite itself.
	args = append(args, "-test.short")
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), selftestDriverEnv+"="+c.driver)
	if c.caseTimeout > 0 {
		cmd.Env = append(cmd.Env, selftestDriverEnv+"_CASE_TIMEOUT="+c.caseTimeout.String())
	}
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return buf.String(), -1, true
	case errors.As(err, &ee):
		return buf.String(), ee.ExitCode(), false
	case err != nil:
		t.Fatalf("cannot run the child: %v", err)
	}
	return buf.String(), 0, false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"\t…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// failLines returns the "--- FAIL" lines of out, or def when there are none.
func failLines(out, def string) string {
	var fails []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "--- FAIL:") {
			fails = append(fails, strings.TrimRight(line, "\n"))
		}
	}
	if len(fails) == 0 {
		return def
	}
	return strings.Join(fails, "\n")
}

// ---- RunBench verifies what it measures ----

// benchOnce runs f as a one-iteration benchmark and reports whether it completed (a
// benchmark that fails reports N == 0).
func benchOnce(t *testing.T, f func(b *testing.B)) bool {
	t.Helper()
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("1x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)
	return testing.Benchmark(f).N > 0
}

// TestRunBenchWorkloads runs each standard workload once, small, against mem (they
// must complete) and against broken drivers (their checks must fail the benchmark,
// so that a broken driver cannot produce a fast number).
func TestRunBenchWorkloads(t *testing.T) {
	good := memHarness()
	lifo, _ := findDriver("LIFOIteration")
	dollar, _ := findDriver("HashMatchesDollarTopics")
	n := 1000
	for _, w := range []struct {
		name string
		run  func(b *testing.B, h Harness)
		bad  []brokenDriver // drivers the workload's checks must reject
	}{
		{"Append/Writers=1", func(b *testing.B, h Harness) { benchAppend(b, h, 1) }, nil},
		{"Append/Writers=64", func(b *testing.B, h Harness) { benchAppend(b, h, 64) }, nil},
		{"IterateAck", func(b *testing.B, h Harness) { benchIterateAck(b, h, n) }, []brokenDriver{lifo}},
		{"Retained/Subtree", func(b *testing.B, h Harness) {
			rs, _, devs := fillRetained(b, h, n)
			benchLoadMatching(b, rs, "site/7/#", devs)
		}, nil},
		{"Retained/PlusLevel", func(b *testing.B, h Harness) {
			rs, sites, _ := fillRetained(b, h, n)
			// A '$' topic must not be matched by a filter starting with '+'.
			if err := rs.Put(context.Background(), "$site/7/dev/3/temp", benchPacket(nil)); err != nil {
				b.Fatal(err)
			}
			benchLoadMatching(b, rs, "+/+/dev/3/temp", sites)
		}, []brokenDriver{dollar}},
		{"Sessions/LoadForEach", func(b *testing.B, h Harness) { benchSessions(b, h, n) }, nil},
	} {
		t.Run(w.name, func(t *testing.T) {
			if !benchOnce(t, func(b *testing.B) { w.run(b, good) }) {
				t.Fatal("the workload fails against mem")
			}
			for _, d := range w.bad {
				if benchOnce(t, func(b *testing.B) { w.run(b, d.harness()) }) {
					t.Errorf("the workload completes against the broken driver %s", d.name)
				}
			}
		})
	}
}
