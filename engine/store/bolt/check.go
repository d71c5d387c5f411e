package bolt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxCheckErrors caps how many integrity problems Open reports; the first
// few say enough and a wrecked file can produce thousands.
const maxCheckErrors = 5

// openChecked opens the file and, unless opts.SkipCheck, proves that every
// page can be read. bbolt trusts the file: on a damaged one it panics, or
// follows a page id or offset taken from the damaged bytes out of its
// memory map and faults. A fault normally kills the process, so this
// goroutine asks the runtime to turn faults into panics, and the recover
// below turns those into ErrCorrupt (TH-45, F12). Nothing here writes to
// the file.
func openChecked(path string, opts Options, existed bool) (db *bbolt.DB, err error) {
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if db != nil {
			_ = db.Close()
		} else if file != nil {
			// bbolt.Open panicked before returning the DB: release the
			// lock and the descriptor. Its memory map stays until the
			// process exits, which Open's caller is about to do.
			releaseLock(file)
			_ = file.Close()
		}
		db, err = nil, corruptError(path, panicError(r))
	}()

	db, err = bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: opts.LockTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (is another unfurld running?)", path, ErrLocked)
	case existed && isContentError(err):
		return nil, corruptError(path, err)
	default:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if opts.SkipCheck {
		return db, nil
	}
	if err := check(db); err != nil {
		_ = db.Close()
		return nil, corruptError(path, err)
	}
	return db, nil
}

// checkExisting runs the checks that need no bbolt on a file that exists
// already: it must not be empty and must be as long as its pages.
func checkExisting(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return nil // bbolt.Open reports it
	}
	// bbolt formats an empty file as a new database. bbolt writes its
	// first pages before it returns a new database, so an existing empty
	// file is far more likely a truncated database than a fresh one, and
	// starting over would silently drop every connection.
	if fi.Size() == 0 {
		return corruptError(path, errors.New("the file is empty (delete it to start with an empty database)"))
	}
	return checkSizeAt(path)
}

// checkSizeAt runs checkSize on the file at path. It opens the file
// read-only without taking bbolt's lock: a file in use is then reported by
// bbolt.Open as locked, and its size only grows while another process
// writes it.
func checkSizeAt(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if err := checkSize(f); err != nil {
		return corruptError(path, err)
	}
	return nil
}

// panicError describes a recovered panic as an error.
func panicError(r any) error {
	if e, ok := r.(error); ok {
		return fmt.Errorf("reading it failed: %w", e)
	}
	return fmt.Errorf("reading it failed: %v", r)
}

// check is the integrity check. It reads every key and value itself,
// on the caller's goroutine where faults are recovered, and only then runs
// bbolt's tx.Check, whose own goroutine cannot recover a fault but now
// only visits pages that were just read safely. tx.Check adds what a walk
// cannot see: pages both used and free, pages lost to neither, keys out of
// order.
func check(db *bbolt.DB) error {
	return db.View(func(tx *bbolt.Tx) error {
		var sum uint32
		if err := tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			sum = readAll(b, sum)
			return nil
		}); err != nil {
			return err
		}
		var errs []error
		// Drain the channel even past the cap: bbolt's checker goroutine
		// blocks on it and would outlive the transaction otherwise.
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// readAll touches every byte of every key and value under b, recursively,
// so that a page that cannot be read faults here. The checksum only keeps
// the reads from being optimized away.
func readAll(b *bbolt.Bucket, sum uint32) uint32 {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		sum = crc32.Update(sum, crc32.IEEETable, k)
		if v == nil {
			if child := b.Bucket(k); child != nil {
				sum = readAll(child, sum)
			}
			continue
		}
		sum = crc32.Update(sum, crc32.IEEETable, v)
	}
	return sum
}

// isContentError reports whether bbolt.Open failed on an existing file's
// contents rather than on the operating system: bbolt reports bad contents
// with its own errors (ErrInvalid, ErrChecksum, ErrVersionMismatch, and a
// plain "file size too small"), and OS failures as *fs.PathError or
// syscall.Errno.
func isContentError(err error) bool {
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return true
	}
	var pathErr *fs.PathError
	var errno syscall.Errno
	return !errors.As(err, &pathErr) && !errors.As(err, &errno)
}
