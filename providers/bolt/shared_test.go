package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/providers/bolt"
)

// A bolt file serves one provider (broker) at a time: a second open, in this
// process or another, is refused with persistence.ErrInUse, and the driver is not
// shared (persistence.Store.Shared is false).

func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Shared() {
		t.Error("a bolt store says Shared() = true")
	}
	_, err = p.Nodes().Renew(ctx, "n1", time.Minute)
	if !errors.Is(err, persistence.ErrNotSupported) {
		t.Errorf("Nodes.Renew on a bolt store: %v, want ErrNotSupported", err)
	}
	q, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 50 * time.Millisecond})
	checkInUse(t, q, err, path)
	// Once the first provider is closed, the file opens.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open after the first provider closed: %v", err)
	}
	_ = q.Close()
}

// checkInUse checks the refusal of a second open of path.
func checkInUse(t *testing.T, q *persistence.Store, err error, path string) {
	t.Helper()
	if err == nil {
		_ = q.Close()
		t.Fatal("a second open of a bolt file in use succeeded")
	}
	if !errors.Is(err, persistence.ErrInUse) {
		t.Errorf("second open: %v, want an error matching persistence.ErrInUse", err)
	}
	for _, want := range []string{path, "one broker at a time", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second open: %q does not mention %q", err, want)
		}
	}
}

// holdEnv names the store URL the helper process holds open.
const holdEnv = "MQTTSTORE_TEST_HOLD_URL"

// TestHelperHoldStore is the helper process of TestSecondProcessRefused: with
// holdEnv set it opens that store, creates session "held", prints "ready" and
// keeps the store open until its standard input closes or it is killed.
func TestHelperHoldStore(t *testing.T) {
	u := os.Getenv(holdEnv)
	if u == "" {
		return
	}
	p, err := persistence.Open(context.Background(), u)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	if err := p.Sessions().Create(context.Background(), "held", persistence.SessionBase{ProtocolVersion: 5}); err != nil {
		fmt.Println("create:", err)
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
	path := filepath.Join(t.TempDir(), "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := holdInChild(ctx, t, "bolt://"+path)
	q, err := persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 50 * time.Millisecond})
	checkInUse(t, q, err, path)
	// A killed broker's lock goes with it: the file opens, with its data.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	q, err = persistence.OpenConnector(ctx, &bolt.Config{Path: path, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open after the holding process was killed: %v", err)
	}
	defer q.Close()
	if ok, err := q.Sessions().Exists(ctx, "held"); err != nil || !ok {
		t.Errorf("session created by the killed process: Exists = %v, %v", ok, err)
	}
}
