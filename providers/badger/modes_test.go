package badger_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestFileModes checks that every file of a Badger store is 0600 and every
// directory the driver created 0700, while the store is open and after Close.
func TestFileModes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := filepath.Join(t.TempDir(), "new")
	dir := filepath.Join(root, "db")
	p, err := persistence.Open(ctx, "badger://"+dir+"?memory=low&sync=none")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := p.Retained().Put(ctx, "t/"+string(rune('a'+i%26)), &persistence.PersistedPacket{Data: make([]byte, 512)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		if n := kvtest.CheckFileModes(t, root, when); n < 4 {
			t.Fatalf("%s: only %d entries under %s", when, n, root)
		}
	}
	check("open")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
}
