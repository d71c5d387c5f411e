//go:build !linux

package bolt

// dropPages does nothing where the store does not release its map's pages
// (only Linux does, see release_linux.go): those pages stay resident until
// the kernel needs the memory.
func dropPages(uintptr, int64) error { return nil }

// residentFileBytes is only read on Linux: elsewhere the releaser keeps
// to releaseEvery, and its releases do nothing.
func residentFileBytes() (int64, bool) { return 0, false }
