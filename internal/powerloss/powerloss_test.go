package powerloss

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCut pins what a cut keeps: synced data and sizes, every name; and what it
// drops: writes, growth and truncation since the last fsync.
func TestCut(t *testing.T) {
	d := Mount(t)
	path := func(name string) string { return filepath.Join(d.Dir(), name) }
	write := func(name, data string, sync bool) {
		t.Helper()
		f, err := os.OpenFile(path(name), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte(data), 0); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("a", "synced", true)
	write("a", "SYNCED but this tail was never synced", false)
	write("b", "never synced", false)
	write("c", "synced then renamed", true)
	if err := os.Rename(path("c"), path("d")); err != nil {
		t.Fatal(err)
	}
	write("e", "synced, then truncated", true)
	if err := os.Truncate(path("e"), 3); err != nil {
		t.Fatal(err)
	}
	d.Cut(t)
	for name, want := range map[string]string{"a": "synced", "b": "", "d": "synced then renamed", "e": "synced, then truncated"} {
		got, err := os.ReadFile(path(name))
		if err != nil || string(got) != want {
			t.Errorf("after the cut %s holds %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(path("c")); !os.IsNotExist(err) {
		t.Errorf("the renamed file is still under its old name: %v", err)
	}
	st := d.Stats(t)
	if st.Cuts != 1 || st.Syncs < 3 || st.LostBytes == 0 {
		t.Errorf("stats %+v; want 1 cut, 3 syncs or more, some lost bytes", st)
	}
}
