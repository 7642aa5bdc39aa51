package badger_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts it when
// the test ends. It needs root: in CI (CI set) not having it is a failure, elsewhere
// the test is skipped.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	fail := t.Skipf
	if os.Getenv("CI") != "" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("the disk-full test mounts a small tmpfs and needs root (run it as root, e.g. in CI)")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		fail("mount a tmpfs on %s: %v (the disk-full test needs root and mount rights)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillFile writes a file of n bytes (or until the file system is full).
func fillFile(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		w := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:w]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
		n -= w
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// payload is message i: 4 KB that do not compress (Badger compresses its tables).
func payload(i int) []byte {
	b := fmt.Appendf(nil, "message %06d ", i)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for len(b) < 4096 {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	return b
}

// TestDiskFull fills a small tmpfs through the store: Badger, which would die of
// SIGBUS writing its memory-mapped log on a full file system, refuses writes with
// ErrStorageFull instead, keeps serving reads, takes writes again once space is
// freed and loses nothing it acknowledged.
func TestDiskFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mnt := mountTmpfs(t, 160<<20)
	dsn := "badger://" + filepath.Join(mnt, "db") + "?memory=low&sync=always"
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	// Another file takes all but 60 MiB; the store fills most of the rest.
	filler := filepath.Join(mnt, "filler")
	fillFile(t, filler, freeBytes(t, mnt)-60<<20)
	// Appends go on until 20 in a row are refused: between refusals a compaction
	// may free some space, and a write then succeeds again, as it should.
	acked, refusals, refused := 0, 0, 0
	var full error
	for refused < 20 && acked < 100_000 {
		_, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: payload(acked), QoS: 1})
		switch {
		case err == nil:
			acked++
			refused = 0
		case errors.Is(err, persistence.ErrStorageFull):
			full = err
			refused++
			refusals++
		default:
			t.Fatalf("append %d: %v; want success or ErrStorageFull", acked, err)
		}
	}
	if refused < 20 {
		t.Fatalf("%d appends on a 160 MiB tmpfs and never 20 ErrStorageFull in a row", acked)
	}
	t.Logf("%d appends acknowledged, %d refused, the last with: %v", acked, refusals, full)
	if n, err := p.Sessions().PacketCount(ctx, "s", persistence.ClassQoS12); n != uint64(acked) || err != nil {
		t.Fatalf("count on a full disk = %d, %v; want %d", n, err, acked)
	}
	// Closed, with the disk filled to the last byte, the store is refused at open
	// (Badger writes when it opens, which would be a SIGBUS).
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	filler2 := filepath.Join(mnt, "filler2")
	fillFile(t, filler2, freeBytes(t, mnt))
	if q, err := persistence.Open(ctx, dsn); !errors.Is(err, persistence.ErrStorageFull) {
		if q != nil {
			_ = q.Close()
		}
		t.Fatalf("open on a full disk: %v, want ErrStorageFull", err)
	}
	if err := os.Remove(filler2); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if p, err = persistence.Open(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: payload(acked), QoS: 1}); err != nil {
			t.Fatalf("append after space was freed: %v", err)
		}
		acked++
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = p.Sessions().PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		if string(pk.Data) != string(payload(n)) {
			return false, fmt.Errorf("packet %d holds %.20q", n, pk.Data)
		}
		n++
		return false, nil
	})
	if err != nil || n != acked {
		t.Fatalf("after reopening: %d of %d acknowledged messages, %v", n, acked, err)
	}
}
