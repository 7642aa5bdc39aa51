package badger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	bdg "github.com/dgraph-io/badger/v4"
	bopts "github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// guard runs fn, turning a panic (Badger asserts rather than returns errors on some
// damaged files) and a memory fault (a read past the end of a truncated, mapped
// file, which would otherwise kill the process with SIGBUS) into an error matching
// driver.ErrBrokenEntry that names file. Only panics on the calling goroutine can be
// caught: that is why tables are checked by checkDir before Badger opens them in
// goroutines of its own.
func guard(file string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(file, fmt.Errorf("%v", r))
		}
	}()
	return fn()
}

// damaged reports file as damaged.
func damaged(file string, cause error) error {
	return fmt.Errorf("badger: %s is damaged (restore the directory from a backup, or move it away to start an empty store): %w: %w", file, driver.ErrBrokenEntry, cause)
}

// isFull reports whether err is the file system's "no space" or "quota exceeded".
func isFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	// Badger wraps some errors without %w.
	return err != nil && (strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error()))
}

// storeFiles are the files that show a Badger store existed in a directory.
var storeFiles = []string{"*.sst", "*.vlog", "*.mem", "KEYREGISTRY", "DISCARD"}

// checkDir refuses a damaged directory before Badger opens it:
//   - a directory that holds a store's files but no MANIFEST (Badger would start an
//     empty store over them), or whose MANIFEST cannot be read;
//   - a table the MANIFEST lists that is missing, or that fails to open or to verify
//     its checksums. Badger opens tables in goroutines of its own, where a truncated
//     table is a panic nobody can recover, and it skips a table whose checksum does
//     not match with a log line, silently losing what it held; here every table is
//     opened and fully verified on the caller's goroutine, under guard.
//
// An empty or new directory passes.
func checkDir(o bdg.Options) error {
	dir := o.Dir
	manifest := filepath.Join(dir, "MANIFEST")
	f, err := os.Open(manifest)
	if errors.Is(err, os.ErrNotExist) {
		for _, pat := range storeFiles {
			if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
				return damaged(manifest, fmt.Errorf("the MANIFEST is missing but %s is present: the store is not re-created silently", filepath.Base(m[0])))
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("badger: %w", err)
	}
	var m bdg.Manifest
	err = guard(manifest, func() error {
		defer f.Close()
		var err error
		m, _, err = bdg.ReplayManifestFile(f, o.ExternalMagicVersion, o)
		return err
	})
	if err != nil {
		if errors.Is(err, driver.ErrBrokenEntry) {
			return err
		}
		return damaged(manifest, err)
	}
	for id, tm := range m.Tables {
		name := table.NewFilename(id, dir)
		if err := checkTable(name, tm, o); err != nil {
			return err
		}
	}
	return nil
}

// checkTable opens one table read-only and verifies the checksum of every block.
func checkTable(name string, tm bdg.TableManifest, o bdg.Options) error {
	return guard(name, func() error {
		mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
		if err != nil {
			return damaged(name, err)
		}
		t, err := table.OpenTable(mf, table.Options{
			ChkMode:     bopts.OnTableRead,
			Compression: tm.Compression,
			BlockSize:   o.BlockSize,
			TableSize:   uint64(o.BaseTableSize),
		})
		if err != nil {
			// OpenTable closes mf on its own errors, not on those of reading the
			// table's index; unmapping twice could unmap another mapping, so mf is
			// closed only in the second case (a panic leaks it, on an open that fails).
			if strings.Contains(err.Error(), "failed to initialize table") {
				_ = mf.Close(-1)
			}
			return damaged(name, err)
		}
		return t.MmapFile.Close(-1)
	})
}
