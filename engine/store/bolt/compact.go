package bolt

import (
	"fmt"
	"os"
	"path/filepath"

	bbolt "go.etcd.io/bbolt"
)

// compactTxBytes bounds what one transaction of the copy holds in memory.
const compactTxBytes = 64 << 20

// CompactResult reports a compaction.
type CompactResult struct {
	// Before and After are the file sizes in bytes.
	Before, After int64
}

// Compact rewrites the database at path offline into a new file that holds
// only live records, with bbolt's own Compact, and puts it in place of the
// old one. It takes the database lock, so it fails with ErrLocked while a
// server runs on the file. The copy goes to a temporary file in the same
// directory, which is synced, checked and then renamed over the original,
// and the directory is synced: whenever the process dies, the file at path
// is wholly the old database or wholly the new one (F2). The erase after
// each deletion (erase.go) already clears free pages; compaction also
// gives the space back and leaves no free page at all (TH-40).
func Compact(path string, opts Options) (CompactResult, error) {
	return compact(path, opts, nil)
}

// compact is Compact with a hook run just before the rename, where tests
// stop it as a crash would.
func compact(path string, opts Options, beforeRename func() error) (CompactResult, error) {
	var res CompactResult
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	if err := checkExisting(path, fi); err != nil {
		return res, err
	}
	res.Before = fi.Size()
	// The source is opened with the full checks: a corrupt file is not
	// copied into a clean-looking one.
	src, err := openChecked(path, opts, true)
	if err != nil {
		return res, err
	}
	defer src.Close()

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".compact-*")
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	if err := copyInto(tmpPath, src); err != nil {
		return res, err
	}
	if err := syncFile(tmpPath); err != nil {
		return res, err
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			return res, err
		}
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	renamed = true
	if err := syncFile(dir); err != nil {
		return res, err
	}
	if fi, err := os.Stat(path); err == nil {
		res.After = fi.Size()
	}
	return res, nil
}

// copyInto writes src's live records into a new database at dst and
// checks the result before anything relies on it.
func copyInto(dst string, src *bbolt.DB) error {
	db, err := bbolt.Open(dst, 0o600, &bbolt.Options{Timeout: DefaultLockTimeout})
	if err != nil {
		return fmt.Errorf("compact: create %s: %w", dst, err)
	}
	if err := bbolt.Compact(db, src, compactTxBytes); err != nil {
		_ = db.Close()
		return fmt.Errorf("compact: copy: %w", err)
	}
	// Scratch buckets of an interrupted erase are not worth copying.
	dropScratch(db)
	if err := check(db); err != nil {
		_ = db.Close()
		return fmt.Errorf("compact: check the copy: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("compact: close the copy: %w", err)
	}
	return nil
}

// syncFile fsyncs a file or directory by path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("compact: sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("compact: sync %s: %w", path, err)
	}
	return nil
}
