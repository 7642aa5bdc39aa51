package conformance

import (
	"math"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
)

// Schema: a store written by a newer schema than this SDK knows is refused with
// ErrSchemaVersion (and no store), whatever the driver; one written by this schema
// opens. The harness plants such a store with Harness.PlantSchema.

func runSchema(t *testing.T, h Harness) {
	for _, c := range schemaCases {
		t.Run(c.name, func(t *testing.T) {
			if h.PlantSchema == nil {
				t.Skip("not applicable: the harness declares no PlantSchema (a driver that keeps nothing across Close)")
			}
			runCase(t, h, c.run)
		})
	}
}

// plant runs Harness.PlantSchema on the test goroutine.
func (e *env) plant(version uint32) (*persistence.Store, error) {
	var (
		p   *persistence.Store
		err error
	)
	e.onMain(func() { p, err = e.h.PlantSchema(e.h.bounded(e.t), version, persistence.WithClock(e.clock)) })
	return p, err
}

var schemaCases = []tcase{
	{"NewerSchemaRefused", func(e *env) {
		for _, v := range []uint32{persistence.SchemaVersion + 1, persistence.SchemaVersion + 17, math.MaxUint32} {
			p, err := e.plant(v)
			e.is(err, persistence.ErrSchemaVersion, "opening a store written by schema version %d (this SDK: %d)", v, persistence.SchemaVersion)
			if p != nil {
				_ = p.Close()
				e.fatalf("opening a store written by schema version %d returned a store along with its error", v)
			}
		}
	}},
	{"CurrentSchemaOpens", func(e *env) {
		p, err := e.plant(persistence.SchemaVersion)
		e.ok(err, "opening a store written by this schema version (%d)", persistence.SchemaVersion)
		if p == nil {
			e.fatalf("PlantSchema(%d) returned neither a store nor an error", persistence.SchemaVersion)
		}
		e.setStore(p)
		if got := e.info().SchemaVersion; got != persistence.SchemaVersion {
			e.fatalf("Info().SchemaVersion = %d, want %d", got, persistence.SchemaVersion)
		}
		e.create("s")
		e.queue("s", cq, e.appendN("s", cq, 2))
	}},
}
