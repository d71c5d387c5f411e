// Package bolt is the bbolt implementation of store.Store, the only
// package that imports bbolt (STYLE.md rule 4).
//
// Bucket and key layout (values are JSON with a "v" schema version):
//
//	meta            "schema" -> "1"
//	tokens          <digest>                         -> tokenRecord
//	tokens_by_conn  <connID> 0x00 <digest>           -> empty (index for cascading deletes)
//	connections     <connID>                         -> connRecord
//	subscriptions   <provider> 0x00 <connID> 0x00 <uri> -> subRecord
//	subs_by_uri     <provider> 0x00 <uri> 0x00 <connID> -> empty (index for DELETE on /unfurl)
//
// Every multi-record change (a connection with its tokens and
// subscriptions, a subscription with its index entry) is one Update, so a
// crash never leaves half of it (security.md TH-44). Values are copied out
// before a transaction ends (bbolt's README).
package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/unfurld/unfurld/engine/store"
)

const schemaVersion = 1

var (
	bucketMeta         = []byte("meta")
	bucketTokens       = []byte("tokens")
	bucketTokensByConn = []byte("tokens_by_conn")
	bucketConns        = []byte("connections")
	bucketSubs         = []byte("subscriptions")
	bucketSubsByURI    = []byte("subs_by_uri")
	allBuckets         = [][]byte{bucketMeta, bucketTokens, bucketTokensByConn, bucketConns, bucketSubs, bucketSubsByURI}
)

// ErrLocked means another process holds the database file (F3).
var ErrLocked = errors.New("database is locked by another process (is another unfurld running?)")

// ErrCorrupt means the file failed to open or failed its integrity check;
// it was left untouched (TH-45).
var ErrCorrupt = errors.New("database file is corrupt")

// Options tune Open.
type Options struct {
	// LockTimeout bounds waiting for the file lock (TH-43). Default 2s.
	LockTimeout time.Duration
	// SkipCheck skips the integrity check at open. The check walks every
	// page; skip it only for very large files whose health is known.
	SkipCheck bool
}

// Store is a store.Store on a bbolt file.
type Store struct {
	db *bbolt.DB
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the bbolt file at path (mode 0600, its directory
// 0700). A file that exists but cannot be opened or fails the integrity
// check is reported and left as it is: never replaced by a fresh one
// (TH-45, F12).
func Open(path string, opts Options) (s *Store, err error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, statErr := os.Stat(path)
	existed := statErr == nil
	if existed && fi.Size() == 0 {
		// bbolt would initialise an empty file as a new database; an
		// existing file that lost its contents is damage, not a fresh
		// start (TH-45).
		return nil, fmt.Errorf("open %s: %w: the file is empty; it was left untouched (delete it to start with an empty store)", path, ErrCorrupt)
	}
	var db *bbolt.DB
	// bbolt panics on some corrupt files instead of returning an error;
	// such a file must stop startup with a message, not crash it.
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			s, err = nil, fmt.Errorf("open %s: %w: %v; it was left untouched", path, ErrCorrupt, r)
		}
	}()
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		if existed && !errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open %s: %w: %w; it was left untouched", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !opts.SkipCheck {
		if cerr := check(db); cerr != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open %s: %w: %w; it was left untouched", path, ErrCorrupt, cerr)
		}
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v != nil && string(v) != fmt.Sprint(schemaVersion) {
			return fmt.Errorf("schema version %s, this unfurld reads %d", v, schemaVersion)
		}
		return meta.Put([]byte("schema"), []byte(fmt.Sprint(schemaVersion)))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// check walks the file with tx.Check and gathers what it reports.
func check(db *bbolt.DB) error {
	return db.View(func(tx *bbolt.Tx) error {
		// Drain the channel fully: stopping early would leave bbolt's
		// checker goroutine walking a closed transaction.
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// txID returns the last committed transaction id, for tests that prove a
// call did not commit.
func (s *Store) txID() int {
	var id int
	_ = s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// Records as stored. Store types carry no JSON tags; these do, with the
// schema version, so the file format is explicit and can evolve.
type tokenRecord struct {
	V            int       `json:"v"`
	Kind         string    `json:"kind"`
	Provider     string    `json:"provider"`
	ConnectionID string    `json:"connection_id,omitempty"`
	GrantID      string    `json:"grant_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
}

type connRecord struct {
	V                  int       `json:"v"`
	Provider           string    `json:"provider"`
	AccountKey         string    `json:"account_key"`
	AccountName        string    `json:"account_name,omitempty"`
	WorkspaceID        string    `json:"workspace_id,omitempty"`
	WorkspaceName      string    `json:"workspace_name,omitempty"`
	BotID              string    `json:"bot_id,omitempty"`
	NotionToken        []byte    `json:"notion_token,omitempty"`
	UpstreamCredential []byte    `json:"upstream_credential,omitempty"`
	UpstreamExpiry     time.Time `json:"upstream_expiry,omitzero"`
	Status             string    `json:"status,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

type subRecord struct {
	V            int       `json:"v"`
	AttrHash     string    `json:"attr_hash,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func key(parts ...string) []byte {
	return []byte(joinKey(parts...))
}

func joinKey(parts ...string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.String()
}

func splitKey(k []byte, n int) []string {
	parts := bytes.SplitN(k, []byte{0}, n)
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	val, _ := json.Marshal(tokenRecord{V: schemaVersion, Kind: string(t.Kind), Provider: t.Provider, ConnectionID: t.ConnectionID,
		GrantID: t.GrantID, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt})
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(t.Digest)) != nil {
			return store.ErrAlreadyExists
		}
		if err := b.Put([]byte(t.Digest), val); err != nil {
			return err
		}
		if t.ConnectionID != "" {
			return tx.Bucket(bucketTokensByConn).Put(key(t.ConnectionID, t.Digest), nil)
		}
		return nil
	})
}

// GetToken implements store.Store.
func (s *Store) GetToken(ctx context.Context, kind store.TokenKind, digest string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, err
	}
	var rec tokenRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get([]byte(digest))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &rec) // Unmarshal copies out of the mmap
	})
	if err != nil {
		return store.Token{}, err
	}
	if store.TokenKind(rec.Kind) != kind {
		return store.Token{}, store.ErrNotFound
	}
	return store.Token{Digest: digest, Kind: kind, Provider: rec.Provider, ConnectionID: rec.ConnectionID,
		GrantID: rec.GrantID, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt}, nil
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, digest string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		v := b.Get([]byte(digest))
		if v == nil {
			return store.ErrNotFound
		}
		var rec tokenRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode token: %w", err)
		}
		if rec.ConnectionID != "" {
			if err := tx.Bucket(bucketTokensByConn).Delete(key(rec.ConnectionID, digest)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(digest))
	})
}

func toConnRecord(c store.Connection) connRecord {
	return connRecord{V: schemaVersion, Provider: c.Provider, AccountKey: c.AccountKey, AccountName: c.AccountName,
		WorkspaceID: c.WorkspaceID, WorkspaceName: c.WorkspaceName, BotID: c.BotID, NotionToken: c.NotionToken,
		UpstreamCredential: c.UpstreamCredential, UpstreamExpiry: c.UpstreamExpiry, Status: c.Status,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func fromConnRecord(id string, r connRecord) store.Connection {
	return store.Connection{ID: id, Provider: r.Provider, AccountKey: r.AccountKey, AccountName: r.AccountName,
		WorkspaceID: r.WorkspaceID, WorkspaceName: r.WorkspaceName, BotID: r.BotID, NotionToken: r.NotionToken,
		UpstreamCredential: r.UpstreamCredential, UpstreamExpiry: r.UpstreamExpiry, Status: r.Status,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func getConn(tx *bbolt.Tx, id string) (store.Connection, error) {
	v := tx.Bucket(bucketConns).Get([]byte(id))
	if v == nil {
		return store.Connection{}, store.ErrNotFound
	}
	var rec connRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return store.Connection{}, fmt.Errorf("decode connection %s: %w", id, err)
	}
	return fromConnRecord(id, rec), nil
}

func putConn(tx *bbolt.Tx, c store.Connection) error {
	val, err := json.Marshal(toConnRecord(c))
	if err != nil {
		return fmt.Errorf("encode connection: %w", err)
	}
	return tx.Bucket(bucketConns).Put([]byte(c.ID), val)
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketConns).Get([]byte(c.ID)) != nil {
			return store.ErrAlreadyExists
		}
		return putConn(tx, c)
	})
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return store.Connection{}, err
	}
	var c store.Connection
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		c, err = getConn(tx, id)
		return err
	})
	return c, err
}

// UpdateConnection implements store.Store: read, fn, write in one
// transaction, so concurrent updates cannot lose each other's writes. fn
// must not do I/O: it runs while the single write lock is held (TH-43).
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		c, err := getConn(tx, id)
		if err != nil {
			return err
		}
		n, err := fn(c)
		if err != nil {
			return err
		}
		n.ID = id
		return putConn(tx, n)
	})
}

// DeleteConnection implements store.Store: the connection, its tokens and
// its subscriptions with their index entries, in one transaction (TH-40).
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		c, err := getConn(tx, id)
		if err != nil {
			return err
		}
		// Tokens through the index.
		idx := tx.Bucket(bucketTokensByConn)
		toks := tx.Bucket(bucketTokens)
		prefix := key(id, "")
		var dead [][]byte
		cur := idx.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			dead = append(dead, bytes.Clone(k))
		}
		for _, k := range dead {
			if err := toks.Delete(k[len(prefix):]); err != nil {
				return err
			}
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
		// Subscriptions of this connection: keys start provider, conn.
		subs := tx.Bucket(bucketSubs)
		byURI := tx.Bucket(bucketSubsByURI)
		sprefix := key(c.Provider, id, "")
		dead = dead[:0]
		cur = subs.Cursor()
		for k, _ := cur.Seek(sprefix); k != nil && bytes.HasPrefix(k, sprefix); k, _ = cur.Next() {
			dead = append(dead, bytes.Clone(k))
		}
		for _, k := range dead {
			uri := string(k[len(sprefix):])
			if err := subs.Delete(k); err != nil {
				return err
			}
			if err := byURI.Delete(key(c.Provider, uri, id)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketConns).Delete([]byte(id))
	})
}

// ListConnections implements store.Store, in id order.
func (s *Store) ListConnections(ctx context.Context, provider string) ([]store.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []store.Connection
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConns).ForEach(func(k, v []byte) error {
			var rec connRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode connection %s: %w", k, err)
			}
			if provider == "" || rec.Provider == provider {
				out = append(out, fromConnRecord(string(k), rec))
			}
			return nil
		})
	})
	return out, err
}

func subKey(k store.SubscriptionKey) []byte { return key(k.Provider, k.ConnectionID, k.URI) }

func readSub(b *bbolt.Bucket, k store.SubscriptionKey) (subRecord, bool, error) {
	v := b.Get(subKey(k))
	if v == nil {
		return subRecord{}, false, nil
	}
	var rec subRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return subRecord{}, false, fmt.Errorf("decode subscription: %w", err)
	}
	return rec, true, nil
}

func sameSub(rec subRecord, s store.Subscription) bool {
	return rec.AttrHash == s.AttrHash && rec.ETag == s.ETag && rec.LastModified == s.LastModified
}

// PutSubscription implements store.Store. Unfurls call it on every
// request, and bbolt manages about 2,300 fsync'd commits a second here, so
// it first looks in a read transaction and commits only when the record is
// new or changed (checked again inside the write, which may race).
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	unchanged := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		rec, ok, err := readSub(tx.Bucket(bucketSubs), sub.SubscriptionKey)
		unchanged = ok && sameSub(rec, sub)
		return err
	})
	if err != nil || unchanged {
		return false, err
	}
	wrote := false
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		rec, ok, err := readSub(b, sub.SubscriptionKey)
		if err != nil {
			return err
		}
		if ok && sameSub(rec, sub) {
			return nil
		}
		created := sub.CreatedAt
		if ok {
			created = rec.CreatedAt
		}
		val, _ := json.Marshal(subRecord{V: schemaVersion, AttrHash: sub.AttrHash, ETag: sub.ETag, LastModified: sub.LastModified,
			CreatedAt: created, UpdatedAt: sub.UpdatedAt})
		if err := b.Put(subKey(sub.SubscriptionKey), val); err != nil {
			return err
		}
		wrote = true
		return tx.Bucket(bucketSubsByURI).Put(key(sub.Provider, sub.URI, sub.ConnectionID), nil)
	})
	return wrote, err
}

// GetSubscription implements store.Store.
func (s *Store) GetSubscription(ctx context.Context, k store.SubscriptionKey) (store.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return store.Subscription{}, err
	}
	var out store.Subscription
	err := s.db.View(func(tx *bbolt.Tx) error {
		rec, ok, err := readSub(tx.Bucket(bucketSubs), k)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrNotFound
		}
		out = fromSubRecord(k, rec)
		return nil
	})
	return out, err
}

func fromSubRecord(k store.SubscriptionKey, r subRecord) store.Subscription {
	return store.Subscription{SubscriptionKey: k, AttrHash: r.AttrHash, ETag: r.ETag, LastModified: r.LastModified,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// DeleteSubscription implements store.Store.
func (s *Store) DeleteSubscription(ctx context.Context, k store.SubscriptionKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		if b.Get(subKey(k)) == nil {
			return store.ErrNotFound
		}
		if err := b.Delete(subKey(k)); err != nil {
			return err
		}
		return tx.Bucket(bucketSubsByURI).Delete(key(k.Provider, k.URI, k.ConnectionID))
	})
}

// DeleteSubscriptionsByURI implements store.Store through the by-uri
// index.
func (s *Store) DeleteSubscriptionsByURI(ctx context.Context, provider, uri string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bucketSubsByURI)
		subs := tx.Bucket(bucketSubs)
		prefix := key(provider, uri, "")
		var conns []string
		cur := idx.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			conns = append(conns, string(k[len(prefix):]))
		}
		for _, c := range conns {
			if err := idx.Delete(key(provider, uri, c)); err != nil {
				return err
			}
			if err := subs.Delete(key(provider, c, uri)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// ListSubscriptions implements store.Store in key order. Records are
// decoded inside the read transaction and fn runs outside it, so a slow fn
// does not hold old pages alive.
func (s *Store) ListSubscriptions(ctx context.Context, provider string, fn func(store.Subscription) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var list []store.Subscription
	err := s.db.View(func(tx *bbolt.Tx) error {
		cur := tx.Bucket(bucketSubs).Cursor()
		var prefix []byte
		if provider != "" {
			prefix = key(provider, "")
		}
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			parts := splitKey(k, 3)
			if len(parts) != 3 {
				return fmt.Errorf("malformed subscription key %q", k)
			}
			var rec subRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode subscription: %w", err)
			}
			list = append(list, fromSubRecord(store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}, rec))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, sub := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}
