package badger

import (
	"errors"
	"os"
	"syscall"
)

func fallocate(f *os.File, mode uint32, n int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), mode, 0, n)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
