package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
)

// nonReader connects a raw 5.0 client with a small receive buffer, subscribes
// to filter at QoS 0 and then reads nothing until told to.
func nonReader(t *testing.T, addr, id, filter string) *rawClient {
	t.Helper()
	r := dialRaw(t, addr, packet.Version5)
	if tc, ok := r.nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(64 << 10) // so that the broker's queue, not the kernel's, fills
	}
	if ack := r.connect(&packet.Connect{ClientID: id, CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK %#x", id, ack.ReasonCode)
	}
	r.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: filter}}})
	if _, ok := r.must().(*packet.Suback); !ok {
		t.Fatalf("%s: no SUBACK", id)
	}
	return r
}

// watchBuffered samples Stats.BufferedBytes until the returned stop is called,
// which returns the highest value seen.
func watchBuffered(b *broker.Broker) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			if v := b.Stats().BufferedBytes; v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tk.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// publishAll sends n QoS 0 messages of size bytes on topic from a raw client
// in a goroutine; the returned channel gets the write error (nil when all
// were written).
func publishAll(t *testing.T, addr, topic string, n, size int) <-chan error {
	t.Helper()
	p := dialRaw(t, addr, packet.Version5)
	if ack := p.connect(&packet.Connect{ClientID: "pub-" + topic, CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("publisher CONNACK %#x", ack.ReasonCode)
	}
	pkt, err := packet.Encode(nil, &packet.Publish{Topic: topic, Payload: bytes.Repeat([]byte{'x'}, size)}, packet.Version5)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		p.nc.SetWriteDeadline(time.Now().Add(60 * time.Second))
		for range n {
			if _, err := p.nc.Write(pkt); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// TestConnQueueBytesBackpressure drives a subscriber that does not read into
// its per-connection budget: the broker stops reading from the publisher
// instead of buffering (its queue never holds more than the budget and one
// message), and once the subscriber reads, every QoS 0 message arrives —
// nothing was dropped, the publisher was only paused.
func TestConnQueueBytesBackpressure(t *testing.T) {
	const budget, size, n = 256 << 10, 32 << 10, 400 // 12.5 MiB published
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{
		MaxConnQueueBytes: budget, BackpressureWait: time.Minute,
	}})
	sub := nonReader(t, e.addr, "slow", "bp/#")
	peak := watchBuffered(e.b)
	errc := publishAll(t, e.addr, "bp/x", n, size)
	// The queue fills, and then the broker reads no more from the publisher.
	eventually(t, "the subscriber's budget to fill", func() bool { return e.b.Stats().BufferedBytes > budget-size })
	if in := e.b.Stats().MessagesIn; in >= n {
		t.Fatalf("the broker read all %d messages while the subscriber read nothing", in)
	}
	// The subscriber reads: everything arrives.
	got := 0
	for got < n {
		p := sub.must()
		if pub, ok := p.(*packet.Publish); ok && len(pub.Payload) == size {
			got++
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if p := peak(); p > budget+size+1024 {
		t.Errorf("outgoing bytes peaked at %d, budget %d", p, budget)
	}
	if d := e.b.Stats().Dropped; d != 0 {
		t.Errorf("%d messages dropped; back-pressure should have paused the publisher instead", d)
	}
}

// TestBufferedBytesBudget drives three subscribers that never read into the
// broker-wide budget: the bytes waiting for writers stay under it, the
// publisher is paused at most BackpressureWait per stalled subscriber and then
// gets through (the messages are dropped for the stalled subscribers).
func TestBufferedBytesBudget(t *testing.T) {
	const budget, size, n = 512 << 10, 32 << 10, 400
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{
		MaxBufferedBytes: budget, BackpressureWait: 100 * time.Millisecond,
	}})
	for i := range 3 {
		nonReader(t, e.addr, fmt.Sprintf("stuck%d", i), "all/#")
	}
	peak := watchBuffered(e.b)
	errc := publishAll(t, e.addr, "all/x", n, size)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("publisher: %v", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("the publisher is still blocked")
	}
	eventually(t, "every message read", func() bool { return e.b.Stats().MessagesIn == n })
	if p := peak(); p > budget+size+1024 {
		t.Errorf("outgoing bytes peaked at %d, budget %d", p, budget)
	}
	if d := e.b.Stats().Dropped; d == 0 {
		t.Error("nothing dropped for subscribers that never read")
	}
}

// TestMaxConnections: a client beyond the limit is closed at once and counted;
// a slot freed is usable again.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{MaxConnections: 3}})
	var held []*rawClient
	for i := range 3 {
		r := dialRaw(t, e.addr, packet.Version5)
		r.connect(&packet.Connect{ClientID: fmt.Sprintf("c%d", i), CleanStart: true})
		held = append(held, r)
	}
	extra := dialRaw(t, e.addr, packet.Version5)
	if p, err := extra.read(); err == nil {
		t.Fatalf("fourth connection got %T", p)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("fourth connection was not closed")
	}
	if r := e.b.Stats().Refused; r != 1 {
		t.Errorf("Stats.Refused = %d, want 1", r)
	}
	held[0].nc.Close()
	eventually(t, "the slot to be freed", func() bool {
		r := dialRaw(t, e.addr, packet.Version5)
		defer r.nc.Close()
		r.send(&packet.Connect{ProtocolVersion: packet.Version5, ClientID: "again", CleanStart: true})
		_, err := r.read()
		return err == nil
	})
}

// TestMaxConnectionRate: connections opened faster than the rate are paced
// beyond the burst, and refused when their turn is more than two seconds away.
func TestMaxConnectionRate(t *testing.T) {
	const rate, n = 5, 40
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{MaxConnectionRate: rate}})
	began := time.Now()
	var conns []*rawClient
	for range n {
		r := dialRaw(t, e.addr, packet.Version5)
		r.send(&packet.Connect{ProtocolVersion: packet.Version5, CleanStart: true})
		conns = append(conns, r)
	}
	accepted := 0
	for _, r := range conns {
		if p, err := r.read(); err == nil {
			if _, ok := p.(*packet.Connack); ok {
				accepted++
			}
		}
	}
	elapsed := time.Since(began)
	// The burst, what the rate gives while connecting and reading, and the
	// turns of at most two seconds handed out ahead.
	limit := rate + int(elapsed.Seconds()*rate) + 2*rate + 1
	if accepted < n && e.b.Stats().Refused == 0 {
		t.Error("connections missing but none refused")
	}
	if elapsed < 4*time.Second && accepted == n {
		t.Errorf("all %d connections served in %v at %d/s", n, elapsed, rate)
	}
	if accepted > limit {
		t.Errorf("%d of %d connections accepted in %v at %d/s", accepted, n, elapsed, rate)
	}
	if accepted == 0 {
		t.Error("no connection accepted")
	}
	t.Logf("%d of %d connections served in %v at %d/s, %d refused", accepted, n, elapsed.Round(time.Millisecond), rate, e.b.Stats().Refused)
	if got := e.b.Stats().Refused; got != int64(n-accepted) {
		t.Errorf("Stats.Refused = %d, want %d", got, n-accepted)
	}
}

// TestIdleTimeoutKeepAliveZero: a client without keep-alive that trickles one
// byte at a time, never finishing a packet, is closed after IdleTimeout
// (DISCONNECT 0x8D); one that sends whole packets stays.
func TestIdleTimeoutKeepAliveZero(t *testing.T) {
	const idle = 400 * time.Millisecond
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{IdleTimeout: idle}})
	trickler := dialRaw(t, e.addr, packet.Version5)
	trickler.connect(&packet.Connect{ClientID: "trickle", CleanStart: true, KeepAlive: 0})
	pinger := dialRaw(t, e.addr, packet.Version5)
	pinger.connect(&packet.Connect{ClientID: "ping", CleanStart: true, KeepAlive: 0})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Add(2)
	go func() { // a PUBLISH announcing 1000 bytes, then one byte every 50 ms
		defer wg.Done()
		trickler.nc.Write([]byte{0x30, 0xE8, 0x07})
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for range 200 {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := trickler.nc.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	go func() { // a whole PINGREQ every idle/4
		defer wg.Done()
		tk := time.NewTicker(idle / 4)
		defer tk.Stop()
		for range 200 {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := pinger.nc.Write([]byte{0xC0, 0}); err != nil {
					return
				}
			}
		}
	}()
	began := time.Now()
	if rc := trickler.closed(); rc != packet.KeepAliveTimeout {
		t.Errorf("trickling client closed with %#x, want 0x8D", rc)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("closed after %v, idle timeout %v", d, idle)
	}
	// The pinger, three idle timeouts in, is still served.
	for range 3 * 4 {
		if _, ok := pinger.must().(*packet.Pingresp); !ok {
			t.Fatal("pinging client: not a PINGRESP")
		}
	}
}

// TestMemQueueInBufferedBytes drives a clean-session subscriber that never
// acknowledges into the broker-wide budget: the QoS 1 messages queued in its
// memory queue count in MaxBufferedBytes, so the queue stops at the budget
// (the rest is dropped for it) although its own queue limit is far higher;
// acknowledging drains it, and a session that ends gives its bytes back.
func TestMemQueueInBufferedBytes(t *testing.T) {
	const budget, size, n = 256 << 10, 32 << 10, 40 // 1.25 MiB published
	e := newEnv(t, storeKinds()[0], broker.Options{Limits: broker.Limits{
		MaxBufferedBytes: budget, MaxQueuedBytes: 64 << 20, MaxQueuedMessages: 10000,
	}})
	one := uint16(1)
	sub := dialRaw(t, e.addr, packet.Version5)
	if ack := sub.connect(&packet.Connect{ClientID: "noack", CleanStart: true,
		Properties: packet.Properties{ReceiveMaximum: &one}}); ack.ReasonCode != 0 {
		t.Fatalf("subscriber CONNACK %#x", ack.ReasonCode)
	}
	sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "mq/#", QoS: 1}}})
	if _, ok := sub.must().(*packet.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	pub := dialRaw(t, e.addr, packet.Version5)
	if ack := pub.connect(&packet.Connect{ClientID: "pub-mq", CleanStart: true}); ack.ReasonCode != 0 {
		t.Fatalf("publisher CONNACK %#x", ack.ReasonCode)
	}
	payload := bytes.Repeat([]byte{'q'}, size)
	publish := func() {
		t.Helper()
		for i := range n {
			pub.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "mq/x", Payload: payload})
			if _, ok := pub.must().(*packet.Puback); !ok {
				t.Fatal("publisher: not a PUBACK")
			}
		}
	}

	peak := watchBuffered(e.b)
	publish()
	q := e.b.QueueStats()
	if p := peak(); p > budget+size+1024 {
		t.Errorf("buffered bytes peaked at %d, budget %d", p, budget)
	}
	if q.QueuedBytes > budget {
		t.Errorf("memory queue holds %d bytes, budget %d", q.QueuedBytes, budget)
	}
	if q.Queued < budget/size/2 {
		t.Errorf("only %d messages queued under a budget of %d messages", q.Queued, budget/size)
	}
	if d := e.b.Stats().Dropped; d == 0 || d+q.Queued+q.Inflight != n {
		t.Errorf("dropped %d, queued %d, in flight %d: want %d in all, some dropped", d, q.Queued, q.Inflight, n)
	}

	// Acknowledging drains the queue, and its bytes come back.
	want := int(q.Queued + q.Inflight)
	for got := 0; got < want; {
		if p, ok := sub.must().(*packet.Publish); ok {
			got++
			sub.send(&packet.Puback{PacketID: p.PacketID})
		}
	}
	eventually(t, "the drained queue's bytes to come back", func() bool {
		return e.b.Stats().BufferedBytes == 0 && e.b.QueueStats().Queued == 0
	})

	// A session that ends with a full memory queue gives its bytes back.
	publish()
	if e.b.Stats().BufferedBytes == 0 {
		t.Fatal("nothing queued the second time")
	}
	sub.nc.Close()
	eventually(t, "the ended session's bytes to come back", func() bool { return e.b.Stats().BufferedBytes == 0 })
}
