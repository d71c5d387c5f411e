package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bbolt "go.etcd.io/bbolt"
)

// The page check proves what bbolt's own tx.Check proves about one
// snapshot of the file: every page below the high-water mark is either
// reachable once from the root or free, never both; the freelist names no
// page twice; every reachable page is a branch or leaf page that says it is
// where it was found, inside the file; keys are in order within each page
// and within the range their parent gives them.
//
// It reads the pages with pread, not through bbolt's memory map, so that
// they stay in the page cache and out of the process's resident set.
// tx.Check reads each page through the map, in tree order, scattered over
// the file, and the kernel maps the pages around each faulted page too
// (fault-around, whole large folios): at a million subscriptions it mapped
// 300 MiB between two releases 20 ms apart and peaked at 500 MiB
// (docs/operations.md, "Live previews at scale"). It also runs in a read
// transaction: tx.Check compares against bbolt's in-memory freelist, which
// commits rewrite, so beside writers it needed a write transaction and
// stalled every write for its length. This check compares against the
// freelist page of its own snapshot, which bbolt keeps intact, like every
// page reachable from that snapshot, until the transaction ends.
//
// The layout read here is bbolt's file format (version 2, the only one
// bbolt v1 reads and writes; go.etcd.io/bbolt/internal/common): a page
// starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32) in the machine's byte order, as bbolt writes it.

// Page flags and element sizes of bbolt's file format.
const (
	pageHeaderSize  = 16
	branchElemSize  = 16 // pos uint32, ksize uint32, pgid uint64
	leafElemSize    = 16 // flags uint32, pos uint32, ksize uint32, vsize uint32
	bucketValueSize = 16 // root pgid uint64, sequence uint64

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	// maxPageDepth bounds the recursion (tree depth plus nested buckets);
	// bbolt's trees are a handful of levels deep.
	maxPageDepth = 64
)

// errSnapshotMoved means the meta page of a read transaction was
// rewritten before it could be read (two commits in between); the check
// then starts again in a new transaction.
var errSnapshotMoved = errors.New("the snapshot's meta page was rewritten meanwhile")

// readMeta reads the meta page of tx's snapshot from f (meta.go): the
// one of the two whose transaction id is tx's. A commit writes the meta
// page it did not write last, so tx's page is rewritten by the second
// commit after it: call readMeta as soon as tx begins, and begin again on
// errSnapshotMoved.
func readMeta(f io.ReaderAt, pageSize int, tx *bbolt.Tx) (meta, error) {
	buf := make([]byte, metaEnd)
	for id := range int64(2) {
		if _, err := f.ReadAt(buf, id*int64(pageSize)); err != nil {
			return meta{}, fmt.Errorf("meta page %d: %w", id, err)
		}
		m, ok := parseMeta(buf)
		if !ok || m.txid != uint64(tx.ID()) { //nolint:gosec // G115: a read transaction's id is its meta's
			continue
		}
		if int64(m.pgid)*int64(pageSize) != tx.Size() { //nolint:gosec // G115: pgid counts the file's pages
			return meta{}, fmt.Errorf("meta page %d: %d pages, the transaction sees %d bytes", id, m.pgid, tx.Size())
		}
		return m, nil
	}
	return meta{}, errSnapshotMoved
}

// bitset is a set of page ids below a bound.
type bitset []uint64

func newBitset(n uint64) bitset { return make(bitset, (n+63)/64) }

func (s bitset) has(i uint64) bool { return s[i/64]&(1<<(i%64)) != 0 }

func (s bitset) add(i uint64) { s[i/64] |= 1 << (i % 64) }

// pageChecker runs the page check of one snapshot.
type pageChecker struct {
	ctx      context.Context //nolint:containedctx // one check's, dropped with it
	f        io.ReaderAt
	pageSize int
	m        meta
	reached  bitset
	freed    bitset
	errs     []error
	visited  int
	stopped  bool // ctx ended
	// bufs holds one page buffer per depth, so that the keys of the
	// pages above stay valid while their children are read.
	bufs [][]byte
}

// checkPages runs the page check of the snapshot described by m, reading
// f, the database file. It returns the problems found (at most
// maxCheckErrors), or ctx's error.
func checkPages(ctx context.Context, f io.ReaderAt, pageSize int, m meta) error {
	if m.pgid < 2 || m.root < 2 || m.root >= m.pgid {
		return fmt.Errorf("meta: root page %d outside the %d pages", m.root, m.pgid)
	}
	c := &pageChecker{ctx: ctx, f: f, pageSize: pageSize, m: m, reached: newBitset(m.pgid), freed: newBitset(m.pgid)}
	c.reached.add(0)
	c.reached.add(1)
	if m.freelist != noFreelist {
		c.readFreelist()
	}
	c.visit(m.root, 0, nil, nil)
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.freelist != noFreelist && !c.full() {
		// Without a freelist on file bbolt rebuilds it from what is
		// not reachable, so only a file that keeps one can leak.
		for id := uint64(2); id < m.pgid && !c.full(); id++ {
			if !c.reached.has(id) && !c.freed.has(id) {
				c.fail("page %d: neither reachable nor free", id)
			}
		}
	}
	return errors.Join(c.errs...)
}

// fail records a problem.
func (c *pageChecker) fail(format string, a ...any) {
	if !c.full() {
		c.errs = append(c.errs, fmt.Errorf(format, a...))
	}
}

// full reports whether enough problems were found to stop looking.
func (c *pageChecker) full() bool { return len(c.errs) >= maxCheckErrors }

// read reads page id, with its overflow pages, into the buffer of depth
// and returns it, or nil after recording why it cannot be read.
func (c *pageChecker) read(id uint64, depth int) []byte {
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, make([]byte, c.pageSize))
	}
	buf := c.bufs[depth][:c.pageSize]
	if _, err := c.f.ReadAt(buf, int64(id)*int64(c.pageSize)); err != nil { //nolint:gosec // G115: id < pgid, checked by the callers
		c.fail("page %d: %v", id, err)
		return nil
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(buf[0:]); got != id {
		c.fail("page %d: its header says page %d", id, got)
		return nil
	}
	overflow := uint64(ne.Uint32(buf[12:]))
	if id+overflow >= c.m.pgid {
		c.fail("page %d: its %d overflow pages run past the last page %d", id, overflow, c.m.pgid-1)
		return nil
	}
	if overflow == 0 {
		return buf
	}
	n := (1 + int(overflow)) * c.pageSize //nolint:gosec // G115: overflow < pgid
	if cap(c.bufs[depth]) < n {
		c.bufs[depth] = make([]byte, n)
	}
	buf = c.bufs[depth][:n]
	if _, err := c.f.ReadAt(buf, int64(id)*int64(c.pageSize)); err != nil { //nolint:gosec // G115: as above
		c.fail("page %d: %v", id, err)
		return nil
	}
	return buf
}

// readFreelist marks the pages of the snapshot's freelist as free and the
// freelist's own pages as reachable.
func (c *pageChecker) readFreelist() {
	id := c.m.freelist
	if id < 2 || id >= c.m.pgid {
		c.fail("meta: freelist page %d outside the %d pages", id, c.m.pgid)
		return
	}
	p := c.read(id, 0)
	if p == nil {
		return
	}
	c.reach(id, p)
	ne := binary.NativeEndian
	if flags := ne.Uint16(p[8:]); flags != freelistPageFlag {
		c.fail("page %d: the freelist page has flags %#x", id, flags)
		return
	}
	first, count := 0, uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		// A longer list keeps its length in its first element.
		first, count = 1, ne.Uint64(p[pageHeaderSize:])
	}
	if uint64(first)+count > uint64(len(p)-pageHeaderSize)/8 { //nolint:gosec // G115: first is 0 or 1
		c.fail("page %d: the freelist claims %d pages, more than it holds", id, count)
		return
	}
	ids := p[pageHeaderSize+8*first:]
	for i := range count {
		free := ne.Uint64(ids[8*i:])
		if free >= c.m.pgid {
			// bbolt reads such an id without complaint; it is
			// outside the pages this check accounts for.
			continue
		}
		if c.freed.has(free) {
			c.fail("page %d: freed twice", free)
		}
		c.freed.add(free)
	}
}

// reach marks page id and its overflow pages as reachable, reporting a
// page reached a second time or reachable though free. It returns false
// when the page was reached before, so that a cycle is not followed.
func (c *pageChecker) reach(id uint64, p []byte) bool {
	overflow := uint64(binary.NativeEndian.Uint32(p[12:]))
	first := true
	for i := id; i <= id+overflow; i++ {
		if c.reached.has(i) {
			c.fail("page %d: referenced more than once", i)
			first = false
		}
		c.reached.add(i)
		if c.freed.has(i) {
			c.fail("page %d: reachable but free", i)
		}
	}
	return first
}

// visit checks the tree under page id, whose keys must lie in [lo, hi)
// (nil: unbounded).
func (c *pageChecker) visit(id uint64, depth int, lo, hi []byte) {
	if c.full() || c.stopped {
		return
	}
	if c.visited++; c.visited%4096 == 0 && c.ctx.Err() != nil {
		c.stopped = true
		return
	}
	if depth >= maxPageDepth {
		c.fail("page %d: more than %d levels deep", id, maxPageDepth)
		return
	}
	if id < 2 || id >= c.m.pgid {
		c.fail("page %d: outside the %d pages", id, c.m.pgid)
		return
	}
	p := c.read(id, depth)
	if p == nil || !c.reach(id, p) {
		return
	}
	switch flags := binary.NativeEndian.Uint16(p[8:]); flags {
	case branchPageFlag:
		c.branch(id, p, depth, lo, hi)
	case leafPageFlag:
		c.leaf(id, p, depth, lo, hi)
	default:
		c.fail("page %d: flags %#x where a branch or leaf page belongs", id, flags)
	}
}

// branch checks a branch page's keys and the subtrees they lead to: the
// child under key i holds keys in [key i, key i+1).
func (c *pageChecker) branch(id uint64, p []byte, depth int, lo, hi []byte) {
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*branchElemSize > len(p) {
		c.fail("page %d: %d branch elements do not fit", id, count)
		return
	}
	keys := make([][]byte, count)
	children := make([]uint64, count)
	for i := range count {
		at := pageHeaderSize + i*branchElemSize
		k, ok := slice(p, at, ne.Uint32(p[at:]), ne.Uint32(p[at+4:]))
		if !ok {
			c.fail("page %d: branch element %d points outside the page", id, i)
			return
		}
		keys[i], children[i] = k, ne.Uint64(p[at+8:])
	}
	// Children are followed even under keys out of order: their pages
	// are reachable all the same.
	c.ordered(id, keys, lo, hi)
	for i, child := range children {
		next := hi
		if i+1 < count {
			next = keys[i+1]
		}
		c.visit(child, depth+1, keys[i], next)
	}
}

// leaf checks a leaf page's keys, and the buckets it holds: a nested
// bucket's own pages, or its inline page inside the value.
func (c *pageChecker) leaf(id uint64, p []byte, depth int, lo, hi []byte) {
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*leafElemSize > len(p) {
		c.fail("page %d: %d leaf elements do not fit", id, count)
		return
	}
	keys := make([][]byte, count)
	for i := range count {
		at := pageHeaderSize + i*leafElemSize
		ksize := ne.Uint32(p[at+8:])
		k, ok := slice(p, at, ne.Uint32(p[at+4:]), ksize)
		if !ok {
			c.fail("page %d: leaf element %d points outside the page", id, i)
			return
		}
		v, ok := slice(p, at, ne.Uint32(p[at+4:])+ksize, ne.Uint32(p[at+12:]))
		if !ok {
			c.fail("page %d: the value of leaf element %d runs outside the page", id, i)
			return
		}
		keys[i] = k
		if ne.Uint32(p[at:])&bucketLeafFlag != 0 {
			c.bucket(id, v, depth)
		}
	}
	c.ordered(id, keys, lo, hi)
}

// bucket checks a nested bucket whose value v sits on page id: a root
// page, or an inline leaf page after the header when the root is 0.
func (c *pageChecker) bucket(id uint64, v []byte, depth int) {
	if len(v) < bucketValueSize {
		c.fail("page %d: a bucket value of %d bytes", id, len(v))
		return
	}
	if root := binary.NativeEndian.Uint64(v); root != 0 {
		c.visit(root, depth+1, nil, nil)
		return
	}
	inline := v[bucketValueSize:]
	if len(inline) < pageHeaderSize || binary.NativeEndian.Uint16(inline[8:]) != leafPageFlag {
		c.fail("page %d: an inline bucket that is not a leaf page", id)
		return
	}
	c.leaf(id, inline, depth, nil, nil)
}

// ordered records where keys do not rise strictly or leave [lo, hi).
func (c *pageChecker) ordered(id uint64, keys [][]byte, lo, hi []byte) {
	for i, k := range keys {
		switch {
		case i == 0 && lo != nil && bytes.Compare(k, lo) < 0:
			c.fail("page %d: key %d sorts before its parent's key", id, i)
		case i > 0 && bytes.Compare(keys[i-1], k) >= 0:
			c.fail("page %d: key %d does not sort after key %d", id, i, i-1)
		case hi != nil && bytes.Compare(k, hi) >= 0:
			c.fail("page %d: key %d sorts at or after the next key of its parent", id, i)
		}
	}
}

// slice returns the n bytes at offset pos from the element at at, as
// bbolt lays out keys and values, and whether they lie inside p.
func slice(p []byte, at int, pos, n uint32) ([]byte, bool) {
	start := uint64(at) + uint64(pos) //nolint:gosec // G115: at is an offset into p
	end := start + uint64(n)
	if end > uint64(len(p)) {
		return nil, false
	}
	return p[start:end], true
}
