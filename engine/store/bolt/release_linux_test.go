//go:build linux

package bolt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// bucketReleaseTest holds the records these tests write beside the
// store's own buckets.
var bucketReleaseTest = []byte("release_test")

// releaseValue is record i's value: 3 KB that differ per record, so a
// page read back from the wrong place would not compare equal.
func releaseValue(i int) []byte {
	return bytes.Repeat(binary.BigEndian.AppendUint32(nil, uint32(i)), 768) //nolint:gosec // G115: small i
}

// writeReleaseRecords writes records [from, to) in one transaction.
func writeReleaseRecords(t *testing.T, s *Store, from, to int) {
	t.Helper()
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketReleaseTest)
		if err != nil {
			return err
		}
		for i := from; i < to; i++ {
			if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), releaseValue(i)); err != nil { //nolint:gosec // G115: i >= 0
				return err
			}
		}
		return nil
	}))
}

// readReleaseRecords reads records [0, n) and reports the first one that
// is missing or wrong.
func readReleaseRecords(tx *bbolt.Tx, n int) error {
	b := tx.Bucket(bucketReleaseTest)
	for i := range n {
		v := b.Get(binary.BigEndian.AppendUint64(nil, uint64(i))) //nolint:gosec // G115: i >= 0
		if !bytes.Equal(v, releaseValue(i)) {
			return fmt.Errorf("record %d reads %d bytes, not its value", i, len(v))
		}
	}
	return nil
}

// mapRSS returns the resident bytes of the mapping that starts at addr,
// from /proc/self/smaps.
func mapRSS(t *testing.T, addr uintptr) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	require.NoError(t, err)
	defer f.Close()
	start := strconv.FormatUint(uint64(addr), 16) + "-"
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(strings.Fields(line)[0], "-") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.NoError(t, sc.Err())
	require.FailNow(t, "no mapping at the data map's address", "%x", addr)
	return 0
}

// openQuiet opens a store and stops its background release, so that the
// pages a test reads stay resident until the test releases them.
func openQuiet(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "unfurld.db"), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	s.release.stop()
	return s
}

// TestReleaseMapDropsResidentPages: after a read of the whole file, the
// data map's pages count in the process's RSS; releaseMap takes them out,
// and every record still reads back as written (from the page cache, not
// from a map that moved or emptied).
func TestReleaseMapDropsResidentPages(t *testing.T) {
	s := openQuiet(t)
	const n = 8000 // about 32 MB of values
	writeReleaseRecords(t, s, 0, n)

	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		require.NoError(t, readReleaseRecords(tx, n))
		addr := s.db.Info().Data
		before := mapRSS(t, addr)
		require.Greater(t, before, int64(16<<20), "reading the records maps their pages")
		require.NoError(t, releaseMap(tx))
		after := mapRSS(t, addr)
		assert.Less(t, after, int64(1<<20), "released from %d bytes", before)
		return readReleaseRecords(tx, n)
	}))
}

// TestResidentFileBytesCountsTheMap: the releaser's measure of resident
// file pages (statm) counts the data map's pages: it grows by what a read
// maps and falls by what releaseMap drops.
func TestResidentFileBytesCountsTheMap(t *testing.T) {
	s := openQuiet(t)
	const n = 8000
	writeReleaseRecords(t, s, 0, n)
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		require.NoError(t, releaseMap(tx))
		before, ok := residentFileBytes()
		require.True(t, ok)
		require.NoError(t, readReleaseRecords(tx, n))
		read, _ := residentFileBytes()
		assert.Greater(t, read-before, int64(16<<20), "reading the records maps their pages")
		require.NoError(t, releaseMap(tx))
		after, _ := residentFileBytes()
		assert.Less(t, after, read-16<<20, "released")
		return nil
	}))
}

// TestCheckReleasesPages: the integrity check reads every page, and leaves
// few of them resident.
func TestCheckReleasesPages(t *testing.T) {
	s := openQuiet(t)
	const n = 8000
	writeReleaseRecords(t, s, 0, n)
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error { return readReleaseRecords(tx, n) }))
	require.Greater(t, mapRSS(t, s.db.Info().Data), int64(16<<20))
	require.NoError(t, s.Check(t.Context()))
	assert.Less(t, mapRSS(t, s.db.Info().Data), int64(4<<20))
}

// TestScheduleCountsReleasesPages: the poller's count walks every key of
// polls_by_due, and releases the pages it read as it goes, so that the
// walk of a million keys does not take the bucket's leaves into RSS
// between two of the store's releases (issue 11: a cold start's peak of
// 280 MiB). The keys are padded so that two releases' worth of them fill
// about 17 MB of pages, all read before the count.
func TestScheduleCountsReleasesPages(t *testing.T) {
	s := openQuiet(t)
	const n = 2*releaseKeys + 64
	prefix := keyPrefix("bench")
	due := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPollsByDue)
		for i := range n {
			k := binary.BigEndian.AppendUint64(bytes.Clone(prefix), timeKey(due))
			k = binary.BigEndian.AppendUint32(k, uint32(i)) //nolint:gosec // G115: small i
			if err := b.Put(append(k, bytes.Repeat([]byte("u"), 500)...), nil); err != nil {
				return err
			}
		}
		return nil
	}))
	addr := s.db.Info().Data
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPollsByDue).ForEach(func(k, v []byte) error { return nil })
	}))
	require.Greater(t, mapRSS(t, addr), int64(12<<20), "reading the keys maps their pages")

	got, err := s.ScheduleCounts(t.Context(), "bench", due.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, store.ScheduleCounts{Subscriptions: n, Due: n}, got)
	assert.Less(t, mapRSS(t, addr), int64(4<<20), "the count left the pages it read mapped")
}

// TestCheckPagesMapsNothing: the page check of an open store reads
// every page without mapping any (pread, not the memory map), where
// bbolt's tx.Check, which it replaces there, maps the pages it reads.
func TestCheckPagesMapsNothing(t *testing.T) {
	s := openQuiet(t)
	const n = 8000
	writeReleaseRecords(t, s, 0, n)
	f, err := os.Open(s.db.Path())
	require.NoError(t, err)
	defer f.Close()
	addr := s.db.Info().Data
	require.NoError(t, viewSnapshot(s.db, f, s.db.Info().PageSize, func(tx *bbolt.Tx, m meta) error {
		require.NoError(t, releaseMap(tx))
		require.NoError(t, checkPages(t.Context(), f, s.db.Info().PageSize, m))
		assert.Less(t, mapRSS(t, addr), int64(1<<20), "the page check mapped pages")
		for err := range tx.Check() {
			require.NoError(t, err)
		}
		assert.Greater(t, mapRSS(t, addr), int64(16<<20), "tx.Check maps what it reads")
		return nil
	}))
}

// TestReleaseMapWhileWriting: releases in a loop while readers check
// every record and a writer grows the file (so bbolt remaps it): no
// reader ever sees a wrong byte, and the race detector sees no race.
func TestReleaseMapWhileWriting(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "unfurld.db"), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	const start, batch, batches = 500, 500, 8
	writeReleaseRecords(t, s, 0, start)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    = start
		done = make(chan struct{})
	)
	written := func() int { mu.Lock(); defer mu.Unlock(); return n }
	wg.Go(func() {
		defer close(done)
		for b := range batches {
			from := start + b*batch
			writeReleaseRecords(t, s, from, from+batch)
			mu.Lock()
			n = from + batch
			mu.Unlock()
		}
	})
	errs := make(chan error, 3)
	loop := func(fn func(n int) func(tx *bbolt.Tx) error) {
		for {
			select {
			case <-done:
				return
			default:
			}
			// n is read before the transaction starts, so that every
			// record below it is committed in the transaction's view.
			if err := s.db.View(fn(written())); err != nil {
				errs <- err
				return
			}
		}
	}
	wg.Go(func() { loop(func(int) func(*bbolt.Tx) error { return releaseMap }) })
	for range 2 {
		wg.Go(func() {
			loop(func(n int) func(*bbolt.Tx) error {
				return func(tx *bbolt.Tx) error { return readReleaseRecords(tx, n) }
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error { return readReleaseRecords(tx, start+batch*batches) }))
}
