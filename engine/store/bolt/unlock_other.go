//go:build !((linux && !android) || darwin || freebsd || netbsd || openbsd || dragonfly)

package bolt

import "os"

// releaseLock does nothing here: bbolt locks with fcntl or LockFileEx on
// these systems, and closing the file releases those locks.
func releaseLock(*os.File) {}
