//go:build unix

package badger

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDir takes the lock Badger takes on dir (flock, exclusive, without waiting)
// and returns its release, or an error matching driver.ErrInUse when another
// provider, in this process or another, holds the directory: an open that loses
// this race is refused before anything reads the store's files, whose readers
// would otherwise take a live store's files for damaged ones.
func lockDir(dir string) (release func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("badger: open directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUse(dir, err)
		}
		return nil, fmt.Errorf("badger: lock directory %s: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil // closing the descriptor releases the lock
}
