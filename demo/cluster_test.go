package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/internal/pgtest"
	"github.com/mqttstore/mqttstore/persistence"
)

// TestClusterThreeNodes runs three brokers on one PostgreSQL schema — two in this
// process, one a child process that is SIGKILLed and restarted under the same
// node name — with clients spread over them: QoS 1 and 2 messages published on
// one node reach persistent and clean subscribers on the others, sessions are
// taken over in both directions (while connected, and from the killed node), a
// will of a client of the killed node is published exactly once, and every
// acknowledged message is delivered, the QoS 2 ones exactly once.
func TestClusterThreeNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := demoBinary(t)
	lease := "2s"
	n1, _ := started(t, &Command{Stderr: io.Discard}, "-store", dsn, "-listen", "127.0.0.1:0", "-node", "n1", "-lease", lease, "-log-level", "warn")
	n2, _ := started(t, &Command{Stderr: io.Discard}, "-store", dsn, "-listen", "127.0.0.1:0", "-node", "n2", "-lease", lease, "-log-level", "warn")
	a1, a2 := n1.MQTT.String(), n2.MQTT.String()
	a3 := freeAddr(t)
	n3 := startNode(t, bin, dsn, a3, "n3", lease)

	// s1: persistent QoS 2 subscriber, starts on n2. s2: persistent QoS 1, on n3.
	// s3: persistent QoS 2, on n3 (its node will be killed). c: clean QoS 1, on n1.
	s1 := newClusterClient(t, "s1", false)
	s1.connect(a2)
	s1.subscribe("c/#", 2)
	s1.subscribe("will/#", 2)
	s2 := newClusterClient(t, "s2", false)
	s2.connect(a3)
	s2.subscribe("c/#", 1)
	s3 := newClusterClient(t, "s3", false)
	s3.connect(a3)
	s3.subscribe("c/#", 2)
	c := newClusterClient(t, "c", true)
	c.connect(a1)
	c.subscribe("c/#", 1)
	// w: a client of n3 with a will, for the node's death.
	w := newClusterClient(t, "w", false)
	w.will = &packet.Will{Topic: "will/w", QoS: 2, Payload: []byte("w is gone")}
	w.connect(a3)

	p := newClusterClient(t, "p", true)
	p.connect(a1)
	const total = 120
	for i := range total {
		switch i {
		case 30: // takeover of a connected session: n2 → n1
			s1.connect(a1)
		case 50: // and the other way: n3 → n2
			s2.connect(a2)
		case 70: // n3 dies with s3 and w connected; s3 goes to n1 at once
			n3.kill()
			s3.connect(a1)
		case 90: // n3 back under its name; s1 moves to it (n1 → n3)
			n3 = startNode(t, bin, dsn, a3, "n3", lease)
			s1.connect(a3)
		}
		p.publish("c/x", byte(1+i%2), fmt.Sprintf("m-%d", i))
	}
	acked := p.acked()
	if len(acked) != total {
		t.Fatalf("the publisher got %d of %d acknowledgements", len(acked), total)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, sub := range []*clusterClient{s1, s2, s3, c} {
		if !sub.waitAll(acked, deadline) {
			dumpSession(t, dsn, sub.id)
			t.FailNow()
		}
	}
	s1.waitPayload("w is gone", deadline)
	// Messages published at QoS 2 to a QoS 2 subscription: exactly once. (The QoS 1
	// ones may come twice after a takeover, as QoS 1 allows.)
	var qos2 []string
	for i := 1; i < total; i += 2 {
		qos2 = append(qos2, fmt.Sprintf("m-%d", i))
	}
	for _, sub := range []*clusterClient{s1, s3} {
		if d := sub.duplicates(qos2); len(d) > 0 {
			t.Errorf("%s received these QoS 2 messages more than once: %v", sub.id, d)
		}
	}
	if n := s1.count("w is gone"); n != 1 {
		t.Errorf("the will of w was received %d times, want exactly once", n)
	}
}

// demoBinary builds cmd/demo once per test (or takes MQTTSTORE_BAR_DEMO).
func demoBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(barDemoEnv); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", bin, "github.com/mqttstore/mqttstore/cmd/demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// node is a broker in a child process.
type node struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan struct{}
}

// startNode starts the demo binary as cluster node name on addr and returns once
// it serves.
func startNode(t *testing.T, bin, dsn, addr, name, lease string) *node {
	t.Helper()
	cmd := exec.Command(bin, "-store", dsn, "-listen", addr, "-node", name, "-lease", lease)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "demo: listening") {
				seen = true
				close(ready)
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(n.kill)
	select {
	case <-ready:
	case <-n.exited:
		t.Fatalf("node %s exited before serving", name)
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not serve within 60s", name)
	}
	return n
}

// kill SIGKILLs the node and waits for it to end.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.t.Error("a killed node did not exit within 30s")
	}
}

// clusterClient is an MQTT 3.1.1 client that keeps its QoS 2 receiver state
// across connections (so a redelivery after a takeover is recognised, as an
// exactly-once client must) and counts what it receives.
type clusterClient struct {
	t     *testing.T
	id    string
	clean bool
	will  *packet.Will

	mu      sync.Mutex
	nc      net.Conn
	w       *bufio.Writer
	pending map[uint16]bool // QoS 2 packet ids received, PUBREL not yet
	got     map[string]int  // payload → deliveries
	arrived chan struct{}   // pinged on every delivery
	acks    chan packet.Packet
	done    []string // payloads the broker acknowledged (publisher)
	nextPID uint16
}

func newClusterClient(t *testing.T, id string, clean bool) *clusterClient {
	c := &clusterClient{t: t, id: id, clean: clean, pending: map[uint16]bool{}, got: map[string]int{},
		arrived: make(chan struct{}, 1), nextPID: 1}
	t.Cleanup(func() {
		c.mu.Lock()
		if c.nc != nil {
			c.nc.Close()
		}
		c.mu.Unlock()
	})
	return c
}

// connect (re)connects to addr, resuming the session; an earlier connection is
// left to the broker to close (a takeover).
func (c *clusterClient) connect(addr string) {
	c.t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		c.t.Fatalf("%s: dial %s: %v", c.id, addr, err)
	}
	br := bufio.NewReader(nc)
	w := bufio.NewWriter(nc)
	cp := &packet.Connect{ProtocolVersion: packet.Version311, ClientID: c.id, CleanStart: c.clean, KeepAlive: 60, Will: c.will}
	c.write(w, nc, cp)
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	pk, err := packet.ReadPacket(br, packet.Version311, 0)
	if ack, ok := pk.(*packet.Connack); err != nil || !ok || ack.ReasonCode != 0 {
		c.t.Fatalf("%s: CONNACK from %s: %+v, %v", c.id, addr, pk, err)
	}
	nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.nc, c.w = nc, w
	c.acks = make(chan packet.Packet, 16)
	acks := c.acks
	c.mu.Unlock()
	go c.read(nc, br, w, acks)
}

func (c *clusterClient) write(w *bufio.Writer, nc net.Conn, p packet.Packet) bool {
	b, err := packet.Encode(nil, p, packet.Version311)
	if err != nil {
		c.t.Errorf("%s: encode: %v", c.id, err)
		return false
	}
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return w.Flush() == nil
}

// read handles one connection's packets until it ends.
func (c *clusterClient) read(nc net.Conn, br *bufio.Reader, w *bufio.Writer, acks chan packet.Packet) {
	for {
		pk, err := packet.ReadPacket(br, packet.Version311, 0)
		if err != nil {
			return
		}
		switch p := pk.(type) {
		case *packet.Publish:
			c.mu.Lock()
			deliver := true
			if p.QoS == 2 {
				deliver = !c.pending[p.PacketID]
				c.pending[p.PacketID] = true
			}
			if deliver {
				c.got[string(p.Payload)]++
			}
			c.mu.Unlock()
			select {
			case c.arrived <- struct{}{}:
			default:
			}
			switch p.QoS {
			case 1:
				c.write(w, nc, &packet.Puback{PacketID: p.PacketID})
			case 2:
				c.write(w, nc, &packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			c.mu.Lock()
			delete(c.pending, p.PacketID)
			c.mu.Unlock()
			c.write(w, nc, &packet.Pubcomp{PacketID: p.PacketID})
		default:
			select {
			case acks <- pk:
			default:
			}
		}
	}
}

// ack waits for the next acknowledgement-type packet of the current connection.
func (c *clusterClient) ack(what string) packet.Packet {
	c.t.Helper()
	c.mu.Lock()
	acks := c.acks
	c.mu.Unlock()
	select {
	case pk := <-acks:
		return pk
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: no answer to %s within 30s", c.id, what)
	}
	return nil
}

func (c *clusterClient) send(p packet.Packet) {
	c.t.Helper()
	c.mu.Lock()
	nc, w := c.nc, c.w
	c.mu.Unlock()
	if !c.write(w, nc, p) {
		c.t.Fatalf("%s: write failed", c.id)
	}
}

func (c *clusterClient) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: filter, QoS: qos}}})
	if sa, ok := c.ack("SUBSCRIBE").(*packet.Suback); !ok || len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != packet.ReasonCode(qos) {
		c.t.Fatalf("%s: SUBACK for %s: %+v", c.id, filter, sa)
	}
}

// publish sends one message and waits for its acknowledgement (the whole QoS 2
// flow), recording it as acknowledged.
func (c *clusterClient) publish(topic string, qos byte, payload string) {
	c.t.Helper()
	pid := c.nextPID
	c.nextPID++
	c.send(&packet.Publish{Topic: topic, QoS: qos, PacketID: pid, Payload: []byte(payload)})
	switch qos {
	case 1:
		if a, ok := c.ack("PUBLISH").(*packet.Puback); !ok || a.PacketID != pid {
			c.t.Fatalf("%s: want PUBACK %d, got %+v", c.id, pid, a)
		}
	case 2:
		if a, ok := c.ack("PUBLISH").(*packet.Pubrec); !ok || a.PacketID != pid {
			c.t.Fatalf("%s: want PUBREC %d, got %+v", c.id, pid, a)
		}
		c.send(&packet.Pubrel{PacketID: pid})
		if a, ok := c.ack("PUBREL").(*packet.Pubcomp); !ok || a.PacketID != pid {
			c.t.Fatalf("%s: want PUBCOMP %d, got %+v", c.id, pid, a)
		}
	}
	c.done = append(c.done, payload)
}

func (c *clusterClient) acked() []string { return c.done }

// dumpSession logs what the store holds for session id, to tell a message the
// broker never delivered from one the client never saw.
func dumpSession(t *testing.T, dsn, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Logf("dump: %v", err)
		return
	}
	defer st.Close()
	o, err := st.Sessions().Owner(ctx, id)
	t.Logf("dump %s: owner %+v (%v)", id, o, err)
	for _, class := range []persistence.PacketClass{persistence.ClassQoS12, persistence.ClassUnAck, persistence.ClassIncoming} {
		st.Sessions().PacketsForEach(ctx, id, class, func(p *persistence.PersistedPacket) (bool, error) {
			t.Logf("dump %s: class %v seq %d pid %d qos %d bytes %q", id, class, p.Seq, p.PacketID, p.QoS, p.Data[max(0, len(p.Data)-8):])
			return false, nil
		})
	}
}

// waitAll waits until every payload in want was received at least once.
func (c *clusterClient) waitAll(want []string, deadline time.Time) bool {
	c.t.Helper()
	for {
		c.mu.Lock()
		var missing []string
		for _, p := range want {
			if c.got[p] == 0 {
				missing = append(missing, p)
			}
		}
		c.mu.Unlock()
		if len(missing) == 0 {
			return true
		}
		select {
		case <-c.arrived:
		case <-time.After(time.Until(deadline)):
			c.t.Errorf("%s: %d acknowledged messages never arrived, e.g. %v", c.id, len(missing), missing[:min(5, len(missing))])
			return false
		}
	}
}

func (c *clusterClient) waitPayload(p string, deadline time.Time) {
	c.t.Helper()
	if !c.waitAll([]string{p}, deadline) {
		c.t.FailNow()
	}
}

func (c *clusterClient) count(p string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[p]
}

func (c *clusterClient) duplicates(of []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d []string
	for _, p := range of {
		if n := c.got[p]; n > 1 {
			d = append(d, fmt.Sprintf("%s×%d", p, n))
		}
	}
	return d
}
