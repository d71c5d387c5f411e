package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's meta page, as bbolt lays it out in native byte order (its
// internal/common/meta.go): a 16-byte page header, then magic, version,
// page size and flags (uint32 each), the root bucket (root page and
// sequence), the freelist page, the high-water page id, the transaction id
// and an FNV-64a checksum of the meta fields before it.
const (
	metaMagic       = 0xED0CDAED
	metaVersion     = 2
	metaOffMagic    = 16
	metaOffVersion  = 20
	metaOffPageSize = 24
	metaOffRoot     = 32
	metaOffFreelist = 48
	metaOffPgid     = 56
	metaOffTxid     = 64
	metaOffChecksum = 72
	metaEnd         = 80
	noFreelist      = ^uint64(0)
)

// meta is the part of a meta page checkSize needs.
type meta struct {
	pageSize, root, freelist, pgid, txid uint64
}

// parseMeta decodes the meta page at the start of b; ok is false unless
// magic, version and checksum are right, as bbolt requires.
func parseMeta(b []byte) (meta, bool) {
	if len(b) < metaEnd {
		return meta{}, false
	}
	ne := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(b[metaOffMagic:metaOffChecksum])
	if ne.Uint32(b[metaOffMagic:]) != metaMagic || ne.Uint32(b[metaOffVersion:]) != metaVersion ||
		ne.Uint64(b[metaOffChecksum:]) != h.Sum64() {
		return meta{}, false
	}
	return meta{
		pageSize: uint64(ne.Uint32(b[metaOffPageSize:])),
		root:     ne.Uint64(b[metaOffRoot:]),
		freelist: ne.Uint64(b[metaOffFreelist:]),
		pgid:     ne.Uint64(b[metaOffPgid:]),
		txid:     ne.Uint64(b[metaOffTxid:]),
	}, true
}

// checkSize compares an existing file with the pages its current meta
// page claims, before bbolt maps it. bbolt reads the freelist page while
// opening; in a truncated file that page lies past the end of the file,
// even past bbolt's memory map, and bbolt would read whatever memory is
// there. Meta pages that do not validate are left for bbolt to report.
func checkSize(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, metaEnd)
	read := func(off int64) (meta, bool) {
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return meta{}, false
		}
		return parseMeta(buf)
	}
	// The current meta is the valid one with the higher transaction id.
	// Meta 1 sits one page in; without a valid meta 0 to give the page
	// size, try the sizes bbolt tries (1 KiB to 16 MiB).
	m, ok := read(0)
	sizes := []uint64{m.pageSize}
	if !ok {
		sizes = sizes[:0]
		for i := range 15 {
			sizes = append(sizes, 1024<<i)
		}
	}
	for _, size := range sizes {
		if m1, ok1 := read(int64(size)); ok1 && m1.pageSize == size {
			if !ok || m1.txid > m.txid {
				m, ok = m1, true
			}
			break
		}
	}
	if !ok || m.pageSize == 0 {
		return nil
	}
	if m.root >= m.pgid || (m.freelist != noFreelist && m.freelist >= m.pgid) {
		return fmt.Errorf("the meta page points past the last page (%d)", m.pgid)
	}
	if need := m.pgid * m.pageSize; uint64(fi.Size()) < need {
		return fmt.Errorf("the file is truncated: %d bytes, but its pages need %d", fi.Size(), need)
	}
	return nil
}
