//go:build linux

package badger_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
)

// logFiles returns the write-ahead log files of dir with their size and the
// bytes allocated to them.
func logFiles(t *testing.T, dir string) (names []string, size, alloc map[string]int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	size, alloc = map[string]int64{}, map[string]int64{}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".mem") {
			continue
		}
		var st syscall.Stat_t
		err := syscall.Stat(filepath.Join(dir, de.Name()), &st)
		if errors.Is(err, fs.ErrNotExist) {
			// A flushed log Badger removed after ReadDir listed it.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, de.Name())
		size[de.Name()], alloc[de.Name()] = st.Size, st.Blocks*512
	}
	return names, size, alloc
}

// TestLogPreallocated: across memtable rotations every log Badger writes is
// allocated in full, and the spare for the next one is there before each
// write; the spare is gone after Close, and one a crash left does not stop the
// store from opening.
func TestLogPreallocated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mnt := kvtest.MountTmpfs(t, 256<<20)
	dir := filepath.Join(mnt, "db")
	dsn := "badger://" + dir + "?memory=low&sync=none"
	const logSize = 16 << 20 // 2 × the 8 MiB memtable of memory=low
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	wasSpare := map[string]bool{}
	const n = 5000 // 20 MB: two rotations
	for i := range n {
		if _, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: kvtest.Payload(i), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		names, size, alloc := logFiles(t, dir)
		// Only the current log (the newest one written to) and the spare
		// after it are Badger's to write. An older log is a memtable's
		// awaiting its flush, and once flushed Badger deletes it by
		// truncating it to 0 bytes and then removing it, so it can be seen
		// empty and half freed.
		cur := ""
		for _, name := range names {
			if size[name] > 0 && name > cur {
				cur = name
			}
		}
		spares, rotated := 0, false
		for _, name := range names {
			if name < cur {
				continue
			}
			rotated = rotated || wasSpare[name] && size[name] > 0
			wasSpare[name] = size[name] == 0
			seen[name] = true
			if alloc[name] < logSize {
				t.Fatalf("after append %d: log %s (size %d) has %d bytes allocated, want %d", i, name, size[name], alloc[name], logSize)
			}
			if size[name] == 0 {
				spares++
			}
		}
		// The append that rotates takes the spare; the next one makes another
		// before Badger writes.
		if spares > 1 || spares == 0 && !rotated {
			t.Fatalf("after append %d: %d spare logs in %v", i, spares, names)
		}
	}
	if len(seen) < 3 {
		t.Errorf("logs seen: %v; want at least two rotations", seen)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	names, size, _ := logFiles(t, dir)
	for _, name := range names {
		if size[name] == 0 {
			t.Errorf("spare log %s left after Close", name)
		}
	}
	// A spare left by a crash.
	if err := os.WriteFile(filepath.Join(dir, "99999.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open with a spare log left behind: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	if c, err := q.Sessions().PacketCount(ctx, "s", persistence.ClassQoS12); c != n || err != nil {
		t.Fatalf("after reopening: %d packets, %v; want %d", c, err, n)
	}
}
