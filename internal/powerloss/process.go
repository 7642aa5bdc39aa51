package powerloss

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envServe makes a process that imports this package serve a disk at the directory
// it names, instead of running its main function.
const envServe = "MQTTSTORE_POWERLOSS_SERVE"

// replyTimeout bounds every exchange with the server process.
const replyTimeout = 60 * time.Second

func init() {
	if dir := os.Getenv(envServe); dir != "" {
		os.Exit(serve(dir, os.Stdin, os.Stdout))
	}
}

// serve mounts a disk at dir and answers the commands read from in, one a line:
// "cut" and "stats". It unmounts and returns at the end of in.
func serve(dir string, in io.Reader, out io.Writer) int {
	d := &disk{dir: dir, files: map[string]*file{}}
	if err := d.mount(); err != nil {
		fmt.Fprintf(out, "error: %v\n", oneLine(err))
		return 1
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "cut":
			if err := d.cut(); err != nil {
				fmt.Fprintf(out, "error: %v\n", oneLine(err))
				continue
			}
			fmt.Fprintln(out, "ok")
		case "stats":
			d.mu.Lock()
			js, _ := json.Marshal(d.stats)
			d.mu.Unlock()
			fmt.Fprintf(out, "%s\n", js)
		default:
			fmt.Fprintf(out, "error: unknown command %q\n", sc.Text())
		}
	}
	if err := d.unmount(); err != nil {
		// Still busy (a process of the test left behind): detach the mount so
		// that it goes when the last file closes, instead of staying mounted.
		fmt.Fprintf(os.Stderr, "powerloss: unmount %s: %v; detached it\n", dir, err)
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		return 1
	}
	return 0
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// Disk is a power-loss file system mounted for a test, served by its own process.
type Disk struct {
	dir string

	mu    sync.Mutex // one exchange at a time
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // the server's replies
	done  chan error  // the server process's exit
	log   strings.Builder
}

// Mount mounts a new, empty Disk in a temporary directory and unmounts it when t
// ends. Without FUSE (or the right to mount) it skips t, or fails it when CI is set.
func Mount(t testing.TB) *Disk {
	t.Helper()
	d := &Disk{dir: t.TempDir(), lines: make(chan string, 1), done: make(chan error, 1)}
	if err := d.start(); err != nil {
		msg := fmt.Sprintf("power-loss test needs a FUSE mount (/dev/fuse and root or CAP_SYS_ADMIN): %v", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is a failure)")
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("powerloss: %v", err)
		}
	})
	return d
}

func (d *Disk) start() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return err
	}
	d.cmd = exec.Command(os.Args[0], "-test.run=^$")
	d.cmd.Env = append(os.Environ(), envServe+"="+d.dir)
	d.cmd.Stderr = &lockedWriter{w: &d.log}
	var err error
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
		d.done <- d.cmd.Wait()
	}()
	reply, err := d.reply()
	if err == nil && reply != "ready" {
		err = errors.New(reply)
	}
	if err != nil {
		d.kill()
		return err
	}
	return nil
}

// reply returns the server's next line.
func (d *Disk) reply() (string, error) {
	timer := time.NewTimer(replyTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-d.lines:
		if !ok {
			return "", fmt.Errorf("the server process ended: %s", d.stderr())
		}
		return line, nil
	case <-timer.C:
		return "", fmt.Errorf("the server process did not answer in %s: %s", replyTimeout, d.stderr())
	}
}

func (d *Disk) stderr() string {
	return strings.TrimSpace(d.cmd.Stderr.(*lockedWriter).String())
}

func (d *Disk) ask(cmd string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := fmt.Fprintln(d.in, cmd); err != nil {
		return "", err
	}
	reply, err := d.reply()
	if err == nil && strings.HasPrefix(reply, "error: ") {
		err = errors.New(strings.TrimPrefix(reply, "error: "))
	}
	return reply, err
}

// Dir is the mount point.
func (d *Disk) Dir() string { return d.dir }

// Cut loses power: every byte written to the disk and not synced since is gone,
// and the disk is mounted again at Dir. No file of the mount may be open.
func (d *Disk) Cut(t testing.TB) {
	t.Helper()
	if _, err := d.ask("cut"); err != nil {
		t.Fatalf("powerloss: cut: %v", err)
	}
}

// Stats returns what the file system saw so far.
func (d *Disk) Stats(t testing.TB) Stats {
	t.Helper()
	reply, err := d.ask("stats")
	if err != nil {
		t.Fatalf("powerloss: stats: %v", err)
	}
	var st Stats
	if err := json.Unmarshal([]byte(reply), &st); err != nil {
		t.Fatalf("powerloss: stats %q: %v", reply, err)
	}
	return st
}

// stop asks the server to unmount and exit, and makes sure it did: a server that
// does not is killed and its mount detached.
func (d *Disk) stop() error {
	_ = d.in.Close()
	timer := time.NewTimer(replyTimeout)
	defer timer.Stop()
	select {
	case err := <-d.done:
		if err != nil {
			d.detach()
			return fmt.Errorf("server process: %v: %s", err, d.stderr())
		}
		return nil
	case <-timer.C:
		d.kill()
		return fmt.Errorf("the server process did not unmount %s in %s; killed it: %s", d.dir, replyTimeout, d.stderr())
	}
}

// kill ends the server process and detaches its mount (a dead server's mount
// answers ENOTCONN until it is unmounted).
func (d *Disk) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
	d.detach()
}

func (d *Disk) detach() { _ = syscall.Unmount(d.dir, syscall.MNT_DETACH) }

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() < 1<<16 {
		l.w.Write(p)
	}
	return len(p), nil
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
