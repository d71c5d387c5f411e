package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Erasing deleted data (security.md TH-40, TH-41).
//
// bbolt is copy-on-write: a transaction writes every page it changes to a
// page taken from the freelist (or to the end of the file), and the old
// page is freed with its bytes intact until some later transaction reuses
// it. A deleted connection's URIs, names and sealed credentials therefore
// stay readable in free pages, and so do older versions of every record
// that was ever rewritten. Overwriting a value in place cannot help: the
// page holding the old value is freed, not overwritten. Nor can a data
// key kept in the same file (crypto-shredding): the leaf holding the key
// is itself rewritten whenever a neighbour changes, leaving stale copies
// of the key in free pages.
//
// What works with bbolt's public API alone is to make bbolt reuse every
// free page: after a deletion commits, the eraser
//
//  1. lists the pages that are free at that moment (tx.Page); only they
//     can hold bytes of the deleted records, since every live page and
//     every page written later holds post-deletion state;
//  2. fills fresh scratch buckets with zero values sized so that each
//     leaf is exactly one page (two values a leaf at FillPercent 1.0),
//     as many leaves as there were free pages: every one-page allocation
//     takes a free page while any is left, so each free page is rewritten
//     with zeros (bbolt zeroes its page buffers before reuse);
//  3. drops the scratch buckets, whose pages, now zeros, go back to the
//     freelist.
//
// The deletion's transaction also writes a marker, meta/erase_pending, and
// the pass that erases everything clears it, so a crash between the two
// is caught up at the next Open.
//
// A page freed by a transaction stays pending, not reusable, while a read
// transaction older than that one is open. Such pages are still listed as
// free after step 2; the eraser then retries with backoff, so the erasure
// completes within seconds of the last old reader closing. Deletions in a
// burst are coalesced: one pass covers all that committed before it.
// Bytes below the file (filesystem snapshots, copy-on-write filesystems,
// SSD wear levelling, backups) are out of reach; docs/operations.md says so.

// Erase tuning.
const (
	// eraseChunkPages bounds the pages one scratch transaction writes,
	// so memory stays small (4 KiB each) on a file with many free pages.
	eraseChunkPages = 1024
	// eraseAttempts and the backoff bound how long the eraser waits for
	// old read transactions: about a minute in all.
	eraseAttempts   = 12
	eraseBackoff    = 50 * time.Millisecond
	eraseMaxBackoff = 8 * time.Second
)

// scratchPrefix names the eraser's buckets; Open drops any a crash left.
const scratchPrefix = "\x00erase-"

// keyErasePending, in meta, holds a counter of deletions not yet erased.
var keyErasePending = []byte("erase_pending")

// markErasePending records in tx, the deletion's own transaction, that an
// erase is due. The value changes with every deletion, so a pass clears
// it only if no deletion committed since the pass listed the free pages.
func markErasePending(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	var n uint64
	if v := meta.Get(keyErasePending); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return meta.Put(keyErasePending, binary.BigEndian.AppendUint64(nil, n+1))
}

// erasePending reports whether the file says an erase is due.
func erasePending(db *bbolt.DB) bool {
	pending := false
	_ = db.View(func(tx *bbolt.Tx) error {
		pending = tx.Bucket(bucketMeta).Get(keyErasePending) != nil
		return nil
	})
	return pending
}

// eraser runs passes in the background. requested counts deletions,
// done the requests covered by the last complete pass.
type eraser struct {
	db      *bbolt.DB
	log     *slog.Logger
	backoff time.Duration

	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu        sync.Mutex
	requested uint64
	done      uint64
	changed   chan struct{} // closed and replaced when done moves
}

func newEraser(db *bbolt.DB, log *slog.Logger) *eraser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &eraser{
		db: db, log: log, backoff: eraseBackoff,
		kick: make(chan struct{}, 1), stop: make(chan struct{}),
		changed: make(chan struct{}),
	}
	e.wg.Add(1)
	go e.run()
	return e
}

// request asks for a pass after a deletion has committed. A nil eraser
// (benchmarks measuring deletion alone) does nothing.
func (e *eraser) request() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.requested++
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default: // a pass is queued already and will cover this one
	}
}

// wait returns when every deletion requested before the call has been
// erased, or ctx ends.
func (e *eraser) wait(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	want := e.requested
	e.mu.Unlock()
	for {
		e.mu.Lock()
		done, ch := e.done, e.changed
		e.mu.Unlock()
		if done >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for erase: %w", ctx.Err())
		case <-ch:
		}
	}
}

// close stops the background loop after a last pass for any deletion
// not yet erased: by then the caller's reads are over, so it completes.
func (e *eraser) close() {
	if e == nil {
		return
	}
	e.stopOnce.Do(func() { close(e.stop) })
	e.wg.Wait()
}

func (e *eraser) run() {
	defer e.wg.Done()
	for {
		select {
		case <-e.kick:
			e.pass(true)
		case <-e.stop:
			select {
			case <-e.kick:
				e.pass(false)
			default:
			}
			return
		}
	}
}

// pass erases until no page free at its start is left unwritten, retrying
// while old readers pin some (retry false: one attempt, at close).
func (e *eraser) pass(retry bool) {
	e.mu.Lock()
	target := e.requested
	e.mu.Unlock()
	delay := e.backoff
	for attempt := 1; ; attempt++ {
		left, err := scrub(e.db)
		if err == nil && left == 0 {
			break
		}
		if !retry || attempt == eraseAttempts {
			e.log.Warn("erase of deleted data incomplete; it is retried at the next deletion or start, or run unfurld compact",
				"pages_left", left, "err", err)
			return
		}
		select {
		case <-time.After(delay):
		case <-e.stop:
			retry = false
		}
		delay = min(2*delay, eraseMaxBackoff)
	}
	e.mu.Lock()
	e.done = target
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// scrub runs one erase attempt (see the top of this file) and returns how
// many pages free at its start it could not overwrite because a read
// transaction still pins them.
func scrub(db *bbolt.DB) (int, error) {
	var dirty []int
	var mark []byte
	// tx.Page reads the freelist, which only the writer may touch: every
	// look at it happens inside Update.
	err := db.Update(func(tx *bbolt.Tx) error {
		dirty = allFreePages(tx)
		mark = bytes.Clone(tx.Bucket(bucketMeta).Get(keyErasePending))
		return errNoChange
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return 0, fmt.Errorf("erase: list free pages: %w", err)
	}
	value := make([]byte, scratchValueSize(db.Info().PageSize))
	// Each scratch transaction frees a few pages of its own (the root
	// leaf, the freelist) that the next one reuses first; the slack
	// covers them.
	budget := len(dirty) + 4*(len(dirty)/eraseChunkPages+1) + 8
	written, buckets := 0, 0
	for len(dirty) > 0 && written < budget {
		n := min(eraseChunkPages, budget-written)
		err := db.Update(func(tx *bbolt.Tx) error {
			if dirty = stillFree(tx, dirty); len(dirty) == 0 {
				return errNoChange
			}
			b, err := tx.CreateBucket(scratchName(buckets))
			if err != nil {
				return err
			}
			b.FillPercent = 1.0
			// Two values make one full page; keys in order append, so
			// every leaf but the last (two pages) is exactly one page.
			key := make([]byte, 8)
			for i := range 2 * n {
				binary.BigEndian.PutUint64(key, uint64(i))
				if err := b.Put(key, value); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, errNoChange) {
			break
		}
		if err != nil {
			dropScratch(db)
			return len(dirty), fmt.Errorf("erase: overwrite free pages: %w", err)
		}
		written += n
		buckets++
	}
	var left int
	err = db.Update(func(tx *bbolt.Tx) error {
		// Look before dropping: the drop frees the scratch pages, which
		// would read as free again.
		left = len(stillFree(tx, dirty))
		changed := false
		if meta := tx.Bucket(bucketMeta); left == 0 && mark != nil && bytes.Equal(meta.Get(keyErasePending), mark) {
			if err := meta.Delete(keyErasePending); err != nil {
				return err
			}
			changed = true
		}
		err := dropScratchTx(tx)
		if errors.Is(err, errNoChange) && changed {
			return nil
		}
		return err
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return left, fmt.Errorf("erase: drop scratch: %w", err)
	}
	return left, nil
}

// allFreePages returns the ids of the free (or pending) pages of tx's
// file.
func allFreePages(tx *bbolt.Tx) []int {
	var out []int
	// Pages 0 and 1 are the meta pages; tx.Page is nil past the end.
	for id := 2; ; id++ {
		p, err := tx.Page(id)
		if err != nil || p == nil {
			return out
		}
		if p.Type == "free" {
			out = append(out, id)
		}
	}
}

// stillFree keeps the ids that are still free. A page that is no longer
// free has been rewritten since the deletion, so it holds none of its
// data even if it is freed again later.
func stillFree(tx *bbolt.Tx, ids []int) []int {
	out := ids[:0]
	for _, id := range ids {
		if p, err := tx.Page(id); err == nil && p != nil && p.Type == "free" {
			out = append(out, id)
		}
	}
	return out
}

// scratchValueSize makes two values fill one leaf page exactly: a page
// header of 16 bytes, then per value a 16-byte element header and an
// 8-byte key. A third value would not fit, so bbolt splits after two.
func scratchValueSize(pageSize int) int {
	return (pageSize-16)/2 - 16 - 8
}

func scratchName(i int) []byte { return fmt.Appendf(nil, "%s%08d", scratchPrefix, i) }

// dropScratchTx deletes every scratch bucket; errNoChange if there is
// none.
func dropScratchTx(tx *bbolt.Tx) error {
	var names [][]byte
	err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
		if len(name) > len(scratchPrefix) && string(name[:len(scratchPrefix)]) == scratchPrefix {
			names = append(names, append([]byte(nil), name...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errNoChange
	}
	for _, n := range names {
		if err := tx.DeleteBucket(n); err != nil {
			return err
		}
	}
	return nil
}

// dropScratch removes scratch buckets left by a failed attempt or a crash.
func dropScratch(db *bbolt.DB) {
	_ = db.Update(dropScratchTx)
}
