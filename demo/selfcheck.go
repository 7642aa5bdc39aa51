package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
)

// selfCheckTimeout bounds the whole self-check, so a broker that never delivers
// fails the check instead of hanging it.
const selfCheckTimeout = 2 * time.Minute

// instance is one broker generation of the self-check.
type instance struct {
	b      *broker.Broker
	served chan error
	addr   string
}

func serveOn(ctx context.Context, cfg config, store *persistence.Store, addr string) (*instance, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b, err := startBroker(ctx, cfg, store, broker.Options{})
	if err != nil {
		l.Close()
		return nil, err
	}
	in := &instance{b: b, served: make(chan error, 1), addr: l.Addr().String()}
	go func() { in.served <- b.Serve(l) }()
	return in, nil
}

func (in *instance) stop(ctx context.Context) error {
	if err := in.b.Shutdown(ctx); err != nil {
		return err
	}
	return <-in.served
}

// selfCheck runs the restart story against cfg.Store with real MQTT clients, printing
// each step to out. It returns an error when any step fails or a message is missing.
func selfCheck(ctx context.Context, cfg config, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, selfCheckTimeout)
	defer cancel()
	n := cfg.SelfCheckMessages
	if n <= 0 {
		n = 100
	}
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(out, "%2d. %s\n", step, fmt.Sprintf(format, args...))
	}
	durable := !isMem(cfg.Store)
	tag := strconv.FormatUint(rand.Uint64(), 36)
	subID, pubID := "selfcheck-sub-"+tag, "selfcheck-pub-"+tag
	topic := "selfcheck/" + tag

	store, err := openStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	closeStore := func() error {
		if store == nil {
			return nil
		}
		s := store
		store = nil
		return s.Close()
	}
	defer func() {
		if cerr := closeStore(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	info, err := store.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading store info: %w", err)
	}
	say("opened store %s (driver %s, created %s)", persistence.Redact(cfg.Store), info.Driver, info.CreatedAt.Format(time.RFC3339))

	in, err := serveOn(ctx, cfg, store, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() {
		if in != nil {
			in.b.Close()
		}
	}()
	say("broker started on %s, restored %s", in.addr, restoredString(in.b.Restored()))

	// The subscriber's handler lives as long as the check: messages that arrive on
	// any connection are counted against the same ledger.
	var mu sync.Mutex
	got := make(map[int]int)
	arrived := make(chan struct{}, 1)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		i, perr := strconv.Atoi(string(m.Payload()))
		mu.Lock()
		if perr == nil {
			got[i]++
		}
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
	sub, present, err := dial(ctx, in.addr, subID, false, handler)
	if err != nil {
		return fmt.Errorf("subscriber connect: %w", err)
	}
	if err := tokenErr(ctx, sub.Subscribe(topic, 1, nil)); err != nil {
		sub.Disconnect(0)
		return fmt.Errorf("subscribe: %w", err)
	}
	sub.Disconnect(250)
	say("persistent subscriber %s (clean session false, session present %v) subscribed to %s at QoS 1 and disconnected", subID, present, topic)

	pub, _, err := dial(ctx, in.addr, pubID, true, nil)
	if err != nil {
		return fmt.Errorf("publisher connect: %w", err)
	}
	for i := 0; i < n; i++ {
		if err := tokenErr(ctx, pub.Publish(topic, 1, false, strconv.Itoa(i))); err != nil {
			pub.Disconnect(0)
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	pub.Disconnect(250)
	say("published %d messages at QoS 1, every one acknowledged (PUBACK)", n)

	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	err = in.stop(sctx)
	scancel()
	in = nil
	if err != nil {
		return fmt.Errorf("broker shutdown: %w", err)
	}
	if durable {
		if err := closeStore(); err != nil {
			return fmt.Errorf("closing the store: %w", err)
		}
		say("broker shut down and store closed")
		store, err = openStore(ctx, cfg, nil)
		if err != nil {
			return fmt.Errorf("reopening: %w", err)
		}
		again, err := store.Info(ctx)
		if err != nil {
			return fmt.Errorf("reading store info after reopening: %w", err)
		}
		if !again.CreatedAt.Equal(info.CreatedAt) {
			return fmt.Errorf("the reopened store was created at %s, not %s: it did not keep its data", again.CreatedAt, info.CreatedAt)
		}
		say("store reopened (same store: created %s)", again.CreatedAt.Format(time.RFC3339))
	} else {
		say("broker shut down; mem:// is not durable (closing it loses everything), so the store stays open and only the broker restarts: this shows the broker restores from the store, not that the store survives a process restart")
	}

	in, err = serveOn(ctx, cfg, store, "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	say("broker restarted on %s, restored %s", in.addr, restoredString(in.b.Restored()))

	sub, present, err = dial(ctx, in.addr, subID, false, handler)
	if err != nil {
		return fmt.Errorf("subscriber reconnect: %w", err)
	}
	defer sub.Disconnect(250)
	say("subscriber reconnected without subscribing again (session present %v)", present)
	if !present {
		return errors.New("the broker did not resume the subscriber's session")
	}

	missing := func() (miss []int, dups int) {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n; i++ {
			switch c := got[i]; {
			case c == 0:
				miss = append(miss, i)
			case c > 1:
				dups += c - 1
			}
		}
		return miss, dups
	}
	wait := time.NewTimer(15 * time.Second)
	defer wait.Stop()
	for {
		miss, dups := missing()
		if len(miss) == 0 {
			say("received all %d messages (%d redelivered duplicates, allowed at QoS 1)", n, dups)
			return nil
		}
		select {
		case <-arrived:
			continue
		case <-wait.C:
		case <-ctx.Done():
		}
		return fmt.Errorf("%d of %d messages missing after the restart (first: %v)", len(miss), n, miss[:min(len(miss), 10)])
	}
}

func restoredString(r broker.RestoreStats) string {
	return fmt.Sprintf("%d sessions, %d subscriptions, %d queued, %d in flight, %d retained", r.Sessions, r.Subscriptions, r.QueuedMessages, r.InflightMessages, r.Retained)
}

func isMem(dsn string) bool {
	u, err := url.Parse(dsn)
	return err == nil && u.Scheme == "mem"
}

// dial connects one MQTT 3.1.1 client and reports whether the broker had a session.
func dial(ctx context.Context, addr, id string, clean bool, handler mqtt.MessageHandler) (mqtt.Client, bool, error) {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
		SetOrderMatters(true)
	if handler != nil {
		o.SetDefaultPublishHandler(handler)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if err := tokenErr(ctx, tok); err != nil {
		return nil, false, err
	}
	present := false
	if ct, ok := tok.(*mqtt.ConnectToken); ok {
		present = ct.SessionPresent()
	}
	return c, present, nil
}

func tokenErr(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
