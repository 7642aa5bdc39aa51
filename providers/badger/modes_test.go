package badger_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestFileModes checks that every file of a Badger store is 0600 and every
// directory the driver created 0700, while the store is open and after Close.
func TestFileModes(t *testing.T) {
	root, open, closed := kvtest.FileModes(t, func(root string) string {
		return "badger://" + filepath.Join(root, "db") + "?memory=low&sync=none"
	}, 100)
	if open < 4 || closed < 4 {
		t.Fatalf("only %d entries (open), %d (closed) under %s", open, closed, root)
	}
	if _, err := os.Stat(filepath.Join(root, "db", "MANIFEST")); err != nil {
		t.Fatal(err)
	}
}
