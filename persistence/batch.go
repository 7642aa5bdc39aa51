package persistence

import "github.com/mqttstore/mqttstore/persistence/driver"

// Batch collects writes, possibly for several sessions, that [Sessions.Apply] commits
// atomically. The batch owns copies of every packet and state added to it, so the
// caller may reuse its own values after adding them. A broker uses it to move a packet from a queue to in-flight, or to queue
// one message for every matching subscriber before acknowledging the publisher, in one
// commit. The zero value is an empty batch ready to use; a Batch is not safe for
// concurrent use.
type Batch struct {
	ops     []driver.Op
	appends int
}

// Len returns the number of operations in b.
func (b *Batch) Len() int { return len(b.ops) }

// Appends returns the number of OpPacketAppend operations in b: the length of the
// slice Apply returns.
func (b *Batch) Appends() int { return b.appends }

// Ops returns b's operations in the order they were added; callers must not modify
// it.
func (b *Batch) Ops() []driver.Op { return b.ops }

// Reset empties b for reuse.
func (b *Batch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
	b.appends = 0
}

// Create adds Sessions.Create(id, base).
func (b *Batch) Create(id string, base SessionBase) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpCreate, ID: id, Base: base})
	return b
}

// Delete adds Sessions.Delete(id).
func (b *Batch) Delete(id string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpDelete, ID: id})
	return b
}

// PacketAppend adds Sessions.PacketAppend(id, class, p); its sequence number is in the
// slice Apply returns, at the position of this append among b's appends.
func (b *Batch) PacketAppend(id string, class PacketClass, p *PersistedPacket) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpPacketAppend, ID: id, Class: class, Packet: p.Clone()})
	b.appends++
	return b
}

// PacketAppendShared is PacketAppend without the copy: the batch keeps p itself,
// so neither p nor p.Data may change until Apply has returned. A broker that
// hands the same immutable encoding to the store and to its clients uses it to
// save a copy per message.
func (b *Batch) PacketAppendShared(id string, class PacketClass, p *PersistedPacket) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpPacketAppend, ID: id, Class: class, Packet: p})
	b.appends++
	return b
}

// PacketUpdate adds Sessions.PacketUpdate(id, class, p).
func (b *Batch) PacketUpdate(id string, class PacketClass, p *PersistedPacket) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpPacketUpdate, ID: id, Class: class, Packet: p.Clone()})
	return b
}

// PacketDelete adds Sessions.PacketDelete(id, class, seq).
func (b *Batch) PacketDelete(id string, class PacketClass, seq uint64) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpPacketDelete, ID: id, Class: class, Seq: seq})
	return b
}

// PacketsDelete adds Sessions.PacketsDelete(id, class) for one class.
func (b *Batch) PacketsDelete(id string, class PacketClass) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpPacketsDelete, ID: id, Class: class})
	return b
}

// SubscriptionStore adds Sessions.SubscriptionsStore(id, sub).
func (b *Batch) SubscriptionStore(id string, sub Subscription) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpSubscriptionStore, ID: id, Subscription: sub})
	return b
}

// SubscriptionDelete adds Sessions.SubscriptionsDelete(id, filter).
func (b *Batch) SubscriptionDelete(id string, filter string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpSubscriptionDelete, ID: id, Filter: filter})
	return b
}

// SubscriptionsDeleteAll adds Sessions.SubscriptionsDeleteAll(id).
func (b *Batch) SubscriptionsDeleteAll(id string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpSubscriptionsDeleteAll, ID: id})
	return b
}

// StateStore adds Sessions.StateStore(id, st).
func (b *Batch) StateStore(id string, st *SessionState) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpStateStore, ID: id, State: st.Clone()})
	return b
}

// StateDelete adds Sessions.StateDelete(id).
func (b *Batch) StateDelete(id string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpStateDelete, ID: id})
	return b
}

// ExpiryStore adds Sessions.ExpiryStore(id, e).
func (b *Batch) ExpiryStore(id string, e SessionExpiry) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpExpiryStore, ID: id, Expiry: e})
	return b
}

// ExpiryDelete adds Sessions.ExpiryDelete(id).
func (b *Batch) ExpiryDelete(id string) *Batch {
	b.ops = append(b.ops, driver.Op{Kind: driver.OpExpiryDelete, ID: id})
	return b
}
