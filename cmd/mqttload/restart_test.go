package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
)

// restartable is an in-process broker on a bolt file that can be stopped and started
// again on the same address and the same file.
type restartable struct {
	t      *testing.T
	dsn    string
	addr   string
	store  *persistence.Store
	b      *broker.Broker
	served chan error
	logs   lockedBuffer // the broker's log across restarts, shown when the test fails
}

// lockedBuffer is a bytes.Buffer that the broker's goroutines can log to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (r *restartable) start(ctx context.Context) {
	r.t.Helper()
	store, err := persistence.Open(ctx, r.dsn)
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Options{Store: store, Logger: slog.New(slog.NewTextHandler(&r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		store.Close()
		r.t.Fatal(err)
	}
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		b.Close()
		store.Close()
		r.t.Fatal(err)
	}
	r.addr = l.Addr().String()
	r.store, r.b, r.served = store, b, make(chan error, 1)
	go func() { r.served <- b.Serve(l) }()
}

func (r *restartable) stop() {
	r.t.Helper()
	if r.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.b.Shutdown(ctx); err != nil {
		r.t.Errorf("shutdown: %v", err)
	}
	if err := <-r.served; err != nil {
		r.t.Errorf("serve: %v", err)
	}
	if err := r.store.Close(); err != nil {
		r.t.Errorf("store close: %v", err)
	}
	r.b = nil
}

// logQueues logs what the store still holds for each session, so a failure says
// whether missing messages were stuck in a queue or in flight, or never stored.
func (r *restartable) logQueues(ctx context.Context) {
	r.t.Helper()
	st := r.b.Stats()
	r.t.Logf("broker stats: %+v\nbroker log:\n%s", st, r.logs.String())
	err := r.store.Sessions().LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		id := ls.ID
		for _, class := range []persistence.PacketClass{persistence.ClassQoS0, persistence.ClassQoS12, persistence.ClassUnAck, persistence.ClassIncoming} {
			n, err := r.store.Sessions().PacketCount(ctx, id, class)
			if err != nil {
				return err
			}
			if n > 0 {
				r.t.Logf("session %q class %v: %d packets stored", id, class, n)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Logf("listing the store: %v", err)
	}
}

// waitMessagesIn waits until the broker has accepted more than n publishes.
func (r *restartable) waitMessagesIn(ctx context.Context, n int64) {
	r.t.Helper()
	waitStats(ctx, r.t, r.b, fmt.Sprintf("more than %d publishes", n), func(s broker.Stats) bool { return s.MessagesIn > n })
}

// TestSmokeReconnectAcrossRestart runs the kill-tolerant mode (-reconnect) while the
// broker is stopped and started twice on the same address and bolt file: clients
// reconnect, resume their persistent sessions, and nothing acknowledged is missing.
func TestSmokeReconnectAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := &restartable{t: t, dsn: "bolt://" + filepath.Join(t.TempDir(), "state.db") + "?sync=none", addr: "127.0.0.1:0"}
	r.start(ctx)
	t.Cleanup(r.stop)

	type outcome struct {
		code int
		out  []byte
		err  []byte
	}
	done := make(chan outcome, 1)
	addr := r.addr // start rewrites r.addr (to the same value) on every restart
	go func() {
		var out, errb bytes.Buffer
		code := mainErr([]string{"-addr", addr, "-reconnect", "-pubs", "2", "-subs", "2", "-qos", "1",
			"-duration", "4s", "-settle", "15s", "-timeout", "80s", "-json", "-progress=false", "-prefix", "restart"}, &out, &errb)
		done <- outcome{code, out.Bytes(), errb.Bytes()}
	}()
	for i := 0; i < 2; i++ {
		r.waitMessagesIn(ctx, 100)
		r.stop()
		r.start(ctx)
	}
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatal("mqttload did not finish")
	}
	var res result
	if err := json.Unmarshal(o.out, &res); err != nil {
		t.Fatalf("exit %d, output %q, stderr %s: %v", o.code, o.out, o.err, err)
	}
	t.Logf("acked %d, received %d, duplicates %d, reconnects %d", res.Acked, res.Received, res.Duplicates, res.Reconnects)
	if o.code != 0 || !res.OK || !res.Verified || res.Missing != 0 || res.Acked == 0 {
		r.logQueues(ctx)
		t.Fatalf("exit %d: %+v\n%s", o.code, res, o.err)
	}
	if res.Reconnects == 0 {
		t.Fatalf("no client noticed the restarts: %+v", res)
	}
}
