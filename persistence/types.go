package persistence

import "github.com/mqttstore/mqttstore/persistence/driver"

// The data a broker stores. They are defined in package driver, which drivers build
// on, and are the same types here; see there for every field.
type (
	// PacketClass selects one of the four per-session packet stores: each is an
	// independent FIFO, ordered by [PersistedPacket.Seq].
	PacketClass = driver.PacketClass
	// PersistedPacket is one stored MQTT packet: the bytes as they go over the
	// network plus the fields a broker needs without decoding them.
	PersistedPacket = driver.PersistedPacket
	// PersistedPackets groups packets by class for [Sessions.PacketsStore].
	PersistedPackets = driver.PersistedPackets
	// SessionBase is what a session is created with.
	SessionBase = driver.SessionBase
	// Subscription is one topic filter of a session with its MQTT 5.0 options.
	Subscription = driver.Subscription
	// SessionState is the broker's own record of a session: what it needs to
	// restore the session after a restart.
	SessionState = driver.SessionState
	// SessionExpiry holds a session's deadlines as absolute times.
	SessionExpiry = driver.SessionExpiry
	// LoadedSession is everything but the packets of one stored session.
	LoadedSession = driver.LoadedSession
	// RetainedMessage is one retained message and the topic it is retained on.
	RetainedMessage = driver.RetainedMessage
	// SystemInfo describes a store: schema version, creation time, SDK and driver.
	SystemInfo = driver.SystemInfo
	// Clock tells the time; tests inject a fake one with [WithClock].
	Clock = driver.Clock
	// SystemClock is the real clock.
	SystemClock = driver.SystemClock

	// PacketLoader is called for each packet of [Sessions.PacketsForEach], in FIFO
	// order, with a copy the callee may keep. Returning del=true deletes the packet
	// (an acknowledgement or a move elsewhere); returning an error stops the
	// iteration, and the deletions asked for by earlier calls and this one are still
	// applied.
	PacketLoader = driver.PacketLoader
	// SessionLoader is called once per session by [Sessions.LoadForEach].
	SessionLoader = driver.SessionLoader
	// ExpiredLoader is called by [Sessions.ExpiredForEach] for each session whose
	// deadline has passed.
	ExpiredLoader = driver.ExpiredLoader
	// RetainedLoader is called for each retained message of a load, with a copy the
	// callee may keep.
	RetainedLoader = driver.RetainedLoader
)

// The packet classes a session keeps.
const (
	// ClassQoS0 holds QoS 0 messages queued for an offline session.
	ClassQoS0 = driver.ClassQoS0
	// ClassQoS12 holds QoS 1 and 2 messages queued for the session but not yet sent.
	ClassQoS12 = driver.ClassQoS12
	// ClassUnAck holds outbound packets awaiting acknowledgement (PUBLISH or PUBREL).
	ClassUnAck = driver.ClassUnAck
	// ClassIncoming holds inbound QoS 2 PUBLISH packets not yet released by PUBREL.
	ClassIncoming = driver.ClassIncoming
)

// PacketClasses lists every class, in a fixed order.
var PacketClasses = driver.PacketClasses

// SchemaVersion is the version of the stored data layout this SDK writes; a store
// recorded with a greater one is refused with [ErrSchemaVersion].
const SchemaVersion = driver.SchemaVersion

// SDKVersion is the version of this SDK, recorded in a store when it is created.
const SDKVersion = driver.SDKVersion

// The errors every call may return, wrapped with context. Check them with errors.Is.
var (
	// ErrNotFound reports a missing session, packet, retained message or record.
	ErrNotFound = driver.ErrNotFound
	// ErrAlreadyExists reports a Create of a session that already exists.
	ErrAlreadyExists = driver.ErrAlreadyExists
	// ErrClosed reports a call on a store after Close.
	ErrClosed = driver.ErrClosed
	// ErrBrokenEntry reports a stored record that cannot be decoded: truncated,
	// corrupted (checksum mismatch), of the wrong kind or of an unknown version.
	ErrBrokenEntry = driver.ErrBrokenEntry
	// ErrUnknownProvider reports an Open of a driver name nobody registered.
	ErrUnknownProvider = driver.ErrUnknownProvider
	// ErrInvalidConfig reports a malformed store URL or an unknown or bad option.
	ErrInvalidConfig = driver.ErrInvalidConfig
	// ErrSchemaVersion reports a store written by a newer schema than this SDK knows.
	ErrSchemaVersion = driver.ErrSchemaVersion
	// ErrInvalidArgument reports an argument no store can accept, such as an
	// unknown packet class, a nil packet, an empty filter or a nil callback.
	ErrInvalidArgument = driver.ErrInvalidArgument
	// ErrStorageFull reports a write refused because the store's disk or quota is
	// full (or too nearly full for the engine to write safely). Nothing was written;
	// retry once space is freed.
	ErrStorageFull = driver.ErrStorageFull
	// ErrStopIteration may be returned (also wrapped) by an iteration callback to
	// stop early without error: the iterating method then returns nil.
	ErrStopIteration = driver.ErrStopIteration
)

// MatchTopic reports whether topic matches filter under the MQTT 3.1.1 and 5.0
// rules (see driver.MatchTopic for every detail). Shared-subscription filters must be
// unwrapped with [SplitSharedFilter] first.
func MatchTopic(filter, topic string) bool { return driver.MatchTopic(filter, topic) }

// ValidFilter returns an error matching [ErrInvalidArgument] when filter is not a
// valid MQTT topic filter.
func ValidFilter(filter string) error { return driver.ValidFilter(filter) }

// ValidTopic returns an error matching [ErrInvalidArgument] when topic is not a
// valid MQTT topic name to publish to.
func ValidTopic(topic string) error { return driver.ValidTopic(topic) }

// SplitSharedFilter splits "$share/group/filter" into its group and filter; ok is
// false for any other filter.
func SplitSharedFilter(s string) (group, filter string, ok bool) {
	return driver.SplitSharedFilter(s)
}
