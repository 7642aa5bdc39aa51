package conformance

import (
	"maps"
	"slices"

	"github.com/mqttstore/mqttstore/persistence"
)

// The model's reference state: the whole observable content of a store in plain maps
// and slices, against which the model compares the driver.

// mSession is the model of one session.
type mSession struct {
	base   persistence.SessionBase
	queues [4][]*persistence.PersistedPacket // FIFO; packets are never mutated once in
	subs   map[string]persistence.Subscription
	state  *persistence.SessionState
	exp    persistence.SessionExpiry // zero: none
}

func (s *mSession) clone() *mSession {
	c := &mSession{base: s.base, state: s.state.Clone(), exp: s.exp, subs: maps.Clone(s.subs)}
	for i, q := range s.queues {
		c.queues[i] = slices.Clone(q)
	}
	return c
}

// model is the reference: the whole observable state of a store in plain maps.
type model struct {
	sessions map[string]*mSession
	retained map[string]*persistence.PersistedPacket // packets never mutated once in
}

func newModel() *model {
	return &model{sessions: map[string]*mSession{}, retained: map[string]*persistence.PersistedPacket{}}
}

func (m *model) clone() *model {
	c := &model{sessions: make(map[string]*mSession, len(m.sessions)), retained: maps.Clone(m.retained)}
	for id, s := range m.sessions {
		c.sessions[id] = s.clone()
	}
	return c
}

// ids returns the ids of the model's sessions, sorted so that choices are reproducible.
func (m *model) ids() []string { return slices.Sorted(maps.Keys(m.sessions)) }

// seqKey names one (session, class) queue across the whole history of the sequence.
type seqKey struct {
	id    string
	class persistence.PacketClass
}
