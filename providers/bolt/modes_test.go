package bolt_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
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
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d entries under %s, want 3", n, root)
	}
}
