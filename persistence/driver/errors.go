package driver

import "errors"

// The errors every driver returns, wrapped with context where useful. Check them with
// errors.Is; a driver never returns its engine's own error bare, it wraps it so that
// both the SDK error (where one applies) and the original cause are visible.
var (
	// ErrNotFound reports a missing session, packet, retained message or record.
	ErrNotFound = errors.New("persistence: not found")
	// ErrAlreadyExists reports a Create of a session that already exists.
	ErrAlreadyExists = errors.New("persistence: already exists")
	// ErrClosed reports a call on a store after Close.
	ErrClosed = errors.New("persistence: store is closed")
	// ErrBrokenEntry reports a stored blob that cannot be decoded: truncated,
	// corrupted (checksum mismatch), of the wrong kind or of an unknown format version.
	ErrBrokenEntry = errors.New("persistence: broken entry")
	// ErrUnknownProvider reports an Open of a driver name nobody registered.
	ErrUnknownProvider = errors.New("persistence: unknown provider")
	// ErrInvalidConfig reports a malformed store URL or an unknown or bad option.
	ErrInvalidConfig = errors.New("persistence: invalid config")
	// ErrSchemaVersion reports a store written by a newer schema than this SDK knows.
	ErrSchemaVersion = errors.New("persistence: unsupported schema version")
	// ErrInvalidArgument reports an argument no store can accept, such as an unknown
	// packet class, a nil packet or an empty topic for a retained message.
	ErrInvalidArgument = errors.New("persistence: invalid argument")
	// ErrStorageFull reports a write refused because the store's disk (or quota) is
	// full, or too nearly full for the engine to write safely. Nothing was written;
	// the write may be retried once space is freed.
	ErrStorageFull = errors.New("persistence: storage full")
	// ErrStopIteration may be returned by an iteration callback to stop early without
	// error: the iterating method then returns nil.
	ErrStopIteration = errors.New("persistence: stop iteration")
)
