package broker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/mem"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

// wait bounds every receive in these tests.
const wait = 10 * time.Second

// storeKind names a driver and makes the URL of a fresh store for it.
type storeKind struct {
	name string
	url  func(t testing.TB) string
	// durable stores are closed and reopened by URL on restart; mem keeps its
	// provider open (it has nothing to reopen).
	durable bool
}

func storeKinds() []storeKind {
	return []storeKind{
		{"mem", func(testing.TB) string { return "mem://" }, false},
		{"bolt", func(t testing.TB) string { return "bolt://" + t.TempDir() + "/s.db?sync=always" }, true},
		{"badger", func(t testing.TB) string { return "badger://" + t.TempDir() + "?sync=always" }, true},
		{"postgres", func(t testing.TB) string { return pgtest.DSN(t) }, true},
	}
}

// eachStore runs f once per driver.
func eachStore(t *testing.T, f func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

// fakeClock is an injectable clock tests move forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a store and the broker currently running on it, which can be restarted.
type env struct {
	t     testing.TB
	kind  storeKind
	url   string
	store *persistence.Store
	b     *broker.Broker
	addr  string
	opts  broker.Options
	done  chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newEnv opens a fresh store of kind k and starts a broker on it.
func newEnv(t testing.TB, k storeKind, opts broker.Options) *env {
	t.Helper()
	if opts.Node == "" {
		opts.Node = "node-1" // a stable name, as a restarted cluster node keeps (postgres runs in cluster mode)
	}
	e := &env{t: t, kind: k, url: k.url(t), opts: opts}
	e.open()
	t.Cleanup(func() {
		e.stop()
		if e.store != nil {
			e.store.Close()
		}
	})
	e.start()
	return e
}

func (e *env) open() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := persistence.Open(ctx, e.url)
	if err != nil {
		e.t.Fatalf("open %s: %v", e.kind.name, err)
	}
	e.store = st
}

func (e *env) start() {
	e.t.Helper()
	o := e.opts
	o.Store = e.store
	if o.Logger == nil {
		o.Logger = testLogger(e.t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.New(ctx, o)
	if err != nil {
		e.t.Fatalf("broker.New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.b, e.addr, e.done = b, l.Addr().String(), make(chan error, 1)
	go func() { e.done <- b.Serve(l) }()
}

// stop shuts the broker down gracefully and checks Serve returned nil.
func (e *env) stop() {
	if e.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.b.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-e.done:
		// ErrServerClosed: Shutdown came before the Serve goroutine started.
		if err != nil && !errors.Is(err, broker.ErrServerClosed) {
			e.t.Errorf("Serve: %v", err)
		}
	case <-ctx.Done():
		e.t.Errorf("Serve did not return after Shutdown")
	}
	e.b = nil
}

// restart stops the broker, reopens a durable store by URL and starts a new broker.
func (e *env) restart() {
	e.t.Helper()
	e.stop()
	if e.kind.durable {
		if err := e.store.Close(); err != nil {
			e.t.Fatalf("close store: %v", err)
		}
		e.open()
	}
	e.start()
}

// ---- MQTT 3.1.1 client: github.com/eclipse/paho.mqtt.golang ----

type v3client struct {
	c    mqtt.Client
	msgs chan mqtt.Message
}

func dialV3(t *testing.T, addr, id string, clean bool, opt ...func(*mqtt.ClientOptions)) *v3client {
	t.Helper()
	v := &v3client{msgs: make(chan mqtt.Message, 1000)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(wait).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { v.msgs <- m })
	for _, f := range opt {
		f(o)
	}
	v.c = mqtt.NewClient(o)
	tok := v.c.Connect()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("v3 connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { v.c.Disconnect(0) })
	return v
}

func (v *v3client) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := v.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("v3 subscribe %s: %v", filter, tok.Error())
	}
}

func (v *v3client) pub(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := v.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("v3 publish %s: %v", topic, tok.Error())
	}
}

func (v *v3client) recv(t *testing.T) mqtt.Message {
	t.Helper()
	select {
	case m := <-v.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("v3: no message")
	}
	return nil
}

func (v *v3client) close() { v.c.Disconnect(100) }

// ---- MQTT 5.0 client: github.com/eclipse/paho.golang ----

type v5client struct {
	c    *paho.Client
	msgs chan *paho.Publish
	ack  *paho.Connack
}

func dialV5(t *testing.T, addr string, cp *paho.Connect) *v5client {
	t.Helper()
	v, err := tryV5(addr, cp)
	if err != nil {
		t.Fatalf("v5 connect %s: %v", cp.ClientID, err)
	}
	t.Cleanup(func() { v.c.Disconnect(&paho.Disconnect{}) })
	return v
}

func tryV5(addr string, cp *paho.Connect) (*v5client, error) {
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, err
	}
	v := &v5client{msgs: make(chan *paho.Publish, 1000)}
	v.c = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			v.msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	ack, err := v.c.Connect(ctx, cp)
	v.ack = ack
	if err != nil {
		nc.Close()
		return v, err
	}
	return v, nil
}

func u32(v uint32) *uint32 { return &v }

func (v *v5client) sub(t *testing.T, opts ...paho.SubscribeOptions) *paho.Suback {
	t.Helper()
	return v.subProps(t, nil, opts...)
}

func (v *v5client) subProps(t *testing.T, props *paho.SubscribeProperties, opts ...paho.SubscribeOptions) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sa, err := v.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts, Properties: props})
	if err != nil && sa == nil {
		t.Fatalf("v5 subscribe: %v", err)
	}
	return sa
}

func (v *v5client) pub(t *testing.T, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := v.c.Publish(ctx, p)
	if err != nil && r == nil {
		t.Fatalf("v5 publish %s: %v", p.Topic, err)
	}
	return r
}

func (v *v5client) recv(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-v.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("v5: no message")
	}
	return nil
}

// ---- raw client on broker/packet, for what client libraries hide (DUP, packet
// ids, unacknowledged messages, malformed bytes) ----

type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	v  byte
}

func dialRaw(t testing.TB, addr string, v byte) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), v: v}
}

func (r *rawClient) send(p packet.Packet) {
	r.t.Helper()
	b, err := packet.Encode(nil, p, r.v)
	if err != nil {
		r.t.Fatalf("encode %T: %v", p, err)
	}
	r.write(b)
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, or nil and the error (io.EOF when the broker
// closed the connection).
func (r *rawClient) read() (packet.Packet, error) {
	r.nc.SetReadDeadline(time.Now().Add(wait))
	return packet.ReadPacket(r.br, r.v, 0)
}

func (r *rawClient) must() packet.Packet {
	r.t.Helper()
	p, err := r.read()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// connect sends CONNECT and returns the CONNACK.
func (r *rawClient) connect(cp *packet.Connect) *packet.Connack {
	r.t.Helper()
	cp.ProtocolVersion = r.v
	r.send(cp)
	p := r.must()
	ack, ok := p.(*packet.Connack)
	if !ok {
		r.t.Fatalf("got %T, want CONNACK", p)
	}
	return ack
}

// closed asserts that the broker closes the connection, after an optional
// DISCONNECT whose reason code is returned (0 when none came).
func (r *rawClient) closed() packet.ReasonCode {
	r.t.Helper()
	var rc packet.ReasonCode
	for {
		p, err := r.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatal("broker did not close the connection")
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
				r.t.Logf("read after close: %v", err)
			}
			return rc
		}
		if d, ok := p.(*packet.Disconnect); ok {
			rc = d.ReasonCode
		}
	}
}

// eventually waits, bounded, for cond; it polls because the condition is internal
// state no event reports.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connected waits until exactly n clients are connected: disconnects are handled
// by the broker after the client has gone, and tests must not race them.
func (e *env) connected(n int64) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("%d connected clients", n), func() bool { return e.b.Stats().Connected == n })
}
