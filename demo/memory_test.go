package demo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
)

// The bar of issue 15: the demo with default limits, hit by two `#`
// subscribers that never read and 1,100 QoS 0 messages of 500 KB, stays under
// 256 MB of resident memory (it reached 1.75 GB when connections were bounded
// by packet count, not bytes).
const (
	barMessages = 1100
	barSize     = 500 << 10
	barRSS      = 256 << 20
)

// barDemoEnv names a demo binary to measure instead of building ./cmd/demo
// (to measure an older build, for comparison); barSubsEnv sets how many
// subscribers do not read (2 by default, the bar's).
const (
	barDemoEnv = "MQTTSTORE_BAR_DEMO"
	barSubsEnv = "MQTTSTORE_BAR_SUBS"
)

// TestMemoryBarNonReadingSubscribers runs the demo as a child process with
// default limits, drives the hostile load into it and reads the child's peak
// resident set (VmHWM in /proc/PID/status).
func TestMemoryBarNonReadingSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and loads the demo: not in -short")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	bin := os.Getenv(barDemoEnv)
	if bin == "" {
		bin = filepath.Join(dir, "demo")
		// A plain build, also under go test -race: the bar is about the program.
		build := exec.Command("go", "build", "-o", bin, "github.com/mqttstore/mqttstore/cmd/demo")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "-store", "bolt://"+filepath.Join(dir, "s.db")+"?sync=always", "-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addrc := make(chan string, 1)
	go func() { // reads the child's log to its end, so it never blocks on it
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `msg="demo: listening"`) {
				if _, rest, ok := strings.Cut(line, " addr="); ok {
					select {
					case addrc <- strings.Fields(rest)[0]:
					default:
					}
				}
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Log("demo:", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		t.Fatal("the demo exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("the demo did not start listening")
	}
	before := procStatus(t, cmd.Process.Pid)

	subs := 2
	if v := os.Getenv(barSubsEnv); v != "" {
		if subs, err = strconv.Atoi(v); err != nil || subs < 1 || subs > 1000 {
			t.Fatalf("%s=%q: want 1 to 1000", barSubsEnv, v)
		}
	}
	for i := range subs {
		c := barDial(t, addr, fmt.Sprintf("hostile-sub-%d", i))
		c.send(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.SubscribeOption{{Filter: "#"}}})
		if _, ok := c.read(t).(*packet.Suback); !ok {
			t.Fatal("no SUBACK")
		}
		// From here on it reads nothing.
	}
	pub := barDial(t, addr, "hostile-pub")
	msg, err := packet.Encode(nil, &packet.Publish{Topic: "bar/load", Payload: bytes.Repeat([]byte{'z'}, barSize)}, packet.Version311)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	pub.nc.SetWriteDeadline(time.Now().Add(3 * time.Minute))
	for i := range barMessages {
		if _, err := pub.nc.Write(msg); err != nil {
			t.Fatalf("publishing message %d: %v", i, err)
		}
	}
	// The broker handles a client's packets in order: the PINGRESP says it has
	// read every message.
	pub.send(t, &packet.Pingreq{})
	for {
		if _, ok := pub.read(t).(*packet.Pingresp); ok {
			break
		}
	}
	took := time.Since(began)
	after := procStatus(t, cmd.Process.Pid)
	t.Logf("%d x %d KB QoS 0 to %d non-reading # subscribers in %v: VmHWM %d MB (VmRSS %d MB before, %d MB after), bar %d MB",
		barMessages, barSize>>10, subs, took.Round(time.Millisecond), after["VmHWM"]>>20, before["VmRSS"]>>20, after["VmRSS"]>>20, barRSS>>20)
	if after["VmHWM"] >= barRSS {
		t.Errorf("peak RSS %d MB, bar %d MB", after["VmHWM"]>>20, barRSS>>20)
	}
}

// procStatus returns the memory lines of /proc/PID/status in bytes.
func procStatus(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[k] = n << 10
		}
	}
	return m
}

type barClient struct {
	nc net.Conn
	br *bufio.Reader
}

// barDial connects a raw MQTT 3.1.1 client.
func barDial(t *testing.T, addr, id string) *barClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &barClient{nc: nc, br: bufio.NewReader(nc)}
	c.send(t, &packet.Connect{ProtocolVersion: packet.Version311, ClientID: id, CleanStart: true, KeepAlive: 120})
	if ack, ok := c.read(t).(*packet.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK %+v", id, ack)
	}
	return c
}

func (c *barClient) send(t *testing.T, p packet.Packet) {
	t.Helper()
	b, err := packet.Encode(nil, p, packet.Version311)
	if err != nil {
		t.Fatal(err)
	}
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (c *barClient) read(t *testing.T) packet.Packet {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	p, err := packet.ReadPacket(c.br, packet.Version311, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
