package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// Cluster mode: several brokers ("nodes") on one shared store (persistence
// Store.Shared, e.g. PostgreSQL). See ARCHITECTURE.md, "Running several brokers",
// for the design; in short:
//
//   - every node knows every session's subscriptions (restore, then "sub"
//     notifications), so a publish on any node reaches every subscriber: a target
//     session this node does not own gets the message appended to its stored queue,
//     and its owner is woken by a "wake" notification in the same transaction;
//   - a session is owned by one node at a time (Sessions.Takeover at CONNECT); every
//     write the owner makes carries a Fence, so a node that lost a session can no
//     longer change it (persistence.ErrFenced: the node drops the session);
//   - a node renews its lease every LeaseTTL/3; the sessions of a node whose lease
//     ended are claimed by the others (exactly one claim wins), which then run their
//     wills and expiry.

// DefaultLeaseTTL is Options.LeaseTTL's default.
const DefaultLeaseTTL = 10 * time.Second

// clusterChannel is the notification channel the nodes of one store share.
const clusterChannel = "mqttbroker"

// barrierWait bounds how long a SUBSCRIBE waits for the other live nodes to route
// its subscriptions before the SUBACK goes out anyway.
const barrierWait = 2 * time.Second

// clusterEvents is how many notifications may wait for the node to handle them;
// beyond it the node re-reads every session's subscriptions instead.
const clusterEvents = 1 << 16

// note is one notification between nodes, as JSON.
type note struct {
	K   string   `json:"k"`             // sub, ack, wake, own, off, gone, leave
	N   string   `json:"n,omitempty"`   // the sending node
	ID  string   `json:"id,omitempty"`  // the session
	IDs []string `json:"ids,omitempty"` // wake: the sessions
	E   uint64   `json:"e,omitempty"`   // own: the new ownership's epoch
	C   bool     `json:"c,omitempty"`   // own: the client is connected
	R   uint64   `json:"r,omitempty"`   // sub, ack: the barrier
	To  string   `json:"to,omitempty"`  // ack: the node waiting
}

func (n note) encode() string {
	b, _ := json.Marshal(n)
	return string(b)
}

// cluster is a broker's cluster-mode state; nil on a store that is not shared.
type cluster struct {
	node string
	ttl  time.Duration

	events   chan string
	overflow atomic.Bool
	ready    chan struct{} // closed once the first Listen is in place

	mu    sync.Mutex
	live  map[string]bool     // other nodes with a live lease, at the last renewal
	waits map[uint64]*barrier // SUBSCRIBEs waiting for acks
	req   uint64
}

type barrier struct {
	need map[string]bool
	done chan struct{}
}

// Node returns the broker's node name in a cluster, or "" when its store is not
// shared.
func (b *Broker) Node() string {
	if b.cl == nil {
		return ""
	}
	return b.cl.node
}

// defaultNode derives a node name: host name, process id and a random suffix.
func defaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var r [3]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// startCluster registers the node and starts listening before restore reads the
// store, so that no change made meanwhile by another node goes unnoticed.
func (b *Broker) startCluster(ctx context.Context) error {
	if !b.opts.Store.Shared() {
		return nil
	}
	if !b.opts.Store.Notifies() {
		return fmt.Errorf("broker: the store is shared but carries no notifications: cluster mode needs both")
	}
	cl := &cluster{
		node: b.opts.Node, ttl: b.opts.LeaseTTL,
		events: make(chan string, clusterEvents), ready: make(chan struct{}),
		live: map[string]bool{}, waits: map[uint64]*barrier{},
	}
	if cl.node == "" {
		cl.node = defaultNode()
	}
	if cl.ttl <= 0 {
		cl.ttl = DefaultLeaseTTL
	}
	b.cl = cl
	if _, err := b.opts.Store.Nodes().Renew(ctx, cl.node, cl.ttl); err != nil {
		return fmt.Errorf("renewing the lease of node %q: %w", cl.node, err)
	}
	b.bg.Add(1)
	go b.listenLoop()
	select {
	case <-cl.ready:
	case <-ctx.Done():
		return fmt.Errorf("listening for the other nodes: %w", ctx.Err())
	}
	if err := b.refreshLive(ctx); err != nil {
		return err
	}
	b.log.Info("broker: cluster mode", "node", cl.node, "lease", cl.ttl)
	return nil
}

// runCluster starts the node's background work once restore is done.
func (b *Broker) runCluster() {
	if b.cl == nil {
		return
	}
	b.bg.Add(2)
	go b.eventLoop()
	go b.leaseLoop()
}

// leaveCluster ends the node's lease at shutdown, so its sessions are claimable
// at once, and tells the other nodes.
func (b *Broker) leaveCluster(ctx context.Context) {
	if b.cl == nil {
		return
	}
	if err := b.opts.Store.Nodes().Leave(ctx, b.cl.node); err != nil {
		b.log.Warn("broker: leaving the cluster", "node", b.cl.node, "err", err)
		return
	}
	if err := b.opts.Store.Notify(ctx, clusterChannel, note{K: "leave", N: b.cl.node}.encode()); err != nil {
		b.log.Warn("broker: telling the cluster this node left", "err", err)
	}
}

// listenLoop listens for the other nodes' notifications until shutdown; after a
// broken connection it listens again and catches up from the store.
func (b *Broker) listenLoop() {
	defer b.bg.Done()
	cl := b.cl
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stopBG:
			cancel()
		case <-ctx.Done():
		}
	}()
	first := true
	for {
		err := b.opts.Store.Listen(ctx, clusterChannel, func() {
			if first {
				first = false
				close(cl.ready)
			} else {
				cl.overflow.Store(true) // notifications were missed: catch up
				b.nudge()
			}
		}, func(p string) {
			select {
			case cl.events <- p:
			default:
				cl.overflow.Store(true)
			}
		})
		select {
		case <-b.stopBG:
			return
		case <-b.ctx.Done():
			return
		default:
		}
		b.log.Warn("broker: cluster notifications interrupted; listening again", "err", err)
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
		case <-b.stopBG:
			t.Stop()
			return
		}
	}
}

// nudge wakes the event loop without a notification.
func (b *Broker) nudge() {
	select {
	case b.cl.events <- "":
	default:
	}
}

// eventLoop handles the notifications in order.
func (b *Broker) eventLoop() {
	defer b.bg.Done()
	cl := b.cl
	for {
		select {
		case <-b.stopBG:
			return
		case p := <-cl.events:
			if cl.overflow.Swap(false) {
				b.resync()
			}
			if p != "" {
				b.handleNote(p)
			}
		}
	}
}

// leaseLoop renews the node's lease every third of its length, and claims the
// sessions of the nodes whose lease ended.
func (b *Broker) leaseLoop() {
	defer b.bg.Done()
	cl := b.cl
	t := time.NewTicker(cl.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-b.stopBG:
			return
		case <-t.C:
		}
		ctx, cancel := b.storeCtx()
		if _, err := b.opts.Store.Nodes().Renew(ctx, cl.node, cl.ttl); err != nil {
			b.storageError("Nodes.Renew", "", err)
		} else if err := b.refreshLive(ctx); err != nil {
			b.storageError("Nodes.ForEach", "", err)
		} else {
			b.claimOrphans(ctx)
		}
		cancel()
	}
}

// refreshLive reads which other nodes hold a live lease.
func (b *Broker) refreshLive(ctx context.Context) error {
	now := b.now()
	live := map[string]bool{}
	err := b.opts.Store.Nodes().ForEach(ctx, func(l persistence.Lease) error {
		if l.Node != b.cl.node && l.Expires.After(now) {
			live[l.Node] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the cluster's nodes: %w", err)
	}
	b.cl.mu.Lock()
	b.cl.live = live
	b.cl.mu.Unlock()
	return nil
}

func (b *Broker) isLive(node string) bool {
	if node == b.cl.node {
		return true
	}
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	return b.cl.live[node]
}

// handleNote handles one notification from a node (this one included).
func (b *Broker) handleNote(p string) {
	var n note
	if err := json.Unmarshal([]byte(p), &n); err != nil {
		b.log.Warn("broker: unreadable cluster notification ignored", "err", err)
		return
	}
	self := n.N == b.cl.node
	switch n.K {
	case "sub":
		if !self {
			b.reloadRemote(n.ID)
			if n.R != 0 { // someone waits
				b.notifyLater(note{K: "ack", N: b.cl.node, To: n.N, R: n.R})
			}
		}
	case "ack":
		if n.To == b.cl.node {
			b.cl.mu.Lock()
			if w := b.cl.waits[n.R]; w != nil && w.need[n.N] {
				delete(w.need, n.N)
				if len(w.need) == 0 {
					close(w.done)
					delete(b.cl.waits, n.R)
				}
			}
			b.cl.mu.Unlock()
		}
	case "wake":
		for _, id := range n.IDs {
			b.wakeOwned(id)
		}
	case "own":
		if !self {
			b.lostTo(n.ID, n.N, n.E, n.C)
		}
	case "off":
		if !self {
			b.setOwner(n.ID, n.N, false)
		}
	case "gone":
		if !self {
			b.reloadRemote(n.ID)
		}
	case "leave":
		if !self {
			b.cl.mu.Lock()
			delete(b.cl.live, n.N)
			b.cl.mu.Unlock()
			ctx, cancel := b.storeCtx()
			b.claimOrphans(ctx)
			cancel()
		}
	}
}

// notifyLater sends n without holding up the event loop's caller for long.
func (b *Broker) notifyLater(n note) {
	ctx, cancel := b.storeCtx()
	defer cancel()
	if err := b.opts.Store.Notify(ctx, clusterChannel, n.encode()); err != nil {
		b.storageError("Notify("+n.K+")", n.ID, err)
	}
}

// owned reports whether this node owns s (clustered) — always true outside a
// cluster. Caller holds s.mu.
func (b *Broker) owned(s *session) bool { return b.cl == nil || s.own.Epoch != 0 }

// fence adds s's ownership to batch in a cluster. Caller holds s.mu.
func (b *Broker) fence(s *session, batch *persistence.Batch) {
	if b.cl != nil && s.own.Epoch != 0 {
		batch.Fence(s.own)
	}
}

// lookup returns the session known as id, or nil.
func (b *Broker) lookup(id string) *session {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sessions[id]
}

// remoteSession returns the routing-only session for id, creating it.
func (b *Broker) remoteSession(id string) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions[id]
	if s == nil || s.isGone() {
		s = newSession(id)
		s.stored = true
		b.sessions[id] = s
	}
	return s
}

// reloadRemote re-reads the subscriptions of a session another node changed (or
// deleted) and routes to them.
func (b *Broker) reloadRemote(id string) {
	ctx, cancel := b.storeCtx()
	defer cancel()
	subs, err := b.sess.SubscriptionsLoad(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) {
		s := b.lookup(id)
		if s == nil {
			return
		}
		s.mu.Lock()
		if s.own.Epoch != 0 || s.conn != nil {
			s.mu.Unlock()
			return
		}
		s.gone = true
		b.unindex(s)
		s.mu.Unlock()
		b.forget(s)
		return
	}
	if err != nil {
		b.storageError("SubscriptionsLoad(cluster)", id, err)
		return
	}
	s := b.remoteSession(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.own.Epoch != 0 {
		return // ours: only we change it
	}
	b.setSubs(s, subs)
}

// setSubs replaces s's subscriptions in memory and in the routing tree. Caller
// holds s.mu.
func (b *Broker) setSubs(s *session, subs []persistence.Subscription) {
	b.unindex(s)
	s.subs = make(map[string]persistence.Subscription, len(subs))
	for _, sub := range subs {
		s.subs[sub.Filter] = sub
		b.subs.add(sub.Filter, s)
	}
}

// setOwner records which node owns a session of another node, and whether its
// client is connected there.
func (b *Broker) setOwner(id, node string, online bool) {
	s := b.remoteSession(id)
	s.mu.Lock()
	if s.own.Epoch == 0 {
		s.owner, s.online = node, online
	}
	s.mu.Unlock()
}

// lostTo handles another node's claim of session id with epoch: if this node held
// it under an older epoch, it stops serving it at once — the connection is closed
// as MQTT requires for a takeover, with no will and no write (they would be
// fenced) — and keeps only its subscriptions, for routing.
func (b *Broker) lostTo(id, node string, epoch uint64, online bool) {
	s := b.remoteSession(id)
	s.mu.Lock()
	if s.own.Epoch == 0 {
		s.owner, s.online = node, online
		s.mu.Unlock()
		return
	}
	if s.own.Epoch >= epoch {
		s.mu.Unlock()
		return
	}
	c := b.drop(s, node)
	s.online = online
	s.mu.Unlock()
	if c != nil {
		b.log.Info("broker: session taken over by another node", "client", id, "node", node)
		c.close(dispLost, packet.SessionTakenOver)
	}
}

// drop makes s a routing-only session of node: it forgets what only the owner
// keeps and returns the connection to close, if any. Caller holds s.mu.
func (b *Broker) drop(s *session, node string) *conn {
	c := s.conn
	s.conn, s.ready = nil, false
	s.own = persistence.Ownership{}
	s.owner, s.online = node, false
	subs := s.subs
	shared := s.takeShared()
	s.resetContent()
	s.subs = subs
	s.stored = true
	if len(shared) > 0 {
		go b.handOn(s, shared)
	}
	return c
}

// lostSession handles persistence.ErrFenced on a write for s: another node owns
// it now.
func (b *Broker) lostSession(s *session, op string, err error) {
	b.log.Info("broker: write refused: the session is owned by another node now", "op", op, "client", s.id, "err", err)
	s.mu.Lock()
	c := b.drop(s, "")
	s.mu.Unlock()
	if c != nil {
		c.close(dispLost, packet.SessionTakenOver)
	}
}

// wakeOwned makes the pump of an owned, connected session count its stored queue
// again: another node appended to it.
func (b *Broker) wakeOwned(id string) {
	s := b.lookup(id)
	if s == nil {
		return
	}
	s.mu.Lock()
	c := s.conn
	if s.own.Epoch == 0 || c == nil {
		s.mu.Unlock()
		return
	}
	// Recounted by the pump itself (pump), between its moves: a count read
	// while a move is being committed would count the moved messages twice
	// or not at all.
	s.stale = true
	s.mu.Unlock()
	c.wake()
}

// resync catches up after missed notifications: every session's subscriptions are
// read again, and every connected session's queue is looked at.
func (b *Broker) resync() {
	b.log.Info("broker: catching up with the cluster from the store")
	ctx, cancel := context.WithTimeout(b.ctx, 10*storeTimeout)
	defer cancel()
	seen := map[string]bool{}
	err := b.sess.LoadForEach(ctx, func(ls *persistence.LoadedSession) error {
		seen[ls.ID] = true
		s := b.remoteSession(ls.ID)
		s.mu.Lock()
		if s.own.Epoch == 0 {
			b.setSubs(s, ls.Subscriptions)
		}
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		b.storageError("LoadForEach(cluster catch-up)", "", err)
		b.cl.overflow.Store(true)
		return
	}
	b.mu.RLock()
	all := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.RUnlock()
	for _, s := range all {
		if !seen[s.id] {
			b.reloadRemote(s.id) // deleted meanwhile, unless ours
		}
		b.wakeOwned(s.id)
	}
}

// announceSubs tells the other nodes that s's subscriptions changed, in batch
// (which must commit for them to hear it; the caller applies it with applyOwned,
// which fences it). With wait it returns a wait for every
// live node's ack (new subscriptions must be routable everywhere before their
// SUBACK); a removal needs none. Caller holds s.mu.
func (b *Broker) announceSubs(s *session, batch *persistence.Batch, wait bool) *barrier {
	if b.cl == nil {
		return nil
	}
	cl := b.cl
	var w *barrier
	var r uint64
	if wait {
		cl.mu.Lock()
		cl.req++
		r = cl.req
		w = &barrier{need: map[string]bool{}, done: make(chan struct{})}
		for n := range cl.live {
			w.need[n] = true
		}
		if len(w.need) == 0 {
			close(w.done)
		} else {
			cl.waits[r] = w
		}
		cl.mu.Unlock()
	}
	batch.Notify(clusterChannel, note{K: "sub", N: cl.node, ID: s.id, R: r}.encode())
	return w
}

// awaitRouted waits, at most barrierWait, until every live node routes the
// subscriptions announced with w.
func (b *Broker) awaitRouted(w *barrier) {
	if w == nil {
		return
	}
	t := time.NewTimer(barrierWait)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		b.log.Warn("broker: a node did not confirm a subscription in time; acknowledging anyway", "wait", barrierWait)
	case <-b.stopBG:
	}
}

// cancelWait forgets a wait whose batch failed.
func (b *Broker) cancelWait(w *barrier) {
	if w == nil {
		return
	}
	b.cl.mu.Lock()
	for r, x := range b.cl.waits {
		if x == w {
			delete(b.cl.waits, r)
		}
	}
	b.cl.mu.Unlock()
}

// wakeNotes adds to batch the "wake" notifications for ids, as few as fit.
func wakeNotes(batch *persistence.Batch, ids []string) {
	for len(ids) > 0 {
		n := note{K: "wake"}
		size := 20
		for len(ids) > 0 && (len(n.IDs) == 0 || size+len(ids[0])*2+4 < persistence.MaxNotificationPayload-64) {
			size += len(ids[0])*2 + 4
			n.IDs = append(n.IDs, ids[0])
			ids = ids[1:]
		}
		p := n.encode()
		if len(p) > persistence.MaxNotificationPayload {
			continue // an id too long to announce: its owner finds the message at its next read
		}
		batch.Notify(clusterChannel, p)
	}
}

// applyOwned commits batch, a write only s's owner may make: in a cluster it is
// fenced with this node's ownership, and when another node owns s now
// (persistence.ErrFenced) this node drops s and closes its connection.
func (b *Broker) applyOwned(ctx context.Context, s *session, batch *persistence.Batch, op string) ([]uint64, error) {
	if b.cl != nil {
		s.mu.Lock()
		b.fence(s, batch)
		s.mu.Unlock()
	}
	seqs, err := b.sess.Apply(ctx, batch)
	if err != nil && b.cl != nil && errors.Is(err, persistence.ErrFenced) {
		b.lostSession(s, op, err)
	}
	return seqs, err
}
