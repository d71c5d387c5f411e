// Package bolt is the bbolt implementation of store.Store, used by
// unfurld in production. It is the only package that imports bbolt
// (STYLE.md rule 4); nothing of bbolt appears in its API.
//
// Open refuses to start on a file it cannot trust: a second process
// holding the lock yields ErrLocked (security.md TH-43, F3), and a file
// that fails to open or fails its integrity check yields ErrCorrupt and is
// left exactly as it was, never replaced by an empty database (TH-45,
// F12). The bucket and key layout is described at the top of bolt.go.
//
// Deleting a connection erases it from the file, not only from the tree
// (TH-40). bbolt is copy-on-write: each commit writes changed pages to
// free ones and frees the old ones with their bytes intact, so deleted
// records, and old versions of live ones, linger in free pages.
// Overwriting a value in place cannot reach them, and a per-connection
// data key kept in this same file would leave stale copies of itself the
// same way. So after a deletion commits, a background eraser makes bbolt
// rewrite every page that was free at that moment with zeros, through
// scratch buckets of one-page leaves, and retries while an old read
// transaction pins some (erase.go). `unfurld compact` (Compact) rewrites
// the whole file offline.
package bolt
