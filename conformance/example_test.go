package conformance_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// A driver's conformance test. The harness opens stores of the driver as a user
// does, here from its connector (a driver's typed configuration works the same way),
// and passes the suite's options through. A driver that keeps data across Close also
// sets Reopen and Crash.
func ExampleRun() {
	harness := conformance.Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			c, err := persistence.NewConnector(mem.Name + "://")
			if err != nil {
				t.Fatal(err)
			}
			s, err := persistence.OpenConnector(context.Background(), c, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
	// In the driver's _test.go:
	//
	//	func TestConformance(t *testing.T) { conformance.Run(t, harness) }
	//	func BenchmarkConformance(b *testing.B) { conformance.RunBench(b, harness) }
	_ = harness
}
