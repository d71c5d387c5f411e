package bolt

import (
	"context"
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

// check is the integrity check. It runs the live check (checkCtx), then
// bbolt's own tx.Check as well: a second opinion on the same structure,
// which costs memory (it reads every page through the memory map) but
// nothing else here, where no writer runs yet. tx.Check's own goroutine
// cannot recover a fault, but it only visits pages the walk has just read
// safely.
func check(db *bbolt.DB) error {
	if err := checkCtx(context.Background(), db); err != nil {
		return err
	}
	defer func() { _ = db.View(releaseMap) }()
	return releaseDuring(db, func() error {
		return db.View(func(tx *bbolt.Tx) error {
			var errs []error
			// Drain the channel even past the cap: bbolt's checker
			// goroutine blocks on it and would outlive the
			// transaction otherwise.
			for err := range tx.Check() {
				if len(errs) < maxCheckErrors {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		})
	})
}

// checkCtx is the check of an open store, stopping with ctx's error when
// ctx ends. It runs in one read transaction, which writers do not wait
// for, and reads one snapshot twice:
//
//   - the walk reads every key and value through bbolt, on the caller's
//     goroutine where faults are recovered, so that no later read of
//     this snapshot can fault;
//   - the page check (pagecheck.go) reads every page of the file with
//     pread and adds what a walk cannot see: pages both used and free,
//     pages lost to neither, pages referenced twice, keys out of order.
//
// The walk reads through the memory map and releases its pages every
// releaseKeys keys (reader); the page check maps nothing, so the check
// adds to the resident set only what the walk maps between two of its
// releases (under 100 MiB at a million subscriptions, docs/operations.md,
// "Live previews at scale").
func checkCtx(ctx context.Context, db *bbolt.DB) error {
	defer func() { _ = db.View(releaseMap) }()
	f, err := os.Open(db.Path())
	if err != nil {
		return err
	}
	defer f.Close()
	pageSize := db.Info().PageSize
	return viewSnapshot(db, f, pageSize, func(tx *bbolt.Tx, m meta) error {
		r := reader{ctx: ctx, tx: tx}
		if err := tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			return r.readAll(b)
		}); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = releaseMap(tx)
		return checkPages(ctx, f, pageSize, m)
	})
}

// snapshotAttempts bounds how often viewSnapshot begins again because two
// commits rewrote the meta page before it was read; each attempt takes
// microseconds and a commit at least one fsync.
const snapshotAttempts = 100

// viewSnapshot runs fn in a read transaction with the transaction's meta
// page read from f (readMeta).
func viewSnapshot(db *bbolt.DB, f *os.File, pageSize int, fn func(*bbolt.Tx, meta) error) error {
	for attempt := 1; ; attempt++ {
		moved := false
		err := db.View(func(tx *bbolt.Tx) error {
			m, err := readMeta(f, pageSize, tx)
			if err != nil {
				moved = errors.Is(err, errSnapshotMoved)
				return err
			}
			return fn(tx, m)
		})
		if !moved || attempt == snapshotAttempts {
			return err
		}
	}
}

// reader walks buckets for the check, looking at ctx every few thousand
// keys and releasing the pages read so far from the process's resident
// set every releaseKeys keys (release.go).
type reader struct {
	ctx  context.Context //nolint:containedctx // one walk's, dropped with it
	tx   *bbolt.Tx
	sum  uint32
	keys int
}

// readAll touches every byte of every key and value under b, recursively,
// so that a page that cannot be read faults here. The checksum only keeps
// the reads from being optimized away.
func (r *reader) readAll(b *bbolt.Bucket) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if r.keys++; r.keys%4096 == 0 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
		}
		if r.keys%releaseKeys == 0 {
			_ = releaseMap(r.tx)
		}
		r.sum = crc32.Update(r.sum, crc32.IEEETable, k)
		if v == nil {
			if child := b.Bucket(k); child != nil {
				if err := r.readAll(child); err != nil {
					return err
				}
			}
			continue
		}
		r.sum = crc32.Update(r.sum, crc32.IEEETable, v)
	}
	return nil
}

// Check runs the integrity check of Open (see Options.SkipCheck) on the
// open store, in one read transaction: every key and value is read, then
// every page's place in the structure is checked (checkCtx). It fails
// with ErrCorrupt and what it found, or with ctx's error when ctx ends
// first. Readers and the writer go on meanwhile, never waiting for it;
// pages freed during the check are reused only after it. bbolt's own
// tx.Check, which Open runs as well, is left out: it needs a write
// transaction beside writers and reads every page through the memory
// map (pagecheck.go).
//
// It is what lets a big store start at once: the check reads the whole
// file (16 s for a million subscriptions from a cold page cache), so a
// server opens with SkipCheck, starts listening, then calls Check and
// stops if it fails. A fault on a damaged page is recovered as at Open
// (TH-45, F12).
func (s *Store) Check(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check %s: %w: %w", s.db.Path(), ErrCorrupt, panicError(r))
		}
	}()
	if err := checkCtx(ctx, s.db); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("check %s: %w: %w", s.db.Path(), ErrCorrupt, err)
	}
	return nil
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
