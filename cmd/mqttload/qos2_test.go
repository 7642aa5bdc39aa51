package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cutter is a TCP proxy to a broker whose connections the test cuts at will, as a
// network failure would: both sides see the connection end, whatever was in flight.
type cutter struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	cuts   atomic.Int64
	wg     sync.WaitGroup
}

func startCutter(t *testing.T, target string) *cutter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{l: l, target: target, conns: make(map[net.Conn]struct{})}
	c.wg.Go(c.accept)
	t.Cleanup(func() {
		l.Close()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cut()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) accept() {
	for {
		in, err := c.l.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", c.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		c.conns[in], c.conns[out] = struct{}{}, struct{}{}
		c.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			c.mu.Lock()
			delete(c.conns, dst)
			delete(c.conns, src)
			c.mu.Unlock()
		}
		c.wg.Go(func() { pipe(out, in) })
		c.wg.Go(func() { pipe(in, out) })
	}
}

// cut closes every proxied connection.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.conns) > 0 {
		c.cuts.Add(1)
	}
	for conn := range c.conns {
		conn.Close()
	}
}

// qos2UnderCuts runs a QoS 2 load with -reconnect through a proxy that cuts every
// connection every 100 ms, against our broker on a bolt file.
func qos2UnderCuts(t *testing.T, paho bool) (result, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := &restartable{t: t, dsn: "bolt://" + filepath.Join(t.TempDir(), "state.db") + "?sync=none", addr: "127.0.0.1:0"}
	r.start(ctx)
	t.Cleanup(r.stop)
	px := startCutter(t, r.addr)

	cfg := config{Addr: px.l.Addr().String(), Phase: "run", Pubs: 2, Subs: 2, QoS: 2, Size: 64, Duration: 3 * time.Second,
		Inflight: 16, Reconnect: true, Settle: 15 * time.Second, Timeout: 80 * time.Second, Prefix: "qos2cut",
		ConnectTimeout: 5 * time.Second, pahoQoS2: paho}
	wait := runAsync(ctx, t, cfg)
	// Cuts start once messages flow (every client connected and subscribed); cutting
	// on a clock after that is the fault being injected, not a wait for something.
	r.waitMessagesIn(ctx, 50)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	stopCutting := time.After(cfg.Duration)
	for {
		select {
		case <-tick.C:
			px.cut()
			continue
		case <-stopCutting:
			tick.Stop()
		case <-ctx.Done():
			t.Fatal("mqttload did not finish")
		}
		break
	}
	res := wait()
	return res, px.cuts.Load()
}

// TestQoS2ExactlyOnceAcrossCuts: with connections cut under QoS 2 load, every
// acknowledged message arrives exactly once (the broker delivers exactly once; the
// tool's own QoS 2 client neither re-publishes a released message nor delivers a
// message twice before its PUBREL).
func TestQoS2ExactlyOnceAcrossCuts(t *testing.T) {
	res, cuts := qos2UnderCuts(t, false)
	t.Logf("acked %d, received %d, duplicates %d, missing %d, reconnects %d, cuts %d", res.Acked, res.Received, res.Duplicates, res.Missing, res.Reconnects, cuts)
	if !res.OK || !res.Verified || res.Missing != 0 || res.Duplicates != 0 || res.Acked == 0 {
		t.Fatalf("%+v", res)
	}
	if res.Reconnects == 0 || cuts < 5 {
		t.Fatalf("%d cuts, %d reconnects: the test did not test", cuts, res.Reconnects)
	}
}

// TestQoS2PahoControl runs the same load with paho.mqtt.golang doing QoS 2, which
// is why the tool does not: it reports what it saw, for the record.
func TestQoS2PahoControl(t *testing.T) {
	if testing.Short() {
		t.Skip("control run")
	}
	res, cuts := qos2UnderCuts(t, true)
	t.Logf("paho: acked %d, received %d, duplicates %d, missing %d, reconnects %d, cuts %d", res.Acked, res.Received, res.Duplicates, res.Missing, res.Reconnects, cuts)
}
