package driver

// RetainedMessage is one retained message: the topic it is retained on and the
// PUBLISH packet to deliver to new subscribers.
type RetainedMessage struct {
	Topic  string
	Packet *PersistedPacket
}

// RetainedLoader is called for each retained message of a load, with a copy the
// callee may keep.
type RetainedLoader func(m *RetainedMessage) error
