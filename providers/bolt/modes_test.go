package bolt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestFileModes checks that the bbolt file is 0600 and the directories the driver
// created 0700.
func TestFileModes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := filepath.Join(t.TempDir(), "new")
	p, err := persistence.Open(ctx, "bolt://"+filepath.Join(root, "sub", "state.db")+"?sync=none")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Retained().Put(ctx, "t", &persistence.PersistedPacket{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := kvtest.CheckFileModes(t, root, "closed"); n != 3 {
		t.Fatalf("%d entries under %s, want 3", n, root)
	}
}
