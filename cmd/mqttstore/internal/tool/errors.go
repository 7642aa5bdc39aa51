package tool

import "errors"

// The tool's own errors; check them with errors.Is. Store and archive errors are
// returned wrapped, so persistence.ErrBrokenEntry, archive.ErrCorrupt and the like
// match as well.
var (
	// ErrNotEmpty: import or migrate into a store that already holds data.
	ErrNotEmpty = errors.New("destination store is not empty")
	// ErrResumeMismatch: the destination holds an unfinished copy of something else.
	ErrResumeMismatch = errors.New("destination holds another unfinished copy")
	// ErrVerify: after a copy, the destination's counts or digests differ from the
	// source's.
	ErrVerify = errors.New("verification failed")
	// ErrUnsupported: the operation is not possible on this driver.
	ErrUnsupported = errors.New("not supported for this store")
	// ErrProblems: check found problems in the store.
	ErrProblems = errors.New("store has problems")
)
