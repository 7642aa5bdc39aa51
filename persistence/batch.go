package persistence

import "fmt"

// OpKind names one kind of write inside a [Batch].
type OpKind uint8

// The operations a [Batch] can carry. Each mirrors the single-call method of the same
// name and has the same semantics, including its errors.
const (
	OpCreate                 OpKind = iota + 1 // Sessions.Create
	OpDelete                                   // Sessions.Delete (cascading)
	OpPacketAppend                             // Packets.PacketAppend
	OpPacketUpdate                             // Packets.PacketUpdate
	OpPacketDelete                             // Packets.PacketDelete
	OpPacketsDelete                            // Packets.PacketsDelete of one class
	OpSubscriptionStore                        // Subscriptions.SubscriptionsStore of one subscription
	OpSubscriptionDelete                       // Subscriptions.SubscriptionsDelete of one filter
	OpSubscriptionsDeleteAll                   // Subscriptions.SubscriptionsDeleteAll
	OpStateStore                               // State.StateStore
	OpStateDelete                              // State.StateDelete
	OpExpiryStore                              // Expiry.ExpiryStore
	OpExpiryDelete                             // Expiry.ExpiryDelete
)

// Op is one operation of a [Batch], as drivers see it. Only the fields its Kind names
// are set. The batch owns copies of every packet, state and subscription, so the
// caller may reuse its own values after adding them.
type Op struct {
	Kind         OpKind
	ID           string // the session
	Class        PacketClass
	Seq          uint64 // OpPacketDelete
	Packet       *PersistedPacket
	Subscription Subscription
	Filter       string // OpSubscriptionDelete
	State        *SessionState
	Expiry       SessionExpiry
	Base         SessionBase
}

// Batch collects writes, possibly for several sessions, that [Sessions.Apply] commits
// atomically. A broker uses it to move a packet from a queue to in-flight, or to queue
// one message for every matching subscriber before acknowledging the publisher, in one
// commit. The zero value is an empty batch ready to use; a Batch is not safe for
// concurrent use.
type Batch struct {
	ops     []Op
	appends int
}

// Len returns the number of operations in b.
func (b *Batch) Len() int { return len(b.ops) }

// Appends returns the number of OpPacketAppend operations in b: the length of the
// slice Apply returns.
func (b *Batch) Appends() int { return b.appends }

// Ops returns b's operations in the order they were added. Drivers read it; callers
// must not modify it.
func (b *Batch) Ops() []Op { return b.ops }

// Reset empties b for reuse.
func (b *Batch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
	b.appends = 0
}

// Create adds Sessions.Create(id, base).
func (b *Batch) Create(id string, base SessionBase) *Batch {
	b.ops = append(b.ops, Op{Kind: OpCreate, ID: id, Base: base})
	return b
}

// Delete adds Sessions.Delete(id).
func (b *Batch) Delete(id string) *Batch {
	b.ops = append(b.ops, Op{Kind: OpDelete, ID: id})
	return b
}

// PacketAppend adds Packets.PacketAppend(id, class, p); its sequence number is in the
// slice Apply returns, at the position of this append among b's appends.
func (b *Batch) PacketAppend(id string, class PacketClass, p *PersistedPacket) *Batch {
	b.ops = append(b.ops, Op{Kind: OpPacketAppend, ID: id, Class: class, Packet: p.Clone()})
	b.appends++
	return b
}

// PacketUpdate adds Packets.PacketUpdate(id, class, p).
func (b *Batch) PacketUpdate(id string, class PacketClass, p *PersistedPacket) *Batch {
	b.ops = append(b.ops, Op{Kind: OpPacketUpdate, ID: id, Class: class, Packet: p.Clone()})
	return b
}

// PacketDelete adds Packets.PacketDelete(id, class, seq).
func (b *Batch) PacketDelete(id string, class PacketClass, seq uint64) *Batch {
	b.ops = append(b.ops, Op{Kind: OpPacketDelete, ID: id, Class: class, Seq: seq})
	return b
}

// PacketsDelete adds Packets.PacketsDelete(id, class) for one class.
func (b *Batch) PacketsDelete(id string, class PacketClass) *Batch {
	b.ops = append(b.ops, Op{Kind: OpPacketsDelete, ID: id, Class: class})
	return b
}

// SubscriptionStore adds Subscriptions.SubscriptionsStore(id, sub).
func (b *Batch) SubscriptionStore(id string, sub Subscription) *Batch {
	b.ops = append(b.ops, Op{Kind: OpSubscriptionStore, ID: id, Subscription: sub})
	return b
}

// SubscriptionDelete adds Subscriptions.SubscriptionsDelete(id, filter).
func (b *Batch) SubscriptionDelete(id string, filter string) *Batch {
	b.ops = append(b.ops, Op{Kind: OpSubscriptionDelete, ID: id, Filter: filter})
	return b
}

// SubscriptionsDeleteAll adds Subscriptions.SubscriptionsDeleteAll(id).
func (b *Batch) SubscriptionsDeleteAll(id string) *Batch {
	b.ops = append(b.ops, Op{Kind: OpSubscriptionsDeleteAll, ID: id})
	return b
}

// StateStore adds State.StateStore(id, st).
func (b *Batch) StateStore(id string, st *SessionState) *Batch {
	b.ops = append(b.ops, Op{Kind: OpStateStore, ID: id, State: st.Clone()})
	return b
}

// StateDelete adds State.StateDelete(id).
func (b *Batch) StateDelete(id string) *Batch {
	b.ops = append(b.ops, Op{Kind: OpStateDelete, ID: id})
	return b
}

// ExpiryStore adds Expiry.ExpiryStore(id, e).
func (b *Batch) ExpiryStore(id string, e SessionExpiry) *Batch {
	b.ops = append(b.ops, Op{Kind: OpExpiryStore, ID: id, Expiry: e})
	return b
}

// ExpiryDelete adds Expiry.ExpiryDelete(id).
func (b *Batch) ExpiryDelete(id string) *Batch {
	b.ops = append(b.ops, Op{Kind: OpExpiryDelete, ID: id})
	return b
}

// Validate checks the arguments of o that no store could accept and returns an error
// matching [ErrInvalidArgument] naming the problem. Drivers call it before writing.
func (o *Op) Validate() error {
	switch o.Kind {
	case OpCreate, OpDelete, OpSubscriptionsDeleteAll, OpStateDelete, OpExpiryDelete:
		return nil
	case OpPacketAppend, OpPacketUpdate:
		if !o.Class.Valid() {
			return invalidArg("packet class %d", uint8(o.Class))
		}
		return ValidatePacket(o.Packet)
	case OpPacketDelete, OpPacketsDelete:
		if !o.Class.Valid() {
			return invalidArg("packet class %d", uint8(o.Class))
		}
		return nil
	case OpSubscriptionStore:
		return ValidateSubscription(o.Subscription)
	case OpSubscriptionDelete:
		if o.Filter == "" {
			return invalidArg("empty topic filter")
		}
		return nil
	case OpStateStore:
		if o.State == nil {
			return invalidArg("nil session state")
		}
		if o.State.Will != nil {
			return ValidatePacket(o.State.Will)
		}
		return nil
	case OpExpiryStore:
		return nil
	}
	return invalidArg("unknown batch operation %d", uint8(o.Kind))
}

// ValidatePacket checks that p can be stored: not nil, QoS 0..2.
func ValidatePacket(p *PersistedPacket) error {
	if p == nil {
		return invalidArg("nil packet")
	}
	if p.QoS > 2 {
		return invalidArg("packet QoS %d", p.QoS)
	}
	return nil
}

// ValidateSubscription checks that s can be stored: a non-empty filter, QoS 0..2 and
// retain handling 0..2.
func ValidateSubscription(s Subscription) error {
	if s.Filter == "" {
		return invalidArg("empty topic filter")
	}
	if s.QoS > 2 {
		return invalidArg("subscription QoS %d", s.QoS)
	}
	if s.RetainHandling > 2 {
		return invalidArg("retain handling %d", s.RetainHandling)
	}
	return nil
}

func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
