package kvtest

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

	"github.com/mqttstore/mqttstore/persistence"
)

// The in-use tests of the file drivers: a store serves one provider (broker) at
// a time, and a second open, in this process or in another one, is refused.

// HoldEnv names the store URL the helper process holds open.
const HoldEnv = "MQTTSTORE_TEST_HOLD_URL"

// HoldStore is the body of a driver's TestHelperHoldStore, the helper process of
// its TestSecondProcessRefused: with HoldEnv set it opens that store, calls write
// on it, prints "ready" and keeps the store open until its standard input closes
// or it is killed. Without HoldEnv it returns at once.
func HoldStore(write func(ctx context.Context, p *persistence.Store) error) {
	u := os.Getenv(HoldEnv)
	if u == "" {
		return
	}
	ctx := context.Background()
	p, err := persistence.Open(ctx, u)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	if err := write(ctx, p); err != nil {
		fmt.Println("write:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = p.Close()
	os.Exit(0)
}

// HoldInChild starts this test binary as a helper process (its
// TestHelperHoldStore) holding the store at u, waits until it is ready, and
// returns it; the caller kills it.
func HoldInChild(ctx context.Context, t *testing.T, u string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHoldStore$", "-test.count=1")
	cmd.Env = append(os.Environ(), HoldEnv+"="+u)
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

// CheckInUse checks the refusal of a second open (q, err) of a store in use: an
// error matching persistence.ErrInUse, not persistence.ErrBrokenEntry (a store in
// use is not a damaged one), that says "one broker at a time" and mentions each of
// mentions (the path, at least). what names the store in the failure when the
// open succeeded ("a bolt file").
func CheckInUse(t *testing.T, q *persistence.Store, err error, what string, mentions ...string) {
	t.Helper()
	if err == nil {
		_ = q.Close()
		t.Fatalf("a second open of %s in use succeeded", what)
	}
	if !errors.Is(err, persistence.ErrInUse) {
		t.Errorf("second open: %v, want an error matching persistence.ErrInUse", err)
	}
	if errors.Is(err, persistence.ErrBrokenEntry) {
		t.Errorf("second open: %v: a store in use is not a damaged one", err)
	}
	for _, want := range append([]string{"one broker at a time"}, mentions...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second open: %q does not mention %q", err, want)
		}
	}
}
