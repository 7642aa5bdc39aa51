package broker

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/persistence"
)

// noOwner is the owner recorded at restore for a session that was connected but
// that no node claims: no node has this name, so claimOrphans adopts it.
const noOwner = "\x00none"

// clusterOwners reads, in cluster mode, which node owns each session: one
// Sessions.OwnedForEach per node in the store's lease table. Outside a cluster it
// returns nil.
func (b *Broker) clusterOwners(ctx context.Context, w *restoreWatch) (map[string]persistence.Ownership, error) {
	if b.cl == nil {
		return nil, nil
	}
	w.enter("reading session owners (Nodes.ForEach, Sessions.OwnedForEach)")
	var nodes []string
	if err := b.opts.Store.Nodes().ForEach(ctx, func(l persistence.Lease) error {
		nodes = append(nodes, l.Node)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	owners := map[string]persistence.Ownership{}
	for _, n := range nodes {
		err := b.sess.OwnedForEach(ctx, n, func(o persistence.Ownership) error {
			owners[o.ID] = o
			w.ticks.Add(1)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sessions owned by node %q: %w", n, err)
		}
	}
	return owners, nil
}

// routingOnly decides, in cluster mode, whether restore keeps only the routing of
// s (its subscriptions): true when another node owns it, or when nobody does and
// it is not connected anywhere. A session this node owns is restored whole, as
// outside a cluster; one whose client was connected to a node that no longer
// owns it is left for claimOrphans to adopt.
func (b *Broker) routingOnly(s *session, owners map[string]persistence.Ownership) bool {
	if b.cl == nil {
		return false
	}
	o, ok := owners[s.id]
	if ok && o.Node == b.cl.node {
		s.own, s.owner = o, b.cl.node
		return false
	}
	connected := s.state.DisconnectedAt.IsZero()
	switch {
	case ok:
		s.owner, s.online = o.Node, connected
	case connected:
		s.owner = noOwner
	}
	return true
}

// ownedByLive reports whether a routing-only session is owned by a node with a
// live lease (which serves it). Caller holds s.mu, or s is not shared yet.
func (b *Broker) ownedByLive(s *session) bool {
	return s.owner != "" && s.owner != noOwner && b.isLive(s.owner)
}
