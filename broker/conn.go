package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
)

// How a connection ended, which decides what happens to its will.
type disposition uint8

const (
	dispLost     disposition = iota // network error, keepalive timeout, protocol violation: will published
	dispNormal                      // DISCONNECT 0x00: will discarded
	dispWill                        // 5.0 DISCONNECT 0x04: will published
	dispShutdown                    // broker shutdown: will kept pending in the store, not published now
)

const (
	// connectTimeout bounds how long a new connection may take to send CONNECT.
	connectTimeout = 10 * time.Second
	// writeTimeout bounds one flush to a client; a client that does not read for
	// this long is disconnected.
	writeTimeout = 30 * time.Second
	// outQueue is how many encoded packets may wait for the writer. Beyond it a
	// QoS 0 message is dropped and anything else disconnects the client as too
	// slow (its QoS 1/2 messages stay in flight in the store for the next
	// connection). Their bytes are bounded by Limits.MaxConnQueueBytes and
	// MaxBufferedBytes (budget.go).
	outQueue = 1024
)

// conn is one network connection. Three goroutines serve it: the reader (which
// runs every handler, so a client's packets are processed in order), the writer
// and the delivery pump.
type conn struct {
	b        *Broker
	nc       net.Conn
	br       *bufio.Reader
	ctx      context.Context // ends with the connection; for hooks
	cancel   context.CancelFunc
	version  byte
	info     ClientInfo
	sess     *session
	window   int    // outbound in-flight limit
	maxOut   uint32 // client's maximum packet size, 0 = protocol maximum
	keepDur  time.Duration
	aliasOut uint16            // client's Topic Alias Maximum: aliases the writer may give
	aliasIn  map[uint16]string // topic aliases the client set, by alias
	pubRun   []*packet.Publish // the reader's run of buffered PUBLISH packets (publish_run.go)
	pubIns   []fanIn           // handlePublishes' scratch
	pubAcks  []inAck           // handlePublishes' scratch
	// queuedMsgs keeps the messages of the session's queue by record sequence
	// number (queued_cache.go); guarded by sess.mu.
	queuedMsgs map[uint64]*wireMsg
	out        chan outItem
	wout       chan struct{} // wakes the writer: out has items (signalOut)
	outq       budget        // bytes in out (Limits.MaxConnQueueBytes)
	outMu      sync.RWMutex  // senders hold it for reading; the writer's exit for writing
	outDead    bool          // the writer has exited and drained out; guarded by outMu
	kick       chan struct{}
	// ackTimer wakes the pump to commit pending acknowledgement deletes when no
	// write carried them (deliver.go, completeFlight); armed while it runs, and
	// ackDue set when it fired.
	ackTimer      *time.Timer
	ackTimerArmed atomic.Bool
	ackDue        atomic.Bool
	done          chan struct{} // closed when the connection starts closing
	finished      chan struct{} // closed when the session is detached and goroutines ended

	closeOnce sync.Once
	dispMu    sync.Mutex
	disp      disposition
	// expiryOnDisconnect is a 5.0 DISCONNECT's new session expiry interval, if any.
	expiryOnDisconnect *time.Duration
	// counted is set when the connection is counted in Stats.Connected: from
	// just before its CONNACK until its session is detached.
	counted bool
}

func (b *Broker) serveConn(nc net.Conn) {
	if !b.admit() {
		nc.Close()
		return
	}
	defer b.leave()
	ctx, cancel := context.WithCancel(b.ctx)
	c := &conn{
		b: b, nc: nc, br: bufio.NewReaderSize(nc, 4096), ctx: ctx, cancel: cancel,
		out: make(chan outItem, outQueue), wout: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		done: make(chan struct{}), finished: make(chan struct{}),
		info: ClientInfo{RemoteAddr: nc.RemoteAddr().String()},
	}
	c.outq.limit = b.limits.MaxConnQueueBytes
	c.ackTimer = time.AfterFunc(time.Hour, c.ackTimerFired)
	c.ackTimer.Stop()
	defer c.linger() // after finished: a takeover need not wait for it
	defer close(c.finished)
	defer cancel()
	if !b.track(c) {
		nc.Close()
		return
	}
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	defer wg.Wait()

	ok := c.connect()
	if c.counted {
		defer b.stats.connected.Add(-1) // after detach
	}
	if ok {
		// The session's in-flight packets go first, before any packet of the
		// client is read: until then the session is not ready and a QoS 0
		// message for it is dropped, so a SUBSCRIBE handled earlier could miss
		// a message published after its SUBACK.
		b.redeliver(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.deliverLoop()
		}()
		c.readLoop()
	}
	c.close(dispLost, 0)
	wg.Wait()
	b.detach(c) // also when attached but the CONNACK could not be queued
}

// readLoop runs the handlers of every packet after CONNECT until the connection
// ends.
func (c *conn) readLoop() {
	maxSize := uint32(c.b.limits.MaxPacketSize)
	deadline := c.b.limits.packetDeadline(c.keepDur)
	var rd sliding
	for {
		select {
		case <-c.done:
			return
		default:
		}
		if deadline > 0 {
			// Keep-alive, or the idle limit of a client without one: either
			// way a whole packet must arrive in time, so trickling bytes does
			// not keep a connection open.
			rd.extend(c.nc.SetReadDeadline, deadline)
		}
		if pid, ok := bufferedPuback(c.br); ok {
			// The subscriber's side of every QoS 1 message: no decoding, no allocation.
			if !c.handlePuback(&packet.Puback{PacketID: pid}) {
				return
			}
			continue
		}
		p, err := packet.ReadPacket(c.br, c.version, maxSize)
		if err != nil {
			c.readError(err)
			return
		}
		if pub, ok := p.(*packet.Publish); ok && runnable(pub) {
			if !c.publishRun(pub, maxSize) {
				return
			}
			continue
		}
		if !c.handle(p) {
			return
		}
	}
}

// handle runs the handler of p and reports whether the connection goes on.
func (c *conn) handle(p packet.Packet) bool {
	switch p := p.(type) {
	case *packet.Publish:
		return c.handlePublish(p)
	case *packet.Puback:
		return c.handlePuback(p)
	case *packet.Pubrec:
		return c.handlePubrec(p)
	case *packet.Pubrel:
		return c.handlePubrel(p)
	case *packet.Pubcomp:
		return c.handlePubcomp(p)
	case *packet.Subscribe:
		return c.handleSubscribe(p)
	case *packet.Unsubscribe:
		return c.handleUnsubscribe(p)
	case *packet.Pingreq:
		return c.sendPacket(&packet.Pingresp{})
	case *packet.Disconnect:
		c.handleDisconnect(p)
		return false
	case *packet.Connect:
		c.protocolError("second CONNECT")
		return false
	default:
		// CONNACK, SUBACK, AUTH without an authentication method, ...: packets a
		// client may not send to this server.
		c.protocolError("unexpected " + p.Type().String())
		return false
	}
}

func (c *conn) protocolError(msg string) {
	c.b.log.Info("broker: protocol error; closing connection", "client", c.info.ID, "err", msg)
	c.close(dispLost, packet.ProtocolError)
}

// readError closes the connection after a failed read with the reason code the
// specification asks for.
func (c *conn) readError(err error) {
	var pe *packet.Error
	switch {
	case errors.As(err, &pe):
		c.b.log.Info("broker: bad packet; closing connection", "client", c.info.ID, "remote", c.info.RemoteAddr, "err", err)
		c.close(dispLost, pe.Code)
	case errors.Is(err, os.ErrDeadlineExceeded):
		select {
		case <-c.done: // closing anyway; the deadline was ours
		default:
			if c.keepDur > 0 {
				c.b.log.Info("broker: keepalive timeout", "client", c.info.ID)
			} else {
				c.b.log.Info("broker: idle timeout (client without keep-alive)", "client", c.info.ID,
					"remote", c.info.RemoteAddr, "idle", c.b.limits.IdleTimeout)
			}
			c.close(dispLost, packet.KeepAliveTimeout)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.close(dispLost, 0)
	default:
		c.b.log.Debug("broker: read failed", "client", c.info.ID, "err", err)
		c.close(dispLost, 0)
	}
}

// close starts closing the connection once: it records how the connection ended
// and, for 5.0 clients given a reason code, queues a DISCONNECT. The writer sends
// what is queued and closes the socket.
func (c *conn) close(d disposition, rc packet.ReasonCode) {
	c.closeOnce.Do(func() {
		c.dispMu.Lock()
		c.disp = d
		c.dispMu.Unlock()
		if rc != 0 && c.version == packet.Version5 {
			if b, err := packet.Encode(nil, &packet.Disconnect{ReasonCode: rc}, packet.Version5); err == nil {
				select {
				case c.out <- outItem{b: b}:
				default:
				}
			}
		}
		close(c.done)
		// Unblocks a reader waiting for data and bounds the writer's last flush.
		c.nc.SetDeadline(time.Now().Add(time.Second))
	})
}

func (c *conn) disposition() disposition {
	c.dispMu.Lock()
	defer c.dispMu.Unlock()
	return c.disp
}

// shutdownClose is Shutdown's way of ending a connection.
func (c *conn) shutdownClose() { c.close(dispShutdown, packet.ServerShuttingDown) }

// send queues an encoded packet for the writer. A droppable packet (QoS 0) waits
// for room in the outgoing byte budgets and is dropped when there is none (see
// takeOut); any other packet is charged to them without a limit, and a full
// queue (outQueue packets) closes the connection as too slow. It reports whether
// the packet was queued.
func (c *conn) send(b []byte, droppable bool) bool {
	return c.sendItem(outItem{b: b}, droppable)
}

// sendItem is send for any outItem.
func (c *conn) sendItem(it outItem, droppable bool) bool {
	return c.queueItem(it, droppable, false)
}

// queueItem is sendItem; with hold set (for a packet that is not droppable) it
// does not wake the writer, and the caller calls signalOut once it has queued the
// last packet of its batch, so that the writer wakes once per batch and writes it
// with one write(2) (the PUBACKs of a publish run, the messages of one fan-out
// for a subscriber, a page the pump moves in flight).
func (c *conn) queueItem(it outItem, droppable, hold bool) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	n := it.cost()
	if droppable {
		if !c.takeOut(n) {
			return false
		}
	} else {
		c.outq.force(n)
		c.b.outMem.force(n)
	}
	it.n = n
	c.outMu.RLock()
	queued := false
	if !c.outDead {
		select {
		case c.out <- it:
			queued = true
		default:
		}
	}
	dead := c.outDead
	c.outMu.RUnlock()
	if queued {
		if !hold {
			c.signalOut()
		}
		return true
	}
	c.releaseOut(n)
	if droppable || dead {
		return false
	}
	c.b.log.Warn("broker: client does not read; disconnecting", "client", c.info.ID)
	c.close(dispLost, packet.ServerBusy)
	return false
}

// signalOut wakes the writer for what is queued.
func (c *conn) signalOut() {
	select {
	case c.wout <- struct{}{}:
	default:
	}
}

// heldOut collects the connections a batch queued packets for with hold set
// (queueItem), to signal them at its end.
type heldOut []*conn

// add records c (not twice in a row); a long list is signalled at once, so that a
// fan-out to many subscribers does not hold them all to its end.
func (h *heldOut) add(c *conn) {
	if n := len(*h); n > 0 && (*h)[n-1] == c {
		return
	}
	if len(*h) >= 64 {
		h.signal()
	}
	*h = append(*h, c)
}

// signal wakes the writers of the connections in h and empties it.
func (h *heldOut) signal() {
	for _, c := range *h {
		c.signalOut()
	}
	clear(*h)
	*h = (*h)[:0]
}

// sendPacket encodes p for the connection and queues it.
func (c *conn) sendPacket(p packet.Packet) bool {
	if first, pid, ok := shortAck(p); ok {
		return c.sendItem(outItem{ack: first, pid: pid}, false)
	}
	b, err := packet.Encode(nil, p, c.version)
	if err != nil {
		c.b.log.Error("broker: cannot encode packet", "client", c.info.ID, "type", p.Type(), "err", err)
		c.close(dispLost, packet.ImplementationSpecific)
		return false
	}
	return c.send(b, false)
}

// writeLoop writes what the connection's goroutines queue, coalescing: it
// writes every queued item into one buffer and flushes (one write(2)) when the
// queue is empty or the buffer full. It half-closes the socket at the end; the
// connection's last goroutine closes it (see linger).
func (c *conn) writeLoop() {
	defer c.drainOut()
	bw := bufio.NewWriterSize(c.nc, 16<<10)
	var al *aliases
	write := func(it outItem) bool {
		defer c.releaseOut(it.n)
		var err error
		switch {
		case it.pub != nil:
			if al == nil {
				al = &aliases{max: c.aliasOut}
			}
			var b []byte
			if b, err = al.encode(it.pub); err == nil {
				_, err = bw.Write(b)
			} else {
				c.b.log.Error("broker: cannot encode PUBLISH", "client", c.info.ID, "err", err)
				err = nil
			}
		case it.ack != 0:
			bw.WriteByte(it.ack)
			bw.WriteByte(2)
			bw.WriteByte(byte(it.pid >> 8))
			err = bw.WriteByte(byte(it.pid))
		case it.strip:
			err = writeStripped(bw, it.b, it.qos, it.patch, it.pid, it.dup)
		case it.patch:
			err = writePatched(bw, it.b, it.pid, it.dup)
		default:
			_, err = bw.Write(it.b)
		}
		if err != nil {
			c.close(dispLost, 0)
			return false
		}
		return true
	}
	var wd sliding
	for {
		select {
		case <-c.wout:
			wd.extend(c.nc.SetWriteDeadline, writeTimeout)
			for more := true; more; {
				select {
				case it := <-c.out:
					if !write(it) {
						return
					}
				default:
					more = false
				}
			}
			if err := bw.Flush(); err != nil {
				c.close(dispLost, 0)
				return
			}
		case <-c.done:
			// Send what was queued before the close (a CONNACK refusal, a final
			// DISCONNECT) within close's one-second deadline.
			for {
				select {
				case it := <-c.out:
					if !write(it) {
						return
					}
				default:
					if bw.Flush() == nil {
						closeWrite(c.nc)
					}
					return
				}
			}
		}
	}
}

// sliding is a read or write deadline that moves with time: at least d after
// every extend, at most d/32 more, so that a busy connection sets it (a runtime
// timer change) once per d/32 instead of once per packet.
type sliding struct{ at time.Time }

func (s *sliding) extend(set func(time.Time) error, d time.Duration) {
	now := time.Now()
	if s.at.Sub(now) >= d {
		return
	}
	s.at = now.Add(d + d/32)
	set(s.at)
}

// drainOut ends the queue when the writer exits: what is still queued, or
// queued later, is discarded and its bytes given back to the budgets.
func (c *conn) drainOut() {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.outDead = true
	for {
		select {
		case it := <-c.out:
			c.releaseOut(it.n)
		default:
			return
		}
	}
}

// closeWrite half-closes nc when it can, so the client reads everything sent
// (a final DISCONNECT) before it sees the end of the stream.
func closeWrite(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// lingerTime bounds how long a closing connection keeps reading (and
// discarding) what the client still sends, after the broker's last packet.
const lingerTime = time.Second

// linger closes the socket after draining what the client still sends for a
// moment: closing a socket with unread data makes TCP send a reset, which can
// destroy the broker's final packet (DISCONNECT 0x93, a refusing CONNACK)
// before the client reads it.
func (c *conn) linger() {
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, c.br)
	c.nc.Close()
}

// deliverLoop moves queued messages in flight whenever it is kicked (an
// acknowledgement freed the window, or a message was queued); serve has
// redelivered the session's in-flight packets before it starts.
func (c *conn) deliverLoop() {
	defer c.ackTimer.Stop()
	for {
		c.b.pump(c)
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
	}
}

// wake kicks the delivery pump without blocking.
func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
