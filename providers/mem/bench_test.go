package mem_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// benchHarness opens in-memory stores for the standard workloads.
var benchHarness = conformance.Harness{
	New: func(t testing.TB, opts ...persistence.OpenOption) persistence.Provider {
		p, err := persistence.Open(context.Background(), mem.Name+"://", opts...)
		if err != nil {
			t.Fatalf("open mem: %v", err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	},
}

// BenchmarkConformance runs the workloads every driver is measured on
// (conformance.RunBench). MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	conformance.RunBench(b, benchHarness)
}
