package badger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// logSpace keeps Badger's write-ahead log files allocated before Badger writes
// into them. Badger creates each log (NNNNN.mem) at twice the memtable size
// without allocating it and writes it through a memory map: on a full file
// system a store into a page not yet allocated is a SIGBUS, not an error, and
// another process can fill the disk between the driver's space check and that
// store. So:
//   - when the store opens, the current log is allocated in full (fallocate);
//   - the file of the next log is created empty with its space allocated beyond
//     its end (FALLOC_FL_KEEP_SIZE) before every write, and created again once
//     Badger has taken it: Badger opens it as a new file (its size is 0), sizes
//     it, and writes into pages that exist. A write that cannot get that space
//     is refused with driver.ErrStorageFull;
//   - the spare file is removed when the store closes, before Badger writes
//     its memtable to a table (so that on a full disk the spare's space is
//     there for that table), and, if a crash left it, before Badger opens the
//     directory (Badger would take an empty log for a damaged one).
//
// The cost is disk space: the current and the next log, 4 × the memtable size
// (64 MiB with memory=low, 256 MiB with memory=default, where Badger's sparse
// files held what was written so far). Where fallocate is not supported (it is
// on Linux file systems such as ext4, xfs, btrfs and tmpfs; see preallocate),
// the logs stay sparse and the space check alone stands between a write and a
// SIGBUS.
type logSpace struct {
	dir  string
	size int64  // Badger's log file size: 2 × MemTableSize
	next int    // the fid of the spare log file
	path string // its path
}

// logFile is the path of log fid, named as Badger names it.
func (l *logSpace) logFile(fid int) string {
	return filepath.Join(l.dir, fmt.Sprintf("%05d.mem", fid))
}

// logFids lists the fids of the log files in dir.
func logFids(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fids []int
	for _, de := range entries {
		name, ok := strings.CutSuffix(de.Name(), ".mem")
		if !ok {
			continue
		}
		if fid, err := strconv.Atoi(name); err == nil {
			fids = append(fids, fid)
		}
	}
	return fids, nil
}

// removeSpareLogs removes the empty log files of dir: a spare a crash left
// behind (Badger writes a header into every log it creates, so an empty one is
// never Badger's own).
func removeSpareLogs(dir string) error {
	fids, err := logFids(dir)
	if err != nil {
		return fmt.Errorf("badger: %s: %w", dir, err)
	}
	l := logSpace{dir: dir}
	for _, fid := range fids {
		p := l.logFile(fid)
		if fi, err := os.Stat(p); err == nil && fi.Size() == 0 {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("badger: remove spare log: %w", err)
			}
		}
	}
	return nil
}

// start allocates the log Badger has just opened (the newest) and creates the
// spare after it.
func (l *logSpace) start() error {
	fids, err := logFids(l.dir)
	if err != nil {
		return fmt.Errorf("badger: %s: %w", l.dir, err)
	}
	cur := 0
	for _, fid := range fids {
		cur = max(cur, fid)
	}
	if cur > 0 {
		f, err := os.OpenFile(l.logFile(cur), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("badger: %w", err)
		}
		err = preallocate(f, 0, l.size)
		f.Close()
		if err != nil {
			return l.fullErr(l.logFile(cur), err)
		}
	}
	l.setNext(cur + 1)
	return l.spare()
}

// ensure makes sure the spare log exists before a write: once Badger has taken
// it (it is no longer empty), the one after it is created.
func (l *logSpace) ensure() error {
	fi, err := os.Stat(l.path)
	switch {
	case err == nil && fi.Size() == 0:
		return nil
	case err == nil:
		l.setNext(l.next + 1)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("badger: %w", err)
	}
	return l.spare()
}

// spare creates the file of log l.next, empty, with l.size bytes allocated
// beyond its end.
func (l *logSpace) spare() error {
	p := l.path
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // Badger's own, or ours: ensure looks at it next time
	}
	if err != nil {
		return l.fullErr(p, err)
	}
	err = preallocate(f, keepSize, l.size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return l.fullErr(p, err)
	}
	return nil
}

// close removes the spare log.
func (l *logSpace) close() {
	if fi, err := os.Stat(l.path); err == nil && fi.Size() == 0 {
		os.Remove(l.path)
	}
}

// setNext makes fid the spare log's.
func (l *logSpace) setNext(fid int) {
	l.next, l.path = fid, l.logFile(fid)
}

func (l *logSpace) fullErr(file string, err error) error {
	if isFull(err) {
		return fmt.Errorf("badger: allocate %d bytes for the log %s: %w: %w", l.size, file, driver.ErrStorageFull, err)
	}
	return fmt.Errorf("badger: allocate the log %s: %w", file, err)
}

// errNoFallocate is what fallocate returns where the platform has none.
var errNoFallocate = errors.New("fallocate not available")

// keepSize is FALLOC_FL_KEEP_SIZE.
const keepSize = 0x1

// preallocate allocates n bytes of f from offset 0 (fallocate(2)). A file
// system or platform without fallocate is not an error: the file stays sparse.
func preallocate(f *os.File, mode uint32, n int64) error {
	err := fallocate(f, mode, n)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, errNoFallocate) {
		return nil
	}
	return err
}
