package broker

import (
	"strconv"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/broker/packet"
	"github.com/mqttstore/mqttstore/persistence"
)

// DefaultSysInterval is how often $SYS/broker/... statistics are published when
// Options.SysInterval is 0.
const DefaultSysInterval = 10 * time.Second

// sysVersion is what $SYS/broker/version says.
const sysVersion = "mqttstore broker"

// sysTopic is one $SYS/broker statistic and its current value.
type sysTopic struct {
	topic, value string
}

// sysValues returns the current $SYS/broker statistics. The storage latency is
// the mean time of the fan-out commits since the previous periodic publication
// (0 when none); advance starts a new period.
func (b *Broker) sysValues(advance bool) []sysTopic {
	b.mu.RLock()
	sessions := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		sessions = append(sessions, s)
	}
	b.mu.RUnlock()
	var queued, inflight int64
	for _, s := range sessions {
		s.mu.Lock()
		queued += int64(s.queued)
		inflight += int64(len(s.inflight))
		s.mu.Unlock()
	}
	ops, nanos := b.stats.storeOps.Load(), b.stats.storeNanos.Load()
	b.sysMu.Lock()
	dOps, dNanos := ops-b.sysLastOps, nanos-b.sysLastNanos
	if advance {
		b.sysLastOps, b.sysLastNanos = ops, nanos
	}
	b.sysMu.Unlock()
	var latency int64
	if dOps > 0 {
		latency = dNanos / dOps / int64(time.Microsecond)
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []sysTopic{
		{"$SYS/broker/version", sysVersion},
		{"$SYS/broker/uptime", i(int64(time.Since(b.started) / time.Second))},
		{"$SYS/broker/clients/connected", i(b.stats.connected.Load())},
		{"$SYS/broker/clients/total", i(int64(len(sessions)))},
		{"$SYS/broker/connections/total", i(b.stats.connections.Load())},
		{"$SYS/broker/messages/received", i(b.stats.in.Load())},
		{"$SYS/broker/messages/sent", i(b.stats.out.Load())},
		{"$SYS/broker/messages/dropped", i(b.stats.dropped.Load())},
		{"$SYS/broker/messages/queued", i(queued)},
		{"$SYS/broker/messages/inflight", i(inflight)},
		{"$SYS/broker/store/errors", i(b.stats.storageErrors.Load())},
		{"$SYS/broker/store/commits", i(ops)},
		{"$SYS/broker/store/latency_us", i(latency)},
	}
}

// sysLoop publishes the $SYS statistics every interval, as QoS 0 messages to
// the clients subscribed to them. Nothing of it is stored.
func (b *Broker) sysLoop(interval time.Duration) {
	defer b.bg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, v := range b.sysValues(true) {
				if targets := b.match("", v.topic, 0); len(targets) > 0 {
					b.fanOut(&packet.Publish{Topic: v.topic, Payload: []byte(v.value)}, time.Time{}, targets, nil)
				}
			}
		case <-b.stopBG:
			return
		}
	}
}

// sendSys sends the current $SYS statistics matching sub to s, flagged
// retained, so a new subscriber need not wait for the next interval.
func (b *Broker) sendSys(s *session, sub persistence.Subscription) {
	if b.sysInterval <= 0 || !strings.HasPrefix(sub.Filter, "$SYS") {
		return
	}
	for _, v := range b.sysValues(false) {
		if !persistence.MatchTopic(sub.Filter, v.topic) {
			continue
		}
		msg := &packet.Publish{Topic: v.topic, Payload: []byte(v.value), Retain: true}
		t := target{s: s, retain: true}
		if sub.ID != 0 {
			t.ids = []uint32{sub.ID}
		}
		b.fanOut(msg, time.Time{}, []target{t}, nil)
	}
}
