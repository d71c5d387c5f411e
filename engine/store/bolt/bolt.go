// Bucket and key layout. Every value is a JSON object whose "v" field is
// the record's schema version (records.go); store types carry no JSON tags,
// so the file format is spelled out in one place and can evolve.
//
//	meta            "schema"                         -> "1"
//	                "erase_pending"                  -> uint64 (deletions not yet erased, erase.go)
//	tokens          <digest>                         -> tokenRecord
//	tokens_by_conn  <connID> 00 <digest>             -> empty (a connection's tokens, TH-40)
//	tokens_by_grant <grantID> 00 <digest>            -> empty (a grant's tokens, TH-16, TH-23)
//	connections     <connID>                         -> connRecord
//	conns_by_owner  <provider> 00 <accountKey> 00 <workspaceID> 00 <owner> 00 <connID>
//	                                                 -> empty (UpsertConnection, TH-14, TH-39)
//	flows           <flowID>                         -> flowRecord
//	flows_by_expiry <expiresAt> 00 <flowID>          -> empty (expiresAt as expiryLayout, flows.go)
//	subscriptions   <provider> 00 <connID> 00 <uri>  -> subRecord
//	subs_by_uri     <provider> 00 <uri> 00 <connID>  -> empty (DELETE of a URI, protocol 5.6)
//	outbox          <provider> 00 <uri> 00 <connID>  -> outboxRecord (pending PATCHes, outbox.go)
//	outbox_by_due   <nextAt> 00 <provider> 00 <uri> 00 <connID> -> empty
//	polls, polls_by_due, pending, subs_by_unfurled: the live-update
//	                schedule (store.Schedule), laid out in schedule.go
//	marks           <provider> 00 <connID> 00 <uri>  -> markRecord (webhooks' pending marks, marks.go)
//	meta            "schedule_built"                 -> "1" once every subscription has its schedule
//
// conns_by_owner replaced conns_by_identity, which lacked the owner: Open
// fills the new index from the connections and drops the old one in the
// same transaction, so a file written before keeps working. Its records
// read with an empty owner (see UpsertConnection for how they match).
//
// Single-part keys are the raw strings. In compound keys each part is
// escaped so that it contains no 00 byte (00 -> 01 01, 01 -> 01 02, see
// keys.go): a part can then never run into the next one, and keys still
// sort like the tuples they encode, so ListSubscriptions walks the
// subscriptions bucket in (provider, connection, URI) order.
//
// Every change that spans records (a connection with its tokens and
// subscriptions, a record with its index entry) is one bbolt Update, so a
// crash never leaves half of it (TH-44). Values are decoded, which copies
// them, before their transaction ends (bbolt README).

package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// schemaVersion is written to meta and into every record as "v".
const schemaVersion = 1

// DefaultLockTimeout is how long Open waits for another process to release
// the file when Options.LockTimeout is zero.
const DefaultLockTimeout = 2 * time.Second

var (
	bucketMeta          = []byte("meta")
	bucketTokens        = []byte("tokens")
	bucketTokensByConn  = []byte("tokens_by_conn")
	bucketConns         = []byte("connections")
	bucketSubs          = []byte("subscriptions")
	bucketSubsByURI     = []byte("subs_by_uri")
	bucketTokensByGrant = []byte("tokens_by_grant")
	bucketConnsByOwner  = []byte("conns_by_owner")
	bucketFlows         = []byte("flows")
	bucketFlowsByExpiry = []byte("flows_by_expiry")
	bucketOutbox        = []byte("outbox")
	bucketOutboxByDue   = []byte("outbox_by_due")
	keySchema           = []byte("schema")
)

// bucketConnsByIdentity is the index conns_by_owner replaced; Open
// drops it.
var bucketConnsByIdentity = []byte("conns_by_identity")

// buckets lists every bucket Open creates.
func buckets() [][]byte {
	return [][]byte{
		bucketMeta, bucketTokens, bucketTokensByConn, bucketConns, bucketSubs, bucketSubsByURI,
		bucketTokensByGrant, bucketConnsByOwner, bucketFlows, bucketFlowsByExpiry,
		bucketOutbox, bucketOutboxByDue,
		bucketPolls, bucketPollsByDue, bucketPending, bucketSubsByUnfurled, bucketMarks,
	}
}

// ErrLocked means another process holds the database file (F3, TH-43).
var ErrLocked = errors.New("database is locked by another process")

// ErrCorrupt means the database file failed to open or failed its
// integrity check. Open leaves such a file untouched (TH-45, F12).
var ErrCorrupt = errors.New("database file is corrupt")

// Options tune Open. The zero value is the production setting.
type Options struct {
	// LockTimeout bounds how long Open waits for the file lock held by
	// another process (TH-43). Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// SkipCheck skips the integrity check at open, which reads every page
	// of the file once; the cheap checks (empty file, truncation) still
	// run. Skip it only for a large file known to be healthy, because a
	// corrupt page found later may stop the process, or run Store.Check
	// right after Open, which is the same check on the open store.
	SkipCheck bool
	// Logger receives the eraser's warnings (erase.go) and the schedule
	// build's report (schedule.go); nil discards them.
	Logger *slog.Logger
}

// Store is a store.Store kept in one bbolt file.
type Store struct {
	db      *bbolt.DB
	erase   *eraser
	build   *scheduleBuild
	release *releaser
	// owners are the lease owners of this process (owners.go).
	owners owners
}

var _ store.Store = (*Store)(nil)

// Open opens the bbolt file at path, or creates it (mode 0600, its
// directory 0700). It fails with ErrLocked when another process holds the
// file, and with ErrCorrupt when the file exists but is empty, cannot be
// read, or fails the integrity check; such a file is left as it is and no
// new database is created in its place (TH-45).
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	existed := err == nil
	if existed {
		if err := checkExisting(path, fi); err != nil {
			return nil, err
		}
	}
	db, err := openChecked(path, opts, existed)
	if err != nil {
		return nil, err
	}
	if err := prepare(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Scratch buckets of an erase cut short by a crash are zeros only.
	dropScratch(db)
	s := &Store{
		db: db, erase: newEraser(db, opts.Logger), build: startScheduleBuild(db, opts.Logger),
		release: startReleaser(db),
	}
	if erasePending(db) {
		// A deletion committed but its erase did not finish: a crash,
		// or an old reader that outlasted the retries.
		s.erase.request()
	}
	return s, nil
}

// corruptError is Open's error for a file it will not use.
func corruptError(path string, cause error) error {
	return fmt.Errorf("open %s: %w: %w; it was left untouched", path, ErrCorrupt, cause)
}

// prepare creates the buckets and the schema marker in one write
// transaction. A file that has them all already is not written to, so
// opening a healthy database does not change it.
func prepare(db *bbolt.DB) error {
	ready := true
	err := db.View(func(tx *bbolt.Tx) error {
		for _, name := range buckets() {
			if tx.Bucket(name) == nil {
				ready = false
			}
		}
		if ready && unkeptUnfurled(tx) {
			ready = false
		}
		if meta := tx.Bucket(bucketMeta); meta != nil {
			return checkSchema(meta.Get(keySchema))
		}
		return nil
	})
	if err != nil || ready {
		return err
	}
	return db.Update(func(tx *bbolt.Tx) error {
		var created [][]byte
		for _, name := range buckets() {
			if tx.Bucket(name) == nil {
				created = append(created, name)
			}
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := checkSchema(meta.Get(keySchema)); err != nil {
			return err
		}
		if err := backfill(tx, created); err != nil {
			return err
		}
		if k, _ := tx.Bucket(bucketSubs).Cursor().First(); k == nil {
			// Nothing for the schedule's build to do (a new file).
			if err := meta.Put(keyScheduleBuilt, []byte("1")); err != nil {
				return err
			}
		}
		// An index of unfurl times that no write keeps any more goes
		// (schedule.go, keyUnfurledIndex); the first expiry builds it
		// again from the records.
		if unkeptUnfurled(tx) {
			if err := tx.DeleteBucket(bucketSubsByUnfurled); err != nil {
				return fmt.Errorf("empty bucket %s: %w", bucketSubsByUnfurled, err)
			}
			if _, err := tx.CreateBucket(bucketSubsByUnfurled); err != nil {
				return fmt.Errorf("create bucket %s: %w", bucketSubsByUnfurled, err)
			}
		}
		// Nothing maintains the old index any more; left behind it would
		// only keep account keys of deleted connections in the file.
		if tx.Bucket(bucketConnsByIdentity) != nil {
			if err := tx.DeleteBucket(bucketConnsByIdentity); err != nil {
				return fmt.Errorf("drop bucket %s: %w", bucketConnsByIdentity, err)
			}
		}
		return meta.Put(keySchema, fmt.Append(nil, schemaVersion))
	})
}

// checkSchema accepts a missing marker (a new file) or our own version.
func checkSchema(v []byte) error {
	if v != nil && string(v) != fmt.Sprint(schemaVersion) {
		return fmt.Errorf("database schema version %q, this unfurld reads version %d", v, schemaVersion)
	}
	return nil
}

// keyProbe is the meta key Probe writes and deletes again.
var keyProbe = []byte("probe")

// Probe implements store.Store: it writes keyProbe into meta and deletes
// it in one Update. The touched page is still written to a new place and
// the meta page and fsync follow, so the commit does the I/O a real
// write does and fails where it would fail.
func (s *Store) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.update("probe", func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyProbe, fmt.Append(nil, tx.ID())); err != nil {
			return err
		}
		return meta.Delete(keyProbe)
	})
}

// Close stops a schedule build under way (it resumes at the next Open)
// and the release of the map's pages (release.go), finishes any erase
// still due (erase.go), then releases the file and its lock.
func (s *Store) Close() error {
	s.build.stop()
	s.release.stop()
	s.erase.close()
	return s.db.Close()
}

// WaitErased returns when the free pages of the file hold nothing of any
// connection deleted before the call (erase.go), or when ctx ends. An
// offline command that deletes waits here before it exits; the server
// need not, the eraser runs in the background.
func (s *Store) WaitErased(ctx context.Context) error { return s.erase.wait(ctx) }

// update runs fn in a write transaction and names op in any error, the
// store sentinels included (errors.Is still finds them). Methods that run
// a caller's function return its error as it is, not through here.
func (s *Store) update(op string, fn func(tx *bbolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// view is update's read-only counterpart.
func (s *Store) view(op string, fn func(tx *bbolt.Tx) error) error {
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// txID returns the id of the last committed transaction, so tests can
// prove that a call did not commit.
func (s *Store) txID() int {
	id := -1
	_ = s.db.View(func(tx *bbolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id
}
