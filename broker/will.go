package broker

import (
	"time"

	"github.com/mqttstore/mqttstore/persistence"
)

// publishWill publishes the will of session id, stored as a PUBLISH by connect.
// Wills are published like any message from that client (no-local applies), so
// persistent subscribers get them durably. It reports whether the will was
// delivered (false when it was broken or the store failed: it is then kept, if
// stored, and tried again at the next expiry run). mark, when set, carries writes
// to commit with the publication (see incomingMark.after).
func (b *Broker) publishWill(id string, will *persistence.PersistedPacket, mark *incomingMark) bool {
	pub, err := decodePublish(will)
	if err != nil {
		b.log.Error("broker: broken will dropped", "client", id, "err", err)
		return true
	}
	pub.PacketID = 0
	// The message expiry interval of a will counts from its publication.
	var expireAt time.Time
	if me := pub.Properties.MessageExpiry; me != nil {
		expireAt = b.now().Add(time.Duration(*me) * time.Second)
	}
	b.stats.in.Add(1)
	b.log.Debug("broker: publishing will", "client", id, "topic", pub.Topic)
	return b.publish(id, pub, expireAt, mark) == 0
}
