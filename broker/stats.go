package broker

// QueueStats is how many messages wait in the broker's sessions right now.
type QueueStats struct {
	Queued      int64 // QoS 1/2 messages queued for sessions, not yet sent
	QueuedBytes int64 // their encoded size
	Inflight    int64 // messages sent and not yet acknowledged
}

// QueueStats sums the queues of every session. It takes each session's lock in
// turn, so it costs one lock per session: call it for a metrics scrape, not per
// message.
func (b *Broker) QueueStats() QueueStats {
	b.mu.RLock()
	ss := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		ss = append(ss, s)
	}
	b.mu.RUnlock()
	var q QueueStats
	for _, s := range ss {
		s.mu.Lock()
		if !s.gone {
			q.Queued += int64(s.queued)
			q.QueuedBytes += s.queuedBytes
			q.Inflight += int64(len(s.inflight))
		}
		s.mu.Unlock()
	}
	return q
}
