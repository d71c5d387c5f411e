// Package bolt is the bbolt implementation of store.Store, used by
// unfurld in production. It is the only package that imports bbolt
// (STYLE.md rule 4); nothing of bbolt appears in its API.
//
// Open refuses to start on a file it cannot trust: a second process
// holding the lock yields ErrLocked (security.md TH-43, F3), and a file
// that fails to open or fails its integrity check yields ErrCorrupt and is
// left exactly as it was, never replaced by an empty database (TH-45,
// F12). The bucket and key layout is described at the top of bolt.go.
package bolt
