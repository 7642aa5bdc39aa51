package kvtest

import (
	"io/fs"
	"path/filepath"
	"testing"
)

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
