//go:build !linux

package badger

import "os"

// fallocate is Linux's; elsewhere the logs stay sparse (see logSpace).
func fallocate(*os.File, uint32, int64) error { return errNoFallocate }
