//go:build (linux && !android) || darwin || freebsd || netbsd || openbsd || dragonfly

package bolt

import (
	"os"
	"syscall"
)

// releaseLock drops the flock bbolt took on f. Closing f alone does not:
// bbolt's memory map still refers to the open file, and a flock lasts as
// long as the open file does.
func releaseLock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
