package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func (r *runner) subID(j int) string { return r.cfg.Prefix + "-sub-" + strconv.Itoa(j) }
func (r *runner) pubID(i int) string { return r.cfg.Prefix + "-pub-" + strconv.Itoa(i) }
func (r *runner) topic(j int) string { return r.cfg.Prefix + "/" + strconv.Itoa(j) }
func (r *runner) filter(j int) string {
	if r.cfg.Fanout {
		return r.cfg.Prefix + "/+"
	}
	return r.topic(j)
}

// options are paho's options for a client of id connecting over rt: its own node
// first, the others in route order (paho tries them in turn).
func (r *runner) options(rt *route, id string, clean bool) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.Servers = tcpURLs(rt.first())
	o.SetClientID(id).
		SetCleanSession(clean).
		SetProtocolVersion(4).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(r.cfg.ConnectTimeout).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true). // the handler runs before the PUBACK goes out: arrival is counted before the broker forgets the message
		SetAutoReconnect(r.cfg.Reconnect).
		SetMaxReconnectInterval(500 * time.Millisecond).
		SetConnectRetry(false)
	o.SetConnectionLostHandler(func(mqtt.Client, error) { r.reconnects.Add(1) })
	o.SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		d := net.Dialer{Timeout: o.ConnectTimeout}
		nc, err := d.Dial("tcp", u.Host)
		if err != nil {
			return nil, err
		}
		return &bufferedConn{Conn: nc, r: bufio.NewReaderSize(nc, 32<<10)}, nil
	})
	return o
}

// bufferedConn reads through a buffer: paho reads each packet's fixed header a
// byte at a time, a read(2) each, which made the load tool, not the broker under
// test, use most of the CPU of a run (the same for every broker measured).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// tcpURLs turns host:port addresses into the URLs paho connects to.
func tcpURLs(addrs []string) []*url.URL {
	us := make([]*url.URL, len(addrs))
	for i, a := range addrs {
		us[i] = &url.URL{Scheme: "tcp", Host: a}
	}
	return us
}

// subRoute and pubRoute are the addresses subscriber j and publisher i use.
func (r *runner) subRoute(j int) *route { return newRoute(r.subAddrs, j, &r.failovers) }
func (r *runner) pubRoute(i int) *route { return newRoute(r.pubAddrs, i, &r.failovers) }

// token is a publish in flight: paho's tokens and client311's messages both are.
type token interface {
	Done() <-chan struct{}
	Error() error
}

// client is what the phases need of an MQTT client: paho.mqtt.golang at QoS 0 and
// 1 without -reconnect, client311 otherwise (see there and newClient why).
type client interface {
	Connect(ctx context.Context) (sessionPresent bool, err error)
	Subscribe(ctx context.Context, filter string, qos byte) error
	Publish(topic string, qos byte, payload []byte) token
	Disconnect()
}

// newClient returns a client with id and clean session flag that connects over rt.
// onMessage, when not nil, gets every payload before it is acknowledged; onReconnect,
// when not nil, runs after every reconnection.
//
// client311 also serves every run with -reconnect: paho's reconnection races with
// its own writer (it marks a stored PUBLISH DUP while the writer encodes it,
// eclipse-paho/paho.mqtt.golang#703, seen by the race detector here).
func (r *runner) newClient(rt *route, id string, clean bool, onMessage func([]byte), onReconnect func(client)) client {
	if (r.cfg.QoS == 2 || r.cfg.Reconnect) && !r.cfg.pahoQoS2 {
		c := newClient311(rt, id, clean, 30*time.Second, r.cfg.ConnectTimeout, r.cfg.Reconnect)
		c.onLost = func() { r.reconnects.Add(1) }
		if onMessage != nil {
			c.onMessage = func(_ string, payload []byte) { onMessage(payload) }
		}
		if onReconnect != nil {
			c.onConnect = func() { onReconnect(c) }
		}
		return c
	}
	o := r.options(rt, id, clean)
	if onMessage != nil {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { onMessage(m.Payload()) })
	}
	p := &pahoClient{}
	// paho tries o.Servers in order and calls the attempt handler before each try,
	// so the last address attempted is the one connected to until the connection
	// is lost; the reconnecting handler, called before every round of attempts,
	// puts the next address first (failover).
	var attempted atomic.Value // string
	attempted.Store("")
	o.SetConnectionAttemptHandler(func(b *url.URL, tc *tls.Config) *tls.Config {
		attempted.Store(b.Host)
		return tc
	})
	o.SetReconnectingHandler(func(_ mqtt.Client, o *mqtt.ClientOptions) {
		o.Servers = tcpURLs(rt.after(attempted.Load().(string)))
	})
	var connected atomic.Bool
	o.SetOnConnectHandler(func(mqtt.Client) {
		rt.connected(attempted.Load().(string))
		if connected.Swap(true) && onReconnect != nil {
			onReconnect(p)
		}
	})
	p.c = mqtt.NewClient(o)
	return p
}

// pahoClient adapts paho.mqtt.golang to client.
type pahoClient struct{ c mqtt.Client }

func (p *pahoClient) Connect(ctx context.Context) (bool, error) {
	tok := p.c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, err
	}
	if ct, ok := tok.(*mqtt.ConnectToken); ok {
		return ct.SessionPresent(), nil
	}
	return false, nil
}

func (p *pahoClient) Subscribe(ctx context.Context, filter string, qos byte) error {
	return waitToken(ctx, p.c.Subscribe(filter, qos, nil))
}

func (p *pahoClient) Publish(topic string, qos byte, payload []byte) token {
	return p.c.Publish(topic, qos, false, payload)
}

func (p *pahoClient) Disconnect() { p.c.Disconnect(100) }

// connect connects c, bounded by ctx; it reports whether the broker had a session.
func (r *runner) connect(ctx context.Context, c client) (sessionPresent bool, err error) {
	present, err := c.Connect(ctx)
	if err != nil {
		r.connErrors.Add(1)
		return false, err
	}
	return present, nil
}

func waitToken(ctx context.Context, tok token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onMessage is every subscriber's publish handler.
func (r *runner) onMessage(j int, payload []byte) {
	now := time.Now()
	run, pub, seq, sent, ok := decodePayload(payload)
	if !ok || run != r.runID {
		r.tr.Stale()
		return
	}
	r.tr.Received(j, pub, seq, sent, now)
}

// subscriber connects subscriber j and, unless resume is set, subscribes it.
func (r *runner) subscriber(ctx context.Context, j int, clean, resume bool) (client, bool, error) {
	var onReconnect func(client)
	if r.cfg.Reconnect && clean {
		// A clean session forgets its subscriptions on every reconnect. The
		// subscription is sent from the client's own goroutine: it is not waited for.
		onReconnect = func(c client) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ConnectTimeout)
				defer cancel()
				_ = c.Subscribe(ctx, r.filter(j), r.cfg.QoS)
			}()
		}
	}
	c := r.newClient(r.subRoute(j), r.subID(j), clean, func(p []byte) { r.onMessage(j, p) }, onReconnect)
	present, err := r.connect(ctx, c)
	if err != nil {
		return nil, false, fmt.Errorf("subscriber %s: connect: %w", r.subID(j), err)
	}
	if !resume {
		if err := c.Subscribe(ctx, r.filter(j), r.cfg.QoS); err != nil {
			c.Disconnect()
			return nil, false, fmt.Errorf("subscriber %s: subscribe: %w", r.subID(j), err)
		}
	}
	return c, present, nil
}

// forEach runs f(j) for j in [0, n) with at most parallel calls at once and returns
// the first error; the others still finish.
func forEach(ctx context.Context, n, parallel int, f func(ctx context.Context, j int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for w := 0; w < min(parallel, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, j); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// publish runs publisher i until its share of -count is sent or -duration is over,
// keeping at most -inflight publishes unacknowledged.
func (r *runner) publish(ctx context.Context, i int, c client, start time.Time) {
	cfg := r.cfg
	type pending struct {
		seq uint64
		tok token
	}
	window := make([]pending, 0, cfg.Inflight)
	settle := func(p pending) {
		if err := waitToken(ctx, p.tok); err != nil {
			if ctx.Err() == nil {
				r.pubErrors.Add(1)
			}
			return
		}
		if cfg.QoS > 0 {
			r.tr.Acked(i, p.seq)
		}
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Pubs) / cfg.Rate)
	}
	end := start.Add(cfg.Duration)
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		g := seq*uint64(cfg.Pubs) + uint64(i)
		if cfg.Count > 0 && g >= uint64(cfg.Count) {
			break
		}
		if cfg.Duration > 0 && !time.Now().Before(end) {
			break
		}
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
		if len(window) == cfg.Inflight {
			settle(window[0])
			window = window[1:]
		}
		payload := make([]byte, cfg.Size) // paho keeps it until acknowledged: one buffer per message
		encodePayload(payload, r.runID, i, seq, time.Now())
		j := target(cfg.Pubs, max(cfg.Subs, 1), i, seq)
		tok := c.Publish(r.topic(j), cfg.QoS, payload)
		r.published.Add(1)
		window = append(window, pending{seq, tok})
	}
	for _, p := range window {
		settle(p)
	}
}

// publishers connects the publishers and runs them to the end; it returns the time
// publishing started and ended.
func (r *runner) publishers(ctx context.Context) (start, end time.Time, err error) {
	clients := make([]client, r.cfg.Pubs)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Disconnect()
			}
		}
	}()
	err = forEach(ctx, r.cfg.Pubs, r.cfg.Parallel, func(ctx context.Context, i int) error {
		c := r.newClient(r.pubRoute(i), r.pubID(i), r.cfg.Clean, nil, nil)
		if _, err := r.connect(ctx, c); err != nil {
			return fmt.Errorf("publisher %s: connect: %w", r.pubID(i), err)
		}
		clients[i] = c
		return nil
	})
	if err != nil {
		return start, end, err
	}
	start = time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.publish(ctx, i, c, start)
		}()
	}
	wg.Wait()
	return start, time.Now(), ctx.Err()
}
