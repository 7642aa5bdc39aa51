package mem

import (
	"context"
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/persistence"
)

// retained implements persistence.Retained. Messages are kept in a map by topic,
// with a trie of the topics for wildcard matching; stored packets are never mutated
// (a Put replaces the pointer), so copies are made outside the lock.
type retained store

func (r *retained) st() *store { return (*store)(r) }

func validateRetained(topic string, p *persistence.PersistedPacket) error {
	if topic == "" {
		return fmt.Errorf("mem: %w: empty topic for a retained message", persistence.ErrInvalidArgument)
	}
	if err := persistence.ValidatePacket(p); err != nil {
		return fmt.Errorf("mem: retained message on %q: %w", topic, err)
	}
	return nil
}

// Put stores a copy of p as the retained message of topic, replacing any previous
// one. An empty topic or an invalid packet is an error matching
// [persistence.ErrInvalidArgument].
func (r *retained) Put(ctx context.Context, topic string, p *persistence.PersistedPacket) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateRetained(topic, p); err != nil {
		return err
	}
	c := p.Clone()
	s := r.st()
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	if _, ok := s.retained[topic]; !ok {
		s.retIdx.insert(topic)
	}
	s.retained[topic] = c
	return nil
}

// Get returns a copy of the retained message of topic, or an error matching
// [persistence.ErrNotFound].
func (r *retained) Get(ctx context.Context, topic string) (*persistence.PersistedPacket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := r.st()
	s.retMu.RLock()
	if s.closed.Load() {
		s.retMu.RUnlock()
		return nil, errClosed
	}
	p := s.retained[topic]
	s.retMu.RUnlock()
	if p == nil {
		return nil, fmt.Errorf("mem: retained message on %q: %w", topic, persistence.ErrNotFound)
	}
	return p.Clone(), nil
}

// Delete removes the retained message of topic; a no-op when there is none.
func (r *retained) Delete(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := r.st()
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	if _, ok := s.retained[topic]; ok {
		delete(s.retained, topic)
		s.retIdx.remove(topic)
	}
	return nil
}

// LoadMatching calls fn once with a copy of every retained message whose topic
// matches at least one of filters ([persistence.MatchTopic]), in no particular
// order. Filters without wildcards are looked up directly; the others walk a trie of
// the stored topics' levels, visiting only the branches they can match. The matching
// topics are collected under the lock and fn runs with no lock held; a message
// deleted before its turn is skipped, one replaced is delivered in its new version.
func (r *retained) LoadMatching(ctx context.Context, filters []string, fn persistence.RetainedLoader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("mem: %w: nil RetainedLoader", persistence.ErrInvalidArgument)
	}
	s := r.st()
	s.retMu.RLock()
	if s.closed.Load() {
		s.retMu.RUnlock()
		return errClosed
	}
	var topics []string
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
	return r.deliver(ctx, topics, fn)
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

// deliver calls fn for the current message of each topic that still has one.
func (r *retained) deliver(ctx context.Context, topics []string, fn persistence.RetainedLoader) error {
	s := r.st()
	for _, topic := range topics {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.retMu.RLock()
		if s.closed.Load() {
			s.retMu.RUnlock()
			return errClosed
		}
		p := s.retained[topic]
		s.retMu.RUnlock()
		if p == nil {
			continue
		}
		if err := fn(&persistence.RetainedMessage{Topic: topic, Packet: p.Clone()}); err != nil {
			return iterResult(err)
		}
	}
	return nil
}

// Load calls fn with a copy of every retained message, in no particular order,
// with no lock held.
func (r *retained) Load(ctx context.Context, fn persistence.RetainedLoader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("mem: %w: nil RetainedLoader", persistence.ErrInvalidArgument)
	}
	s := r.st()
	s.retMu.RLock()
	if s.closed.Load() {
		s.retMu.RUnlock()
		return errClosed
	}
	topics := make([]string, 0, len(s.retained))
	for topic := range s.retained {
		topics = append(topics, topic)
	}
	s.retMu.RUnlock()
	return r.deliver(ctx, topics, fn)
}

// Store replaces every retained message with copies of msgs, atomically; later
// messages for the same topic win. Every message is validated first: on error
// nothing changes.
func (r *retained) Store(ctx context.Context, msgs []*persistence.RetainedMessage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := make(map[string]*persistence.PersistedPacket, len(msgs))
	idx := new(topicTrie)
	for i, msg := range msgs {
		if msg == nil {
			return fmt.Errorf("mem: %w: nil retained message at index %d", persistence.ErrInvalidArgument, i)
		}
		if err := validateRetained(msg.Topic, msg.Packet); err != nil {
			return err
		}
		if _, dup := m[msg.Topic]; !dup {
			idx.insert(msg.Topic)
		}
		m[msg.Topic] = msg.Packet.Clone()
	}
	s := r.st()
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	s.retained, s.retIdx = m, idx
	return nil
}

// Count returns the number of retained messages.
func (r *retained) Count(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s := r.st()
	s.retMu.RLock()
	defer s.retMu.RUnlock()
	if s.closed.Load() {
		return 0, errClosed
	}
	return uint64(len(s.retained)), nil
}

// Wipe removes every retained message.
func (r *retained) Wipe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := r.st()
	s.retMu.Lock()
	defer s.retMu.Unlock()
	if s.closed.Load() {
		return errClosed
	}
	s.retained, s.retIdx = make(map[string]*persistence.PersistedPacket), new(topicTrie)
	return nil
}
