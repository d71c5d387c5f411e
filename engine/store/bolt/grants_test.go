package bolt

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// TestOpenFillsNewIndexes: a file written before tokens_by_grant and
// conns_by_owner existed gets them filled at Open, so its tokens are
// revoked with their grant (TH-16) and its connections are found by
// UpsertConnection (TH-14).
func TestOpenFillsNewIndexes(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	conn := store.Connection{ID: "c", Provider: "p", AccountKey: "k", WorkspaceID: "w", CreatedAt: at}
	require.NoError(t, s.CreateConnection(ctx, conn))
	for _, d := range []string{"d1", "d2"} {
		require.NoError(t, s.CreateToken(ctx, store.Token{Digest: d, Kind: store.KindAccess, Provider: "p", ConnectionID: "c", GrantID: "g"}))
	}
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		return errors.Join(tx.DeleteBucket(bucketTokensByGrant), tx.DeleteBucket(bucketConnsByOwner))
	}))
	require.NoError(t, s.Close())

	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	n, err := s.RevokeGrant(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	again := conn
	again.ID, again.AccountName, again.CreatedAt = "other", "renamed", at.Add(time.Hour)
	got, created, err := s.UpsertConnection(ctx, again)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "c", got.ID)
	assert.True(t, at.Equal(got.CreatedAt))
}

// TestOpenMigratesIdentityIndex: a file written before connections kept
// their Notion owner has conns_by_identity, keyed without the owner. Open
// replaces it with conns_by_owner; the old connection, read with no
// owner, is adopted by the first owner that reconnects, keeping its ID,
// while a second owner gets a connection of its own (TH-14, TH-39).
func TestOpenMigratesIdentityIndex(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	legacy := store.Connection{ID: "c", Provider: "p", AccountKey: "k", WorkspaceID: "w", CreatedAt: at}
	require.NoError(t, s.CreateConnection(ctx, legacy))
	require.NoError(t, s.CreateToken(ctx, store.Token{Digest: "d1", Kind: store.KindAccess, Provider: "p", ConnectionID: "c", GrantID: "g"}))
	// Rewrite the file as the previous release left it.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketConnsByOwner); err != nil {
			return err
		}
		old, err := tx.CreateBucket(bucketConnsByIdentity)
		if err != nil {
			return err
		}
		return old.Put(compoundKey("p", "k", "w", "c"), nil)
	}))
	require.NoError(t, s.Close())

	s, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	got := map[string][]string{}
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		assert.Nil(t, tx.Bucket(bucketConnsByIdentity), "the old index is dropped")
		return tx.Bucket(bucketConnsByOwner).ForEach(func(k, _ []byte) error {
			parts, err := splitKey(k, 5)
			got[string(k)] = parts
			return err
		})
	}))
	assert.Equal(t, map[string][]string{string(compoundKey("p", "k", "w", "", "c")): {"p", "k", "w", "", "c"}}, got)

	a := legacy
	a.ID, a.Owner, a.CreatedAt = "new-a", "user:a", at.Add(time.Hour)
	stored, created, err := s.UpsertConnection(ctx, a)
	require.NoError(t, err)
	assert.False(t, created, "the first owner adopts the old connection")
	assert.Equal(t, "c", stored.ID)
	c, err := s.GetConnection(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, "user:a", c.Owner)
	tok, err := s.GetToken(ctx, store.KindAccess, "d1")
	require.NoError(t, err, "its tokens stay")
	assert.Equal(t, "c", tok.ConnectionID)

	b := legacy
	b.ID, b.Owner = "new-b", "user:b"
	stored, created, err = s.UpsertConnection(ctx, b)
	require.NoError(t, err)
	assert.True(t, created, "another owner gets its own connection")
	assert.Equal(t, "new-b", stored.ID)

	// The index follows the adoption: A's reconnect finds A's entry.
	a.ID = "again-a"
	stored, created, err = s.UpsertConnection(ctx, a)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "c", stored.ID)
}

// TestGrantReadsDoNotCommit: answers that change nothing roll back, so
// they cost no fsync'd commit behind the single writer (TH-43).
func TestGrantReadsDoNotCommit(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	code := store.Token{Digest: "code", Kind: store.KindCode, Provider: "p", GrantID: "g", CreatedAt: now}
	refresh := store.Token{Digest: "r", Kind: store.KindRefresh, Provider: "p", GrantID: "g", CreatedAt: now, ConsumedAt: now, Successor: []byte("s")}
	require.NoError(t, s.CreateToken(ctx, code))
	require.NoError(t, s.CreateToken(ctx, refresh))
	require.NoError(t, s.CreateFlow(ctx, store.Flow{ID: "f", Provider: "p", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}, 1))
	before := s.txID()

	boom := errors.New("boom")
	_, _, err := s.ConsumeToken(ctx, store.Consume{Kind: store.KindCode, Digest: "code", Provider: "p", Now: now,
		Issue: func(store.Token) ([]store.Token, []byte, error) { return nil, nil, boom }})
	require.ErrorIs(t, err, boom)
	_, _, err = s.ConsumeToken(ctx, store.Consume{Kind: store.KindCode, Digest: "code", Provider: "other", Now: now})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, tok, err := s.ConsumeToken(ctx, store.Consume{Kind: store.KindRefresh, Digest: "r", Provider: "p", Now: now, Grace: time.Second})
	require.ErrorIs(t, err, store.ErrInGrace)
	assert.Equal(t, []byte("s"), tok.Successor)
	removed, err := s.DeleteFlow(ctx, "missing")
	require.NoError(t, err)
	assert.False(t, removed)
	_, err = s.GetFlow(ctx, "f", now)
	require.NoError(t, err)
	require.ErrorIs(t, s.CreateFlow(ctx, store.Flow{ID: "f2", CreatedAt: now}, 1), store.ErrTooMany)
	assert.Equal(t, before, s.txID())
}
