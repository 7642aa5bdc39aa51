package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
	"github.com/mqttstore/mqttstore/providers/mem"
)

// memHarness is the harness of the in-memory driver, for the suite's own tests.
func memHarness() Harness {
	return Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
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

// modelBlind lists the broken drivers whose rule the model does not exercise (it
// never reads the store's metadata); the suite's own cases catch them.
var modelBlind = map[string]bool{"CreatedAtNotFromClock": true}

// TestModelCatchesBrokenDrivers runs the model directly (in process, without Reopen)
// against each broken driver that fails a check rather than hanging, and checks that
// some seed catches it, and that the control wrappers pass every seed.
func TestModelCatchesBrokenDrivers(t *testing.T) {
	run := func(t *testing.T, d brokenDriver, seed uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := d.open(ctx)
		if err != nil {
			t.Fatalf("open mem wrapped by %s: %v", d.name, err)
		}
		defer p.Close()
		return newModelRunner(seed, modelDefaultOps, p).run(ctx)
	}
	for _, d := range brokenDrivers {
		if d.hangs || modelBlind[d.name] {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			for _, seed := range modelDefaultSeeds {
				if err := run(t, d, seed); err != nil {
					msg, _, _ := strings.Cut(err.Error(), "\n")
					t.Logf("caught: %s", msg)
					return
				}
			}
			t.Errorf("no seed of the model caught the broken driver %s", d.name)
		})
	}
	for _, d := range controlDrivers {
		t.Run("Control="+d.name, func(t *testing.T) {
			for _, seed := range modelDefaultSeeds {
				if err := run(t, d, seed); err != nil {
					t.Fatalf("the control driver %s fails the model: %v", d.name, err)
				}
			}
		})
	}
}

// TestModelReopenPath exercises the model's Reopen and Crash steps. mem keeps nothing
// across Close, so the harness "reopens" by opening a new Store on the same driver
// connection, whose Close does nothing: what is checked is the model's side (the
// request to the test goroutine, the switch to the new store, the comparison
// afterwards). Reopen closes the old Store, so a model that kept using it would fail
// with ErrClosed.
func TestModelReopenPath(t *testing.T) {
	ctx := context.Background()
	var reopens, crashes int
	again := func(t testing.TB, p *persistence.Store) *persistence.Store {
		np, err := persistence.OpenConnector(ctx, connConnector{p.Driver()})
		if err != nil {
			t.Fatalf("open a new store on the same connection: %v", err)
		}
		return np
	}
	h := Harness{
		New: func(t testing.TB, opts ...persistence.OpenOption) *persistence.Store {
			var conn driver.Conn
			p, err := persistence.OpenConnector(ctx, wrapConnector{base: memConnector(), wrap: func(c driver.Conn) driver.Conn {
				conn = c
				return keepOpen{c}
			}}, opts...)
			if err != nil {
				t.Fatalf("open mem: %v", err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			return p
		},
		Reopen: func(t testing.TB, p *persistence.Store, _ ...persistence.OpenOption) *persistence.Store {
			reopens++
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return again(t, p)
		},
		Crash: func(t testing.TB, p *persistence.Store, _ ...persistence.OpenOption) *persistence.Store {
			crashes++
			return again(t, p)
		},
	}
	runModel(t, h)
	if reopens == 0 || crashes == 0 {
		t.Errorf("the model reopened %d times and crashed %d times; want both", reopens, crashes)
	}
}

// keepOpen is a connection whose Close does nothing, so that several Stores can be
// opened on it one after another.
type keepOpen struct{ driver.Conn }

func (keepOpen) Close() error { return nil }
