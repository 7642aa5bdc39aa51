package persistence

import "context"

// RetainedMessage is one retained message: the topic it is retained on and the
// PUBLISH packet to deliver to new subscribers.
type RetainedMessage struct {
	Topic  string
	Packet *PersistedPacket
}

// RetainedLoader is called for each retained message of a load, with a copy the
// callee may keep.
type RetainedLoader func(m *RetainedMessage) error

// Retained stores retained messages, at most one per topic.
type Retained interface {
	// Put stores a copy of p as the retained message of topic, replacing any previous
	// one. Deleting on a zero-length payload is the broker's job ([Retained.Delete]):
	// the store does not decode Data.
	Put(ctx context.Context, topic string, p *PersistedPacket) error
	// Get returns the retained message of topic, or [ErrNotFound].
	Get(ctx context.Context, topic string) (*PersistedPacket, error)
	// Delete removes the retained message of topic; a no-op when there is none.
	Delete(ctx context.Context, topic string) error
	// LoadMatching calls fn once for every retained message whose topic matches at
	// least one of filters (MQTT matching rules, see [MatchTopic]), in no particular
	// order. An empty filter list matches nothing.
	LoadMatching(ctx context.Context, filters []string, fn RetainedLoader) error
	// Load calls fn for every retained message, in no particular order.
	Load(ctx context.Context, fn RetainedLoader) error
	// Store replaces every retained message with msgs, atomically (VolantMQ's
	// replace-all); later messages for the same topic win.
	Store(ctx context.Context, msgs []*RetainedMessage) error
	// Count returns the number of retained messages.
	Count(ctx context.Context) (uint64, error)
	// Wipe removes every retained message.
	Wipe(ctx context.Context) error
}
