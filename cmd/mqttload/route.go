package main

import (
	"slices"
	"sync"
	"sync/atomic"
)

// route is the broker addresses one client may connect to, in the order it tries
// them. Client k of a kind (publisher or subscriber) has its own node, address
// k mod n of its list (so clients are spread round-robin), then the others in list
// order. A client that loses its connection tries the address after the one it was
// connected to first (failover), and so on around the list: in a cluster, where
// every node serves every session, it resumes its session on the next node while
// its own is down.
type route struct {
	addrs     []string // host:port; addrs[0] is the client's own node
	failovers *atomic.Int64

	mu   sync.Mutex
	last string // address of the last successful connection; "" before the first
}

// newRoute returns the route of client k over list (which must not be empty);
// failovers counts the connections made to another address than the one before.
func newRoute(list []string, k int, failovers *atomic.Int64) *route {
	return &route{addrs: rotate(list, k%len(list)), failovers: failovers}
}

// rotate returns list starting at index i, wrapping around.
func rotate(list []string, i int) []string {
	return append(slices.Clone(list[i:]), list[:i]...)
}

// first is the order of a first connection: the client's own node first.
func (rt *route) first() []string { return rt.addrs }

// after is the order of a reconnection after the connection to addr was lost: the
// next address of the route first, addr itself last. An addr not in the route
// gives first's order.
func (rt *route) after(addr string) []string {
	i := slices.Index(rt.addrs, addr)
	if i < 0 {
		return rt.addrs
	}
	return rotate(rt.addrs, (i+1)%len(rt.addrs))
}

// connected records a successful connection to addr.
func (rt *route) connected(addr string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.last != "" && addr != rt.last && rt.failovers != nil {
		rt.failovers.Add(1)
	}
	rt.last = addr
}

// current is the address of the last successful connection ("" before the first).
func (rt *route) current() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.last
}
