package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/providers/postgres/pgtest"
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

// TestRunRestartKeepsRetained serves on a bolt store, stores a retained message
// through a real client, shuts down the way SIGINT does (ctx cancelled), starts
// again on the same file and reads the message back.
func TestRunRestartKeepsRetained(t *testing.T) {
	cfg := testConfig(t, "bolt://"+filepath.Join(t.TempDir(), "data", "mqttstore.db"))
	serve := func() (net.Addr, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() { done <- run(ctx, cfg, ready) }()
		var addr net.Addr
		select {
		case addr = <-ready:
		case err := <-done:
			cancel()
			t.Fatalf("run: %v", err)
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatal("broker did not start")
		}
		stop := func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run returned %v after a clean shutdown", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("run did not return after cancel")
			}
		}
		t.Cleanup(cancel)
		return addr, stop
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, stop := serve()
	c, _, err := dial(ctx, addr.String(), "demo-test-pub", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokenErr(ctx, c.Publish("demo/retained", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(100)
	stop()

	addr, stop = serve()
	defer stop()
	got := make(chan string, 1)
	c, _, err = dial(ctx, addr.String(), "demo-test-sub", true, nil)
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
}

func TestMainErrExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainErr([]string{"-log-level", "loud"}, &out, &errb); code != 2 {
		t.Fatalf("bad log level: exit %d", code)
	}
	if code := mainErr([]string{"stray"}, &out, &errb); code != 2 {
		t.Fatalf("stray argument: exit %d", code)
	}
	if code := mainErr([]string{"-listen", "127.0.0.1:0", "-store", "nosuchdriver://"}, &out, &errb); code != 1 {
		t.Fatalf("unknown driver: exit %d", code)
	}
	if code := mainErr([]string{"-selfcheck", "-store", "mem://", "-selfcheck-messages", "5"}, &out, &errb); code != 0 {
		t.Fatalf("mem selfcheck: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestLocalDirAndRedact(t *testing.T) {
	for dsn, want := range map[string]string{
		"bolt://./data/mqttstore.db?sync=always": "data",
		"bolt:///var/lib/x/state.db":             "/var/lib/x",
		"badger:///var/lib/x":                    "",
		"mem://":                                 "",
	} {
		if got := localDir(dsn); got != want {
			t.Errorf("localDir(%q) = %q, want %q", dsn, got, want)
		}
	}
	if r := redact("postgres://u:secret@127.0.0.1/db"); strings.Contains(r, "secret") {
		t.Errorf("redact kept the password: %s", r)
	}
}

func TestTLSConfigNeedsBoth(t *testing.T) {
	if _, err := (config{TLSCert: "a.pem"}).tlsConfig(); err == nil {
		t.Fatal("certificate without key accepted")
	}
	if c, err := (config{}).tlsConfig(); c != nil || err != nil {
		t.Fatalf("no TLS flags: %v %v", c, err)
	}
}
