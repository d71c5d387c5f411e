package storetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// Run runs the conformance suite. newStore must return a new, empty store
// for each subtest; Run closes it when the subtest ends. Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	runCases(t, newStore, parallel, []suiteCase[store.Store]{
		{"TokenCRUD", testTokenCRUD},
		{"TokenKindMismatch", testTokenKindMismatch},
		{"ConnectionCRUD", testConnectionCRUD},
		{"ConnectionNotFound", testConnectionNotFound},
		{"UpdateConnectionAtomic", testUpdateConnectionAtomic},
		{"UpdateConnectionFnErrorAborts", testUpdateConnectionFnError},
		{"UpdateConnectionKeepsID", testUpdateConnectionKeepsID},
		{"DeleteConnectionCascades", testDeleteConnectionCascades},
		{"DeleteTokenForgetsConnection", testDeleteTokenForgetsConnection},
		{"ListConnections", testListConnections},
		{"ConnectionEvents", testConnectionEvents},
		{"ListConnectionTokens", testListConnectionTokens},
		{"PutSubscription", testPutSubscription},
		{"PutSubscriptionConcurrent", testPutSubscriptionConcurrent},
		{"PutSubscriptions", testPutSubscriptions},
		{"DeleteSubscription", testDeleteSubscription},
		{"DeleteSubscriptionsByURI", testDeleteSubscriptionsByURI},
		{"ListSubscriptions", testListSubscriptions},
		{"ListSubscriptionsStops", testListSubscriptionsStops},
		{"ListSubscriptionsCallsBack", testListSubscriptionsCallsBack},
		{"PutSubscriptionOwners_TH40", testPutSubscriptionOwners},
		{"ListSubscriptionsByURIPrefix", testListSubscriptionsByURIPrefix},
		{"SubscriptionKeysByURIs", testSubscriptionKeysByURIs},
		{"KeysWithControlBytes", testKeysWithControlBytes},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"BytesAreCopied", testBytesAreCopied},
		{"CancelledContext", testCancelledContext},
		{"ProbeLeavesNoTrace_F11", testProbe},
		// GrantStore (grants.go).
		{"FlowCRUD", testFlowCRUD},
		{"FlowExpiry", testFlowExpiry},
		{"FlowCapCountsLiveOnly_TH12", testFlowCap},
		{"ConsumeCode", testConsumeCode},
		{"ConsumeMismatch_TH18_TH25", testConsumeMismatch},
		{"ConsumeIssueErrorKeepsCode_TH18", testConsumeIssueError},
		{"CodeReplayRevokesGrant_TH16", testCodeReplay},
		{"RefreshGrace_TH23", testRefreshGrace},
		{"ConsumeExpired_TH17", testConsumeExpired},
		{"ConsumeCodeParallel_TH16_TH24", testConsumeCodeParallel},
		{"ConsumeRefreshParallel_TH24", testConsumeRefreshParallel},
		{"RevokeGrant", testRevokeGrant},
		{"RevokeAfterDeleteConnection_TH40", testRevokeAfterDeleteConnection},
		{"UpsertConnection_TH14", testUpsertConnection},
		{"UpsertConnectionPerOwner_TH39", testUpsertConnectionPerOwner},
		{"UpsertAdoptsOwnerlessConnection_TH39", testUpsertAdoptsOwnerless},
		{"UpsertFollowsUpdateAndDelete", testUpsertFollowsUpdateAndDelete},
		{"Sweep_TH12_TH17", testSweep},
		{"GrantsCancelledContext", testGrantsCancelledContext},
	})
}

// Fixtures. Times have nanoseconds and a non-UTC zone, so a store that
// truncates or mangles them fails every comparison.

func baseTime() time.Time {
	return time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.FixedZone("UTC-7", -7*3600))
}

func newToken(digest string, kind store.TokenKind, connID string) store.Token {
	at := baseTime()
	return store.Token{
		Digest: digest, Kind: kind, Provider: "github", ConnectionID: connID, GrantID: "grant-" + connID,
		CreatedAt: at, ExpiresAt: at.Add(time.Hour),
	}
}

func newConn(id, provider string) store.Connection {
	at := baseTime()
	return store.Connection{
		ID: id, Provider: provider, AccountKey: "acct-" + id, AccountName: "Ada " + id,
		WorkspaceID: "ws-" + id, WorkspaceName: "Workspace", BotID: "bot-" + id, Owner: "user:owner-" + id,
		NotionToken: []byte("sealed-notion-" + id), UpstreamCredential: []byte("sealed-upstream-" + id),
		UpstreamExpiry: at.Add(2 * time.Hour), Status: store.StatusActive,
		CreatedAt: at, UpdatedAt: at.Add(time.Second),
	}
}

func newSub(provider, connID, uri string) store.Subscription {
	at := baseTime()
	return store.Subscription{
		SubscriptionKey: store.SubscriptionKey{Provider: provider, ConnectionID: connID, URI: uri},
		AttrHash:        "hash-1", ETag: `"etag-1"`, LastModified: "Fri, 14 Mar 2025 15:09:26 GMT",
		CreatedAt: at, UpdatedAt: at,
	}
}

// Comparison helpers: stores may return times in another location or
// without a monotonic reading, and empty byte slices as nil. Both are the
// same value to every caller, so they compare equal here.

func normTime(t time.Time) time.Time { return t.UTC() }

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normToken(t store.Token) store.Token {
	t.CreatedAt, t.ExpiresAt = normTime(t.CreatedAt), normTime(t.ExpiresAt)
	return t
}

func normConn(c store.Connection) store.Connection {
	c.NotionToken, c.UpstreamCredential = normBytes(c.NotionToken), normBytes(c.UpstreamCredential)
	c.UpstreamExpiry, c.CreatedAt, c.UpdatedAt = normTime(c.UpstreamExpiry), normTime(c.CreatedAt), normTime(c.UpdatedAt)
	c.UpstreamRefreshedAt, c.Reconnect.At = normTime(c.UpstreamRefreshedAt), normTime(c.Reconnect.At)
	if len(c.Failures) == 0 {
		c.Failures = nil
	}
	fs := make([]store.ConnectionEvent, len(c.Failures))
	for i, f := range c.Failures {
		f.At = normTime(f.At)
		fs[i] = f
	}
	if c.Failures != nil {
		c.Failures = fs
	}
	return c
}

func normSub(s store.Subscription) store.Subscription {
	s.CreatedAt, s.UpdatedAt = normTime(s.CreatedAt), normTime(s.UpdatedAt)
	if !s.Refresh.At.IsZero() {
		s.Refresh.At = normTime(s.Refresh.At)
	}
	s.DeliveredAt = normTime(s.DeliveredAt)
	s.NextPollAt, s.UnfurledAt = normTime(s.NextPollAt), normTime(s.UnfurledAt)
	return s
}

func assertToken(t *testing.T, s store.Store, want store.Token) {
	t.Helper()
	got, err := s.GetToken(t.Context(), want.Kind, want.Digest)
	require.NoError(t, err)
	assert.Equal(t, normToken(want), normToken(got))
}

func assertConn(t *testing.T, s store.Store, want store.Connection) {
	t.Helper()
	got, err := s.GetConnection(t.Context(), want.ID)
	require.NoError(t, err)
	assert.Equal(t, normConn(want), normConn(got))
}

func assertSub(t *testing.T, s store.Store, want store.Subscription) {
	t.Helper()
	got, err := s.GetSubscription(t.Context(), want.SubscriptionKey)
	require.NoError(t, err)
	assert.Equal(t, normSub(want), normSub(got))
}

func listSubs(t *testing.T, s store.Store, provider string) []store.SubscriptionKey {
	t.Helper()
	var keys []store.SubscriptionKey
	require.NoError(t, s.ListSubscriptions(t.Context(), provider, func(sub store.Subscription) error {
		keys = append(keys, sub.SubscriptionKey)
		return nil
	}))
	return keys
}

func connIDs(t *testing.T, s store.Store, provider string) []string {
	t.Helper()
	conns, err := s.ListConnections(t.Context(), provider)
	require.NoError(t, err)
	ids := []string{}
	for _, c := range conns {
		ids = append(ids, c.ID)
	}
	return ids
}

func testTokenCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := newToken("d1", store.KindAccess, "c1")
	require.NoError(t, s.CreateToken(ctx, tok))
	assertToken(t, s, tok)

	// A token without connection or expiry is valid (a code, say).
	bare := store.Token{Digest: "d2", Kind: store.KindCode, Provider: "github", CreatedAt: baseTime()}
	require.NoError(t, s.CreateToken(ctx, bare))
	assertToken(t, s, bare)

	// A digest is taken whatever the kind, and the original survives.
	dup := newToken("d1", store.KindRefresh, "c2")
	require.ErrorIs(t, s.CreateToken(ctx, dup), store.ErrAlreadyExists)
	assertToken(t, s, tok)
	_, err := s.GetToken(ctx, store.KindRefresh, "d1")
	require.ErrorIs(t, err, store.ErrNotFound)

	for _, digest := range []string{"d", "d10", "D1", ""} {
		_, err := s.GetToken(ctx, store.KindAccess, digest)
		require.ErrorIs(t, err, store.ErrNotFound, "digest %q", digest)
	}

	require.NoError(t, s.DeleteToken(ctx, "d1"))
	_, err = s.GetToken(ctx, store.KindAccess, "d1")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteToken(ctx, "d1"), store.ErrNotFound)
	require.ErrorIs(t, s.DeleteToken(ctx, "missing"), store.ErrNotFound)
	assertToken(t, s, bare)

	// A deleted digest can be issued again.
	require.NoError(t, s.CreateToken(ctx, dup))
	assertToken(t, s, dup)
}

// testTokenKindMismatch: a token presented as another kind is not found
// (TH-25), so a code cannot be used as a bearer token and so on.
func testTokenKindMismatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	kinds := []store.TokenKind{store.KindAccess, store.KindRefresh, store.KindCode}
	for _, stored := range kinds {
		require.NoError(t, s.CreateToken(ctx, newToken("digest-"+string(stored), stored, "c1")))
	}
	for _, stored := range kinds {
		for _, asked := range kinds {
			t.Run(string(stored)+"_as_"+string(asked), func(t *testing.T) {
				got, err := s.GetToken(ctx, asked, "digest-"+string(stored))
				if stored == asked {
					require.NoError(t, err)
					assert.Equal(t, stored, got.Kind)
					return
				}
				require.ErrorIs(t, err, store.ErrNotFound)
				assert.Equal(t, store.Token{}, got)
			})
		}
	}
	_, err := s.GetToken(ctx, "", "digest-access")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testConnectionCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newConn("c1", "github")
	require.NoError(t, s.CreateConnection(ctx, c))
	assertConn(t, s, c)

	dup := newConn("c1", "linear")
	require.ErrorIs(t, s.CreateConnection(ctx, dup), store.ErrAlreadyExists)
	assertConn(t, s, c)

	want := c
	require.NoError(t, s.UpdateConnection(ctx, "c1", func(old store.Connection) (store.Connection, error) {
		assert.Equal(t, normConn(c), normConn(old))
		old.Status = store.StatusReconnect
		old.AccountName = "Ada L."
		old.UpstreamCredential = nil
		old.UpstreamExpiry = time.Time{}
		old.UpdatedAt = baseTime().Add(time.Minute)
		want = old
		return old, nil
	}))
	assertConn(t, s, want)

	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	_, err := s.GetConnection(ctx, "c1")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteConnection(ctx, "c1"), store.ErrNotFound)

	called := false
	err = s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		called = true
		return c, nil
	})
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.False(t, called, "fn called for a missing connection")
}

// testConnectionNotFound: ids that are prefixes, extensions or case
// variants of stored ids match nothing, and looking them up changes
// nothing.
func testConnectionNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	c1, c100 := newConn("c1", "github"), newConn("c100", "github")
	require.NoError(t, s.CreateConnection(ctx, c1))
	require.NoError(t, s.CreateConnection(ctx, c100))
	for _, id := range []string{"", "c", "c10", "C1", "c1 ", "c1\x00"} {
		t.Run(strconv.Quote(id), func(t *testing.T) {
			_, err := s.GetConnection(ctx, id)
			require.ErrorIs(t, err, store.ErrNotFound)
			called := false
			err = s.UpdateConnection(ctx, id, func(c store.Connection) (store.Connection, error) {
				called = true
				return c, nil
			})
			require.ErrorIs(t, err, store.ErrNotFound)
			assert.False(t, called, "fn called for a missing connection")
			require.ErrorIs(t, s.DeleteConnection(ctx, id), store.ErrNotFound)
		})
	}
	assertConn(t, s, c1)
	assertConn(t, s, c100)
	assert.Equal(t, []string{"c1", "c100"}, connIDs(t, s, ""))
}

// testUpdateConnectionAtomic: concurrent read-modify-write updates lose
// nothing. Each of n updaters increments a counter kept in WorkspaceName
// and records the value it saw; with no lost update the final value is n
// and the values seen are exactly 0..n-1.
func testUpdateConnectionAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newConn("c1", "github")
	c.WorkspaceName = "0"
	require.NoError(t, s.CreateConnection(ctx, c))

	const n = 100
	seen := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
				v, err := strconv.Atoi(c.WorkspaceName)
				if err != nil {
					return c, err
				}
				seen[i] = v // a store that retries fn keeps the last attempt
				c.WorkspaceName = strconv.Itoa(v + 1)
				return c, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "updater %d", i)
	}
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(n), got.WorkspaceName)
	counts := make([]int, n)
	for _, v := range seen {
		require.GreaterOrEqual(t, v, 0)
		require.Less(t, v, n)
		counts[v]++
	}
	for v, k := range counts {
		assert.Equal(t, 1, k, "value %d seen by %d updaters", v, k)
	}
}

// testUpdateConnectionFnError: an error from fn is returned and the
// record stays as it was, even though fn changed its argument, byte
// slices included, before failing.
func testUpdateConnectionFnError(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newConn("c1", "github")
	require.NoError(t, s.CreateConnection(ctx, c))
	errBoom := errors.New("boom")
	err := s.UpdateConnection(ctx, "c1", func(old store.Connection) (store.Connection, error) {
		old.AccountName = "changed"
		old.Status = store.StatusReconnect
		old.NotionToken[0] ^= 0xff
		return old, errBoom
	})
	require.ErrorIs(t, err, errBoom)
	assertConn(t, s, newConn("c1", "github"))
}

// testUpdateConnectionKeepsID: the record stays under the id it was
// updated by, whatever ID fn returns; no second record appears.
func testUpdateConnectionKeepsID(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.ID = "c2"
		c.AccountName = "renamed"
		return c, nil
	}))
	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.ID)
	assert.Equal(t, "renamed", got.AccountName)
	_, err = s.GetConnection(ctx, "c2")
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Equal(t, []string{"c1"}, connIDs(t, s, ""))
}

// testDeleteConnectionCascades: deleting a connection deletes its tokens
// and subscriptions, whatever their provider, and nothing else (TH-40).
// The survivors include a connection whose id extends the deleted one.
func testDeleteConnectionCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, c := range []store.Connection{newConn("c1", "github"), newConn("c10", "github"), newConn("c2", "linear")} {
		require.NoError(t, s.CreateConnection(ctx, c))
	}
	doomedToks := []store.Token{
		newToken("a1", store.KindAccess, "c1"), newToken("r1", store.KindRefresh, "c1"), newToken("k1", store.KindCode, "c1"),
	}
	keptToks := []store.Token{
		newToken("a10", store.KindAccess, "c10"), newToken("a2", store.KindAccess, "c2"),
		{Digest: "k0", Kind: store.KindCode, Provider: "github", CreatedAt: baseTime()},
	}
	for _, tok := range append(append([]store.Token{}, doomedToks...), keptToks...) {
		require.NoError(t, s.CreateToken(ctx, tok))
	}
	doomedSubs := []store.Subscription{
		newSub("github", "c1", "https://github.com/a/b/issues/1"),
		newSub("github", "c1", "https://github.com/a/b/issues/2"),
		newSub("linear", "c1", "https://linear.app/x/issue/X-1"), // another provider, same connection
	}
	keptSubs := []store.Subscription{
		newSub("github", "c10", "https://github.com/a/b/issues/1"),
		newSub("github", "c2", "https://github.com/a/b/issues/1"),
		newSub("linear", "c2", "https://linear.app/x/issue/X-1"),
		newSub("github", "c", "https://github.com/a/b/issues/1"),
	}
	for _, sub := range append(append([]store.Subscription{}, doomedSubs...), keptSubs...) {
		wrote, err := s.PutSubscription(ctx, sub)
		require.NoError(t, err)
		require.True(t, wrote)
	}

	require.NoError(t, s.DeleteConnection(ctx, "c1"))

	_, err := s.GetConnection(ctx, "c1")
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Equal(t, []string{"c10", "c2"}, connIDs(t, s, ""))
	for _, tok := range doomedToks {
		_, err := s.GetToken(ctx, tok.Kind, tok.Digest)
		require.ErrorIs(t, err, store.ErrNotFound, "token %s", tok.Digest)
	}
	for _, tok := range keptToks {
		assertToken(t, s, tok)
	}
	for _, sub := range doomedSubs {
		_, err := s.GetSubscription(ctx, sub.SubscriptionKey)
		require.ErrorIs(t, err, store.ErrNotFound, "subscription %+v", sub.SubscriptionKey)
	}
	for _, sub := range keptSubs {
		assertSub(t, s, sub)
	}
	var want []store.SubscriptionKey
	for _, sub := range keptSubs {
		want = append(want, sub.SubscriptionKey)
	}
	assert.ElementsMatch(t, want, listSubs(t, s, ""))

	// Nothing of c1 is left to find by URI either.
	n, err := s.DeleteSubscriptionsByURI(ctx, "linear", "https://linear.app/x/issue/X-1")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only c2's linear subscription remains")
}

// testDeleteTokenForgetsConnection: after a token is deleted and its
// digest reissued for another connection, deleting the first connection
// leaves the new token alone (no stale index entry).
func testDeleteTokenForgetsConnection(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.CreateConnection(ctx, newConn("c2", "github")))
	require.NoError(t, s.CreateToken(ctx, newToken("d", store.KindAccess, "c1")))
	require.NoError(t, s.DeleteToken(ctx, "d"))
	reissued := newToken("d", store.KindAccess, "c2")
	require.NoError(t, s.CreateToken(ctx, reissued))
	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	assertToken(t, s, reissued)
}

func testListConnections(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, c := range []store.Connection{
		newConn("c3", "github"), newConn("c1", "linear"), newConn("c2", "github"), newConn("c4", "git"),
	} {
		require.NoError(t, s.CreateConnection(ctx, c))
	}
	tests := []struct {
		name     string
		provider string
		want     []string
	}{
		{"all", "", []string{"c1", "c2", "c3", "c4"}},
		{"github", "github", []string{"c2", "c3"}},
		{"prefix of another provider", "git", []string{"c4"}},
		{"linear", "linear", []string{"c1"}},
		{"unknown", "gitlab", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, connIDs(t, s, tc.provider))
		})
	}
	conns, err := s.ListConnections(ctx, "linear")
	require.NoError(t, err)
	require.Len(t, conns, 1)
	assert.Equal(t, normConn(newConn("c1", "linear")), normConn(conns[0]))
}

// testPutSubscription: the first put writes, an identical put does not
// and leaves the record as it was, and a change writes but keeps
// CreatedAt: a change of AttrHash by an unfurl's put, of ETag,
// LastModified or Refresh by a refresh's (store.MergeSubscription).
func testPutSubscription(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := newSub("github", "c1", "https://github.com/a/b/pull/7")
	wrote, err := s.PutSubscription(ctx, first)
	require.NoError(t, err)
	assert.True(t, wrote, "first put")
	assertSub(t, s, first)

	later := baseTime().Add(time.Hour)
	same := first
	same.CreatedAt, same.UpdatedAt = later, later
	wrote, err = s.PutSubscription(ctx, same)
	require.NoError(t, err)
	assert.False(t, wrote, "identical put")
	assertSub(t, s, first)

	want := first
	changes := []struct {
		name   string
		change func(*store.Subscription)
	}{
		{"AttrHash", func(s *store.Subscription) { s.AttrHash = "hash-2" }},
		{"ETag", func(s *store.Subscription) { s.ETag = `W/"etag-2"`; s.Refresh = newRefresh(1) }},
		{"LastModified", func(s *store.Subscription) {
			s.LastModified = "Sat, 15 Mar 2025 00:00:00 GMT"
			s.Refresh = newRefresh(1)
		}},
		{"ETag cleared", func(s *store.Subscription) { s.ETag = ""; s.Refresh = newRefresh(1) }},
		{"Refresh", func(s *store.Subscription) { s.Refresh = newRefresh(2) }},
	}
	for i, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			next := want
			tc.change(&next)
			next.CreatedAt = later.Add(time.Duration(i) * time.Minute) // must be ignored
			next.UpdatedAt = later.Add(time.Duration(i) * time.Minute)
			wrote, err := s.PutSubscription(ctx, next)
			require.NoError(t, err)
			assert.True(t, wrote)
			want = next
			want.CreatedAt = first.CreatedAt
			assertSub(t, s, want)

			wrote, err = s.PutSubscription(ctx, next)
			require.NoError(t, err)
			assert.False(t, wrote, "repeated put")
			assertSub(t, s, want)
		})
	}

	// Another connection's subscription to the same URI is its own record.
	other := newSub("github", "c2", first.URI)
	wrote, err = s.PutSubscription(ctx, other)
	require.NoError(t, err)
	assert.True(t, wrote)
	assertSub(t, s, want)
	assertSub(t, s, other)

	_, err = s.GetSubscription(ctx, store.SubscriptionKey{Provider: "github", ConnectionID: "c1", URI: first.URI + "/"})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetSubscription(ctx, store.SubscriptionKey{Provider: "linear", ConnectionID: "c1", URI: first.URI})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testPutSubscriptionConcurrent: of many concurrent identical puts of a
// new record, exactly one reports a write.
func testPutSubscriptionConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	wrote := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			wrote[i], errs[i] = s.PutSubscription(ctx, newSub("github", "c1", "https://github.com/a/b"))
		})
	}
	wg.Wait()
	writes := 0
	for i := range n {
		require.NoError(t, errs[i])
		if wrote[i] {
			writes++
		}
	}
	assert.Equal(t, 1, writes)
}

func testDeleteSubscription(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newSub("github", "c1", "https://github.com/a")
	b := newSub("github", "c1", "https://github.com/b")
	for _, sub := range []store.Subscription{a, b} {
		_, err := s.PutSubscription(ctx, sub)
		require.NoError(t, err)
	}
	require.NoError(t, s.DeleteSubscription(ctx, a.SubscriptionKey))
	_, err := s.GetSubscription(ctx, a.SubscriptionKey)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteSubscription(ctx, a.SubscriptionKey), store.ErrNotFound)
	assertSub(t, s, b)

	// The URI lookup forgot it too.
	n, err := s.DeleteSubscriptionsByURI(ctx, "github", a.URI)
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	// Put after delete is a first write again, with the new CreatedAt.
	again := a
	again.CreatedAt = baseTime().Add(time.Hour)
	wrote, err := s.PutSubscription(ctx, again)
	require.NoError(t, err)
	assert.True(t, wrote)
	assertSub(t, s, again)
}

// testDeleteSubscriptionsByURI: every connection's subscription to that
// provider's URI goes (protocol 5.6); the same URI under another provider,
// and URIs that merely share a prefix, stay.
func testDeleteSubscriptionsByURI(t *testing.T, s store.Store) {
	ctx := t.Context()
	const uri = "https://github.com/a/b/issues/1"
	doomed := []store.Subscription{
		newSub("github", "c1", uri), newSub("github", "c2", uri), newSub("github", "c10", uri),
	}
	kept := []store.Subscription{
		newSub("github", "c1", uri+"0"),
		newSub("github", "c1", "https://github.com/a/b/issues/"),
		newSub("github", "c1", uri+"\x00c3"),
		newSub("gitlab", "c1", uri),
		newSub("git", "c1", uri),
	}
	for _, sub := range append(append([]store.Subscription{}, doomed...), kept...) {
		_, err := s.PutSubscription(ctx, sub)
		require.NoError(t, err)
	}
	n, err := s.DeleteSubscriptionsByURI(ctx, "github", uri)
	require.NoError(t, err)
	assert.Equal(t, len(doomed), n)
	for _, sub := range doomed {
		_, err := s.GetSubscription(ctx, sub.SubscriptionKey)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	for _, sub := range kept {
		assertSub(t, s, sub)
	}
	n, err = s.DeleteSubscriptionsByURI(ctx, "github", uri)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "second delete")
	n, err = s.DeleteSubscriptionsByURI(ctx, "linear", uri)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "unknown provider")
}

// testListSubscriptions: key order (provider, connection, URI), whatever
// the insertion order, and an exact provider filter.
func testListSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	ordered := []store.SubscriptionKey{
		{Provider: "git", ConnectionID: "c9", URI: "u1"},
		{Provider: "github", ConnectionID: "c1", URI: "u1"},
		{Provider: "github", ConnectionID: "c1", URI: "u2"},
		{Provider: "github", ConnectionID: "c10", URI: "u0"},
		{Provider: "github", ConnectionID: "c2", URI: "u0"},
		{Provider: "github", ConnectionID: "c2", URI: "u0/x"},
		{Provider: "linear", ConnectionID: "c1", URI: "u1"},
	}
	for _, i := range []int{4, 0, 6, 2, 5, 1, 3} {
		_, err := s.PutSubscription(ctx, store.Subscription{SubscriptionKey: ordered[i], AttrHash: "h"})
		require.NoError(t, err)
	}
	tests := []struct {
		name     string
		provider string
		want     []store.SubscriptionKey
	}{
		{"all", "", ordered},
		{"github", "github", ordered[1:6]},
		{"prefix of another provider", "git", ordered[:1]},
		{"linear", "linear", ordered[6:]},
		{"unknown", "gitlab", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, listSubs(t, s, tc.provider))
		})
	}
}

// testListSubscriptionsStops: an error from fn stops the walk at once and
// is returned. Enough records to span several batches of a paging store.
func testListSubscriptionsStops(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 1000
	for i := range n {
		_, err := s.PutSubscription(ctx, newSub("github", "c1", "u"+strconv.Itoa(10000+i)))
		require.NoError(t, err)
	}
	assert.Len(t, listSubs(t, s, "github"), n)

	errStop := errors.New("stop")
	for _, stopAt := range []int{1, 2, 256, 257, 700} {
		t.Run(strconv.Itoa(stopAt), func(t *testing.T) {
			calls := 0
			err := s.ListSubscriptions(ctx, "", func(store.Subscription) error {
				calls++
				if calls == stopAt {
					return errStop
				}
				return nil
			})
			require.ErrorIs(t, err, errStop)
			assert.Equal(t, stopAt, calls)
		})
	}
}

// testListSubscriptionsCallsBack: fn may use the store, as the poller does
// when it drops a subscription whose upstream object is gone.
func testListSubscriptionsCallsBack(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 600
	for i := range n {
		_, err := s.PutSubscription(ctx, newSub("github", "c1", "u"+strconv.Itoa(10000+i)))
		require.NoError(t, err)
	}
	visited := 0
	require.NoError(t, s.ListSubscriptions(ctx, "github", func(sub store.Subscription) error {
		visited++
		if visited%2 == 0 {
			return s.DeleteSubscription(ctx, sub.SubscriptionKey)
		}
		sub.AttrHash = "changed"
		_, err := s.PutSubscription(ctx, sub)
		return err
	}))
	assert.Equal(t, n, visited)
	assert.Len(t, listSubs(t, s, "github"), n/2)
}

// testKeysWithControlBytes: ids and URIs are arbitrary strings. Parts of
// compound keys that contain NUL or other low bytes must not run into each
// other: these pairs would share a key if the parts were simply joined
// with NUL.
func testKeysWithControlBytes(t *testing.T, s store.Store) {
	ctx := t.Context()
	subs := []store.Subscription{
		newSub("p", "c", "u\x00x"),
		newSub("p", "c\x00u", "x"),
		newSub("p\x00c", "u", "x"),
		newSub("p", "c", "u\x01"),
		newSub("p", "c\x01", "u"),
		newSub("p", "c", "u"),
	}
	for i := range subs {
		subs[i].AttrHash = "hash-" + strconv.Itoa(i)
		wrote, err := s.PutSubscription(ctx, subs[i])
		require.NoError(t, err)
		require.True(t, wrote, "subscription %d", i)
	}
	for _, sub := range subs {
		assertSub(t, s, sub)
	}
	assert.Len(t, listSubs(t, s, ""), len(subs))
	assert.Len(t, listSubs(t, s, "p"), len(subs)-1)

	n, err := s.DeleteSubscriptionsByURI(ctx, "p", "u")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "(p, c, u) and (p, c\\x01, u)")
	for _, sub := range []store.Subscription{subs[0], subs[1], subs[2], subs[3]} {
		assertSub(t, s, sub)
	}

	// Tokens indexed by connection: deleting connection "a" must not take
	// the token of connection "a\x00b", nor the reverse.
	require.NoError(t, s.CreateConnection(ctx, newConn("a", "p")))
	require.NoError(t, s.CreateConnection(ctx, newConn("a\x00b", "p")))
	kept := newToken("d", store.KindAccess, "a\x00b")
	require.NoError(t, s.CreateToken(ctx, newToken("b\x00d", store.KindAccess, "a")))
	require.NoError(t, s.CreateToken(ctx, kept))
	require.NoError(t, s.DeleteConnection(ctx, "a"))
	assertToken(t, s, kept)
	_, err = s.GetToken(ctx, store.KindAccess, "b\x00d")
	require.ErrorIs(t, err, store.ErrNotFound)
	assertConn(t, s, newConn("a\x00b", "p"))
}

// testTimesRoundTrip: every time field comes back as the same instant:
// UTC, another zone, a time with a monotonic reading, and the zero time
// (which must stay zero, as "never expires" depends on it).
func testTimesRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		at   time.Time
	}{
		{"utc", time.Date(2030, time.January, 2, 3, 4, 5, 6, time.UTC)},
		{"non-utc", time.Date(2030, time.January, 2, 3, 4, 5, 999999999, time.FixedZone("IST", 5*3600+30*60))},
		{"monotonic", time.Now()},
		{"zero", time.Time{}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "id-" + strconv.Itoa(i)
			assertSame := func(field string, got time.Time) {
				t.Helper()
				assert.True(t, tc.at.Equal(got), "%s: got %v, want %v", field, got, tc.at)
				assert.Equal(t, tc.at.UTC(), got.UTC(), field)
				assert.Equal(t, tc.at.IsZero(), got.IsZero(), field)
			}

			require.NoError(t, s.CreateToken(ctx, store.Token{
				Digest: id, Kind: store.KindAccess, Provider: "p", CreatedAt: tc.at, ExpiresAt: tc.at,
			}))
			tok, err := s.GetToken(ctx, store.KindAccess, id)
			require.NoError(t, err)
			assertSame("Token.CreatedAt", tok.CreatedAt)
			assertSame("Token.ExpiresAt", tok.ExpiresAt)

			require.NoError(t, s.CreateConnection(ctx, store.Connection{
				ID: id, Provider: "p", UpstreamExpiry: tc.at, CreatedAt: tc.at, UpdatedAt: tc.at,
			}))
			c, err := s.GetConnection(ctx, id)
			require.NoError(t, err)
			assertSame("Connection.UpstreamExpiry", c.UpstreamExpiry)
			assertSame("Connection.CreatedAt", c.CreatedAt)
			assertSame("Connection.UpdatedAt", c.UpdatedAt)

			key := store.SubscriptionKey{Provider: "p", ConnectionID: id, URI: "u"}
			_, err = s.PutSubscription(ctx, store.Subscription{SubscriptionKey: key, AttrHash: "h", CreatedAt: tc.at, UpdatedAt: tc.at})
			require.NoError(t, err)
			sub, err := s.GetSubscription(ctx, key)
			require.NoError(t, err)
			assertSame("Subscription.CreatedAt", sub.CreatedAt)
			assertSame("Subscription.UpdatedAt", sub.UpdatedAt)
		})
	}
}

// testBytesAreCopied: a store keeps its own copy of byte slices. Changing
// a slice after passing it in, or one the store returned, changes nothing
// stored.
func testBytesAreCopied(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := newConn("c1", "github")
	in := newConn("c1", "github")
	require.NoError(t, s.CreateConnection(ctx, in))
	in.NotionToken[0], in.UpstreamCredential[0] = 'X', 'X'
	assertConn(t, s, want)

	got, err := s.GetConnection(ctx, "c1")
	require.NoError(t, err)
	got.NotionToken[0], got.UpstreamCredential[0] = 'Y', 'Y'
	assertConn(t, s, want)

	list, err := s.ListConnections(ctx, "")
	require.NoError(t, err)
	require.Len(t, list, 1)
	list[0].NotionToken[0] = 'Z'
	assertConn(t, s, want)

	fresh := []byte("sealed-new")
	require.NoError(t, s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.NotionToken = fresh
		return c, nil
	}))
	fresh[0] = 'W'
	want.NotionToken = []byte("sealed-new")
	assertConn(t, s, want)

	// The slices fn receives are the store's to give away: keeping and
	// changing one after the update changes nothing stored either.
	var kept []byte
	require.NoError(t, s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		kept = c.UpstreamCredential
		return c, nil
	}))
	kept[0] = 'V'
	assertConn(t, s, want)
}

// testCancelledContext: with a context already cancelled every method
// returns its error and does nothing: nothing written, nothing deleted, no
// callback run.
func testCancelledContext(t *testing.T, s store.Store) {
	live := t.Context()
	tok := newToken("d1", store.KindAccess, "c1")
	conn := newConn("c1", "github")
	sub := newSub("github", "c1", "https://github.com/a")
	require.NoError(t, s.CreateToken(live, tok))
	require.NoError(t, s.CreateConnection(live, conn))
	_, err := s.PutSubscription(live, sub)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(live)
	cancel()
	called := false
	changed := sub
	changed.AttrHash = "hash-2"
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateToken", func() error { return s.CreateToken(ctx, newToken("d2", store.KindAccess, "c1")) }},
		{"GetToken", func() error { _, err := s.GetToken(ctx, tok.Kind, tok.Digest); return err }},
		{"DeleteToken", func() error { return s.DeleteToken(ctx, tok.Digest) }},
		{"CreateConnection", func() error { return s.CreateConnection(ctx, newConn("c2", "github")) }},
		{"GetConnection", func() error { _, err := s.GetConnection(ctx, "c1"); return err }},
		{"UpdateConnection", func() error {
			return s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
				called = true
				c.Status = store.StatusReconnect
				return c, nil
			})
		}},
		{"DeleteConnection", func() error { return s.DeleteConnection(ctx, "c1") }},
		{"ListConnections", func() error { _, err := s.ListConnections(ctx, ""); return err }},
		{"PutSubscription", func() error { _, err := s.PutSubscription(ctx, changed); return err }},
		{"GetSubscription", func() error { _, err := s.GetSubscription(ctx, sub.SubscriptionKey); return err }},
		{"DeleteSubscription", func() error { return s.DeleteSubscription(ctx, sub.SubscriptionKey) }},
		{"DeleteSubscriptionsByURI", func() error { _, err := s.DeleteSubscriptionsByURI(ctx, "github", sub.URI); return err }},
		{"ListSubscriptions", func() error {
			return s.ListSubscriptions(ctx, "", func(store.Subscription) error { called = true; return nil })
		}},
		{"Probe", func() error { return s.Probe(ctx) }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.call(), context.Canceled)
		})
	}
	assert.False(t, called, "a callback ran")
	assertToken(t, s, tok)
	assertConn(t, s, conn)
	assertSub(t, s, sub)
	_, err = s.GetToken(live, store.KindAccess, "d2")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetConnection(live, "c2")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testProbe: the write probe succeeds on a healthy store, runs
// concurrently with itself and with writes, and leaves every record as it
// was (F11: /healthz probes writes without changing the data).
func testProbe(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := newToken("d1", store.KindAccess, "c1")
	conn := newConn("c1", "github")
	sub := newSub("github", "c1", "https://github.com/a")
	require.NoError(t, s.CreateToken(ctx, tok))
	require.NoError(t, s.CreateConnection(ctx, conn))
	_, err := s.PutSubscription(ctx, sub)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- s.Probe(ctx)
		}()
		go func() {
			defer wg.Done()
			errs <- s.CreateConnection(ctx, newConn("p"+strconv.Itoa(i), "github"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, s.Probe(ctx))

	assertToken(t, s, tok)
	assertConn(t, s, conn)
	assertSub(t, s, sub)
	conns, err := s.ListConnections(ctx, "")
	require.NoError(t, err)
	assert.Len(t, conns, 5, "the probe adds no record")
}

// suiteCase is one named case of a conformance suite.
type suiteCase[S any] struct {
	name string
	run  func(t *testing.T, s S)
}

// Whether a suite's cases may run beside each other.
const (
	parallel   = true
	sequential = false
)

// runCases runs each case as a subtest on a new store from newStore,
// closed when the subtest ends. The budget suite runs its cases one
// after another; the others in parallel.
func runCases[S interface{ Close() error }](t *testing.T, newStore func(t *testing.T) S, inParallel bool, cases []suiteCase[S]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if inParallel {
				t.Parallel()
			}
			s := newStore(t)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			tc.run(t, s)
		})
	}
}
