package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestDiskFull fills a small tmpfs completely: writes fail with ErrStorageFull,
// reads are served, writes succeed again once space is freed, and nothing
// acknowledged is lost.
func TestDiskFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, dsn, mnt, filler := kvtest.OpenOnTmpfs(ctx, t, 32<<20, func(mnt string) string {
		return "bolt://" + filepath.Join(mnt, "state.db") + "?sync=always"
	}, 8<<20)
	acked, _, full := kvtest.AppendUntilFull(ctx, t, p, "a 32 MiB tmpfs")
	t.Logf("%d appends acknowledged, then: %v (free: %d bytes)", acked, full, kvtest.FreeBytes(t, mnt))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	kvtest.AppendAfterFreed(ctx, t, p, dsn, acked)
}
