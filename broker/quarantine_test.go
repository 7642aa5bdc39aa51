package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/persistence"
)

// lockedBuffer is a log destination tests read while the broker writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flipQueuedPacket flips one bit in the middle of the first queued (QoS 1/2)
// packet of session id in a closed bolt store, following persistence/kv's key
// layout (LAYOUT.md): header "h"+id holds the queue id of ClassQoS12 at bytes
// 28..36, packets are "p" qid seq.
func flipQueuedPacket(t *testing.T, path, id string) {
	t.Helper()
	flipBolt(t, path, func(bk *bolt.Bucket) ([]byte, error) {
		h := bk.Get(append([]byte("h"), id...))
		if len(h) != 52 {
			return nil, errors.New("no session header")
		}
		prefix := append([]byte("p"), h[28:36]...)
		if binary.BigEndian.Uint64(h[28:36]) == 0 {
			return nil, errors.New("session has no queue")
		}
		k, _ := bk.Cursor().Seek(prefix)
		if !bytes.HasPrefix(k, prefix) {
			return nil, errors.New("no queued packet")
		}
		return bytes.Clone(k), nil
	})
}

// flipBolt flips one bit in the middle of the value of the key that pick
// returns, in the mqttstore bucket of a closed bolt store.
func flipBolt(t *testing.T, path string, pick func(*bolt.Bucket) ([]byte, error)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("mqttstore"))
		if bk == nil {
			return errors.New("no mqttstore bucket")
		}
		k, err := pick(bk)
		if err != nil {
			return err
		}
		damaged := bytes.Clone(bk.Get(k))
		if len(damaged) == 0 {
			return errors.New("empty value")
		}
		damaged[len(damaged)/2] ^= 0x10
		return bk.Put(k, damaged)
	})
	if err != nil {
		t.Fatalf("planting damage: %v", err)
	}
}

// TestQuarantineDamagedSession plants one flipped bit in one queued message of
// one session of a bolt store: without Options.Quarantine the broker refuses to
// start; with it the broker starts, reports the session (log, RestoreStats,
// Quarantined), refuses its client, and the other session is intact.
func TestQuarantineDamagedSession(t *testing.T) {
	e, path := twoSessionsOnBolt(t)
	flipQueuedPacket(t, path, "bad")
	e.open()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := broker.New(ctx, broker.Options{Store: e.store, Logger: testLogger(t)}); err == nil {
		b.Close()
		t.Fatal("broker started on a damaged store without Quarantine")
	} else if !errors.Is(err, persistence.ErrBrokenEntry) {
		t.Fatalf("New without Quarantine: %v, want ErrBrokenEntry", err)
	}

	var logs lockedBuffer
	e.opts = broker.Options{Quarantine: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	e.start()
	if q := e.b.Restored().Quarantined; q != 1 {
		t.Errorf("RestoreStats.Quarantined = %d, want 1", q)
	}
	if got := e.b.Quarantined(); len(got) != 1 || !errors.Is(got["bad"], persistence.ErrBrokenEntry) {
		t.Errorf("Quarantined() = %v, want bad with ErrBrokenEntry", got)
	}
	if r := e.b.Restored(); r.Sessions != 1 || r.QueuedMessages != 3 {
		t.Errorf("restored %+v, want the good session with its 3 messages", r)
	}
	if l := logs.String(); !strings.Contains(l, "quarantined") || !strings.Contains(l, "client=bad") {
		t.Errorf("log does not report the quarantined session:\n%s", l)
	}
	// The good session is intact.
	good := dialV3(t, e.addr, "good", false)
	for _, want := range []string{"m1", "m2", "m3"} {
		if m := good.recv(t); string(m.Payload()) != want {
			t.Fatalf("good session got %q, want %q", m.Payload(), want)
		}
	}
	// The damaged session's client is refused, and its subscription gets nothing.
	o := mqtt.NewClientOptions().AddBroker("tcp://" + e.addr).SetClientID("bad").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("bad client: no CONNACK")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("the client of a quarantined session was accepted")
	}
	// The damaged record is still in the store for an operator.
	if ok, err := e.store.Sessions().Exists(ctx, "bad"); err != nil || !ok {
		t.Errorf("quarantined session in the store: %v, %v", ok, err)
	}
}

// twoSessionsOnBolt makes a bolt store with persistent sessions "bad" and
// "good", each subscribed to q/# with m1, m2, m3 queued, and returns it
// stopped and closed, with the file's path.
func twoSessionsOnBolt(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t, storeKinds()[1], broker.Options{})
	for _, id := range []string{"bad", "good"} {
		s := dialV3(t, e.addr, id, false)
		s.sub(t, "q/#", 1)
		s.close()
	}
	e.connected(0)
	p := dialV3(t, e.addr, "pub", true)
	for _, m := range []string{"m1", "m2", "m3"} {
		p.pub(t, "q/x", 1, false, m)
	}
	p.close()
	e.connected(0)
	e.stop()
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	e.store = nil
	path := strings.TrimPrefix(e.url, "bolt://")
	return e, path[:strings.IndexByte(path, '?')]
}

// TestQuarantineDamagedSessionRecord damages a session's state record, which
// the store itself skips while loading (persistence/kv reports it at the end
// of LoadForEach): with Options.Quarantine the broker starts, counts it, and
// the other session is intact; the damaged session's record is not replaced
// by a new session when its client connects.
func TestQuarantineDamagedSessionRecord(t *testing.T) {
	e, path := twoSessionsOnBolt(t)
	flipBolt(t, path, func(*bolt.Bucket) ([]byte, error) { return append([]byte("t"), "bad"...), nil })
	e.open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := broker.New(ctx, broker.Options{Store: e.store, Logger: testLogger(t)}); err == nil {
		b.Close()
		t.Fatal("broker started on a damaged store without Quarantine")
	}
	var logs lockedBuffer
	e.opts = broker.Options{Quarantine: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	e.start()
	if r := e.b.Restored(); r.Quarantined != 1 || r.Sessions != 1 || r.QueuedMessages != 3 {
		t.Errorf("restored %+v, want 1 session with 3 messages and 1 quarantined", r)
	}
	if l := logs.String(); !strings.Contains(l, "quarantined") {
		t.Errorf("log does not report the damaged record:\n%s", l)
	}
	good := dialV3(t, e.addr, "good", false)
	for _, want := range []string{"m1", "m2", "m3"} {
		if m := good.recv(t); string(m.Payload()) != want {
			t.Fatalf("good session got %q, want %q", m.Payload(), want)
		}
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + e.addr).SetClientID("bad").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(wait)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("bad client: no CONNACK")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		t.Error("the client of a damaged session was accepted")
	}
	if n, err := e.store.Sessions().PacketCount(ctx, "bad", persistence.ClassQoS12); err != nil || n != 3 {
		t.Errorf("damaged session's queue: %d, %v; want its 3 messages kept", n, err)
	}
}
