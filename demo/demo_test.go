package demo

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

// TestMain terminates the binary's shared PostgreSQL container when the tests end.
func TestMain(m *testing.M) { pgtest.Main(m) }

func testConfig(t *testing.T, store string) config {
	t.Helper()
	return config{
		Store:             store,
		Listen:            "127.0.0.1:0",
		ShutdownTimeout:   10 * time.Second,
		SelfCheckMessages: 50,
		Logger:            slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running program.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runSelfCheck(t *testing.T, store string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := selfCheck(ctx, testConfig(t, store), &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("selfcheck on %s: %v", store, err)
	}
	if !strings.Contains(out.String(), "received all 50 messages") {
		t.Fatalf("selfcheck output does not report every message received")
	}
	return out.String()
}

func TestSelfCheckBolt(t *testing.T) {
	out := runSelfCheck(t, "bolt://"+filepath.Join(t.TempDir(), "data", "check.db")+"?sync=always")
	if !strings.Contains(out, "store reopened") {
		t.Fatalf("bolt selfcheck did not close and reopen the store")
	}
}

func TestSelfCheckBadger(t *testing.T) {
	out := runSelfCheck(t, "badger://"+filepath.Join(t.TempDir(), "badger"))
	if !strings.Contains(out, "store reopened") {
		t.Fatalf("badger selfcheck did not close and reopen the store")
	}
}

func TestSelfCheckPostgres(t *testing.T) {
	out := runSelfCheck(t, pgtest.DSN(t))
	if !strings.Contains(out, "store reopened") {
		t.Fatalf("postgres selfcheck did not close and reopen the store")
	}
}

func TestSelfCheckMemSaysNotDurable(t *testing.T) {
	out := runSelfCheck(t, "mem://")
	if !strings.Contains(out, "not durable") {
		t.Fatalf("mem selfcheck does not say the store is not durable")
	}
}

func TestSelfCheckFailsOnBadStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := selfCheck(ctx, testConfig(t, "nosuchdriver://x"), &out); err == nil {
		t.Fatal("selfcheck passed on an unknown driver")
	}
}

// started runs c with args in the background and returns the addresses it serves
// on and a stop function that cancels it and returns its exit status. The program is
// stopped when the test ends in any case.
func started(t *testing.T, c *Command, args ...string) (Addrs, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	c.Started = func(a Addrs) { ready <- a }
	done := make(chan int, 1)
	go func() { done <- c.Run(ctx, args) }()
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Error("the program did not return 30s after its context ended")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	select {
	case a := <-ready:
		return a, stop
	case code := <-done:
		t.Fatalf("the program exited with status %d before serving", code)
	case <-time.After(30 * time.Second):
		t.Fatal("the program did not start serving within 30s")
	}
	panic("unreachable")
}

// TestRunRestartKeepsRetained serves on a bolt store, stores a retained message
// through a real client, shuts down the way SIGINT does (ctx cancelled), starts
// again on the same file and reads the message back.
func TestRunRestartKeepsRetained(t *testing.T) {
	store := "bolt://" + filepath.Join(t.TempDir(), "data", "mqttstore.db")
	var logs syncBuffer
	t.Cleanup(func() { t.Log("\n" + logs.String()) })
	args := []string{"-store", store, "-listen", "127.0.0.1:0", "-log-level", "warn"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	addrs, stop := started(t, &Command{Stderr: &logs}, args...)
	c, _, err := dial(ctx, addrs.MQTT.String(), "demo-test-pub", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokenErr(ctx, c.Publish("demo/retained", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(100)
	if code := stop(); code != 0 {
		t.Fatalf("exit status %d after a clean shutdown", code)
	}

	addrs, stop = started(t, &Command{Stderr: &logs}, args...)
	got := make(chan string, 1)
	c, _, err = dial(ctx, addrs.MQTT.String(), "demo-test-sub", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	if err := tokenErr(ctx, c.Subscribe("demo/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "kept" {
			t.Fatalf("retained payload %q", p)
		}
	case <-ctx.Done():
		t.Fatal("retained message not delivered after restart")
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit status %d after a clean shutdown", code)
	}
}

// runCmd runs the program to its end with a deadline and returns its status and
// output.
func runCmd(t *testing.T, c *Command, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	code = c.Run(ctx, args)
	return code, out.String(), errb.String()
}

func TestHelpSaysWhatTheProgramIs(t *testing.T) {
	code, _, stderr := runCmd(t, &Command{Name: "mybroker"}, "-h")
	if code != 0 {
		t.Fatalf("-h: exit status %d", code)
	}
	for _, want := range []string{
		"mybroker runs an MQTT broker",
		"Usage: mybroker [flags]",
		"Store drivers in this program: " + strings.Join(persistence.Drivers(), ", ") + ".",
		"-metrics address",
		"-store string",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("-h output lacks %q:\n%s", want, stderr)
		}
	}
}

// TestBadUsage checks the exit status and the one message of each command-line
// mistake.
func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	drivers := strings.Join(persistence.Drivers(), ", ")
	for _, c := range []struct {
		args []string
		want string // the message after "demo: "
	}{
		{[]string{"stray"}, `unexpected arguments ["stray"]`},
		{[]string{"-log-level", "loud"}, `-log-level "loud": want debug, info, warn or error`},
		{[]string{"-max-queued", "-1"}, "-max-queued -1: must not be negative"},
		{[]string{"-max-queued-bytes", "-1"}, "-max-queued-bytes -1: must not be negative"},
		{[]string{"-receive-maximum", "70000"}, "-receive-maximum 70000: must be between 0 and 65535"},
		{[]string{"-shutdown-timeout", "0s"}, "-shutdown-timeout 0s: must be positive"},
		{[]string{"-selfcheck", "-selfcheck-messages", "0"}, "-selfcheck-messages 0: must be positive"},
		{[]string{"-selfcheck", "-metrics", "127.0.0.1:0"}, "-metrics does not go with -selfcheck"},
		{[]string{"-tls-cert", "a.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-cert", filepath.Join(dir, "no.pem"), "-tls-key", filepath.Join(dir, "no.key")}, "-tls-cert/-tls-key: open " + filepath.Join(dir, "no.pem") + ": no such file or directory"},
		{[]string{"-listen", "1883"}, `-listen "1883": missing port in address`},
		{[]string{"-metrics", "localhost"}, `-metrics "localhost": missing port in address`},
		{[]string{"-store", ""}, "-store is required (drivers in this program: " + drivers + ")"},
		{[]string{"-store", "nosuchdriver://x"}, `-store: persistence: unknown provider "nosuchdriver": registered: ` + drivers + ` (is the driver package imported?)`},
		{[]string{"-store", "bolt://"}, `-store: persistence: invalid config: bolt: store URL "bolt:" has no file path; use bolt:///path/to/state.db`},
	} {
		args := append([]string{"-store", "mem://"}, c.args...)
		code, stdout, stderr := runCmd(t, &Command{}, args...)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2", c.args, code)
		}
		want := "demo: " + c.want + "\nRun 'demo -h' for help.\n"
		if stderr != want || stdout != "" {
			t.Errorf("%q: stderr\n%s\nwant\n%s(stdout %q)", c.args, stderr, want, stdout)
		}
	}
	// A flag the flag package refuses: its own message and the usage, status 2.
	code, _, stderr := runCmd(t, &Command{}, "-max-queued", "lots")
	if code != 2 || !strings.Contains(stderr, `invalid value "lots" for flag -max-queued`) || !strings.Contains(stderr, "Usage: demo") {
		t.Errorf("-max-queued lots: status %d\n%s", code, stderr)
	}
}

// TestStorePasswordNeverPrinted makes the program print store URLs with passwords
// in every way it can fail: a bad option (caught before opening) and a server
// that does not answer (caught when opening).
func TestStorePasswordNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-pw"
	// A closed loopback port: the connection is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, c := range []struct {
		store string
		code  int
		named bool // the (redacted) URL is printed
	}{
		{"postgres://mqtt:" + secret + "@127.0.0.1:5432/mqtt?nosuchoption=1", 2, false},
		{"postgres://mqtt:" + secret + "@127.0.0.1:" + strconv.Itoa(port) + "/mqtt?sslmode=disable&connect_timeout=5", 1, true},
		{"postgres://mqtt:" + secret + "@127.0.0.1:" + strconv.Itoa(port) + "/mqtt?sslmode=disable&connect_timeout=5&sslpassword=" + secret, 1, true},
	} {
		code, stdout, stderr := runCmd(t, &Command{}, "-store", c.store, "-listen", "127.0.0.1:0")
		t.Logf("%s", stderr)
		if code != c.code {
			t.Errorf("exit status %d, want %d", code, c.code)
		}
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("the password was printed:\n%s", stdout+stderr)
		}
		if c.named && !strings.Contains(stderr, "mqtt:xxxxx@127.0.0.1") {
			t.Errorf("the store URL is not named (redacted):\n%s", stderr)
		}
	}
}

// TestNothingOpenedBeforeListening checks that a listener that cannot be bound
// stops the program before it opens (and so restores) the store: the bolt file is
// never created.
func TestNothingOpenedBeforeListening(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, flag := range []string{"-listen", "-metrics"} {
		file := filepath.Join(t.TempDir(), "state.db")
		args := []string{"-store", "bolt://" + file, "-listen", "127.0.0.1:0", flag, busy.Addr().String()}
		code, _, stderr := runCmd(t, &Command{}, args...)
		if code != 1 {
			t.Errorf("%s on a busy port: exit status %d, want 1", flag, code)
		}
		want := "demo: " + flag + " " + busy.Addr().String() + ": bind: address already in use\n"
		if stderr != want {
			t.Errorf("%s on a busy port: stderr %q, want %q", flag, stderr, want)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("%s on a busy port: the store was opened (stat: %v)", flag, err)
		}
	}
}

// TestOpenErrorSaidOnce checks the message of a store that cannot be opened: the
// store's own error, said once, after what the program was doing.
func TestOpenErrorSaidOnce(t *testing.T) {
	dir := t.TempDir()
	// A directory where the bolt file should be.
	file := filepath.Join(dir, "state.db")
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	store := "bolt://" + file
	_, openErr := persistence.Open(context.Background(), store)
	if openErr == nil {
		t.Fatal("bolt opened a directory")
	}
	code, _, stderr := runCmd(t, &Command{}, "-store", store, "-listen", "127.0.0.1:0", "-log-level", "error")
	if code != 1 {
		t.Fatalf("exit status %d, want 1", code)
	}
	if want := "demo: opening the store: " + openErr.Error() + "\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestDefaultStore(t *testing.T) {
	if got := (&Command{}).defaultStore(); got != DefaultStore {
		t.Errorf("default store %q with bolt registered, want %q", got, DefaultStore)
	}
	if got := (&Command{DefaultStore: "mem://"}).defaultStore(); got != "mem://" {
		t.Errorf("default store %q, want the Command's", got)
	}
}

func TestSelfCheckExitStatus(t *testing.T) {
	code, stdout, _ := runCmd(t, &Command{}, "-selfcheck", "-store", "mem://", "-selfcheck-messages", "5", "-log-level", "warn")
	if code != 0 || !strings.HasSuffix(stdout, "SELFCHECK PASSED\n") {
		t.Errorf("mem self-check: exit status %d\n%s", code, stdout)
	}
}
