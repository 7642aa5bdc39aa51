package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/mqttstore/mqttstore/conformance"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

func fileURL(sync string) func(dir string) string {
	return func(dir string) string { return "bolt://" + filepath.Join(dir, "state.db") + "?sync=" + sync }
}

// The harness crashes a store with bolt.Crash: the file is closed under the store
// without its Close.
func TestConformance(t *testing.T) {
	h := kvtest.Harness(fileURL("always"), bolt.Crash)
	h.PlantSchema = kvtest.PlantSchema(fileURL("always"), "bolt")
	h.PageSize = 256 // persistence/kv's page
	conformance.Run(t, h)
}

// BenchmarkConformance runs the standard workloads at sync=always and sync=none.
// MQTTSTORE_BENCH_SCALE=0.01 makes a quick run.
func BenchmarkConformance(b *testing.B) {
	b.Run("sync=always", func(b *testing.B) { conformance.RunBench(b, kvtest.Harness(fileURL("always"), bolt.Crash)) })
	b.Run("sync=none", func(b *testing.B) { conformance.RunBench(b, kvtest.Harness(fileURL("none"), bolt.Crash)) })
}
