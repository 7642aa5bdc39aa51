package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// TestFileModes checks that the bbolt file is 0600 and the directories the driver
// created 0700, while the store is open and after Close.
func TestFileModes(t *testing.T) {
	root, open, closed := kvtest.FileModes(t, func(root string) string {
		return "bolt://" + filepath.Join(root, "sub", "state.db") + "?sync=none"
	}, 1)
	if open != 3 || closed != 3 {
		t.Fatalf("%d entries (open), %d (closed) under %s, want 3", open, closed, root)
	}
}
