package bolt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
)

func TestDamage(t *testing.T) {
	const pageSize = 4096
	cases := map[string]func(t *testing.T, path string){
		"truncated to half": func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		},
		"empty file": func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		},
	}
	for i := range 6 {
		cases[fmt.Sprintf("random page %d", i)] = func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			pages := st.Size() / pageSize
			pg := 2 + rand.Int64N(pages-2)
			garbage := make([]byte, pageSize)
			for i := 0; i < len(garbage); i += 8 {
				binary.LittleEndian.PutUint64(garbage[i:], rand.Uint64())
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(garbage, pg*pageSize); err != nil {
				t.Fatal(err)
			}
			t.Logf("page %d of %d overwritten", pg, pages)
		}
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			dsn := "bolt://" + path + "?sync=none"
			n, err := kvtest.Damaged(t, dsn, true, func() { damage(t, path) })
			if err == nil {
				if n != kvtest.DamageMessages {
					t.Fatalf("a damaged store opened and read %d of %d messages without an error", n, kvtest.DamageMessages)
				}
				return // the page was free: nothing was lost
			}
			if !errors.Is(err, persistence.ErrBrokenEntry) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v: want ErrBrokenEntry naming %s", err, path)
			}
		})
	}
}
