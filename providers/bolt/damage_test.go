package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
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
	var b persistence.Batch
	for i := range n {
		data := []byte(fmt.Sprintf("message %06d %s", i, strings.Repeat("x", 200)))
		b.PacketAppend("s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: data, QoS: 1, PacketID: uint16(i%60000 + 1)})
	}
	if _, err := p.Sessions().Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// readBack opens dsn and reads session "s"'s packets, checking each one's content;
// a panic fails the test.
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
	err = p.Sessions().PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		if want := fmt.Sprintf("message %06d ", n); !strings.HasPrefix(string(pk.Data), want) {
			return false, fmt.Errorf("packet %d holds %.20q", n, pk.Data)
		}
		n++
		return false, nil
	})
	return n, err
}

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
			fillStore(t, dsn, damageMessages)
			if n, err := readBack(t, dsn); n != damageMessages || err != nil {
				t.Fatalf("undamaged store read back %d of %d messages, %v", n, damageMessages, err)
			}
			damage(t, path)
			n, err := readBack(t, dsn)
			t.Logf("after damage: %d messages, err %v", n, err)
			if err == nil {
				if n != damageMessages {
					t.Fatalf("a damaged store opened and read %d of %d messages without an error", n, damageMessages)
				}
				return // the page was free: nothing was lost
			}
			if !errors.Is(err, persistence.ErrBrokenEntry) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v: want ErrBrokenEntry naming %s", err, path)
			}
		})
	}
}
