package otelstore_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"go.opentelemetry.io/otel/attribute"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/otelstore"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

// Open a store with an observer that records OpenTelemetry metrics. Here the metrics
// are read back with the SDK's manual reader; a program would rather install a
// MeterProvider with an exporter (Prometheus, OTLP) and leave out
// WithMeterProvider.
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	obs, err := otelstore.New(otelstore.WithMeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	store, err := persistence.Open(ctx, "mem://", persistence.WithObserver(obs))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	sessions := store.Sessions()
	_ = sessions.Create(ctx, "client-1", persistence.SessionBase{ProtocolVersion: 5})
	var b persistence.Batch
	b.SubscriptionStore("client-1", persistence.Subscription{Filter: "sensors/#", QoS: 1}).
		PacketAppend("client-1", persistence.ClassQoS12, &persistence.PersistedPacket{QoS: 1, Data: []byte("…")})
	_, _ = sessions.Apply(ctx, &b)
	_, err = sessions.StateGet(ctx, "client-2")
	fmt.Println("StateGet:", otelstore.ErrorType(err))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s{%s} %d", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
			}
		case metricdata.Histogram[int64]:
			for _, dp := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s{%s} count=%d sum=%d", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// StateGet: not_found
	// mqttstore.store.batch.size{op=Apply} count=1 sum=2
	// mqttstore.store.batch.size{op=Create} count=1 sum=1
	// mqttstore.store.calls{op=Apply} 1
	// mqttstore.store.calls{op=Create} 1
	// mqttstore.store.calls{op=StateGet} 1
	// mqttstore.store.errors{error.type=not_found,op=StateGet} 1
}
