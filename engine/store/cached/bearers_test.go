package cached

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// bearerFixture stores access token "d1" of connection c1, grant g1,
// and caches it with one lookup.
func bearerFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	require.NoError(t, f.inner.CreateToken(t.Context(), store.Token{
		Digest: "d1", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "c1", GrantID: "g1",
		CreatedAt: f.clock(), ExpiresAt: f.clock().Add(time.Hour),
	}))
	b, err := f.st.LookupBearer(t.Context(), "d1", f.clock())
	require.NoError(t, err)
	require.Equal(t, "name-c1", b.Conn.AccountName)
	return f
}

// TestLookupBearerCaches: a second lookup within bearerTTL reads nothing,
// so a change behind the cache's back (the wrapped store, as another
// process would) is seen only after the TTL.
func TestLookupBearerCaches(t *testing.T) {
	f := bearerFixture(t)
	ctx := t.Context()
	require.NoError(t, f.inner.DeleteToken(ctx, "d1"))
	_, err := f.st.LookupBearer(ctx, "d1", f.clock())
	require.NoError(t, err, "answered from the cache")
	_, err = f.st.LookupBearer(ctx, "d1", f.clock().Add(bearerTTL))
	require.ErrorIs(t, err, store.ErrNotFound, "after the TTL the store decides")
}

// TestLookupBearerRereadsCredentialConnections_TH37: a connection that
// holds an upstream credential is never served from the cache.
func TestLookupBearerRereadsCredentialConnections_TH37(t *testing.T) {
	f := bearerFixture(t)
	ctx := t.Context()
	require.NoError(t, f.inner.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.UpstreamCredential = []byte("sealed-1")
		return c, nil
	}))
	_, err := f.st.LookupBearer(ctx, "d1", f.clock().Add(bearerTTL)) // caches the token without its connection
	require.NoError(t, err)
	require.NoError(t, f.inner.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.UpstreamCredential = []byte("sealed-2") // rotated behind the cache's back
		return c, nil
	}))
	b, err := f.st.LookupBearer(ctx, "d1", f.clock().Add(bearerTTL))
	require.NoError(t, err)
	assert.Equal(t, []byte("sealed-2"), b.Conn.UpstreamCredential)
}

// TestWritesInvalidateBearers_TH26: every write through the Store that
// revokes a token or changes its connection is seen by the very next
// lookup, without waiting for bearerTTL.
func TestWritesInvalidateBearers_TH26(t *testing.T) {
	tests := []struct {
		name  string
		write func(ctx context.Context, f *fixture) error
		// gone: the lookup fails with this; else the account name is
		// "renamed".
		gone error
	}{
		{"DeleteToken", func(ctx context.Context, f *fixture) error { return f.st.DeleteToken(ctx, "d1") }, store.ErrNotFound},
		{"DeleteConnection", func(ctx context.Context, f *fixture) error { return f.st.DeleteConnection(ctx, "c1") }, store.ErrNotFound},
		{"RevokeGrant", func(ctx context.Context, f *fixture) error { _, err := f.st.RevokeGrant(ctx, "g1"); return err }, store.ErrNotFound},
		{"ConsumeToken replay", func(ctx context.Context, f *fixture) error {
			require.NoError(t, f.inner.CreateToken(ctx, store.Token{Digest: "code", Kind: store.KindCode, Provider: "tracker", ConnectionID: "c1", GrantID: "g1", ConsumedAt: f.clock().Add(-time.Hour)}))
			_, _, err := f.st.ConsumeToken(ctx, store.Consume{Kind: store.KindCode, Digest: "code", Provider: "tracker", Now: f.clock()})
			require.ErrorIs(t, err, store.ErrReplayed)
			return nil
		}, store.ErrNotFound},
		{"Sweep", func(ctx context.Context, f *fixture) error {
			f.advance(2 * time.Hour) // d1 expired; within bearerTTL of the clock the lookup uses
			_, err := f.st.Sweep(ctx, f.clock(), time.Hour)
			return err
		}, store.ErrNotFound},
		{"UpdateConnection", func(ctx context.Context, f *fixture) error {
			return f.st.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
				c.AccountName = "renamed"
				return c, nil
			})
		}, nil},
		{"UpsertConnection", func(ctx context.Context, f *fixture) error {
			c, err := f.inner.GetConnection(ctx, "c1")
			require.NoError(t, err)
			c.ID, c.AccountName = "new-id", "renamed" // same identity: replaces c1, keeps its ID
			_, _, err = f.st.UpsertConnection(ctx, c)
			return err
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bearerFixture(t)
			ctx := t.Context()
			at := f.clock() // the lookup's clock: the cache entry is fresh
			require.NoError(t, tc.write(ctx, f))
			b, err := f.st.LookupBearer(ctx, "d1", at)
			if tc.gone != nil {
				require.ErrorIs(t, err, tc.gone)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "renamed", b.Conn.AccountName)
		})
	}
}

// TestLookupBearerConnectionGone_TH26: a token whose connection is gone
// is refused with ErrConnectionGone.
func TestLookupBearerConnectionGone_TH26(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	require.NoError(t, f.inner.CreateToken(ctx, store.Token{Digest: "orphan", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "nobody"}))
	_, err := f.st.LookupBearer(ctx, "orphan", f.clock())
	require.ErrorIs(t, err, ErrConnectionGone)
}

// TestLookupBearerEpochRace_TH26: a lookup that read the token before an
// invalidation does not put what it read into the cache after it.
func TestLookupBearerEpochRace_TH26(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	require.NoError(t, f.inner.CreateToken(ctx, store.Token{Digest: "d1", Kind: store.KindAccess, Provider: "tracker", ConnectionID: "c1"}))
	g := f.inner.holdGet()
	slow := make(chan error, 1)
	go func() {
		_, err := f.st.LookupBearer(ctx, "d1", f.clock())
		slow <- err
	}()
	<-g.entered // the lookup has read the token
	require.NoError(t, f.st.DeleteToken(ctx, "d1"))
	g.release()
	require.NoError(t, <-slow, "it read the token before the delete")
	_, err := f.st.LookupBearer(ctx, "d1", f.clock())
	require.ErrorIs(t, err, store.ErrNotFound, "what it read was not cached")
}
