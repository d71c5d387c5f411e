package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// victim is a connection whose every byte must leave the file when it is
// deleted: names and ids in clear, credentials standing in for sealed
// bytes (the store never sees plaintext; raw bytes make the scan strict).
type victim struct {
	conn   store.Connection
	uris   []string
	tokens []string
}

func newVictim(id string, nURIs int) victim {
	v := victim{conn: store.Connection{
		ID: id, Provider: "github",
		AccountKey: "acct-key-" + id + "-7Qx", AccountName: "Erin Eraseme " + id,
		WorkspaceID: "ws-id-" + id + "-k2P", WorkspaceName: "Confidential Workspace " + id,
		BotID:              "bot-id-" + id + "-w9",
		NotionToken:        []byte("secret_notion_token_" + id + "_ZZZZZZZZZZZZ"),
		UpstreamCredential: []byte("gho_upstream_credential_" + id + "_YYYYYYYYYY"),
		Status:             store.StatusActive,
	}}
	for i := range nURIs {
		v.uris = append(v.uris, fmt.Sprintf("https://github.com/erase-%s/private-repo/issues/%d", id, i))
	}
	for i := range 3 {
		v.tokens = append(v.tokens, fmt.Sprintf("digest-%s-%d-0123456789abcdef", id, i))
	}
	return v
}

// needles are the byte strings no scan may find once v is deleted:
// every clear field, and the credentials in clear, hex and base64 (the
// JSON encoding of []byte).
func (v victim) needles() map[string][]byte {
	n := map[string][]byte{
		"account key":    []byte(v.conn.AccountKey),
		"account name":   []byte(v.conn.AccountName),
		"workspace id":   []byte(v.conn.WorkspaceID),
		"workspace name": []byte(v.conn.WorkspaceName),
		"bot id":         []byte(v.conn.BotID),
	}
	for name, secret := range map[string][]byte{"notion token": v.conn.NotionToken, "upstream credential": v.conn.UpstreamCredential} {
		n[name] = secret
		n[name+" (hex)"] = []byte(hex.EncodeToString(secret))
		n[name+" (base64)"] = []byte(base64.StdEncoding.EncodeToString(secret))
	}
	for i, u := range v.uris {
		n[fmt.Sprintf("uri %d", i)] = []byte(u)
	}
	for i, t := range v.tokens {
		n[fmt.Sprintf("token %d", i)] = []byte(t)
	}
	return n
}

// fill writes v with a history: stale versions of the connection, its
// tokens, subscriptions and queued PATCHes.
func fill(t testing.TB, s *Store, v victim) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, v.conn))
	for i := range 3 {
		require.NoError(t, s.UpdateConnection(ctx, v.conn.ID, func(c store.Connection) (store.Connection, error) {
			c.UpdatedAt = time.Unix(int64(i), 0).UTC()
			return c, nil
		}))
	}
	for i, d := range v.tokens {
		require.NoError(t, s.CreateToken(ctx, store.Token{
			Digest: d, Kind: store.KindAccess, Provider: "github", ConnectionID: v.conn.ID,
			GrantID: fmt.Sprintf("grant-%s-%d", v.conn.ID, i), CreatedAt: time.Unix(1, 0).UTC(),
		}))
	}
	var subs []store.Subscription
	for _, u := range v.uris {
		subs = append(subs, store.Subscription{
			SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: v.conn.ID, URI: u},
			AttrHash:        "h1", CreatedAt: time.Unix(1, 0).UTC(), UpdatedAt: time.Unix(1, 0).UTC(),
		})
	}
	// Several commits, so older versions of the leaves pile up in free
	// pages.
	for i := 0; i < len(subs); i += 50 {
		_, err := s.PutSubscriptions(ctx, subs[i:min(i+50, len(subs))])
		require.NoError(t, err)
	}
	for _, u := range v.uris[:min(20, len(v.uris))] {
		_, err := s.Enqueue(ctx, store.OutboxItem{
			SubscriptionKey: store.SubscriptionKey{Provider: "github", ConnectionID: v.conn.ID, URI: u},
			Body:            []byte(`{"uri":"` + u + `","operations":[{"title":"` + v.conn.WorkspaceName + `"}]}`),
			AttrHash:        "h2", EnqueuedAt: time.Unix(2, 0).UTC(), NextAt: time.Unix(2, 0).UTC(),
		})
		require.NoError(t, err)
	}
}

// findIn returns the names of the needles present in the file at path.
func findIn(t *testing.T, path string, needles map[string][]byte) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var found []string
	for name, n := range needles {
		if bytes.Contains(raw, n) {
			found = append(found, name)
		}
	}
	return found
}

// TestDeleteConnectionErasesFile_TH40_TH41: after DeleteConnection and
// the erase it triggers, a raw scan of the file finds nothing of the
// connection (its URIs in subscription keys, index keys and outbox
// bodies, its names, its credentials in any encoding), while the
// neighbour connection, interleaved with it in every bucket, is intact.
func TestDeleteConnectionErasesFile_TH40_TH41(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	gone, kept := newVictim("c1", 400), newVictim("c2", 400)
	fill(t, s, kept)
	fill(t, s, gone)
	// Touch the neighbour afterwards too, so leaves and branches holding
	// both are rewritten more than once.
	fill(t, s, newVictim("c3", 100))
	require.NotEmpty(t, findIn(t, path, gone.needles()), "the scan must see the data before deletion")

	require.NoError(t, s.DeleteConnection(ctx, gone.conn.ID))
	require.NoError(t, s.WaitErased(ctx))

	assert.Empty(t, findIn(t, path, gone.needles()), "deleted data still readable in the file")
	assert.False(t, erasePending(s.db), "the erase cleared its marker")
	var missing []string
	present := findIn(t, path, kept.needles())
	for name := range kept.needles() {
		// The store holds credentials as JSON, so only base64 is there.
		stored := !strings.HasSuffix(name, "(hex)") && name != "notion token" && name != "upstream credential"
		if stored && !slices.Contains(present, name) {
			missing = append(missing, name)
		}
	}
	assert.Empty(t, missing, "the neighbour must be intact")
	got, err := s.GetConnection(ctx, kept.conn.ID)
	require.NoError(t, err)
	assert.Equal(t, kept.conn.WorkspaceName, got.WorkspaceName)

	// The scratch buckets are gone and the file still checks clean.
	require.NoError(t, s.Close())
	s2, err := Open(path, Options{})
	require.NoError(t, err)
	defer s2.Close()
	require.NoError(t, s2.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			assert.NotContains(t, string(name), scratchPrefix)
			return nil
		})
	}))
}

// TestEraseWaitsForOldReader_TH40: a read transaction open since before
// the deletion pins the freed pages; the eraser retries and finishes
// once it closes.
func TestEraseWaitsForOldReader_TH40(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	gone := newVictim("c1", 200)
	fill(t, s, newVictim("c2", 200))
	fill(t, s, gone)
	// The deletion cannot reuse the pages the reader pins, and growing
	// the file would wait for the reader to close: give it free pages
	// from before the reader to write into.
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte("slack"), make([]byte, 1<<20))
	}))
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Delete([]byte("slack")) }))

	rtx, err := s.db.Begin(false)
	require.NoError(t, err)
	defer func() { _ = rtx.Rollback() }() // a failed check must not hang Close
	require.NoError(t, s.DeleteConnection(ctx, gone.conn.ID))

	// While the reader is open the erase cannot be complete.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	require.ErrorIs(t, s.WaitErased(short), context.DeadlineExceeded)
	assert.NotEmpty(t, findIn(t, path, gone.needles()))

	require.NoError(t, rtx.Rollback())
	require.NoError(t, s.WaitErased(ctx))
	assert.Empty(t, findIn(t, path, gone.needles()))
}

// TestEraseCoalesces: deletions in a burst are all covered once the
// eraser reports done, and a store with nothing deleted waits for
// nothing.
func TestEraseCoalesces(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	require.NoError(t, s.WaitErased(ctx))
	var all []victim
	for i := range 5 {
		v := newVictim(fmt.Sprintf("b%d", i), 50)
		fill(t, s, v)
		all = append(all, v)
	}
	for _, v := range all {
		require.NoError(t, s.DeleteConnection(ctx, v.conn.ID))
	}
	require.NoError(t, s.WaitErased(ctx))
	for _, v := range all {
		assert.Empty(t, findIn(t, path, v.needles()), v.conn.ID)
	}
}

// TestEraseCatchesUpAtOpen_TH40: a deletion whose erase never ran (the
// process died right after the commit) is erased at the next Open, and
// the marker that said so is cleared.
func TestEraseCatchesUpAtOpen_TH40(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	gone := newVictim("c1", 200)
	fill(t, s, newVictim("c2", 200))
	fill(t, s, gone)
	// No eraser: as if killed right after the commit.
	s.erase.close()
	s.erase = nil
	require.NoError(t, s.DeleteConnection(ctx, gone.conn.ID))
	require.NoError(t, s.Close())
	require.NotEmpty(t, findIn(t, path, gone.needles()))

	s2, err := Open(path, Options{})
	require.NoError(t, err)
	defer s2.Close()
	require.NoError(t, s2.WaitErased(ctx))
	assert.Empty(t, findIn(t, path, gone.needles()))
	assert.False(t, erasePending(s2.db), "the marker is cleared")
}
