package kv

import "errors"

// Engine is an ordered key-value store with serializable transactions: all the
// layer needs from bbolt, Badger or any similar engine. Keys are compared as byte
// strings (bytes.Compare order).
type Engine interface {
	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(fn func(tx Tx) error) error
	// Update runs fn in a read-write transaction and commits it when fn returns nil,
	// with the durability the engine was opened with; it rolls back when fn returns an
	// error and returns that error. The layer never runs two Updates at once.
	Update(fn func(tx Tx) error) error
	// Close releases the engine. The layer calls it once.
	Close() error
}

// Tx is one transaction of an [Engine]. Who owns which bytes, so that an adapter
// copies only what its engine forces it to:
//
//   - A value Get returns is valid until the transaction ends, also after later
//     writes of the same transaction (to that key too); the layer never modifies it.
//     bbolt's adapter returns the engine's own memory; Badger's copies, because a
//     Badger value is only valid inside its callback.
//   - The key and value Iterate passes to fn are valid only during that call (the
//     layer copies what it keeps, and decodes values into fresh memory), so an
//     adapter passes the engine's buffers through without copying, even one the
//     engine reuses for the next key.
//   - Slices passed to Put stay unmodified until the transaction ends (the layer
//     always passes fresh ones); the adapter must not modify them, nor read them
//     after Update returns.
//
// Copying every key and value is therefore never required: the contract is what
// the layer needs, checked for each adapter by kvtest.EngineContract.
type Tx interface {
	// Get returns the value of k, or nil (with a nil error) when k is absent; a
	// present, empty value is a non-nil empty slice.
	Get(k []byte) ([]byte, error)
	// Put sets k to v.
	Put(k, v []byte) error
	// Delete removes k; deleting an absent key is not an error.
	Delete(k []byte) error
	// Iterate calls fn for each key that starts with prefix and is at or after
	// start (start is prefix itself, or longer), in ascending key order, until fn
	// returns false or an error (which Iterate returns). In a read-write transaction it
	// sees the transaction's own writes; fn must not write.
	Iterate(prefix, start []byte, fn func(k, v []byte) (more bool, err error)) error
}

// Adapters map their engine's errors onto these so that the layer can react.
var (
	// ErrEngineClosed is returned (wrapped) by an adapter whose engine was closed; the
	// layer reports it as driver.ErrClosed.
	ErrEngineClosed = errors.New("kv: engine is closed")
	// ErrTxnTooBig is returned (wrapped) by a Put or Delete that would make the
	// transaction larger than the engine accepts. The layer then commits what the
	// transaction held before the failing operation and retries the operation alone.
	ErrTxnTooBig = errors.New("kv: transaction too big")
)
