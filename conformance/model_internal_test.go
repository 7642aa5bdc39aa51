package conformance

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// memHarness is the harness of the in-memory driver, for the suite's own tests.
func memHarness() Harness {
	return Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) persistence.Provider {
			p, err := persistence.Open(context.Background(), mem.Name+"://", opts...)
			if err != nil {
				t.Fatalf("open mem: %v", err)
			}
			t.Cleanup(func() { _ = p.Close() })
			return p
		},
	}
}

// TestModelMem runs the model-based test directly against the in-memory driver.
func TestModelMem(t *testing.T) {
	runModel(t, memHarness())
}
