//go:build linux

package bolt

import (
	"bytes"
	"os"
	"strconv"

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

// residentFileBytes returns the process's resident pages that are backed
// by files (the data map among them), from the third field of
// /proc/self/statm (resident shared pages: file-backed and shared
// memory), which the kernel reads from counters without walking the page
// tables.
func residentFileBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	fields := bytes.Fields(b)
	if len(fields) < 3 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(fields[2]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
