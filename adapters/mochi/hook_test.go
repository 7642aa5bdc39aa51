package mochi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	mochistore "github.com/mqttstore/mqttstore/adapters/mochi"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
	_ "github.com/mqttstore/mqttstore/providers/badger"
	_ "github.com/mqttstore/mqttstore/providers/bolt"
	_ "github.com/mqttstore/mqttstore/providers/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const wait = 10 * time.Second

// startMochi runs Mochi's own server with the hook on url, on a loopback port. It
// returns the server, its address and a function that closes it (once).
func startMochi(t *testing.T, url string, journal bool, extra ...mqtt.Hook) (*mqtt.Server, string, func() error) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	o := &mochistore.Options{URL: url}
	if journal {
		o.Server = srv
	}
	if err := srv.AddHook(new(mochistore.Hook), o); err != nil {
		t.Fatal(err)
	}
	for _, h := range extra {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { err = srv.Close() })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return srv, "tcp://" + tcp.Address(), stop
}

// probe is a Mochi hook registered after ours: it reports each completed
// in-flight packet, by then handled by our hook.
type probe struct {
	mqtt.HookBase
	done chan string
}

func (p *probe) ID() string                                      { return "probe" }
func (p *probe) Provides(b byte) bool                            { return b == mqtt.OnQosComplete }
func (p *probe) OnQosComplete(cl *mqtt.Client, _ packets.Packet) { p.done <- cl.ID }

// client connects an independent MQTT 3.1.1 client (Eclipse Paho).
func client(t *testing.T, addr, id string, clean, autoAck bool, onMsg paho.MessageHandler) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetAutoAckDisabled(!autoAck).
		SetOrderMatters(false).SetConnectTimeout(wait).SetWriteTimeout(wait)
	if onMsg != nil {
		o.SetDefaultPublishHandler(onMsg)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func ok(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// collect returns a handler that sends each message's payload to a channel.
func collect() (chan string, paho.MessageHandler) {
	ch := make(chan string, 100)
	return ch, func(_ paho.Client, m paho.Message) { ch <- string(m.Payload()) }
}

func receive(t *testing.T, ch chan string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(wait)
	for len(got) < n {
		select {
		case s := <-ch:
			got = append(got, s)
		case <-deadline:
			t.Fatalf("received %d of %d messages: %q", len(got), n, got)
		}
	}
	sort.Strings(got)
	return got
}

// TestRestartKeepsState runs Mochi with the hook on each durable driver, leaves a
// persistent session offline with queued messages, another with unacknowledged
// in-flight messages, and a retained message; restarts Mochi on the same store and
// expects Paho clients to get all of it back.
func TestRestartKeepsState(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"bolt":     func(t *testing.T) string { return "bolt://" + t.TempDir() + "/m.db?sync=always" },
		"badger":   func(t *testing.T) string { return "badger://" + t.TempDir() + "?sync=always&memory=low" },
		"postgres": func(t *testing.T) string { return pgtest.DSN(t) },
	} {
		t.Run(name, func(t *testing.T) { testRestart(t, url(t), true) })
		if name == "bolt" {
			// Without the journal every in-flight write is committed in OnQosPublish.
			t.Run(name+"-no-journal", func(t *testing.T) { testRestart(t, url(t), false) })
		}
	}
}

func testRestart(t *testing.T, url string, journal bool) {
	_, addr, stop := startMochi(t, url, journal)

	off := client(t, addr, "offline", false, true, nil)
	ok(t, off.Subscribe("queued/#", 1, nil), "subscribe")
	off.Disconnect(100)

	held, heldH := collect()
	noack := client(t, addr, "noack", false, false, heldH)
	ok(t, noack.Subscribe("held/#", 1, nil), "subscribe")

	pub := client(t, addr, "pub", true, true, nil)
	for i := range 5 {
		ok(t, pub.Publish("queued/a", 1, false, fmt.Sprintf("queued %d", i)), "publish")
	}
	for i := range 3 {
		ok(t, pub.Publish("held/a", 1, false, fmt.Sprintf("held %d", i)), "publish")
	}
	ok(t, pub.Publish("ret/a", 1, true, "retained"), "publish retained")
	receive(t, held, 3) // delivered, never acknowledged

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pub.Disconnect(0)
	noack.Disconnect(0)

	pr := &probe{done: make(chan string, 100)}
	srv2, addr2, stop2 := startMochi(t, url, journal, pr)
	if cl, found := srv2.Clients.Get("offline"); !found || len(cl.State.Subscriptions.GetAll()) != 1 {
		t.Fatalf("session 'offline' not restored with its subscription (found %v)", found)
	}

	q, qh := collect()
	client(t, addr2, "offline", false, true, qh) // no new SUBSCRIBE: the session has it
	if got := receive(t, q, 5); got[0] != "queued 0" || got[4] != "queued 4" {
		t.Fatalf("queued after restart: %q", got)
	}
	h, hh := collect()
	client(t, addr2, "noack", false, true, hh)
	if got := receive(t, h, 3); got[0] != "held 0" || got[2] != "held 2" {
		t.Fatalf("in-flight after restart: %q", got)
	}
	// New messages still reach the restored subscription.
	pub2 := client(t, addr2, "pub2", true, true, nil)
	ok(t, pub2.Publish("queued/b", 1, false, "after restart"), "publish")
	if got := receive(t, q, 1); got[0] != "after restart" {
		t.Fatalf("after restart: %q", got)
	}
	r, rh := collect()
	fresh := client(t, addr2, "fresh", true, true, nil)
	ok(t, fresh.Subscribe("ret/#", 1, rh), "subscribe retained")
	if got := receive(t, r, 1); got[0] != "retained" {
		t.Fatalf("retained after restart: %q", got)
	}

	// Every acknowledgement reached Mochi (and so our hook) …
	acked := map[string]int{}
	for deadline := time.After(wait); acked["offline"] < 6 || acked["noack"] < 3; {
		select {
		case id := <-pr.done:
			acked[id]++
		case <-deadline:
			t.Fatalf("acknowledgements seen by Mochi: %v", acked)
		}
	}
	// … so the acknowledged packets have left the store once Mochi stops.
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := persistence.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"offline", "noack"} {
		n, err := st.Sessions().PacketCount(ctx, id, persistence.ClassUnAck)
		if err != nil || n != 0 {
			t.Errorf("%s: %d in-flight packets left after every one was acknowledged (%v)", id, n, err)
		}
	}
	if n, _ := st.Retained().Count(ctx); n != 1 {
		t.Errorf("%d retained messages stored, want 1", n)
	}
	if ok, _ := st.Sessions().Exists(ctx, "pub"); ok {
		t.Error("a clean session was stored")
	}
	if n, err := st.Sessions().PacketCount(ctx, mochistore.JournalID, persistence.ClassQoS12); journal && (err != nil || n != 0) {
		t.Errorf("%d publish journal entries left after a clean stop (%v)", n, err)
	}
}

// TestJournalReplay leaves in the publish journal what a crash between Mochi's
// PUBACK and its subscribers' OnQosPublish leaves there, and expects the next start
// to deliver it to the persistent subscriber.
func TestJournalReplay(t *testing.T) {
	url := "bolt://" + t.TempDir() + "/m.db?sync=always"
	const journal = true
	_, addr, stop := startMochi(t, url, journal)
	late := client(t, addr, "late", false, true, nil)
	ok(t, late.Subscribe("j/#", 1, nil), "subscribe")
	late.Disconnect(100)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := persistence.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "j/x",
		Payload: []byte("journaled"), PacketID: 7, ProtocolVersion: 5}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sessions().PacketAppend(ctx, mochistore.JournalID, persistence.ClassQoS12,
		&persistence.PersistedPacket{QoS: 1, PacketID: 7, ProtocolVersion: 5, Data: buf.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	_, addr2, stop2 := startMochi(t, url, journal)
	ch, h := collect()
	client(t, addr2, "late", false, true, h)
	if got := receive(t, ch, 1); got[0] != "journaled" {
		t.Fatalf("got %q", got)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	st, err = persistence.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.Sessions().PacketCount(ctx, mochistore.JournalID, persistence.ClassQoS12); err != nil || n != 0 {
		t.Errorf("%d journal entries left after the replay (%v)", n, err)
	}
}
