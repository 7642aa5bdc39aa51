package driver

import "fmt"

// OpKind names one kind of write in [Conn.Apply].
type OpKind uint8

// The operations [Conn.Apply] carries. Each mirrors the persistence.Sessions method
// named beside it and has the same semantics, including its errors.
const (
	OpCreate                 OpKind = iota + 1 // Sessions.Create
	OpDelete                                   // Sessions.Delete (cascading)
	OpPacketAppend                             // Sessions.PacketAppend
	OpPacketUpdate                             // Sessions.PacketUpdate
	OpPacketDelete                             // Sessions.PacketDelete
	OpPacketsDelete                            // Sessions.PacketsDelete of one class
	OpSubscriptionStore                        // Sessions.SubscriptionsStore of one subscription
	OpSubscriptionDelete                       // Sessions.SubscriptionsDelete of one filter
	OpSubscriptionsDeleteAll                   // Sessions.SubscriptionsDeleteAll
	OpStateStore                               // Sessions.StateStore
	OpStateDelete                              // Sessions.StateDelete
	OpExpiryStore                              // Sessions.ExpiryStore
	OpExpiryDelete                             // Sessions.ExpiryDelete
	OpFence                                    // Batch.Fence: commit only while session ID is owned under Epoch (see Sharer)
	OpNotify                                   // Batch.Notify: send Payload on Channel when the Apply commits (see Notifier)
)

// Op is one write, as drivers see it. Only the fields its Kind names are set. Its
// packet and state belong to the caller: a driver copies what it keeps and modifies
// nothing.
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
	Epoch        uint64 // OpFence
	Channel      string // OpNotify
	Payload      string // OpNotify
}

// Validate checks the arguments of o that no store could accept and returns an error
// matching [ErrInvalidArgument] naming the problem. The SDK calls it before a
// driver sees o.
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
	case OpFence:
		if o.Epoch == 0 {
			return invalidArg("fence with epoch 0 (no claim has epoch 0)")
		}
		return nil
	case OpNotify:
		return ValidateNotification(o.Channel, o.Payload)
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
