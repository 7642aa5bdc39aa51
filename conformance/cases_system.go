package conformance

import (
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// System: the store's own metadata.

func runSystem(t *testing.T, h Harness) { runCases(t, h, systemCases) }

func (e *env) info() persistence.SystemInfo {
	info, err := e.p.Info(e.ctx)
	e.ok(err, "Store.Info")
	return info
}

var systemCases = []tcase{
	{"SchemaVersion", func(e *env) {
		if v := e.info().SchemaVersion; v != persistence.SchemaVersion {
			e.fatalf("SchemaVersion = %d, want %d", v, persistence.SchemaVersion)
		}
	}},
	{"SDKVersion", func(e *env) {
		if v := e.info().SDKVersion; v != persistence.SDKVersion {
			e.fatalf("SDKVersion = %q, want %q", v, persistence.SDKVersion)
		}
	}},
	{"DriverNamed", func(e *env) {
		if e.info().Driver == "" {
			e.fatalf("SystemInfo.Driver is empty")
		}
	}},
	{"CreatedAtFromClock", func(e *env) {
		// The store was opened with the case's clock reading caseEpoch.
		if got := e.info().CreatedAt; !got.Equal(caseEpoch) {
			e.fatalf("CreatedAt = %s, want the injected clock's %s", fmtTime(got), fmtTime(caseEpoch))
		}
	}},
	{"StableAcrossCallsAndWrites", func(e *env) {
		first := e.info()
		e.clock.Advance(48 * time.Hour)
		e.prepare()
		got := e.info()
		if !got.CreatedAt.Equal(first.CreatedAt) || got.SchemaVersion != first.SchemaVersion ||
			got.SDKVersion != first.SDKVersion || got.Driver != first.Driver {
			e.fatalf("GetInfo changed from %+v to %+v", first, got)
		}
	}},
	{"StoresAreIndependent", func(e *env) {
		e.clock.Advance(time.Hour)
		other := e.fresh()
		info, err := other.Info(e.ctx)
		e.ok(err, "GetInfo of a second store")
		if !info.CreatedAt.Equal(caseEpoch.Add(time.Hour)) {
			e.fatalf("second store's CreatedAt = %s, want %s", fmtTime(info.CreatedAt), fmtTime(caseEpoch.Add(time.Hour)))
		}
		if got := e.info().CreatedAt; !got.Equal(caseEpoch) {
			e.fatalf("first store's CreatedAt changed to %s", fmtTime(got))
		}
	}},
}
