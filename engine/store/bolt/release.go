package bolt

import (
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// releaseEvery is how often the store hands the pages of its memory map
// back to the kernel (releaseMap) in any case. bbolt reads the file
// through a read-only shared memory map, and every page a read touches
// stays in the process's resident set until the kernel needs the memory
// back: the integrity check, a schedule sweep or the metrics' counts touch
// the whole file, so a store of a million subscriptions showed 1.7 GB of
// RSS with a heap of 28 MB (docs/operations.md, "Live previews at
// scale"). Released pages stay in the page cache, so the next read of one
// costs a minor fault and no disk read.
const releaseEvery = time.Second

// releaseAbove releases the map sooner, at the next look
// (releaseLookEvery), once the process's resident file pages exceed it.
// A read through the map takes more than the page it reads: the kernel
// maps the cached pages around a faulted page too (fault-around, whole
// large folios; about 125 KiB per scattered read on Linux 6.18), so the
// first polls after a start of a million subscriptions mapped up to
// 500 MiB a second and peaked near 200 MiB between two releases a
// second apart. The binary's own pages count too (about 15 MiB).
const releaseAbove = 64 << 20

// releaseLookEvery is how often the loop reads the resident file pages
// (residentFileBytes, a read of a few counters).
const releaseLookEvery = 50 * time.Millisecond

// releaseKeys is how many keys the integrity check's walk reads between
// two releases of the map, so that the check, which reads every page in
// one transaction, does not take the whole file into RSS first (a few
// megabytes of pages at most).
const releaseKeys = 1 << 14

// releaser runs releaseMap every releaseEvery, and sooner when the
// resident file pages exceed releaseAbove, until stop.
type releaser struct {
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// startReleaser starts the loop for db.
func startReleaser(db *bbolt.DB) *releaser {
	r := &releaser{quit: make(chan struct{}), done: make(chan struct{})}
	go r.run(db)
	return r
}

func (r *releaser) run(db *bbolt.DB) {
	defer close(r.done)
	t := time.NewTicker(releaseLookEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.quit:
			return
		case now := <-t.C:
			if n, ok := residentFileBytes(); !releaseDue(n, ok, now.Sub(last)) {
				continue
			}
			last = now
			// A failure only means the pages stay resident until the
			// kernel reclaims them, as they would without this loop.
			_ = db.View(func(tx *bbolt.Tx) error { return releaseMap(tx) })
		}
	}
}

// releaseDue reports whether the map is to be released now, since the
// last release and with n resident file bytes (ok: n is known).
func releaseDue(n int64, ok bool, since time.Duration) bool {
	return since >= releaseEvery || (ok && n >= releaseAbove)
}

// stop ends the loop and waits for it, before the file is closed.
func (r *releaser) stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

// releaseMap drops the process's mappings of the pages of the data map
// (madvise MADV_DONTNEED on Linux, nothing elsewhere); see releaseEvery.
// It must run inside tx: bbolt holds its remap lock for the whole life of
// a transaction, so the map can neither move nor shrink during the call.
// It is safe because the map is read-only and shared (bbolt maps the file
// with PROT_READ and MAP_SHARED, and this store never sets a writable or
// private map): dropping a page of such a map loses nothing, and the next
// access maps the page cache's copy of the file again, which holds every
// committed write. Readers running meanwhile in other transactions only
// fault their page back in.
func releaseMap(tx *bbolt.Tx) error {
	return dropPages(tx.DB().Info().Data, tx.Size())
}

// checkReleaseEvery is how often the map's pages are released while
// bbolt's own check (tx.Check, which Open runs, not the server's check:
// pagecheck.go) reads every page on a goroutine of its own, which the
// walk's releases cannot reach: from the page cache it maps a gigabyte
// within one second of the store's loop (a peak of 1.4 GB of RSS at a
// million subscriptions). A release of pages not mapped costs little, so
// a fast pace only while the check runs is cheap.
const checkReleaseEvery = 20 * time.Millisecond

// releaseDuring runs fn, releasing the map's pages every
// checkReleaseEvery until it returns. Each release runs in a read
// transaction of its own (releaseMap), which neither waits for nor holds
// off a write transaction fn may hold.
func releaseDuring(db *bbolt.DB, fn func() error) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(checkReleaseEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = db.View(releaseMap)
			}
		}
	})
	defer func() {
		close(done)
		wg.Wait()
	}()
	return fn()
}
