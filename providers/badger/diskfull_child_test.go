//go:build linux

package badger_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/kv/kvtest"
	"github.com/mqttstore/mqttstore/providers/badger"
)

// The child-process side of TestDiskFullOtherWriter: when childEnv names a
// store, TestHelperDiskFullWriter makes the test binary a writer that appends kvtest.Payload(i) to session
// "s" and reports every outcome on stdout ("ok i", "full", or "err ..." and
// exit status 3), until it has childMax acknowledged or its stdin closes.
const (
	childEnv    = "MQTTSTORE_BADGER_DISKFULL_CHILD"
	childMax    = "MQTTSTORE_BADGER_DISKFULL_MAX"
	childNoChk  = "MQTTSTORE_BADGER_DISKFULL_NOCHECK"
	childMemory = "?memory=low&sync=always"
)

// TestHelperDiskFullWriter is the child process of TestDiskFullOtherWriter
// (see diskFullChild); without childEnv it does nothing.
func TestHelperDiskFullWriter(t *testing.T) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		os.Exit(diskFullChild(dsn))
	}
}

func diskFullChild(dsn string) int {
	ctx := context.Background()
	limit, _ := strconv.Atoi(os.Getenv(childMax))
	out := bufio.NewWriter(os.Stdout)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(out, "err "+format+"\n", a...)
		out.Flush()
		return 3
	}
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		return fail("open: %v", err)
	}
	if os.Getenv(childNoChk) != "" {
		badger.SpaceCheckOff(p)
	}
	if err := p.Sessions().Create(ctx, "s", persistence.SessionBase{CreatedAt: time.Now(), ProtocolVersion: 4}); err != nil {
		return fail("create: %v", err)
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	acked := 0
	for {
		select {
		case <-stop:
			if err := p.Close(); err != nil {
				return fail("close: %v", err)
			}
			out.Flush()
			return 0
		default:
		}
		if acked >= limit {
			<-stop
			continue
		}
		_, err := p.Sessions().PacketAppend(ctx, "s", persistence.ClassQoS12, &persistence.PersistedPacket{Data: kvtest.Payload(acked), QoS: 1})
		switch {
		case err == nil:
			fmt.Fprintf(out, "ok %d\n", acked)
			acked++
		case errors.Is(err, persistence.ErrStorageFull):
			fmt.Fprintln(out, "full")
			time.Sleep(time.Millisecond) // refusals need not spin
		default:
			return fail("append %d: %v", acked, err)
		}
		out.Flush()
	}
}

// writer is a child process appending to a Badger store.
type writer struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan string // "ok", "full" or "err ..."; closed when stdout ends
	acked  int
	full   int
}

// startWriter runs the test binary as a writer on dsn (see diskFullChild).
func startWriter(ctx context.Context, t *testing.T, dsn string, limit int, noCheck bool) *writer {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDiskFullWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn, childMax+"="+strconv.Itoa(limit))
	if noCheck {
		cmd.Env = append(cmd.Env, childNoChk+"=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, cmd: cmd, stdin: stdin, events: make(chan string, 1024)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		defer close(w.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.events <- sc.Text()
		}
	}()
	return w
}

// note takes one report of the writer; a report of any error but
// ErrStorageFull fails the test.
func (w *writer) note(ev string) {
	w.t.Helper()
	switch {
	case strings.HasPrefix(ev, "ok "):
		if n, _ := strconv.Atoi(ev[3:]); n != w.acked {
			w.t.Fatalf("writer acknowledged %d, want %d", n, w.acked)
		}
		w.acked++
	case ev == "full":
		w.full++
	default:
		w.t.Fatalf("writer: %s", ev)
	}
}

// until takes the writer's reports until cond holds; the writer ending first
// fails the test.
func (w *writer) until(what string, cond func() bool) {
	w.t.Helper()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for !cond() {
		select {
		case ev, ok := <-w.events:
			if !ok {
				w.t.Fatalf("waiting for %s: the writer ended: %v", what, w.wait())
			}
			w.note(ev)
		case <-timeout.C:
			w.t.Fatalf("timed out waiting for %s (%d acknowledged, %d refused)", what, w.acked, w.full)
		}
	}
}

// finish closes the writer's stdin, so that it closes the store and exits,
// takes its last reports and checks that it exited with status 0 — not
// killed by a signal.
func (w *writer) finish() {
	w.t.Helper()
	w.stdin.Close()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				if err := w.wait(); err != nil {
					w.t.Fatalf("writer: %v", err)
				}
				return
			}
			w.note(ev)
		case <-timeout.C:
			w.t.Fatal("timed out waiting for the writer to end")
		}
	}
}

// wait returns how the process ended.
func (w *writer) wait() error {
	err := w.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("killed by %v", ws.Signal())
		}
	}
	return err
}

// verify opens dsn and checks that session "s" holds exactly the acked
// payloads in order, then appends more (service is back).
func verify(ctx context.Context, t *testing.T, dsn string, acked int) {
	t.Helper()
	p, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	kvtest.AppendAfterFreed(ctx, t, p, dsn, acked)
}

// TestDiskFullOtherWriter: another process fills the file system while a
// Badger writer (a child process) appends, and the writer never dies of it.
//   - log: with the driver's space check off, the disk is filled to the last
//     byte and the writer goes on appending: Badger's write-ahead log was
//     allocated in advance (logSpace), so its stores land in pages that exist
//     and nothing is a SIGBUS (without the preallocation the first append into
//     a new page of the log kills the writer).
//   - racing: with the check on, the disk is filled and freed five times under
//     the writer's appends: appends are refused with ErrStorageFull while it is
//     full and taken again once it is freed.
//
// In both, the writer exits normally and every append it acknowledged is in
// the store. The writer stays under one memtable (8 MiB with memory=low), so
// no table is written while the disk is full: a flush or compaction into a
// full disk is what the driver cannot protect (see reserve in space.go).
func TestDiskFullOtherWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const limit = 1500 // 6 MB of payloads, under one memtable
	t.Run("log", func(t *testing.T) {
		mnt := kvtest.MountTmpfs(t, 96<<20)
		dsn := "badger://" + filepath.Join(mnt, "db") + childMemory
		w := startWriter(ctx, t, dsn, limit, true)
		w.until("50 appends", func() bool { return w.acked >= 50 })
		filler := filepath.Join(mnt, "filler")
		kvtest.FillFile(t, filler, 1<<40)
		if free := kvtest.FreeBytes(t, mnt); free != 0 {
			t.Fatalf("%d bytes still free", free)
		}
		before := w.acked
		w.until("200 appends on the full disk", func() bool { return w.acked >= before+200 })
		w.finish()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		verify(ctx, t, dsn, w.acked)
	})
	t.Run("racing", func(t *testing.T) {
		mnt := kvtest.MountTmpfs(t, 128<<20)
		dsn := "badger://" + filepath.Join(mnt, "db") + childMemory
		w := startWriter(ctx, t, dsn, limit, false)
		w.until("20 appends", func() bool { return w.acked >= 20 })
		filler := filepath.Join(mnt, "filler")
		cycles := 0
		for ; cycles < 5 && w.acked < limit-100; cycles++ {
			kvtest.FillFile(t, filler, 1<<40)
			full := w.full
			w.until("a refusal", func() bool { return w.full > full })
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			acked := w.acked
			w.until("appends after space was freed", func() bool { return w.acked >= min(acked+20, limit) })
		}
		w.finish()
		t.Logf("%d appends acknowledged, %d refused, the disk filled %d times", w.acked, w.full, cycles)
		if cycles < 3 {
			t.Errorf("the disk filled only %d times before the writer's limit", cycles)
		}
		verify(ctx, t, dsn, w.acked)
	})
}
