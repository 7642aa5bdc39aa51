package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttstore/mqttstore/broker"
	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// TestGracefulRestart stops and starts the broker on the same store (reopened by
// URL for durable drivers) with state of every kind in it.
func TestGracefulRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, k storeKind) {
		clk := newFakeClock()
		e := newEnv(t, k, broker.Options{Clock: clk.Now})
		sessExp := packet.Properties{SessionExpiry: u32(3600)}

		// A persistent subscriber with one QoS 1 message unacknowledged and one
		// QoS 2 message PUBREC'd (its PUBREL in flight).
		sub := dialRaw(t, e.addr, packet.Version5)
		sub.connect(&packet.Connect{ClientID: "rs", Properties: sessExp})
		sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "g/#", QoS: 2}}})
		sub.must()
		ws := dialV3(t, e.addr, "ws", false)
		ws.sub(t, "will/#", 1)
		ws.close()
		e.connected(1)
		p := dialV3(t, e.addr, "p", true)
		p.pub(t, "g/a", 1, false, "a")
		p.pub(t, "g/b", 2, false, "b")
		pa := sub.must().(*packet.Publish)
		pb := sub.must().(*packet.Publish)
		sub.send(&packet.Pubrec{PacketID: pb.PacketID})
		if rel, ok := sub.must().(*packet.Pubrel); !ok || rel.PacketID != pb.PacketID {
			t.Fatalf("want PUBREL %d, got %+v", pb.PacketID, rel)
		}
		sub.nc.Close()
		e.connected(1)
		p.pub(t, "g/c", 1, false, "c") // queued for the offline subscriber
		p.pub(t, "g/r", 1, true, "retained")

		// A connected client with a delayed will, and a session that expires
		// while the broker is down.
		w := dialRaw(t, e.addr, packet.Version5)
		w.connect(&packet.Connect{ClientID: "willer", Properties: sessExp,
			Will: &packet.Will{Topic: "will/willer", QoS: 1, Payload: []byte("bye"), Properties: packet.Properties{WillDelay: u32(2)}}})
		short := dialV5(t, e.addr, &paho.Connect{ClientID: "short", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(1)}})
		short.c.Disconnect(&paho.Disconnect{})
		e.connected(2)
		// An inbound QoS 2 message received but not released.
		q2 := dialRaw(t, e.addr, packet.Version5)
		q2.connect(&packet.Connect{ClientID: "q2in", Properties: sessExp})
		q2.send(&packet.Publish{Topic: "g/q2", QoS: 2, PacketID: 9, Payload: []byte("once")})
		if rec, ok := q2.must().(*packet.Pubrec); !ok || rec.PacketID != 9 {
			t.Fatalf("want PUBREC 9, got %+v", rec)
		}

		e.stop()
		clk.Add(5 * time.Second)
		if k.durable {
			e.store.Close()
			e.open()
		}
		e.start()
		got := e.b.Restored()
		if got.InflightMessages != 2 || got.QueuedMessages < 2 || got.Retained != 1 || got.WillsFired != 1 || got.SessionsExpired != 1 {
			t.Fatalf("restored %+v", got)
		}

		// The subscriber gets the unacknowledged PUBLISH again with DUP and the
		// same packet id, the PUBREL again, then the queued messages.
		sub = dialRaw(t, e.addr, packet.Version5)
		if ack := sub.connect(&packet.Connect{ClientID: "rs", Properties: sessExp}); !ack.SessionPresent {
			t.Fatal("session not present after restart")
		}
		if re, ok := sub.must().(*packet.Publish); !ok || !re.Dup || re.PacketID != pa.PacketID || string(re.Payload) != "a" {
			t.Fatalf("redelivery: %+v, want DUP id %d", re, pa.PacketID)
		}
		if rel, ok := sub.must().(*packet.Pubrel); !ok || rel.PacketID != pb.PacketID {
			t.Fatalf("PUBREL not redelivered: %+v", rel)
		}
		sub.send(&packet.Puback{PacketID: pa.PacketID})
		sub.send(&packet.Pubcomp{PacketID: pb.PacketID})
		var rest []string
		for len(rest) < 3 {
			pub, ok := sub.must().(*packet.Publish)
			if !ok {
				continue
			}
			rest = append(rest, string(pub.Payload))
			if pub.QoS == 1 {
				sub.send(&packet.Puback{PacketID: pub.PacketID})
			} else if pub.QoS == 2 {
				sub.send(&packet.Pubrec{PacketID: pub.PacketID})
			}
		}
		if strings.Join(rest, ",") != "c,retained,once" {
			t.Fatalf("queued after restart: %v", rest)
		}
		// The incoming QoS 2 state survived: a retransmission is not delivered again.
		q2 = dialRaw(t, e.addr, packet.Version5)
		q2.connect(&packet.Connect{ClientID: "q2in", Properties: sessExp})
		q2.send(&packet.Publish{Topic: "g/q2", QoS: 2, PacketID: 9, Dup: true, Payload: []byte("once")})
		if rec, ok := q2.must().(*packet.Pubrec); !ok || rec.PacketID != 9 {
			t.Fatalf("want PUBREC 9, got %+v", rec)
		}
		q2.send(&packet.Pubrel{PacketID: 9})
		if _, ok := q2.must().(*packet.Pubcomp); !ok {
			t.Fatal("no PUBCOMP")
		}
		p = dialV3(t, e.addr, "p", true)
		p.pub(t, "g/marker", 1, false, "marker")
		for {
			pk := sub.must()
			if rel, ok := pk.(*packet.Pubrel); ok {
				sub.send(&packet.Pubcomp{PacketID: rel.PacketID})
				continue
			}
			if pub, ok := pk.(*packet.Publish); !ok || string(pub.Payload) != "marker" {
				t.Fatalf("duplicate QoS 2 delivery after restart: %+v", pk)
			}
			break
		}
		// The will fired during New and was queued for its persistent watcher.
		ws = dialV3(t, e.addr, "ws", false)
		if m := ws.recv(t); m.Topic() != "will/willer" || string(m.Payload()) != "bye" {
			t.Fatalf("will: %s %q", m.Topic(), m.Payload())
		}
		// The expired session is gone.
		r := dialRaw(t, e.addr, packet.Version5)
		if ack := r.connect(&packet.Connect{ClientID: "short", Properties: sessExp}); ack.SessionPresent {
			t.Fatal("session that expired while down is present")
		}
	})
}

// ---- SIGKILL test: the broker runs in a child process (this test binary) ----

const (
	childEnv = "MQTTSTORE_BROKER_CHILD_STORE"
)

// runChild is the child process: it serves the store named by childEnv on a
// loopback port, prints the address, and runs until killed or interrupted.
func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := persistence.Open(ctx, os.Getenv(childEnv))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	b, err := broker.New(ctx, broker.Options{Store: st})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("READY", l.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		b.Close()
	}()
	// The parent's death closes stdin: exit then, so no child outlives the test.
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(3)
	}()
	if err := b.Serve(l); err != nil {
		return 1
	}
	st.Close()
	return 0
}

// startChild starts a broker child on url and returns its address and a kill func.
func startChild(t *testing.T, url string) (string, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			stdin.Close()
		})
	}
	t.Cleanup(kill)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "READY ")
		if !ok {
			t.Fatalf("child: %s", l)
		}
		return addr, kill
	case <-time.After(time.Minute):
		t.Fatal("child broker did not start")
	}
	return "", nil
}

// TestSIGKILL kills the broker process in the middle of QoS 1 and QoS 2 traffic
// for an offline persistent subscriber, restarts it on the same store and checks
// that every message whose PUBACK/PUBREC the publisher got is delivered, QoS 2
// exactly once, and that the subscription survived.
func TestSIGKILL(t *testing.T) {
	for _, k := range storeKinds() {
		if !k.durable {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			url := k.url(t)
			addr, kill := startChild(t, url)
			s := dialV3(t, addr, "ksub", false)
			s.sub(t, "k/1", 1)
			s.sub(t, "k/2", 2)
			s.close()

			p := dialV5(t, addr, &paho.Connect{ClientID: "kpub", CleanStart: true})
			acked := map[string]byte{}
			var mu sync.Mutex
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					qos := byte(1 + i%2)
					payload := fmt.Sprint(i)
					// Short: after the kill paho only gives up when this ends.
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					r, err := p.c.Publish(ctx, &paho.Publish{Topic: fmt.Sprint("k/", qos), QoS: qos, Payload: []byte(payload)})
					cancel()
					if err != nil || r == nil || r.ReasonCode != 0 {
						return
					}
					mu.Lock()
					acked[payload] = qos
					mu.Unlock()
				}
			}()
			eventually(t, "40 acknowledged publishes", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) >= 40
			})
			kill()
			<-done
			mu.Lock()
			want := len(acked)
			mu.Unlock()

			addr, _ = startChild(t, url)
			s = dialV3(t, addr, "ksub", false)
			got := map[string]int{}
			for {
				missing := 0
				for m := range acked {
					if got[m] == 0 {
						missing++
					}
				}
				if missing == 0 {
					break
				}
				m := s.recv(t)
				got[string(m.Payload())]++
			}
			for m, qos := range acked {
				if qos == 2 && got[m] != 1 {
					t.Errorf("QoS 2 message %s delivered %d times", m, got[m])
				}
			}
			// The subscription survived: a new message arrives.
			p = dialV5(t, addr, &paho.Connect{ClientID: "kpub", CleanStart: true})
			p.pub(t, &paho.Publish{Topic: "k/2", QoS: 2, Payload: []byte("after")})
			for {
				m := s.recv(t)
				if string(m.Payload()) == "after" {
					break
				}
				if n := got[string(m.Payload())]; n > 0 && acked[string(m.Payload())] == 2 {
					t.Errorf("QoS 2 message %s delivered again", m.Payload())
				}
				got[string(m.Payload())]++
			}
			t.Logf("%d acknowledged before SIGKILL, all delivered", want)
		})
	}
}
