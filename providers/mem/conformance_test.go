package mem_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// harness opens fresh in-memory stores. mem keeps nothing across Close, so it leaves
// Reopen and Crash nil: the Durability cases report themselves as not applicable.
var harness = conformance.Harness{
	New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
		s, err := persistence.OpenConnector(context.Background(), mem.Config{}, opts...)
		if err != nil {
			t.Fatalf("open mem: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	},
}

func TestConformance(t *testing.T) { conformance.Run(t, harness) }

// BenchmarkConformance runs the workloads every driver is measured on
// (conformance.RunBench). MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) { conformance.RunBench(b, harness) }
