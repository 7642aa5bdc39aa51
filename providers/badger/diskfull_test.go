package badger_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestDiskFull fills a small tmpfs through the store: Badger, which would die of
// SIGBUS writing its memory-mapped log on a full file system, refuses writes with
// ErrStorageFull instead, keeps serving reads, takes writes again once space is
// freed and loses nothing it acknowledged.
func TestDiskFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Another file takes all but 60 MiB; the store fills most of the rest.
	p, dsn, mnt, filler := kvtest.OpenOnTmpfs(ctx, t, 160<<20, func(mnt string) string {
		return "badger://" + filepath.Join(mnt, "db") + "?memory=low&sync=always"
	}, 60<<20)
	acked, refusals, full := kvtest.AppendUntilFull(ctx, t, p, "a 160 MiB tmpfs")
	t.Logf("%d appends acknowledged, %d refused, the last with: %v", acked, refusals, full)
	// Closed, with the disk filled to the last byte, the store is refused at open
	// (Badger writes when it opens, which would be a SIGBUS).
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	filler2 := filepath.Join(mnt, "filler2")
	kvtest.FillFile(t, filler2, kvtest.FreeBytes(t, mnt))
	if q, err := persistence.Open(ctx, dsn); !errors.Is(err, persistence.ErrStorageFull) {
		if q != nil {
			_ = q.Close()
		}
		t.Fatalf("open on a full disk: %v, want ErrStorageFull", err)
	}
	if err := os.Remove(filler2); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	q, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	kvtest.AppendAfterFreed(ctx, t, q, dsn, acked)
}
