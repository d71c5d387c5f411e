package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// pageFile is a bbolt file of every shape the page check walks: a bucket
// deep enough for branch pages, nested buckets with pages of their own,
// inline buckets, values on overflow pages, and free pages.
type pageFile struct {
	path     string
	pageSize int
	meta     meta
	big      uint64 // the root page of bucket "big", a branch page
}

// writePageFile builds a pageFile in a temporary directory.
func writePageFile(t *testing.T) pageFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pages.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		big, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range 3000 {
			if err := big.Put(fmt.Appendf(nil, "key-%05d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		outer, err := tx.CreateBucket([]byte("outer"))
		if err != nil {
			return err
		}
		nested, err := outer.CreateBucket([]byte("nested"))
		if err != nil {
			return err
		}
		for i := range 1000 {
			if err := nested.Put(fmt.Appendf(nil, "n-%04d", i), make([]byte, 50)); err != nil {
				return err
			}
		}
		tiny, err := outer.CreateBucket([]byte("tiny"))
		if err != nil {
			return err
		}
		if err := tiny.Put([]byte("a"), []byte("1")); err != nil {
			return err
		}
		blobs, err := tx.CreateBucket([]byte("blobs"))
		if err != nil {
			return err
		}
		return blobs.Put([]byte("huge"), bytes.Repeat([]byte("x"), 5*db.Info().PageSize))
	}))
	// Deletes in later commits leave free pages in the freelist.
	for round := range 3 {
		require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
			big := tx.Bucket([]byte("big"))
			for i := round; i < 3000; i += 7 {
				if err := big.Delete(fmt.Appendf(nil, "key-%05d", i)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	pf := pageFile{path: path, pageSize: db.Info().PageSize}
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		pf.big = uint64(tx.Bucket([]byte("big")).Root())
		return nil
	}))
	require.NoError(t, db.Close())
	pf.meta = currentMeta(t, path, pf.pageSize)
	require.NotEqual(t, noFreelist, pf.meta.freelist)
	return pf
}

// currentMeta reads the meta page with the higher transaction id.
func currentMeta(t *testing.T, path string, pageSize int) meta {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var best meta
	buf := make([]byte, metaEnd)
	for id := range int64(2) {
		_, err := f.ReadAt(buf, id*int64(pageSize))
		require.NoError(t, err)
		if m, ok := parseMeta(buf); ok && m.txid >= best.txid {
			best = m
		}
	}
	require.NotZero(t, best.pgid)
	return best
}

// checkFile runs the page check and bbolt's tx.Check on the file at path.
func checkFile(t *testing.T, path string, pageSize int, withBolt bool) (pageErr, boltErr error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	pageErr = checkPages(t.Context(), f, pageSize, currentMeta(t, path, pageSize))
	if !withBolt {
		return pageErr, nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	var errs []error
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	}))
	return pageErr, fmt.Errorf("%v", errs)
}

// page reads page id of the file (one page).
func readPage(t *testing.T, f *os.File, pageSize int, id uint64) []byte {
	t.Helper()
	p := make([]byte, pageSize)
	_, err := f.ReadAt(p, int64(id)*int64(pageSize)) //nolint:gosec // G115: a small test file
	require.NoError(t, err)
	return p
}

// writePage writes p back as page id.
func writePage(t *testing.T, f *os.File, pageSize int, id uint64, p []byte) {
	t.Helper()
	_, err := f.WriteAt(p, int64(id)*int64(pageSize)) //nolint:gosec // G115: a small test file
	require.NoError(t, err)
}

// TestCheckPagesHealthy: the page check finds nothing wrong with healthy
// files of every shape, and neither does bbolt's tx.Check.
func TestCheckPagesHealthy(t *testing.T) {
	pf := writePageFile(t)
	sample, pageSize := writeSample(t)
	for name, file := range map[string]struct {
		path     string
		pageSize int
	}{"every page shape": {pf.path, pf.pageSize}, "a store": {sample, pageSize}} {
		t.Run(name, func(t *testing.T) {
			pageErr, boltErr := checkFile(t, file.path, file.pageSize, true)
			require.NoError(t, pageErr)
			require.EqualError(t, boltErr, "[]")
		})
	}
}

// TestCheckPagesDamage_TH45: each kind of structural damage tx.Check
// finds, the page check finds too, in its own words; on a page id past
// the end bbolt's check would fault on its own goroutine, which no
// recover reaches, so it is left out there (F12).
func TestCheckPagesDamage_TH45(t *testing.T) {
	ne := binary.NativeEndian
	tests := []struct {
		name     string
		damage   func(t *testing.T, f *os.File, pf pageFile)
		want     string
		withBolt bool
	}{
		{
			name: "a page both reachable and free",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.meta.freelist)
				n := ne.Uint16(p[10:])
				ne.PutUint64(p[pageHeaderSize+8*int(n):], pf.big)
				ne.PutUint16(p[10:], n+1)
				writePage(t, f, pf.pageSize, pf.meta.freelist, p)
			},
			want:     "reachable but free",
			withBolt: true,
		},
		{
			name: "a page freed twice",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.meta.freelist)
				n := ne.Uint16(p[10:])
				copy(p[pageHeaderSize+8*int(n):], p[pageHeaderSize:pageHeaderSize+8])
				ne.PutUint16(p[10:], n+1)
				writePage(t, f, pf.pageSize, pf.meta.freelist, p)
			},
			want:     "freed twice",
			withBolt: true,
		},
		{
			name: "a page neither reachable nor free",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.meta.freelist)
				ne.PutUint16(p[10:], ne.Uint16(p[10:])-1)
				writePage(t, f, pf.pageSize, pf.meta.freelist, p)
			},
			want:     "neither reachable nor free",
			withBolt: true,
		},
		{
			name: "a page referenced twice",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.big)
				copy(p[pageHeaderSize+branchElemSize+8:], p[pageHeaderSize+8:pageHeaderSize+16])
				writePage(t, f, pf.pageSize, pf.big, p)
			},
			want:     "referenced more than once",
			withBolt: true,
		},
		{
			name: "keys out of order",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				leaf := firstLeaf(t, f, pf)
				p := readPage(t, f, pf.pageSize, leaf)
				at := pageHeaderSize + leafElemSize
				p[at+int(ne.Uint32(p[at+4:]))] = 0 // key 1 now sorts first
				writePage(t, f, pf.pageSize, leaf, p)
			},
			want:     "key 1 does not sort after key 0",
			withBolt: true,
		},
		{
			name: "a child key outside its parent's range",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.big)
				at := pageHeaderSize + branchElemSize
				p[at+int(ne.Uint32(p[at:]))] = 0xFF // the second separator now sorts after its whole child
				writePage(t, f, pf.pageSize, pf.big, p)
			},
			want:     "sorts before its parent's key",
			withBolt: true,
		},
		{
			name: "a leaf key past the next key of its parent",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				leaf := firstLeaf(t, f, pf)
				p := readPage(t, f, pf.pageSize, leaf)
				at := pageHeaderSize + (int(ne.Uint16(p[10:]))-1)*leafElemSize
				p[at+int(ne.Uint32(p[at+4:]))] = 0xFF // the last key now sorts after its right sibling's
				writePage(t, f, pf.pageSize, leaf, p)
			},
			want:     "sorts at or after the next key of its parent",
			withBolt: true,
		},
		{
			name: "a page that says it is another",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				leaf := firstLeaf(t, f, pf)
				p := readPage(t, f, pf.pageSize, leaf)
				ne.PutUint64(p, leaf+1)
				writePage(t, f, pf.pageSize, leaf, p)
			},
			want:     "its header says page",
			withBolt: true,
		},
		{
			name: "a page neither branch nor leaf",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				leaf := firstLeaf(t, f, pf)
				p := readPage(t, f, pf.pageSize, leaf)
				ne.PutUint16(p[8:], freelistPageFlag)
				writePage(t, f, pf.pageSize, leaf, p)
			},
			want:     "where a branch or leaf page belongs",
			withBolt: true,
		},
		{
			name: "a child past the last page",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				p := readPage(t, f, pf.pageSize, pf.big)
				ne.PutUint64(p[pageHeaderSize+8:], pf.meta.pgid+3)
				writePage(t, f, pf.pageSize, pf.big, p)
			},
			want: "outside the",
		},
		{
			name: "elements that do not fit their page",
			damage: func(t *testing.T, f *os.File, pf pageFile) {
				leaf := firstLeaf(t, f, pf)
				p := readPage(t, f, pf.pageSize, leaf)
				ne.PutUint16(p[10:], 0xFFFF)
				writePage(t, f, pf.pageSize, leaf, p)
			},
			want: "leaf elements do not fit",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pf := writePageFile(t)
			f, err := os.OpenFile(pf.path, os.O_RDWR, 0)
			require.NoError(t, err)
			tc.damage(t, f, pf)
			require.NoError(t, f.Close())
			pageErr, boltErr := checkFile(t, pf.path, pf.pageSize, tc.withBolt)
			require.Error(t, pageErr)
			assert.Contains(t, pageErr.Error(), tc.want)
			if tc.withBolt {
				assert.NotEqual(t, "[]", boltErr.Error(), "bbolt's check finds it too")
			}
		})
	}
}

// firstLeaf returns the leftmost leaf page under bucket "big"'s root,
// a branch page.
func firstLeaf(t *testing.T, f *os.File, pf pageFile) uint64 {
	t.Helper()
	ne := binary.NativeEndian
	id := pf.big
	p := readPage(t, f, pf.pageSize, id)
	require.Equal(t, uint16(branchPageFlag), ne.Uint16(p[8:]), "bucket big has a branch root")
	for ne.Uint16(p[8:]) == branchPageFlag {
		id = ne.Uint64(p[pageHeaderSize+8:])
		p = readPage(t, f, pf.pageSize, id)
	}
	require.Equal(t, uint16(leafPageFlag), ne.Uint16(p[8:]))
	return id
}

// TestCheckDoesNotWaitForWriters: the check of an open store runs in a
// read transaction only, so a writer holding its transaction through the
// whole check does not hold the check up, and the check holds up no
// writer (F12: serve checks while it serves).
func TestCheckDoesNotWaitForWriters(t *testing.T) {
	path, _ := writeSample(t)
	s, err := Open(path, Options{SkipCheck: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	tx, err := s.db.Begin(true)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Check(t.Context()) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		require.NoError(t, tx.Rollback())
		<-done
		require.FailNow(t, "the check waited for the write transaction")
	}
	require.NoError(t, tx.Rollback())
	require.NoError(t, s.CreateConnection(t.Context(), store.Connection{ID: "after", Provider: "p"}))
}
