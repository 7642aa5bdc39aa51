package bolt

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// guard runs fn, turning a panic of bbolt's (an assertion on a damaged page) and a
// memory fault (a page mapped past the end of a truncated file, which would
// otherwise kill the process with SIGBUS) into an error matching
// driver.ErrBrokenEntry that names the file.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("%v", r))
		}
	}()
	return fn()
}

// damaged reports the file at path as damaged.
func damaged(path string, cause error) error {
	return fmt.Errorf("bolt: %s is damaged (restore it from a backup, or move it away to start an empty store): %w: %w", path, driver.ErrBrokenEntry, cause)
}

// isFull reports whether err is the file system's "no space" or "quota exceeded".
func isFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// mapOpenErr maps an error of bbolt.Open.
func mapOpenErr(path string, err error) error {
	switch {
	case isFull(err):
		return fmt.Errorf("bolt: open %s: %w: %w", path, driver.ErrStorageFull, err)
	case errors.Is(err, bberrors.ErrInvalid), errors.Is(err, bberrors.ErrChecksum),
		errors.Is(err, bberrors.ErrVersionMismatch), errors.Is(err, bberrors.ErrInvalidMapping):
		return damaged(path, err)
	}
	return fmt.Errorf("bolt: open %s: %w", path, err)
}

// checkFile refuses a damaged file before bbolt opens it for writing. bbolt
// rebuilds its free list at open (NoFreelistSync) in a goroutine of its own, where a
// damaged page is a panic no caller can recover, and it silently initializes an
// empty file as a new store. So: a file that exists but is empty is refused, and an
// existing file is opened read-only first and every page of the store is visited
// under guard, which is the walk the free-list rebuild then repeats. A missing file
// is a new store.
func checkFile(c Config) error {
	st, err := os.Stat(c.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("bolt: %w", err)
	case st.Size() == 0:
		return damaged(c.Path, errors.New("the file is empty (0 bytes) where a store existed; it is not re-created silently"))
	}
	db, err := bbolt.Open(c.Path, 0o600, &bbolt.Options{Timeout: c.Timeout, ReadOnly: true})
	if errors.Is(err, bberrors.ErrTimeout) {
		return inUse(c.Path, c.Timeout, err) // shared.go
	}
	if err != nil {
		return mapOpenErr(c.Path, err)
	}
	defer db.Close()
	return guard(c.Path, func() error {
		return db.View(func(tx *bbolt.Tx) error {
			if need := tx.Size(); need > st.Size() {
				return damaged(c.Path, fmt.Errorf("the file is %d bytes but its pages reach %d: it was truncated", st.Size(), need))
			}
			b := tx.Bucket(bucket)
			if b == nil {
				return nil // created by an open that failed before its first commit
			}
			cur := b.Cursor()
			for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			}
			return nil
		})
	})
}
