//go:build linux

package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// checkLock fails when another process holds badger's directory lock on
// dbDir: opening the database in the background must not start when another
// collector uses it, and such a database is never moved aside.
func checkLock(dbDir string) error {
	f, err := os.Open(filepath.Join(dbDir, "LOCK"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // the open finds out what is wrong
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("buffer: %s is in use by another collector: %w", dbDir, errInUse)
		}
		return nil
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
