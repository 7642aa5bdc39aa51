package driver

import (
	"context"
	"errors"
	"time"
)

// The errors of shared stores (see [Sharer]).
var (
	// ErrNotSupported reports a call the driver does not offer, such as the
	// shared-store calls of a driver that cannot be shared.
	ErrNotSupported = errors.New("persistence: not supported by this driver")
	// ErrInUse reports an open of a store that another provider (another process,
	// or another open in this one) already holds, by a driver that cannot be
	// shared: an embedded engine serves one broker at a time.
	ErrInUse = errors.New("persistence: store is in use by another provider and this driver cannot be shared")
	// ErrFenced reports a write, or a release, carrying a session ownership that
	// is no longer current: another node claimed the session since (a takeover,
	// or a claim after the holder's lease expired), or the holder released it.
	// Nothing of the write was committed.
	ErrFenced = errors.New("persistence: fenced: the session's ownership has moved")
	// ErrOwned reports a claim of a session that another node owns while that
	// node's lease is live; only a takeover may move it.
	ErrOwned = errors.New("persistence: session owned by another live node")
	// ErrLeaseExpired reports a claim by a node that holds no live lease (it never
	// renewed one, left, or let it expire).
	ErrLeaseExpired = errors.New("persistence: node has no live lease")
)

// Lease is a node's registration in a shared store.
type Lease struct {
	// Node is the node's name.
	Node string
	// Expires is when the lease ends, on the clock of the provider that renewed it.
	Expires time.Time
}

// Ownership is the claim of one session by one node.
type Ownership struct {
	// ID is the session.
	ID string
	// Node is the owning node.
	Node string
	// Epoch identifies this claim. It is never 0, never reused (across sessions,
	// nor after a session is deleted or released and claimed again), and greater
	// than the epoch of every earlier claim of the same session.
	Epoch uint64
}

// Sharer is implemented by a [Conn] whose store several providers, on several
// machines, may open at once (as PostgreSQL's can; an embedded engine's cannot). The
// SDK discovers it with a type assertion, as database/sql discovers optional driver
// interfaces; a driver that does not implement it cannot be shared, and the SDK
// answers every shared-store call with [ErrNotSupported] without calling the driver.
//
// Nodes hold leases (RenewLease); a node claims a session (Claim) and then makes its
// writes conditional on its claim with an [OpFence] operation in the same Apply. A
// Sharer's Apply must honour OpFence in the same transaction as the writes:
// checking the epoch and then writing in a second step is not enough, since another
// node may claim the session in between. The SDK passes an Apply's OpFence
// operations before its writes, so a driver may check (and lock) every fence before
// it writes anything.
//
// Times are read from the [Env] clock of the provider making the call: a lease
// renewed by one provider expires when another provider's clock passes it. Clocks
// only decide when a claim without takeover may move a session; fencing itself
// compares epochs and does not depend on them.
//
// The SDK checks arguments (non-empty node names, positive lease durations,
// non-zero epochs) before a Sharer sees them.
type Sharer interface {
	// RenewLease registers node, or extends its registration, with a lease ending
	// ttl after the provider's clock's now, and returns it. Renewing a lease that
	// expired is allowed: the sessions nobody claimed meanwhile are still the
	// node's.
	RenewLease(ctx context.Context, node string, ttl time.Duration) (Lease, error)
	// Leave removes node's lease: its sessions become claimable at once. Leaving
	// a node that holds no lease is a no-op.
	Leave(ctx context.Context, node string) error
	// LeasesForEach calls fn for every registered node, expired leases included,
	// in no particular order.
	LeasesForEach(ctx context.Context, fn func(Lease) error) error

	// Claim makes node the owner of session id, under a new epoch, and returns
	// the ownership. The session need not exist: a broker claims a client
	// identifier before it creates the session. Node must hold a live lease, or
	// the claim fails with [ErrLeaseExpired]. Without takeover the claim
	// succeeds only if the session has no owner, its owner holds no live lease,
	// or its owner is node itself; otherwise it fails with [ErrOwned]. With
	// takeover it succeeds whoever owns the session. Of concurrent claims that
	// may not both succeed, exactly one does.
	Claim(ctx context.Context, id, node string, takeover bool) (Ownership, error)
	// Release gives up o: the session has no owner afterwards. It fails with
	// [ErrFenced] when o is not the current ownership of o.ID.
	Release(ctx context.Context, o Ownership) error
	// Owner returns the current ownership of session id, or [ErrNotFound] when
	// it has none.
	Owner(ctx context.Context, id string) (Ownership, error)
	// OwnedForEach calls fn for every session node owns, in no particular order.
	OwnedForEach(ctx context.Context, node string, fn func(Ownership) error) error
}
