package badger

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bdg "github.com/dgraph-io/badger/v4"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// reserve is how many bytes must stay free on the store's file system after a
// write. Badger writes its write-ahead log (the .mem files) and its tables through
// memory maps of files it sizes first without allocating them: on a full file system
// the store into such a page is not an error but a SIGBUS that kills the process.
// So writes are refused with driver.ErrStorageFull while less than this is free,
// which leaves room for what Badger may still write on its own after the last
// accepted write: the rest of the current log and the next one, the flush of every
// memtable to a table, and a few tables of compaction. With memory=low that is
// 44 MiB, with memory=default 144 MiB.
//
// The logs are also allocated in advance (see logSpace), so a write that passed
// this check cannot be a SIGBUS in the log; a table that a flush or compaction is
// writing can, if another process fills the disk completely while it runs.
func reserve(o bdg.Options) uint64 {
	return uint64(o.MemTableSize)*uint64(2+o.NumMemtables) + 4*uint64(o.BaseTableSize) + 8<<20
}

// checkSpace refuses a transaction of n bytes when it would leave less than
// e.reserve free.
func (e *engine) checkSpace(n uint64) error {
	if e.dir == "" || e.checkOff {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(e.dir, &st); err != nil {
		return fmt.Errorf("badger: statfs %s: %w", e.dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	// A write lands in the log and later in a table: twice its size.
	if need := e.reserve + 2*n; free < need {
		return fmt.Errorf("badger: %s: %w: %d bytes free, a write needs %d (Badger keeps %d in reserve)", e.dir, driver.ErrStorageFull, free, need, e.reserve)
	}
	return nil
}

// modeInterval is how often fixModes runs while the store is open.
const modeInterval = 10 * time.Second

// fixModes gives the store's files mode 0600. Badger creates them 0666 (0644 under
// the usual umask); the directory's 0700 keeps other users out of those it creates
// between two runs.
func (e *engine) fixModes() {
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		return
	}
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err != nil || info.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(filepath.Join(e.dir, de.Name()), info.Mode().Perm()&0o700); err != nil {
			e.logger.Warn("badger: chmod", "file", de.Name(), "err", err)
		}
	}
}
