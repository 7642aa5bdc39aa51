package broker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
	"github.com/mqttstore/mqttstore/persistence/driver"
)

// gatedConnector opens a mem store whose Apply holds the first batch that
// deletes session id until release is closed, closing entered when it does.
type gatedConnector struct {
	inner   driver.Connector
	id      string
	entered chan struct{}
	release chan struct{}
}

func (g gatedConnector) Connect(ctx context.Context, env driver.Env) (driver.Conn, error) {
	c, err := g.inner.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	return gatedConn{c, g}, nil
}

type gatedConn struct {
	driver.Conn
	g gatedConnector
}

func (c gatedConn) Apply(ctx context.Context, ops []driver.Op) ([]uint64, error) {
	for _, op := range ops {
		if op.Kind != driver.OpDelete || op.ID != c.g.id {
			continue
		}
		select {
		case <-c.g.entered:
		default:
			close(c.g.entered)
			select {
			case <-c.g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		break
	}
	return c.Conn.Apply(ctx, ops)
}

// TestReconnectWhileSessionEnds: a client that ends its stored session
// (DISCONNECT with Session Expiry 0) and connects again while the broker is
// still deleting the session's records gets a new session once the deletion is
// done: not the old one back, and not one whose records that deletion removes.
func TestReconnectWhileSessionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner, err := persistence.NewConnector("mem://")
	if err != nil {
		t.Fatal(err)
	}
	g := gatedConnector{inner: inner, id: "ending", entered: make(chan struct{}),
		release: make(chan struct{})}
	st, err := persistence.OpenConnector(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	// The second CONNECT of the client reports when it is past
	// authentication, on its way to the session.
	var connects atomic.Int32
	second := make(chan struct{})
	e := &env{t: t, kind: storeKinds()[0], store: st, opts: broker.Options{Node: "node-1", Hooks: broker.Hooks{
		Authenticate: func(context.Context, broker.ClientInfo, string, []byte) error {
			if connects.Add(1) == 2 {
				close(second)
			}
			return nil
		},
	}}}
	t.Cleanup(func() {
		e.stop()
		_ = st.Close()
	})
	released := false
	t.Cleanup(func() { // before the broker stops: it waits for the held deletion
		if !released {
			close(g.release)
		}
	})
	e.start()

	old := dialRaw(t, e.addr, packet.Version5)
	old.connect(&packet.Connect{ClientID: "ending", CleanStart: true, Properties: packet.Properties{SessionExpiry: u32(60)}})
	old.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "end/#", QoS: 1}}})
	if _, ok := old.must().(*packet.Suback); !ok {
		t.Fatal("no SUBACK")
	}
	old.send(&packet.Disconnect{Properties: packet.Properties{SessionExpiry: u32(0)}})
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("the session's deletion never reached the store")
	}

	// The new CONNECT arrives while the deletion is held.
	nw := dialRaw(t, e.addr, packet.Version5)
	nw.send(&packet.Connect{ProtocolVersion: packet.Version5, ClientID: "ending", Properties: packet.Properties{SessionExpiry: u32(60)}})
	acked := make(chan *packet.Connack, 1)
	go func() {
		nw.nc.SetReadDeadline(time.Now().Add(wait))
		p, _ := packet.ReadPacket(nw.br, packet.Version5, 0)
		ack, _ := p.(*packet.Connack)
		acked <- ack
	}()
	select {
	case <-second:
	case <-ctx.Done():
		t.Fatal("the second CONNECT was not handled")
	}
	// No CONNACK may come before the deletion is done: look for one for a
	// moment, then let the deletion go.
	select {
	case ack := <-acked:
		t.Fatalf("CONNACK %+v while the previous session was still being deleted", ack)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	released = true
	ack := <-acked
	if ack == nil || ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %+v, want success", ack)
	}
	if ack.SessionPresent {
		t.Fatal("the ended session was resumed")
	}
	// The new session's records are in the store, and the old subscription
	// is not.
	if ok, err := st.Sessions().Exists(ctx, "ending"); !ok || err != nil {
		t.Fatalf("new session stored: %v, %v", ok, err)
	}
	if subs, err := st.Sessions().SubscriptionsLoad(ctx, "ending"); len(subs) != 0 || err != nil {
		t.Fatalf("new session's subscriptions: %v, %v; want none", subs, err)
	}
}
