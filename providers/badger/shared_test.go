package badger_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// A Badger directory serves one provider (broker) at a time: a second open, in
// this process or another, is refused with persistence.ErrInUse (not taken for a
// damaged store), and the driver is not shared (persistence.Store.Shared is false).

// fill writes a few sessions with packets, so that a directory in use has files
// that the damage check would read.
func fill(ctx context.Context, p *persistence.Store) error {
	for i := range 20 {
		id := fmt.Sprintf("s%d", i)
		if err := p.Sessions().Create(ctx, id, persistence.SessionBase{ProtocolVersion: 5}); err != nil {
			return err
		}
		for j := range 20 {
			pk := &persistence.PersistedPacket{QoS: 1, PacketID: uint16(j + 1), ProtocolVersion: 5, Data: []byte(strings.Repeat("x", 1000))}
			if _, err := p.Sessions().PacketAppend(ctx, id, persistence.ClassQoS12, pk); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Shared() {
		t.Error("a badger store says Shared() = true")
	}
	if _, err := p.Sessions().Claim(ctx, "s", "n1"); !errors.Is(err, persistence.ErrNotSupported) {
		t.Errorf("Claim on a badger store: %v, want ErrNotSupported", err)
	}
	if err := fill(ctx, p); err != nil {
		t.Fatal(err)
	}
	q, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	checkInUse(t, q, err, dir)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatalf("open after the first provider closed: %v", err)
	}
	_ = q.Close()
}

// checkInUse checks the refusal of a second open of dir.
func checkInUse(t *testing.T, q *persistence.Store, err error, dir string) {
	t.Helper()
	if err == nil {
		_ = q.Close()
		t.Fatal("a second open of a Badger directory in use succeeded")
	}
	if !errors.Is(err, persistence.ErrInUse) {
		t.Errorf("second open: %v, want an error matching persistence.ErrInUse", err)
	}
	if errors.Is(err, persistence.ErrBrokenEntry) {
		t.Errorf("second open: %v: a directory in use is not a damaged one", err)
	}
	for _, want := range []string{dir, "one broker at a time"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second open: %q does not mention %q", err, want)
		}
	}
}

// holdEnv names the store URL the helper process holds open.
const holdEnv = "MQTTSTORE_TEST_HOLD_URL"

// TestHelperHoldStore is the helper process of TestSecondProcessRefused: with
// holdEnv set it opens that store, writes sessions, prints "ready" and keeps the
// store open until its standard input closes or it is killed.
func TestHelperHoldStore(t *testing.T) {
	u := os.Getenv(holdEnv)
	if u == "" {
		return
	}
	ctx := context.Background()
	p, err := persistence.Open(ctx, u)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	if err := fill(ctx, p); err != nil {
		fmt.Println("fill:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = p.Close()
	os.Exit(0)
}

// holdInChild starts this test binary as a helper process holding the store at
// u, waits until it is ready, and returns it; the caller kills it.
func holdInChild(ctx context.Context, t *testing.T, u string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHoldStore$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+u)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var lines []string
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
			lines = append(lines, sc.Text())
		}
		ready <- fmt.Errorf("helper process ended before it was ready: %q", lines)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the helper process was not ready before the deadline")
	}
	return cmd
}

func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := holdInChild(ctx, t, "badger://"+dir)
	q, err := persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	checkInUse(t, q, err, dir)
	// A killed broker's lock goes with it: the directory opens, with its data.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	q, err = persistence.OpenConnector(ctx, &badger.Config{Dir: dir})
	if err != nil {
		t.Fatalf("open after the holding process was killed: %v", err)
	}
	defer q.Close()
	if n, err := q.Sessions().Count(ctx); err != nil || n != 20 {
		t.Errorf("sessions written by the killed process: Count = %d, %v; want 20", n, err)
	}
}
