package demo

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence/otelstore"
)

// brokerScope is the instrumentation scope of the broker's figures.
const brokerScope = "github.com/mqttstore/mqttstore/demo"

// metricsServer serves /metrics: the store's series (package otelstore), the
// broker's figures and the Go runtime's and process's own.
type metricsServer struct {
	addr     net.Addr
	srv      *http.Server
	served   chan error
	mp       *sdkmetric.MeterProvider
	observer *otelstore.Observer
	broker   atomic.Pointer[broker.Broker]
}

// startMetrics starts serving /metrics on l. The broker's series appear once
// setBroker is called; the store's once the store is opened with observer.
// Its series carry service.name=name in target_info.
func startMetrics(l net.Listener, name string, log *slog.Logger) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	m := &metricsServer{addr: l.Addr(), served: make(chan error, 1)}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		return nil, err
	}
	m.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	if m.observer, err = otelstore.New(otelstore.WithMeterProvider(m.mp)); err != nil {
		return nil, err
	}
	if err := m.brokerInstruments(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { m.served <- m.srv.Serve(l) }()
	return m, nil
}

func (m *metricsServer) setBroker(b *broker.Broker) { m.broker.Store(b) }

// brokerInstruments reports the broker's Stats and QueueStats at each scrape.
func (m *metricsServer) brokerInstruments() error {
	meter := m.mp.Meter(brokerScope)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	connections := counter("mqttstore.broker.connections", "{connection}", "Connections accepted (CONNACK success) since the broker started.")
	connected := gauge("mqttstore.broker.connected", "{client}", "Clients connected now.")
	sessions := gauge("mqttstore.broker.sessions", "{session}", "Sessions known now, online and offline.")
	in := counter("mqttstore.broker.messages.in", "{message}", "PUBLISH packets accepted from clients, wills included.")
	out := counter("mqttstore.broker.messages.out", "{message}", "PUBLISH packets written to clients, redeliveries included.")
	dropped := counter("mqttstore.broker.messages.dropped", "{message}", "Messages dropped for a subscriber: queue full, too large, expired or slow at QoS 0.")
	queued := gauge("mqttstore.broker.messages.queued", "{message}", "QoS 1 and 2 messages queued for sessions, not yet sent.")
	queuedBytes := gauge("mqttstore.broker.messages.queued.size", "By", "Encoded size of the queued messages.")
	inflight := gauge("mqttstore.broker.messages.inflight", "{message}", "Messages sent and not yet acknowledged.")
	storageErrs := counter("mqttstore.broker.storage.errors", "{error}", "Store calls of the broker that failed.")
	refused := counter("mqttstore.broker.connections.refused", "{connection}", "Connections closed at once by the connection limit or rate.")
	buffered := gauge("mqttstore.broker.buffered", "By", "Bytes waiting to be written to clients or queued in memory for clean sessions (bounded by -max-buffered-bytes).")
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b := m.broker.Load()
		if b == nil {
			return nil
		}
		st, q := b.Stats(), b.QueueStats()
		o.ObserveInt64(connections, st.Connections)
		o.ObserveInt64(connected, st.Connected)
		o.ObserveInt64(sessions, st.Sessions)
		o.ObserveInt64(in, st.MessagesIn)
		o.ObserveInt64(out, st.MessagesOut)
		o.ObserveInt64(dropped, st.Dropped)
		o.ObserveInt64(queued, q.Queued)
		o.ObserveInt64(queuedBytes, q.QueuedBytes)
		o.ObserveInt64(inflight, q.Inflight)
		o.ObserveInt64(storageErrs, st.StorageErrors)
		o.ObserveInt64(refused, st.Refused)
		o.ObserveInt64(buffered, st.BufferedBytes)
		return nil
	}, connections, connected, sessions, in, out, dropped, queued, queuedBytes, inflight, storageErrs, refused, buffered)
	return err
}

// shutdown stops the HTTP server and the meter provider.
func (m *metricsServer) shutdown(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	if serr := <-m.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, m.mp.Shutdown(ctx))
}
