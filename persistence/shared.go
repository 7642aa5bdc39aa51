package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Shared stores: several brokers ("nodes") on one store. Each node holds a lease
// ([Nodes.Renew]); a session is owned by one node at a time ([Sessions.Claim],
// [Sessions.Takeover]); and a node makes its writes to a session conditional on its
// ownership with [Batch.Fence], which the database checks in the same transaction
// as the writes, so that a node that lost a session can no longer change it.

type (
	// Lease is a node's registration in a shared store: its name and when its
	// lease ends.
	Lease = driver.Lease
	// Ownership is the claim of one session by one node, identified by its
	// epoch: never reused, and greater than that of every earlier claim of the
	// session. A write fenced with an ownership is refused once another claim (or
	// a release) has replaced it.
	Ownership = driver.Ownership
)

// The errors of shared stores. Check them with errors.Is.
var (
	// ErrNotSupported reports a shared-store call on a store whose driver cannot be
	// shared (see [Store.Shared]).
	ErrNotSupported = driver.ErrNotSupported
	// ErrInUse reports an open of a store that another provider already holds, by
	// a driver that cannot be shared (an embedded file or directory).
	ErrInUse = driver.ErrInUse
	// ErrFenced reports a write or release carrying an ownership that is no
	// longer current: the session was claimed by another node (or released) since.
	// Nothing of the write was committed; the node must stop serving the session.
	ErrFenced = driver.ErrFenced
	// ErrOwned reports a [Sessions.Claim] of a session another node owns while
	// that node's lease is live.
	ErrOwned = driver.ErrOwned
	// ErrLeaseExpired reports a claim by a node without a live lease: renew it
	// with [Nodes.Renew] first.
	ErrLeaseExpired = driver.ErrLeaseExpired
)

// Shared reports whether the store's driver can be shared by several providers
// (brokers on several machines) at once, and so offers [Store.Nodes],
// [Sessions.Claim] and the rest of the shared-store calls. When it is false those
// calls return [ErrNotSupported].
func (s *Store) Shared() bool {
	_, ok := s.conn.(driver.Sharer)
	return ok
}

// Nodes is the node registry of a shared store: leases that tell which brokers are
// alive.
type Nodes struct{ s *Store }

// Nodes returns the store's node registry. Its calls return [ErrNotSupported] when
// the store is not [Store.Shared].
func (s *Store) Nodes() *Nodes { return &Nodes{s: s} }

// sharer begins a shared-store call: the store's guards, then the driver's Sharer.
func (s *Store) sharer(ctx context.Context, op string) (context.Context, call, driver.Sharer, error) {
	ctx, c, err := s.begin(ctx, op, 0)
	if err != nil {
		return ctx, c, nil, err
	}
	sh, ok := s.conn.(driver.Sharer)
	if !ok {
		return ctx, c, nil, errNotShared(op)
	}
	return ctx, c, sh, nil
}

func errNotShared(op string) error {
	return fmt.Errorf("%w: %s: this store's driver cannot be shared by several brokers (Store.Shared is false)", ErrNotSupported, op)
}

func checkNode(node string) error {
	if node == "" {
		return invalidArg("empty node name")
	}
	return nil
}

// Renew registers node, or extends its registration, with a lease that ends ttl
// from now (on the store's clock) and returns it. A node renews well within ttl
// (a third of it, say) for as long as it serves sessions: once its lease has
// expired, any other node may claim its sessions without a takeover. Renewing an
// expired lease is allowed; the sessions nobody claimed meanwhile are still the
// node's.
func (n *Nodes) Renew(ctx context.Context, node string, ttl time.Duration) (Lease, error) {
	ctx, c, sh, err := n.s.sharer(ctx, "NodesRenew")
	if err == nil {
		err = checkNode(node)
	}
	if err == nil && ttl <= 0 {
		err = invalidArg("lease duration %s is not positive", ttl)
	}
	if err != nil {
		return Lease{}, c.end(err)
	}
	l, err := sh.RenewLease(ctx, node, ttl)
	return l, c.end(err)
}

// Leave removes node's lease, as a broker does when it shuts down: its sessions
// become claimable at once. Leaving a node that holds no lease is a no-op.
func (n *Nodes) Leave(ctx context.Context, node string) error {
	ctx, c, sh, err := n.s.sharer(ctx, "NodesLeave")
	if err == nil {
		err = checkNode(node)
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(sh.Leave(ctx, node))
}

// ForEach calls fn for every registered node, expired leases included, in no
// particular order: a broker looks for nodes whose lease has expired to take over
// their sessions' wills and expiry.
func (n *Nodes) ForEach(ctx context.Context, fn func(Lease) error) error {
	s := n.s
	ctx, c, sh, err := s.sharer(ctx, "NodesForEach")
	if err == nil && fn == nil {
		err = invalidArg("nil lease callback")
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(sh.LeasesForEach(ctx, func(l Lease) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(l)
	}))
}

// claim is Claim and Takeover.
func (ss *Sessions) claim(ctx context.Context, op, id, node string, takeover bool) (Ownership, error) {
	ctx, c, sh, err := ss.s.sharer(ctx, op)
	if err == nil {
		err = checkNode(node)
	}
	if err != nil {
		return Ownership{}, c.end(err)
	}
	o, err := sh.Claim(ctx, id, node, takeover)
	return o, c.end(err)
}

// Claim makes node the owner of session id under a new epoch and returns the
// ownership, to pass to [Batch.Fence] with every write of the session. The session
// need not exist (a broker claims a client identifier before it creates the
// session). Node must hold a live lease ([ErrLeaseExpired] otherwise). The claim
// succeeds if the session has no owner, if its owner's lease has expired or if its
// owner is node itself (whose earlier ownership is then fenced); it fails with
// [ErrOwned] when another node with a live lease owns it. Of concurrent claims of
// one session, exactly one succeeds.
func (ss *Sessions) Claim(ctx context.Context, id, node string) (Ownership, error) {
	return ss.claim(ctx, "Claim", id, node, false)
}

// Takeover makes node the owner of session id under a new epoch whoever owns it, as
// an MQTT CONNECT for a session held elsewhere does: the previous owner's fenced
// writes are refused with [ErrFenced] from then on. Node must hold a live lease.
// A write of the previous owner that committed before Takeover returned is seen by
// the new owner's reads that follow it.
func (ss *Sessions) Takeover(ctx context.Context, id, node string) (Ownership, error) {
	return ss.claim(ctx, "Takeover", id, node, true)
}

// Release gives up o, as a broker does when a session's client disconnects
// cleanly: the session has no owner afterwards and any node may claim it. It fails
// with [ErrFenced] when o is no longer the session's ownership.
func (ss *Sessions) Release(ctx context.Context, o Ownership) error {
	ctx, c, sh, err := ss.s.sharer(ctx, "Release")
	if err == nil {
		err = checkOwnership(o)
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(sh.Release(ctx, o))
}

func checkOwnership(o Ownership) error {
	if o.Epoch == 0 {
		return invalidArg("ownership with epoch 0 (not one a claim returned)")
	}
	return checkNode(o.Node)
}

// Owner returns the current ownership of session id, or [ErrNotFound] when nobody
// owns it. The owner's lease may have expired: see [Nodes.ForEach].
func (ss *Sessions) Owner(ctx context.Context, id string) (Ownership, error) {
	ctx, c, sh, err := ss.s.sharer(ctx, "Owner")
	if err != nil {
		return Ownership{}, c.end(err)
	}
	o, err := sh.Owner(ctx, id)
	return o, c.end(err)
}

// OwnedForEach calls fn for every session node owns, in no particular order: a
// broker reads its own after a restart, or a dead node's to claim them.
func (ss *Sessions) OwnedForEach(ctx context.Context, node string, fn func(Ownership) error) error {
	s := ss.s
	ctx, c, sh, err := s.sharer(ctx, "OwnedForEach")
	if err == nil {
		err = checkNode(node)
	}
	if err == nil && fn == nil {
		err = invalidArg("nil ownership callback")
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(sh.OwnedForEach(ctx, node, func(o Ownership) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(o)
	}))
}

// Fence makes b conditional on o: [Sessions.Apply] commits b only if, when it
// commits, o is still the ownership of session o.ID; otherwise it fails with
// [ErrFenced] and writes nothing of b. The database checks it in the same
// transaction as b's writes, so a node that lost the session (to a takeover, or to
// a claim after its lease expired) can no longer change it. A batch may carry
// several fences (one per session it writes that the node owns); writes to
// sessions without a fence are not checked. Applying a fenced batch to a store
// that is not [Store.Shared] returns [ErrNotSupported].
func (b *Batch) Fence(o Ownership) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpFence, ID: o.ID, Epoch: o.Epoch})
	return b
}

// fences returns ops with their fences first, or ErrNotSupported when ops carry a
// fence and the store cannot be shared. A fence writes nothing, so moving it is
// invisible, and a driver can then check every fence before it takes a write lock.
func (s *Store) fences(op string, ops []driver.Op) ([]driver.Op, error) {
	n, inOrder := 0, true
	for i := range ops {
		if ops[i].Kind == driver.OpNotify && !s.Notifies() {
			return nil, errNotShared(op + " of a batch with notifications")
		}
		if ops[i].Kind == driver.OpFence {
			if n != i {
				inOrder = false
			}
			n++
		}
	}
	switch {
	case n == 0:
		return ops, nil
	case !s.Shared():
		return nil, errNotShared(op + " of a fenced batch")
	case inOrder:
		return ops, nil
	}
	out := make([]driver.Op, 0, len(ops))
	for i := range ops {
		if ops[i].Kind == driver.OpFence {
			out = append(out, ops[i])
		}
	}
	for i := range ops {
		if ops[i].Kind != driver.OpFence {
			out = append(out, ops[i])
		}
	}
	return out, nil
}
