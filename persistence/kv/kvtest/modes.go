package kvtest

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// FileModes opens the store at newURL(root), root a directory that does not exist
// yet (the driver creates it), stores retained retained messages of 512 bytes, and
// checks that every file under root is 0600 and every directory 0700, while the
// store is open and after its Close. It returns root and how many entries it saw
// under it each time, for the driver's test to judge.
func FileModes(t *testing.T, newURL func(root string) string, retained int) (root string, open, closed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root = filepath.Join(t.TempDir(), "new")
	p, err := persistence.Open(ctx, newURL(root))
	if err != nil {
		t.Fatal(err)
	}
	for i := range retained {
		if err := p.Retained().Put(ctx, "t/"+string(rune('a'+i%26)), &persistence.PersistedPacket{Data: make([]byte, 512)}); err != nil {
			t.Fatal(err)
		}
	}
	open = CheckFileModes(t, root, "open")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return root, open, CheckFileModes(t, root, "closed")
}

// CheckFileModes checks that every file under root is 0600 and every directory
// 0700 (root included: the driver created it), and returns how many entries it
// saw; when says at which step (it starts each error).
func CheckFileModes(t *testing.T, root, when string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
			t.Errorf("%s: %s has mode %v, want %v", when, path, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
