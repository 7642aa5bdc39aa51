package badger_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	_ "github.com/mqttstore/mqttstore/providers/badger"
)

func tables(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no table file in %s (%v)", dir, err)
	}
	return m
}

func TestDamage(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string) string{
		"table truncated": func(t *testing.T, dir string) string {
			f := tables(t, dir)[0]
			st, _ := os.Stat(f)
			if err := os.Truncate(f, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			return filepath.Base(f)
		},
		"table garbage": func(t *testing.T, dir string) string {
			f := tables(t, dir)[0]
			st, _ := os.Stat(f)
			garbage := make([]byte, 16<<10)
			for i := range garbage {
				garbage[i] = byte(rand.Uint32())
			}
			fh, err := os.OpenFile(f, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			if _, err := fh.WriteAt(garbage, st.Size()/3); err != nil {
				t.Fatal(err)
			}
			return filepath.Base(f)
		},
		"manifest deleted": func(t *testing.T, dir string) string {
			if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
			return "MANIFEST"
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			dsn := "badger://" + dir + "?memory=low&sync=none"
			var file string
			n, err := kvtest.Damaged(t, dsn, false, func() { file = damage(t, dir) })
			if err == nil {
				t.Fatalf("a damaged store (%s) opened and read %d of %d messages without an error", file, n, kvtest.DamageMessages)
			}
			if !errors.Is(err, persistence.ErrBrokenEntry) || !strings.Contains(err.Error(), file) {
				t.Errorf("error %v: want ErrBrokenEntry naming %s", err, file)
			}
		})
	}
}
