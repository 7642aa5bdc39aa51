package persistence

import (
	"context"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// Retained is the retained-message store of a [Store]: at most one message per topic.
type Retained struct{ s *Store }

func checkTopic(topic string) error {
	if topic == "" {
		return invalidArg("empty topic for a retained message")
	}
	return nil
}

// Put stores a copy of p as the retained message of topic, replacing any previous
// one. Deleting on a zero-length payload is the broker's job ([Retained.Delete]): the
// store does not decode Data.
func (r *Retained) Put(ctx context.Context, topic string, p *PersistedPacket) error {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedPut", 1)
	if err == nil {
		err = checkTopic(topic)
	}
	if err == nil {
		err = driver.ValidatePacket(p)
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.RetainedPut(ctx, topic, p))
}

// Get returns the retained message of topic, or [ErrNotFound].
func (r *Retained) Get(ctx context.Context, topic string) (*PersistedPacket, error) {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedGet", 0)
	if err == nil {
		err = checkTopic(topic)
	}
	if err != nil {
		return nil, c.end(err)
	}
	p, err := s.conn.RetainedGet(ctx, topic)
	return p, c.end(err)
}

// Delete removes the retained message of topic; a no-op when there is none.
func (r *Retained) Delete(ctx context.Context, topic string) error {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedDelete", 1)
	if err == nil {
		err = checkTopic(topic)
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.RetainedDelete(ctx, topic))
}

// LoadMatching calls fn once for every retained message whose topic matches at least
// one of filters (MQTT matching rules, see [MatchTopic]), in no particular order. An
// empty filter list matches nothing.
func (r *Retained) LoadMatching(ctx context.Context, filters []string, fn RetainedLoader) error {
	if filters == nil {
		filters = []string{}
	}
	return r.load(ctx, "RetainedLoadMatching", filters, fn)
}

// Load calls fn for every retained message, in no particular order.
func (r *Retained) Load(ctx context.Context, fn RetainedLoader) error {
	return r.load(ctx, "RetainedLoad", nil, fn)
}

func (r *Retained) load(ctx context.Context, op string, filters []string, fn RetainedLoader) error {
	s := r.s
	ctx, c, err := s.begin(ctx, op, 0)
	if err == nil && fn == nil {
		err = invalidArg("nil RetainedLoader")
	}
	for _, f := range filters {
		if err == nil && f == "" {
			err = invalidArg("empty topic filter")
		}
	}
	if err != nil || (filters != nil && len(filters) == 0) {
		return c.end(err)
	}
	return c.end(s.conn.RetainedLoad(ctx, filters, func(m *RetainedMessage) error {
		if err := s.between(ctx); err != nil {
			return err
		}
		return fn(m)
	}))
}

// Store replaces every retained message with msgs, atomically; later messages for
// the same topic win.
func (r *Retained) Store(ctx context.Context, msgs []*RetainedMessage) error {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedStore", len(msgs))
	for i, m := range msgs {
		if err != nil {
			break
		}
		switch {
		case m == nil:
			err = invalidArg("nil retained message at index %d", i)
		case m.Topic == "":
			err = invalidArg("empty topic for the retained message at index %d", i)
		default:
			err = driver.ValidatePacket(m.Packet)
		}
	}
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.RetainedReplace(ctx, msgs))
}

// Count returns the number of retained messages.
func (r *Retained) Count(ctx context.Context) (uint64, error) {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedCount", 0)
	if err != nil {
		return 0, c.end(err)
	}
	n, err := s.conn.RetainedCount(ctx)
	return n, c.end(err)
}

// Wipe removes every retained message.
func (r *Retained) Wipe(ctx context.Context) error {
	s := r.s
	ctx, c, err := s.begin(ctx, "RetainedWipe", 0)
	if err != nil {
		return c.end(err)
	}
	return c.end(s.conn.RetainedReplace(ctx, nil))
}
