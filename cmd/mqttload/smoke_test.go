package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/mem"
)

// startBroker runs our broker in-process on a mem store on a free loopback port.
func startBroker(t *testing.T) string {
	t.Helper()
	_, addr := startMemBroker(t)
	return addr
}

// startMemBroker is startBroker that also returns the broker (for its Stats).
func startMemBroker(t *testing.T) (*broker.Broker, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := persistence.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Options{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := b.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		store.Close()
	})
	return b, l.Addr().String()
}

func smoke(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := mainErr(append(args, "-json", "-progress=false", "-timeout", "60s", "-settle", "10s"), &out, &errb)
	if errb.Len() > 0 {
		t.Log(errb.String())
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("exit %d, output %q: %v", code, out.String(), err)
	}
	if code != 0 || !res.OK {
		t.Fatalf("exit %d: %+v", code, res)
	}
	return res
}

// TestSmokeRun is the CI smoke run: a few seconds of load at every QoS against the
// in-process broker, each verified.
func TestSmokeRun(t *testing.T) {
	addr := startBroker(t)
	for _, qos := range []string{"0", "1", "2"} {
		res := smoke(t, "-addr", addr, "-pubs", "4", "-subs", "4", "-qos", qos, "-count", "2000", "-prefix", "smoke"+qos)
		t.Logf("QoS %s: %.0f msgs/s, p50 %.2fms, p99 %.2fms", qos, res.DeliveryRate, res.P50ms, res.P99ms)
		if qos != "0" && (res.Received < 2000 || res.Owed != 2000 || !res.Verified) {
			t.Fatalf("QoS %s: %+v", qos, res)
		}
	}
	res := smoke(t, "-addr", addr, "-pubs", "2", "-subs", "3", "-fanout", "-qos", "1", "-duration", "1s", "-prefix", "fan")
	if res.Owed != 3*res.Acked || res.Missing != 0 {
		t.Fatalf("fanout: %+v", res)
	}
}

// TestSmokePhases creates offline sessions, queues messages for them and drains them.
func TestSmokePhases(t *testing.T) {
	addr := startBroker(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if res := smoke(t, "-addr", addr, "-phase", "sessions", "-subs", "20", "-prefix", "ph"); res.Sessions != 20 {
		t.Fatalf("sessions: %+v", res)
	}
	smoke(t, "-addr", addr, "-phase", "publish", "-pubs", "4", "-subs", "20", "-count", "400", "-prefix", "ph", "-state", state)
	res := smoke(t, "-addr", addr, "-phase", "drain", "-state", state, "-parallel", "5")
	if res.Received != 400 || res.Owed != 400 || res.SessionsLost != 0 || res.Sessions != 20 {
		t.Fatalf("drain: %+v", res)
	}
	smoke(t, "-addr", addr, "-phase", "wait")
}

// TestSmokeDetectsLoss drains sessions that were never created: every owed message
// is missing, and the tool must say so and exit 1.
func TestSmokeDetectsLoss(t *testing.T) {
	addr := startBroker(t)
	state := filepath.Join(t.TempDir(), "state.json")
	// Publish with no session subscribed: the broker acknowledges and drops.
	smoke(t, "-addr", addr, "-phase", "publish", "-pubs", "1", "-subs", "2", "-count", "10", "-prefix", "loss", "-state", state)
	var out, errb bytes.Buffer
	code := mainErr([]string{"-addr", addr, "-phase", "drain", "-state", state, "-json", "-progress=false", "-timeout", "30s", "-settle", "500ms"}, &out, &errb)
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("exit %d, output %q: %v", code, out.String(), err)
	}
	if code != 1 || res.OK || res.Missing != 10 || res.SessionsLost != 2 {
		t.Fatalf("exit %d: %+v", code, res)
	}
}
