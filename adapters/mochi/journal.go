package mochi

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/persistence"
)

// OnPublish commits a QoS 1 or 2 message to the journal before Mochi acknowledges
// it (only with Options.Server).
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.server == nil || pk.FixedHeader.Qos == 0 || cl.Net.Inline || pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	p, err := toPersisted(pk)
	if err != nil {
		h.logErr("encode journal entry", cl.ID, err)
		return pk, nil
	}
	ctx, cancel := h.ctx()
	defer cancel()
	seq, err := h.sess.PacketAppend(ctx, JournalID, persistence.ClassQoS12, p)
	if err != nil {
		h.logErr("journal publish", cl.ID, err)
		return pk, nil
	}
	h.mu.Lock()
	h.journal[flightKey{cl.ID, pk.PacketID}] = seq
	h.mu.Unlock()
	return pk, nil
}

// OnPublished drops the journal entry of a message Mochi has handed to every
// subscriber (committed in the background).
func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if h.server == nil || pk.FixedHeader.Qos == 0 {
		return
	}
	key := flightKey{cl.ID, pk.PacketID}
	h.mu.Lock()
	seq, ok := h.journal[key]
	delete(h.journal, key)
	h.mu.Unlock()
	if ok {
		// After the subscribers' writes in the writer's queue: deleted no earlier
		// than they commit.
		h.ops <- writeOp{kind: opDelete, client: JournalID, class: persistence.ClassQoS12, seq: &seq}
	}
}

// OnStarted publishes again every message left in the journal by a crash.
func (h *Hook) OnStarted() {
	if h.server == nil {
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	inline := h.server.NewClient(nil, "local", "mqttstore-journal-replay", true)
	n := 0
	err := h.sess.PacketsForEach(ctx, JournalID, persistence.ClassQoS12, func(p *persistence.PersistedPacket) (bool, error) {
		pk, err := fromPersisted(p)
		if err != nil {
			h.logErr("decode journal entry", JournalID, err)
			return true, nil // unreadable: nothing can be done with it
		}
		if pk.PacketID == 0 {
			pk.PacketID = 1 // Mochi validates that QoS > 0 has one; inline publishes do not use it
		}
		if err := h.server.InjectPacket(inline, pk); err != nil {
			return false, err
		}
		n++
		return true, nil
	})
	h.logErr("replay publish journal", JournalID, err)
	if n > 0 && h.Log != nil {
		h.Log.Warn("mqttstore hook: published again messages acknowledged before a crash", "messages", n)
	}
}
