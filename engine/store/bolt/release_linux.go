//go:build linux

package bolt

import (
	"golang.org/x/sys/unix"
)

// dropPages tells the kernel that the n bytes of the mapping at addr are
// not needed (MADV_DONTNEED), which removes them from the resident set
// without touching the file; see releaseMap for why that is safe on
// bbolt's map. It takes the address as an integer, as bbolt gives it
// (Info().Data), and passes it to the system call as one.
func dropPages(addr uintptr, n int64) error {
	if n <= 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(n), unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
