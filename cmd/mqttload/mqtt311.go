package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// client311 is a small MQTT 3.1.1 client written for the QoS 2 path, where the
// library the tool otherwise uses (paho.mqtt.golang) is not exactly-once: after a
// reconnect it resends a PUBLISH whose PUBREC it already had (instead of the PUBREL),
// which a broker must take as a new message, and it delivers again a QoS 2 message
// it received before whose PUBREL had not arrived. Here, as the protocol requires:
//   - an outgoing QoS 2 message is resent after a reconnect as PUBLISH (DUP) until
//     its PUBREC, then only as PUBREL until its PUBCOMP, in the order first sent;
//   - an incoming QoS 2 packet id is remembered from its first PUBLISH until its
//     PUBREL, across reconnects of the same session, and a PUBLISH with that id in
//     between is answered with PUBREC and not delivered again.
//
// It keeps its session state in memory for the life of the process, speaks only
// what mqttload needs (no will, no retain, no authentication) and reconnects when
// asked to. Packets are encoded here: the tool must not share code with the broker
// it measures.
type client311 struct {
	route     *route // the addresses it connects to, in order
	id        string
	clean     bool
	keepAlive time.Duration
	dialTO    time.Duration
	reconnect bool
	onMessage func(topic string, payload []byte) // on the reader goroutine, before the acknowledgement
	onConnect func()                             // after every CONNACK but the first
	onLost    func()                             // a connection was lost

	quit     chan struct{} // closed by Disconnect
	quitOnce sync.Once
	done     chan struct{} // closed when the reader goroutine ends
	started  bool          // Connect succeeded, so the goroutines run

	mu      sync.Mutex // guards what follows and every write to conn
	conn    net.Conn   // nil while disconnected
	w       *bufio.Writer
	out     map[uint16]*outMsg // outgoing QoS 1 and 2 messages not yet completed
	sent    uint64             // order of the messages in out
	nextID  uint16
	in      map[uint16]bool // incoming QoS 2 ids received, PUBREL not yet
	subacks map[uint16]*subReq
	dead    error // set when the client stopped for good
}

// subReq is a SUBSCRIBE waiting for its SUBACK; it is sent again after a reconnect.
type subReq struct {
	packet []byte
	done   chan error
}

// outMsg is one outgoing message; it is also the token Publish returns.
type outMsg struct {
	id       uint16
	order    uint64
	qos      byte
	topic    string
	payload  []byte
	released bool // QoS 2: PUBREC received, PUBREL sent
	done     chan struct{}
	err      error
}

func (m *outMsg) Done() <-chan struct{} { return m.done }
func (m *outMsg) Error() error {
	<-m.done
	return m.err
}

func (m *outMsg) finish(err error) {
	m.err = err
	close(m.done)
}

// errClientClosed fails what was in flight when the client was disconnected.
var errClientClosed = errors.New("mqtt client disconnected")

func newClient311(rt *route, id string, clean bool, keepAlive, dialTimeout time.Duration, reconnect bool) *client311 {
	return &client311{
		route: rt, id: id, clean: clean, keepAlive: keepAlive, dialTO: dialTimeout, reconnect: reconnect,
		quit: make(chan struct{}), done: make(chan struct{}),
		out: make(map[uint16]*outMsg), in: make(map[uint16]bool), subacks: make(map[uint16]*subReq),
	}
}

// MQTT 3.1.1 packet types (high nibble of the first byte).
const (
	pConnect    = 1
	pConnack    = 2
	pPublish    = 3
	pPuback     = 4
	pPubrec     = 5
	pPubrel     = 6
	pPubcomp    = 7
	pSubscribe  = 8
	pSuback     = 9
	pPingreq    = 12
	pPingresp   = 13
	pDisconnect = 14
)

// maxPacket bounds what the client reads: the tool's payloads are small.
const maxPacket = 64 << 20

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// packet frames a body with its fixed header.
func packet(first byte, body []byte) []byte {
	b := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

func idPacket(typ byte, flags byte, id uint16) []byte {
	return []byte{typ<<4 | flags, 2, byte(id >> 8), byte(id)}
}

func publishPacket(m *outMsg, dup bool) []byte {
	first := byte(pPublish<<4) | m.qos<<1
	if dup {
		first |= 0x08
	}
	body := appendString(nil, m.topic)
	if m.qos > 0 {
		body = binary.BigEndian.AppendUint16(body, m.id)
	}
	return packet(first, append(body, m.payload...))
}

// readPacket reads one packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("mqtt: malformed remaining length")
		}
		mult *= 128
	}
	if n > maxPacket {
		return 0, nil, fmt.Errorf("mqtt: packet of %d bytes", n)
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// dialAny tries the addresses in order until one accepts the connection, and
// records it in the route; the error is the last address's.
func (c *client311) dialAny(ctx context.Context, addrs []string) (net.Conn, *bufio.Reader, bool, error) {
	var err error
	for _, a := range addrs {
		var (
			conn    net.Conn
			r       *bufio.Reader
			present bool
		)
		conn, r, present, err = c.dial(ctx, a)
		if err == nil {
			c.route.connected(a)
			return conn, r, present, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, false, err
}

// dial opens a connection to addr and completes CONNECT/CONNACK.
func (c *client311) dial(ctx context.Context, addr string) (net.Conn, *bufio.Reader, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.dialTO)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	body := appendString(nil, "MQTT")
	flags := byte(0)
	if c.clean {
		flags |= 0x02
	}
	body = append(body, 4, flags)
	body = binary.BigEndian.AppendUint16(body, uint16(c.keepAlive/time.Second))
	body = appendString(body, c.id)
	if _, err := conn.Write(packet(pConnect<<4, body)); err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	first, ack, err := readPacket(r)
	if err == nil && (first>>4 != pConnack || len(ack) != 2) {
		err = fmt.Errorf("mqtt: expected CONNACK, got packet type %d", first>>4)
	}
	if err == nil && ack[1] != 0 {
		err = fmt.Errorf("mqtt: connection refused, return code %d", ack[1])
	}
	if err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, r, ack[0]&1 == 1, nil
}

// Connect connects for the first time and starts the client's goroutines.
func (c *client311) Connect(ctx context.Context) (bool, error) {
	conn, r, present, err := c.dialAny(ctx, c.route.first())
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.started = true
	c.setConn(conn, present)
	c.mu.Unlock()
	go c.readLoop(conn, r)
	go c.pingLoop()
	return present, nil
}

// setConn installs a new connection and resends what the session still owes the
// broker, in the order it was first sent. Called with c.mu held.
func (c *client311) setConn(conn net.Conn, present bool) {
	c.conn, c.w = conn, bufio.NewWriterSize(conn, 64<<10)
	if !present {
		// The broker has no session: no PUBREL will come for what it sent before.
		clear(c.in)
	}
	pending := make([]*outMsg, 0, len(c.out))
	for _, m := range c.out {
		pending = append(pending, m)
	}
	slices.SortFunc(pending, func(a, b *outMsg) int { return int(a.order - b.order) })
	for _, m := range pending {
		if m.released {
			c.w.Write(idPacket(pPubrel, 0x02, m.id))
		} else {
			c.w.Write(publishPacket(m, true))
		}
	}
	for _, sr := range c.subacks {
		c.w.Write(sr.packet)
	}
	c.flush()
}

// write sends p on the current connection, if any. Called with c.mu held; a failed
// write closes the connection, which the reader notices.
func (c *client311) write(p []byte) {
	if c.conn == nil {
		return
	}
	c.w.Write(p)
	c.flush()
}

func (c *client311) flush() {
	if c.conn == nil {
		return
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.w.Flush(); err != nil {
		c.conn.Close()
	}
}

func (c *client311) pingLoop() {
	t := time.NewTicker(c.keepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			c.write([]byte{pPingreq << 4, 0})
			c.mu.Unlock()
		}
	}
}

// readLoop handles what the broker sends, and reconnects when the connection is
// lost and reconnecting was asked for.
func (c *client311) readLoop(conn net.Conn, r *bufio.Reader) {
	defer close(c.done)
	for {
		err := c.serve(conn, r)
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
		conn.Close()
		select {
		case <-c.quit:
			c.stop(errClientClosed)
			return
		default:
		}
		if c.onLost != nil {
			c.onLost()
		}
		if !c.reconnect {
			c.stop(fmt.Errorf("mqtt: connection lost: %w", err))
			return
		}
		var present bool
		conn, r, present = c.redial()
		if conn == nil {
			c.stop(errClientClosed)
			return
		}
		c.mu.Lock()
		c.setConn(conn, present)
		c.mu.Unlock()
		if c.onConnect != nil {
			c.onConnect()
		}
	}
}

// redial connects again until it succeeds or Disconnect is called, trying the
// address after the one it was connected to first (failover).
func (c *client311) redial() (net.Conn, *bufio.Reader, bool) {
	backoff := 10 * time.Millisecond
	addrs := c.route.after(c.route.current())
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, r, present, err := c.dialAny(ctx, addrs)
		cancel()
		if err == nil {
			return conn, r, present
		}
		// Waiting for a broker that is restarting: there is nothing to wait on.
		t := time.NewTimer(backoff)
		select {
		case <-c.quit:
			t.Stop()
			return nil, nil, false
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// stop fails everything in flight with err; the client is then unusable.
func (c *client311) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = err
	for id, m := range c.out {
		delete(c.out, id)
		m.finish(err)
	}
	for id, sr := range c.subacks {
		delete(c.subacks, id)
		sr.done <- err
	}
}

// serve reads packets until the connection fails.
func (c *client311) serve(conn net.Conn, r *bufio.Reader) error {
	for {
		_ = conn.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		first, body, err := readPacket(r)
		if err != nil {
			return err
		}
		typ := first >> 4
		if typ == pPublish {
			if err := c.handlePublish(first, body); err != nil {
				return err
			}
			continue
		}
		if typ == pPingresp {
			continue
		}
		if len(body) < 2 {
			return fmt.Errorf("mqtt: packet type %d of %d bytes", typ, len(body))
		}
		id := binary.BigEndian.Uint16(body)
		c.mu.Lock()
		switch typ {
		case pPuback, pPubcomp:
			if m, ok := c.out[id]; ok && (typ == pPuback) == (m.qos == 1) {
				delete(c.out, id)
				m.finish(nil)
			}
		case pPubrec:
			if m, ok := c.out[id]; ok && m.qos == 2 {
				m.released = true
			}
			c.write(idPacket(pPubrel, 0x02, id))
		case pPubrel:
			delete(c.in, id)
			c.write(idPacket(pPubcomp, 0, id))
		case pSuback:
			if sr, ok := c.subacks[id]; ok {
				delete(c.subacks, id)
				var err error
				if len(body) < 3 || body[2] == 0x80 {
					err = errors.New("mqtt: subscription refused")
				}
				sr.done <- err
			}
		}
		c.mu.Unlock()
	}
}

func (c *client311) handlePublish(first byte, body []byte) error {
	qos := first >> 1 & 3
	if len(body) < 2 {
		return errors.New("mqtt: short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+tl {
		return errors.New("mqtt: short PUBLISH topic")
	}
	topic := string(body[2 : 2+tl])
	rest := body[2+tl:]
	var id uint16
	if qos > 0 {
		if len(rest) < 2 {
			return errors.New("mqtt: PUBLISH without packet id")
		}
		id = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	deliver := true
	if qos == 2 {
		c.mu.Lock()
		deliver = !c.in[id]
		c.in[id] = true
		c.mu.Unlock()
	}
	if deliver && c.onMessage != nil {
		c.onMessage(topic, rest)
	}
	c.mu.Lock()
	switch qos {
	case 1:
		c.write(idPacket(pPuback, 0, id))
	case 2:
		c.write(idPacket(pPubrec, 0, id))
	}
	c.mu.Unlock()
	return nil
}

// allocID returns a packet id no message in flight uses. Called with c.mu held.
func (c *client311) allocID() (uint16, bool) {
	for range 1 << 16 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.out[c.nextID]; !busy {
			if _, busy := c.subacks[c.nextID]; !busy {
				return c.nextID, true
			}
		}
	}
	return 0, false
}

// Publish sends a message; the token completes on PUBACK (QoS 1) or PUBCOMP
// (QoS 2), or when the message is written (QoS 0). While disconnected, QoS 1 and 2
// messages wait for the reconnection.
func (c *client311) Publish(topic string, qos byte, payload []byte) token {
	m := &outMsg{qos: qos, topic: topic, payload: payload, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		m.finish(c.dead)
		return m
	}
	if qos == 0 {
		if c.conn == nil {
			m.finish(errors.New("mqtt: not connected"))
			return m
		}
		c.write(publishPacket(m, false))
		m.finish(nil)
		return m
	}
	id, ok := c.allocID()
	if !ok {
		m.finish(errors.New("mqtt: every packet id is in use"))
		return m
	}
	c.sent++
	m.id, m.order = id, c.sent
	c.out[id] = m
	c.write(publishPacket(m, false))
	return m
}

// Subscribe subscribes to filter and waits for the SUBACK; the SUBSCRIBE is sent
// again after a reconnection until then.
func (c *client311) Subscribe(ctx context.Context, filter string, qos byte) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return c.dead
	}
	id, ok := c.allocID()
	if !ok {
		c.mu.Unlock()
		return errors.New("mqtt: every packet id is in use")
	}
	body := binary.BigEndian.AppendUint16(nil, id)
	body = appendString(body, filter)
	sr := &subReq{packet: packet(pSubscribe<<4|0x02, append(body, qos)), done: ch}
	c.subacks[id] = sr
	c.write(sr.packet)
	c.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.subacks, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Disconnect sends DISCONNECT, closes the connection and stops the client; what is
// still in flight fails. It waits for the reader goroutine.
func (c *client311) Disconnect() {
	started := false
	c.quitOnce.Do(func() {
		close(c.quit)
		c.mu.Lock()
		started = c.started
		if c.conn != nil {
			c.write([]byte{pDisconnect << 4, 0})
			c.conn.Close()
		}
		c.mu.Unlock()
	})
	if started {
		<-c.done
	}
}
