package mem

import (
	"context"
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Retained messages are kept in a map by topic, with a trie of the topics for
// wildcard matching. Stored packets are never mutated (a put replaces the pointer),
// so copies are made outside the lock.

// rlockRetained locks retMu shared, unless the store is closed.
func (s *conn) rlockRetained() error {
	s.retMu.RLock()
	if s.closed {
		s.retMu.RUnlock()
		return errClosed
	}
	return nil
}

// RetainedPut stores a copy of p as the retained message of topic.
func (s *conn) RetainedPut(_ context.Context, topic string, p *driver.PersistedPacket) error {
	c := p.Clone()
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.retained[topic]; !ok {
		s.retIdx.insert(topic)
	}
	s.retained[topic] = c
	return nil
}

// RetainedGet returns a copy of the retained message of topic.
func (s *conn) RetainedGet(_ context.Context, topic string) (*driver.PersistedPacket, error) {
	if err := s.rlockRetained(); err != nil {
		return nil, err
	}
	p := s.retained[topic]
	s.retMu.RUnlock()
	if p == nil {
		return nil, fmt.Errorf("mem: retained message on %q: %w", topic, driver.ErrNotFound)
	}
	return p.Clone(), nil
}

// RetainedDelete removes the retained message of topic.
func (s *conn) RetainedDelete(_ context.Context, topic string) error {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.retained[topic]; ok {
		delete(s.retained, topic)
		s.retIdx.remove(topic)
	}
	return nil
}

// RetainedLoad calls fn with a copy of every retained message whose topic matches
// one of filters, or of every one when filters is nil. Filters without wildcards are
// looked up directly; the others walk the trie of the stored topics' levels,
// visiting only the branches they can match. The topics are collected under the
// lock and fn runs with no lock held: a message deleted before its turn is skipped,
// one replaced is delivered in its new version.
func (s *conn) RetainedLoad(_ context.Context, filters []string, fn driver.RetainedLoader) error {
	if err := s.rlockRetained(); err != nil {
		return err
	}
	var topics []string
	if filters == nil {
		topics = make([]string, 0, len(s.retained))
		for topic := range s.retained {
			topics = append(topics, topic)
		}
	}
	for _, f := range filters {
		if strings.ContainsAny(f, "+#") {
			topics = s.retIdx.match(f, topics)
		} else if _, ok := s.retained[f]; ok {
			topics = append(topics, f)
		}
	}
	s.retMu.RUnlock()
	if len(filters) > 1 { // one filter never matches a topic twice
		topics = dedup(topics)
	}
	for _, topic := range topics {
		if err := s.rlockRetained(); err != nil {
			return err
		}
		p := s.retained[topic]
		s.retMu.RUnlock()
		if p == nil {
			continue
		}
		if err := fn(&driver.RetainedMessage{Topic: topic, Packet: p.Clone()}); err != nil {
			return err
		}
	}
	return nil
}

// dedup removes repeated topics, keeping the first of each.
func dedup(topics []string) []string {
	if len(topics) < 2 {
		return topics
	}
	seen := make(map[string]struct{}, len(topics))
	out := topics[:0]
	for _, t := range topics {
		if _, dup := seen[t]; !dup {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	clear(topics[len(out):])
	return out
}

// RetainedReplace replaces every retained message with copies of msgs.
func (s *conn) RetainedReplace(_ context.Context, msgs []*driver.RetainedMessage) error {
	m := make(map[string]*driver.PersistedPacket, len(msgs))
	idx := new(topicTrie)
	for _, msg := range msgs {
		if _, dup := m[msg.Topic]; !dup {
			idx.insert(msg.Topic)
		}
		m[msg.Topic] = msg.Packet.Clone()
	}
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed {
		return errClosed
	}
	s.retained, s.retIdx = m, idx
	return nil
}

// RetainedCount returns the number of retained messages.
func (s *conn) RetainedCount(context.Context) (uint64, error) {
	if err := s.rlockRetained(); err != nil {
		return 0, err
	}
	defer s.retMu.RUnlock()
	return uint64(len(s.retained)), nil
}
