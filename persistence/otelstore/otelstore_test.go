package otelstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/persistence/otelstore"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

// metrics collects what reader holds into series keyed by metric name and the
// attributes' canonical encoding ("op=Create", "error.type=not_found,op=StateGet").
type metrics map[string]map[string]point

// point is one data point: a counter's value or a histogram's count and sum.
type point struct {
	value int64
	count uint64
	sum   float64
}

func collect(t *testing.T, r sdkmetric.Reader) metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelstore.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, otelstore.ScopeName)
		}
		for _, m := range sm.Metrics {
			series := map[string]point{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if !d.IsMonotonic {
					t.Errorf("%s is not monotonic", m.Name)
				}
				for _, dp := range d.DataPoints {
					series[key(dp.Attributes)] = point{value: dp.Value}
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					series[key(dp.Attributes)] = point{count: dp.Count, sum: float64(dp.Sum)}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					series[key(dp.Attributes)] = point{count: dp.Count, sum: dp.Sum}
				}
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			out[m.Name] = series
		}
	}
	return out
}

func key(s attribute.Set) string { return s.Encoded(attribute.DefaultEncoder()) }

func newReader(t *testing.T) (*sdkmetric.ManualReader, *otelstore.Observer) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := otelstore.New(otelstore.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	return r, obs
}

func openMem(t *testing.T, opts ...persistence.OpenOption) *persistence.Store {
	t.Helper()
	s, err := persistence.Open(context.Background(), "mem://", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func pkt(payload string) *persistence.PersistedPacket {
	return &persistence.PersistedPacket{QoS: 1, ProtocolVersion: 4, Data: []byte(payload)}
}

// TestMetricsFromRealCalls makes real calls on a mem store, successful and failing
// with every kind of error a call can produce, and checks each series.
func TestMetricsFromRealCalls(t *testing.T) {
	r, obs := newReader(t)
	s := openMem(t, persistence.WithObserver(obs))
	ctx := context.Background()
	ss := s.Sessions()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ss.Create(ctx, "a", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 5}))
	if err := ss.Create(ctx, "a", persistence.SessionBase{}); !errors.Is(err, persistence.ErrAlreadyExists) {
		t.Fatalf("second Create: %v", err)
	}
	// A batch of four writes, and one of two.
	var b persistence.Batch
	b.PacketAppend("a", persistence.ClassQoS12, pkt("1")).
		PacketAppend("a", persistence.ClassQoS12, pkt("2")).
		PacketAppend("a", persistence.ClassQoS12, pkt("3")).
		SubscriptionStore("a", persistence.Subscription{Filter: "t/#", QoS: 1})
	_, err := ss.Apply(ctx, &b)
	must(err)
	b.Reset()
	b.PacketAppend("a", persistence.ClassUnAck, pkt("4")).StateDelete("a")
	_, err = ss.Apply(ctx, &b)
	must(err)
	if _, err := ss.StateGet(ctx, "a"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("StateGet of a missing state: %v", err)
	}
	if _, err := ss.StateGet(ctx, "nobody"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("StateGet of a missing session: %v", err)
	}
	n, err := ss.PacketCount(ctx, "a", persistence.ClassQoS12)
	must(err)
	if n != 3 {
		t.Fatalf("PacketCount = %d", n)
	}
	// Invalid arguments are refused by the Store, and still counted.
	if _, err := ss.PacketAppend(ctx, "a", persistence.PacketClass(9), pkt("x")); !errors.Is(err, persistence.ErrInvalidArgument) {
		t.Fatalf("PacketAppend to class 9: %v", err)
	}
	must(s.Retained().Put(ctx, "r/1", pkt("retained")))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Retained().Get(cctx, "r/1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	dctx, dcancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer dcancel()
	if _, err := s.Retained().Count(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Count past the deadline: %v", err)
	}
	// An iteration stopped early with ErrStopIteration is a success.
	visited := 0
	must(ss.PacketsForEach(ctx, "a", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
		visited++
		return false, persistence.ErrStopIteration
	}))
	if visited != 1 {
		t.Fatalf("visited %d packets", visited)
	}
	// A callback's own error is "other".
	errMine := errors.New("mine")
	if err := ss.PacketsForEach(ctx, "a", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
		return false, errMine
	}); !errors.Is(err, errMine) {
		t.Fatalf("PacketsForEach: %v", err)
	}
	must(s.Close())
	if _, err := ss.Exists(ctx, "a"); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("Exists after Close: %v", err)
	}

	got := collect(t, r)
	calls := map[string]int64{
		"op=Create": 2, "op=Apply": 2, "op=StateGet": 2, "op=PacketCount": 1, "op=PacketAppend": 1,
		"op=RetainedPut": 1, "op=RetainedGet": 1, "op=RetainedCount": 1, "op=PacketsForEach": 2, "op=Exists": 1,
	}
	checkCounter(t, got, "mqttstore.store.calls", calls)
	checkCounter(t, got, "mqttstore.store.errors", map[string]int64{
		"error.type=already_exists,op=Create":           1,
		"error.type=not_found,op=StateGet":              2,
		"error.type=invalid_argument,op=PacketAppend":   1,
		"error.type=canceled,op=RetainedGet":            1,
		"error.type=deadline_exceeded,op=RetainedCount": 1,
		"error.type=other,op=PacketsForEach":            1,
		"error.type=closed,op=Exists":                   1,
	})

	// The latency histogram has one data point per call, split by outcome.
	dur := got["mqttstore.store.duration"]
	var total uint64
	for k, p := range dur {
		total += p.count
		if p.sum < 0 {
			t.Errorf("duration %s: negative sum %v", k, p.sum)
		}
	}
	var want int64
	for _, v := range calls {
		want += v
	}
	if total != uint64(want) {
		t.Errorf("duration histogram counts %d calls, want %d: %v", total, want, dur)
	}
	if p := dur["op=Apply"]; p.count != 2 || p.sum <= 0 {
		t.Errorf("duration of Apply: %+v", p)
	}
	if p := dur["error.type=not_found,op=StateGet"]; p.count != 2 {
		t.Errorf("duration of the failed StateGet calls: %+v", p)
	}

	// Batch sizes: the writes only, with their number of operations.
	bs := got["mqttstore.store.batch.size"]
	if p := bs["op=Apply"]; p.count != 2 || p.sum != 6 {
		t.Errorf("batch size of Apply: %+v, want 2 batches of 6 operations in all", p)
	}
	if p := bs["op=Create"]; p.count != 2 || p.sum != 2 {
		t.Errorf("batch size of Create: %+v", p)
	}
	if p := bs["op=RetainedPut"]; p.count != 1 || p.sum != 1 {
		t.Errorf("batch size of RetainedPut: %+v", p)
	}
	for _, read := range []string{"op=StateGet", "op=PacketCount", "op=RetainedGet", "op=Exists"} {
		if p, ok := bs[read]; ok {
			t.Errorf("batch size recorded for the read %s: %+v", read, p)
		}
	}
	// mem does not merge commits: no commit series.
	if c := got["mqttstore.store.commits"]; len(c) != 0 {
		t.Errorf("commits recorded for mem: %v", c)
	}
}

func checkCounter(t *testing.T, got metrics, name string, want map[string]int64) {
	t.Helper()
	series := got[name]
	for k, v := range want {
		if series[k].value != v {
			t.Errorf("%s{%s} = %d, want %d", name, k, series[k].value, v)
		}
	}
	for k, p := range series {
		if _, ok := want[k]; !ok {
			t.Errorf("%s{%s} = %d, not expected", name, k, p.value)
		}
	}
}

func TestErrorType(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("session %q: %w", "x", persistence.ErrNotFound), otelstore.ErrNotFound},
		{persistence.ErrAlreadyExists, otelstore.ErrAlreadyExists},
		{fmt.Errorf("%w: %w", persistence.ErrClosed, persistence.ErrNotFound), otelstore.ErrClosed},
		{fmt.Errorf("decode: %w", persistence.ErrBrokenEntry), otelstore.ErrBrokenEntry},
		{fmt.Errorf("%w: nil packet", persistence.ErrInvalidArgument), otelstore.ErrInvalidArgument},
		{fmt.Errorf("wrapped: %w", context.Canceled), otelstore.ErrCanceled},
		{context.DeadlineExceeded, otelstore.ErrDeadlineExceeded},
		{errors.New("disk on fire"), otelstore.ErrOther},
	} {
		if got := otelstore.ErrorType(c.err); got != c.want {
			t.Errorf("ErrorType(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestSpans checks one span per call, child of the caller's span, with the error
// recorded on failures.
func TestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, obs := newReaderWith(t, otelstore.WithTracerProvider(tp))
	s := openMem(t, persistence.WithObserver(obs))

	ctx, parent := tp.Tracer("test").Start(context.Background(), "handle PUBLISH")
	if err := s.Sessions().Create(ctx, "a", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
	var b persistence.Batch
	b.PacketAppend("a", persistence.ClassQoS12, pkt("1")).PacketAppend("a", persistence.ClassQoS12, pkt("2"))
	if _, err := s.Sessions().Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retained().Get(ctx, "none"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatal(err)
	}
	parent.End()

	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans ended, want 4", len(spans))
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byName[sp.Name()] = sp
	}
	for _, name := range []string{"mqttstore.Create", "mqttstore.Apply", "mqttstore.RetainedGet"} {
		sp, ok := byName[name]
		if !ok {
			t.Fatalf("no span %s among %v", name, spans)
		}
		if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the caller's span", name)
		}
	}
	attrs := func(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range sp.Attributes() {
			m[kv.Key] = kv.Value
		}
		return m
	}
	if a := attrs(byName["mqttstore.Apply"]); a[otelstore.BatchSizeKey].AsInt64() != 2 || a[otelstore.OpKey].AsString() != "Apply" {
		t.Errorf("Apply span attributes: %v", a)
	}
	if st := byName["mqttstore.Apply"].Status(); st.Code == codes.Error {
		t.Errorf("Apply span status %v", st)
	}
	get := byName["mqttstore.RetainedGet"]
	if st := get.Status(); st.Code != codes.Error || st.Description != otelstore.ErrNotFound {
		t.Errorf("failed RetainedGet span status %+v", st)
	}
	if a := attrs(get); a[otelstore.ErrorTypeKey].AsString() != otelstore.ErrNotFound {
		t.Errorf("failed RetainedGet span attributes %v", a)
	}
	if len(get.Events()) != 1 || get.Events()[0].Name != "exception" {
		t.Errorf("failed RetainedGet span events %v", get.Events())
	}
}

func newReaderWith(t *testing.T, opts ...otelstore.Option) (*sdkmetric.ManualReader, *otelstore.Observer) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := otelstore.New(append([]otelstore.Option{otelstore.WithMeterProvider(mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, obs
}

// groupConnector wraps mem's connector with a driver that reports every Apply as a
// merged commit, as a group-committing driver calls Env.OnCommit.
type groupConnector struct{ inner driver.Connector }

func (g groupConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	c, err := g.inner.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return &groupConn{Conn: c, onCommit: env.OnCommit}, nil
}

type groupConn struct {
	driver.Conn
	onCommit func(driver.CommitInfo)
	fail     bool
}

var errDisk = errors.New("disk full")

func (g *groupConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	start := time.Now()
	seqs, err := g.Conn.Apply(ctx, ops)
	if g.fail {
		seqs, err = nil, errDisk
	}
	if g.onCommit != nil {
		g.onCommit(driver.CommitInfo{Calls: len(ops), Duration: time.Since(start) + time.Millisecond, Err: err})
	}
	return seqs, err
}

// TestCommitMetrics checks the group-commit series, fed through the Store's
// Env.OnCommit by a driver that merges commits.
func TestCommitMetrics(t *testing.T) {
	r, obs := newReader(t)
	inner, err := persistence.NewConnector("mem://")
	if err != nil {
		t.Fatal(err)
	}
	s, err := persistence.OpenConnector(context.Background(), groupConnector{inner}, persistence.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Sessions().Create(ctx, "a", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
	var b persistence.Batch
	b.PacketAppend("a", persistence.ClassQoS12, pkt("1")).PacketAppend("a", persistence.ClassQoS12, pkt("2")).PacketAppend("a", persistence.ClassQoS12, pkt("3"))
	if _, err := s.Sessions().Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	s.Driver().(*groupConn).fail = true
	if err := s.Sessions().Delete(ctx, "a"); !errors.Is(err, errDisk) {
		t.Fatalf("Delete: %v", err)
	}

	got := collect(t, r)
	checkCounter(t, got, "mqttstore.store.commits", map[string]int64{"": 3})
	checkCounter(t, got, "mqttstore.store.commit.errors", map[string]int64{"error.type=other": 1})
	if p := got["mqttstore.store.commit.size"][""]; p.count != 3 || p.sum != 5 {
		t.Errorf("commit sizes: %+v, want 3 commits of 5 writes in all", p)
	}
	if p := got["mqttstore.store.commit.duration"][""]; p.count != 3 || p.sum < 0.003 {
		t.Errorf("commit durations: %+v", p)
	}
	checkCounter(t, got, "mqttstore.store.errors", map[string]int64{"error.type=other,op=Delete": 1})
}

// TestConcurrent runs calls from many goroutines (for the race detector) and
// checks that none is lost.
func TestConcurrent(t *testing.T) {
	r, obs := newReader(t)
	s := openMem(t, persistence.WithObserver(obs))
	ctx := context.Background()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			topic := fmt.Sprintf("t/%d", w)
			for range each {
				if err := s.Retained().Put(ctx, topic, pkt("x")); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Retained().Get(ctx, topic+"/missing"); !errors.Is(err, persistence.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := collect(t, r)
	checkCounter(t, got, "mqttstore.store.calls", map[string]int64{"op=RetainedPut": workers * each, "op=RetainedGet": workers * each})
	checkCounter(t, got, "mqttstore.store.errors", map[string]int64{"error.type=not_found,op=RetainedGet": workers * each})
}

// TestGlobalProvidersByDefault checks that New without options works on the
// global (no-op unless set) providers and that calls still succeed.
func TestGlobalProvidersByDefault(t *testing.T) {
	obs, err := otelstore.New()
	if err != nil {
		t.Fatal(err)
	}
	s := openMem(t, persistence.WithObserver(obs))
	if err := s.Sessions().Create(context.Background(), "a", persistence.SessionBase{}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkObserver(b *testing.B) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	obs, err := otelstore.New(otelstore.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c := persistence.Call{Op: "Apply", Ops: 3}
	b.ReportAllocs()
	for b.Loop() {
		_, done := obs.Begin(ctx, c)
		done(nil)
	}
}

func BenchmarkObserverNoopTracer(b *testing.B) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	obs, err := otelstore.New(otelstore.WithMeterProvider(mp), otelstore.WithTracerProvider(noop.NewTracerProvider()))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c := persistence.Call{Op: "Apply", Ops: 3}
	b.ReportAllocs()
	for b.Loop() {
		_, done := obs.Begin(ctx, c)
		done(nil)
	}
}
