// Package otelstore measures and traces every call through a [persistence.Store]
// with OpenTelemetry, whatever the driver: open the store with
// persistence.WithObserver(otelstore.New()).
//
// Metrics (meter "github.com/mqttstore/mqttstore/persistence/otelstore"):
//
//	mqttstore.store.calls           counter    calls, by op
//	mqttstore.store.errors          counter    failed calls, by op and error.type
//	mqttstore.store.duration        histogram  seconds per call, by op (and error.type when it failed)
//	mqttstore.store.batch.size      histogram  write operations per write call (Call.Ops), by op
//	mqttstore.store.commits         counter    commits of a driver that merges concurrent writes
//	mqttstore.store.commit.errors   counter    failed merged commits, by error.type
//	mqttstore.store.commit.size     histogram  callers' writes per merged commit
//	mqttstore.store.commit.duration histogram  seconds per merged commit
//
// op is the Store method's name ("Apply", "PacketAppend", "RetainedLoad", …, see
// [persistence.Call]); error.type is one of the values [ErrorType] returns. The
// commit series only appear for drivers that merge concurrent writes into shared
// commits (group commit); the others report nothing there.
//
// Each call is also a span named "mqttstore.<op>" (for example "mqttstore.Apply"),
// child of the span in the caller's context; the driver receives the span's
// context. Spans cost next to nothing until a TracerProvider is installed.
//
// By default the global MeterProvider and TracerProvider are used (otel.SetMeterProvider,
// otel.SetTracerProvider); [WithMeterProvider] and [WithTracerProvider] choose others.
package otelstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/mqttstore/mqttstore/persistence/otelstore"

// The attribute keys of the series and spans.
const (
	// OpKey holds the Store method's name.
	OpKey = attribute.Key("op")
	// ErrorTypeKey holds the kind of a failure (see [ErrorType]).
	ErrorTypeKey = attribute.Key("error.type")
	// BatchSizeKey holds, on a span, the number of write operations of the call.
	BatchSizeKey = attribute.Key("mqttstore.batch.size")
)

// The values of error.type.
const (
	ErrNotFound         = "not_found"
	ErrAlreadyExists    = "already_exists"
	ErrClosed           = "closed"
	ErrBrokenEntry      = "broken_entry"
	ErrInvalidArgument  = "invalid_argument"
	ErrCanceled         = "canceled"
	ErrDeadlineExceeded = "deadline_exceeded"
	ErrOther            = "other"
)

// errorTypes lists the kinds in the order ErrorType tests them.
var errorTypes = []struct {
	target error
	name   string
}{
	// A call that raced with Close matches ErrClosed and the driver's error: closed
	// is what happened.
	{persistence.ErrClosed, ErrClosed},
	{context.Canceled, ErrCanceled},
	{context.DeadlineExceeded, ErrDeadlineExceeded},
	{persistence.ErrNotFound, ErrNotFound},
	{persistence.ErrAlreadyExists, ErrAlreadyExists},
	{persistence.ErrBrokenEntry, ErrBrokenEntry},
	{persistence.ErrInvalidArgument, ErrInvalidArgument},
}

// ErrorType returns the kind of a store call's error as recorded in error.type:
// "closed", "canceled", "deadline_exceeded", "not_found", "already_exists",
// "broken_entry", "invalid_argument" (tested with errors.Is, in that order) or
// "other"; "" for nil.
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range errorTypes {
		if errors.Is(err, k.target) {
			return k.name
		}
	}
	return ErrOther
}

// Option configures [New].
type Option func(*config)

type config struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider records the metrics with mp instead of the global MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithTracerProvider creates the spans with tp instead of the global TracerProvider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// durationBuckets are the latency histograms' bucket bounds in seconds: from 10µs
// (a memory store) to 10s (a stuck database).
var durationBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// sizeBuckets are the bounds of the batch and commit size histograms.
var sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

// Observer is a [persistence.Observer] and [persistence.CommitObserver] that records
// OpenTelemetry metrics and spans. It is safe for concurrent use and may observe
// several stores at once.
type Observer struct {
	tracer trace.Tracer

	calls         metric.Int64Counter
	errs          metric.Int64Counter
	duration      metric.Float64Histogram
	batchSize     metric.Int64Histogram
	commits       metric.Int64Counter
	commitErrs    metric.Int64Counter
	commitSize    metric.Int64Histogram
	commitLatency metric.Float64Histogram

	ops sync.Map // op name → *opAttrs
}

var (
	_ persistence.Observer       = (*Observer)(nil)
	_ persistence.CommitObserver = (*Observer)(nil)
)

// opAttrs are the precomputed attribute options of one op, so that recording
// allocates nothing for them.
type opAttrs struct {
	add      []metric.AddOption    // op
	rec      []metric.RecordOption // op
	spanName string
	mu       sync.Mutex
	byErr    map[string]errAttrs // error.type → op + error.type
}

// errAttrs are the attribute options of one op failing with one kind of error.
type errAttrs struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

// New returns an Observer whose instruments are created from the chosen
// MeterProvider. Its error is that of creating an instrument, which the
// OpenTelemetry SDK never returns for these names.
func New(opts ...Option) (*Observer, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	m := c.mp.Meter(ScopeName, metric.WithInstrumentationVersion(persistence.SDKVersion))
	o := &Observer{tracer: c.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(persistence.SDKVersion))}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	o.calls, err = m.Int64Counter("mqttstore.store.calls",
		metric.WithDescription("Calls through the store, by method."), metric.WithUnit("{call}"))
	check(err)
	o.errs, err = m.Int64Counter("mqttstore.store.errors",
		metric.WithDescription("Calls through the store that returned an error, by method and kind of error."), metric.WithUnit("{call}"))
	check(err)
	o.duration, err = m.Float64Histogram("mqttstore.store.duration",
		metric.WithDescription("Duration of calls through the store, by method."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	o.batchSize, err = m.Int64Histogram("mqttstore.store.batch.size",
		metric.WithDescription("Write operations carried by each write call (the batch size of Apply)."), metric.WithUnit("{operation}"),
		metric.WithExplicitBucketBoundaries(sizeBuckets...))
	check(err)
	o.commits, err = m.Int64Counter("mqttstore.store.commits",
		metric.WithDescription("Commits of a driver that merges concurrent writes into shared commits."), metric.WithUnit("{commit}"))
	check(err)
	o.commitErrs, err = m.Int64Counter("mqttstore.store.commit.errors",
		metric.WithDescription("Merged commits that failed, by kind of error."), metric.WithUnit("{commit}"))
	check(err)
	o.commitSize, err = m.Int64Histogram("mqttstore.store.commit.size",
		metric.WithDescription("Callers' writes carried by each merged commit."), metric.WithUnit("{call}"),
		metric.WithExplicitBucketBoundaries(sizeBuckets...))
	check(err)
	o.commitLatency, err = m.Float64Histogram("mqttstore.store.commit.duration",
		metric.WithDescription("Duration of each merged commit."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// attrs returns the precomputed attributes of op.
func (o *Observer) attrs(op string) *opAttrs {
	if a, ok := o.ops.Load(op); ok {
		return a.(*opAttrs)
	}
	m := metric.WithAttributeSet(attribute.NewSet(OpKey.String(op)))
	a := &opAttrs{
		add:      []metric.AddOption{m},
		rec:      []metric.RecordOption{m},
		spanName: "mqttstore." + op,
		byErr:    map[string]errAttrs{},
	}
	got, _ := o.ops.LoadOrStore(op, a)
	return got.(*opAttrs)
}

// withErr returns the attributes of op failing with kind.
func (a *opAttrs) withErr(op, kind string) errAttrs {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byErr[kind]
	if !ok {
		m := metric.WithAttributeSet(attribute.NewSet(OpKey.String(op), ErrorTypeKey.String(kind)))
		e = errAttrs{add: []metric.AddOption{m}, rec: []metric.RecordOption{m}}
		a.byErr[kind] = e
	}
	return e
}

// Begin implements [persistence.Observer]: it starts the call's span and returns the
// function that records the call when it ends.
func (o *Observer) Begin(ctx context.Context, c persistence.Call) (context.Context, func(error)) {
	a := o.attrs(c.Op)
	start := time.Now()
	ctx, span := o.tracer.Start(ctx, a.spanName, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(OpKey.String(c.Op))
		if c.Ops > 0 {
			span.SetAttributes(BatchSizeKey.Int(c.Ops))
		}
	}
	return ctx, func(err error) {
		// The instruments use a background context: a call's context is often
		// cancelled by the time it ends, and a measurement must not be lost to that.
		mctx := context.Background()
		elapsed := time.Since(start).Seconds()
		o.calls.Add(mctx, 1, a.add...)
		if c.Ops > 0 {
			o.batchSize.Record(mctx, int64(c.Ops), a.rec...)
		}
		if err != nil {
			kind := ErrorType(err)
			e := a.withErr(c.Op, kind)
			o.errs.Add(mctx, 1, e.add...)
			o.duration.Record(mctx, elapsed, e.rec...)
			if span.IsRecording() {
				span.SetAttributes(ErrorTypeKey.String(kind))
				span.RecordError(err)
				span.SetStatus(codes.Error, kind)
			}
		} else {
			o.duration.Record(mctx, elapsed, a.rec...)
		}
		span.End()
	}
}

// commitErrAttrs are the attributes of failed commits, by error.type.
var commitErrAttrs sync.Map // error.type → []metric.AddOption

// Commit implements [persistence.CommitObserver].
func (o *Observer) Commit(ci driver.CommitInfo) {
	ctx := context.Background()
	o.commits.Add(ctx, 1)
	o.commitSize.Record(ctx, int64(ci.Calls))
	o.commitLatency.Record(ctx, ci.Duration.Seconds())
	if ci.Err != nil {
		kind := ErrorType(ci.Err)
		a, ok := commitErrAttrs.Load(kind)
		if !ok {
			a, _ = commitErrAttrs.LoadOrStore(kind, []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(ErrorTypeKey.String(kind)))})
		}
		o.commitErrs.Add(ctx, 1, a.([]metric.AddOption)...)
	}
}
