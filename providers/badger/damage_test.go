package badger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/badger"
)

// damageMessages is how many acknowledged messages a damaged store held.
const damageMessages = 3000

// fillStore appends n acknowledged packets to session "s" and closes the store.
func fillStore(t *testing.T, dsn string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data := []byte(fmt.Sprintf("message %06d %s", i, strings.Repeat("x", 200)))
		if _, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: data, QoS: 1, PacketID: uint16(i%60000 + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// readBack opens dsn and counts session "s"'s packets, turning a panic into a
// test failure.
func readBack(t *testing.T, dsn string) (n int, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("open and read of a damaged store panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	err = p.Sessions().PacketsForEach(ctx, "s", persistence.ClassQoS12, func(*persistence.PersistedPacket) (bool, error) {
		n++
		return false, nil
	})
	return n, err
}

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
			fillStore(t, dsn, damageMessages)
			if n, err := readBack(t, dsn); n != damageMessages || err != nil {
				t.Fatalf("undamaged store read back %d of %d messages, %v", n, damageMessages, err)
			}
			file := damage(t, dir)
			n, err := readBack(t, dsn)
			t.Logf("after damage: %d messages, err %v", n, err)
			if err == nil {
				t.Fatalf("a damaged store (%s) opened and read %d of %d messages without an error", file, n, damageMessages)
			}
			if !errors.Is(err, persistence.ErrBrokenEntry) || !strings.Contains(err.Error(), file) {
				t.Errorf("error %v: want ErrBrokenEntry naming %s", err, file)
			}
		})
	}
}
