//go:build linux

package kvtest

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

// The disk-full tests of the file drivers: a store on a small tmpfs, filled
// through the store and by other files.

// MountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts it when
// the test ends. It needs root: in CI (CI set) not having it is a failure, elsewhere
// the test is skipped.
func MountTmpfs(t *testing.T, size int64) string {
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

// OpenOnTmpfs mounts a tmpfs of size bytes (MountTmpfs), opens the store at
// newURL(mnt) on it, creates session "s", and has the file mnt/filler take all but
// keep bytes of the space left. The store is closed when the test ends (a test may
// also close it itself).
func OpenOnTmpfs(ctx context.Context, t *testing.T, size int64, newURL func(mnt string) string, keep int64) (p *persistence.Store, dsn, mnt, filler string) {
	t.Helper()
	mnt = MountTmpfs(t, size)
	dsn = newURL(mnt)
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		t.Fatal(err)
	}
	filler = filepath.Join(mnt, "filler")
	FillFile(t, filler, FreeBytes(t, mnt)-keep)
	return p, dsn, mnt, filler
}

// FillFile writes a file of n bytes (or until the file system is full).
func FillFile(t *testing.T, path string, n int64) {
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

// FreeBytes is the space left to an unprivileged user on dir's file system.
func FreeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// Payload is message i: 4 KB of pseudo-random bytes after its number, which do not
// compress (Badger compresses its tables).
func Payload(i int) []byte {
	b := fmt.Appendf(nil, "message %06d ", i)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for len(b) < 4096 {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	return b
}

// AppendUntilFull appends Payload(acked) packets to session "s" of p until 20 in a
// row are refused with persistence.ErrStorageFull (between refusals a compaction
// may free some space, and a write then succeeds again, as it should). Any other
// error fails the test, and so does reaching 100 000 appends; disk names the file
// system in that message. It returns the appends acknowledged, all the refusals
// and the last refusal's error.
func AppendUntilFull(ctx context.Context, t *testing.T, p *persistence.Store, disk string) (acked, refusals int, full error) {
	t.Helper()
	refused := 0
	for refused < 20 && acked < 100_000 {
		_, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: Payload(acked), QoS: 1})
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
		t.Fatalf("%d appends on %s and never 20 ErrStorageFull in a row", acked, disk)
	}
	if n, err := p.Sessions().PacketCount(ctx, "s", persistence.ClassQoS12); n != uint64(acked) || err != nil {
		t.Fatalf("count on a full disk = %d, %v; want %d", n, err, acked)
	}
	return acked, refusals, full
}

// AppendAfterFreed appends 10 more Payload packets to session "s", from acked on,
// once space was freed, closes p, opens dsn again and checks that session "s"
// holds every acknowledged packet in order.
func AppendAfterFreed(ctx context.Context, t *testing.T, p *persistence.Store, dsn string, acked int) {
	t.Helper()
	for range 10 {
		if _, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: Payload(acked), QoS: 1}); err != nil {
			t.Fatalf("append after space was freed: %v", err)
		}
		acked++
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	n := 0
	err = p.Sessions().PacketsForEach(ctx, "s", persistence.ClassQoS12, func(pk *persistence.PersistedPacket) (bool, error) {
		if string(pk.Data) != string(Payload(n)) {
			return false, fmt.Errorf("packet %d holds %.20q", n, pk.Data)
		}
		n++
		return false, nil
	})
	if err != nil || n != acked {
		t.Fatalf("after reopening: %d of %d acknowledged messages, %v", n, acked, err)
	}
}
