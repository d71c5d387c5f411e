package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// Conformance tests for store.GrantStore: pending flows, the redemption
// of codes and refresh tokens, grant revocation, connection upserts and
// the sweep (issue 3).

// flowTTL is the flows' lifetime here, the ceiling issue 3 sets.
const flowTTL = 10 * time.Minute

func newFlow(id string, created time.Time) store.Flow {
	return store.Flow{
		ID: id, Provider: "github", Data: []byte("sealed-flow-" + id),
		CreatedAt: created, ExpiresAt: created.Add(flowTTL),
	}
}

func normFlow(f store.Flow) store.Flow {
	f.Data = normBytes(f.Data)
	f.CreatedAt, f.ExpiresAt = normTime(f.CreatedAt), normTime(f.ExpiresAt)
	return f
}

// normTok is normToken for the fields issue 3 added as well.
func normTok(t store.Token) store.Token {
	t = normToken(t)
	t.ConsumedAt = normTime(t.ConsumedAt)
	t.Successor = normBytes(t.Successor)
	return t
}

func normToks(ts []store.Token) []store.Token {
	out := make([]store.Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, normTok(t))
	}
	return out
}

func assertTok(t *testing.T, s store.Store, want store.Token) {
	t.Helper()
	got, err := s.GetToken(t.Context(), want.Kind, want.Digest)
	require.NoError(t, err)
	assert.Equal(t, normTok(want), normTok(got))
}

func assertGone(t *testing.T, s store.Store, toks ...store.Token) {
	t.Helper()
	for _, tok := range toks {
		_, err := s.GetToken(t.Context(), tok.Kind, tok.Digest)
		require.ErrorIs(t, err, store.ErrNotFound, "token %s", tok.Digest)
	}
}

func assertFlow(t *testing.T, s store.Store, want store.Flow, now time.Time) {
	t.Helper()
	got, err := s.GetFlow(t.Context(), want.ID, now)
	require.NoError(t, err)
	assert.Equal(t, normFlow(want), normFlow(got))
}

// newCode is a live authorization code of grant g for connection c1.
func newCode(digest, grant string) store.Token {
	at := baseTime()
	return store.Token{
		Digest: digest, Kind: store.KindCode, Provider: "github", ConnectionID: "c1", GrantID: grant,
		CreatedAt: at, ExpiresAt: at.Add(time.Minute), RedirectURI: "https://www.notion.so/oauth/callback",
	}
}

// issuer is a store.Consume.Issue that mints an access and a refresh
// token in the grant of the token it redeems, named after suffix, and
// counts its calls.
type issuer struct {
	suffix    string
	successor []byte
	calls     atomic.Int32
}

func (is *issuer) tokens(old store.Token) []store.Token {
	mint := func(kind store.TokenKind, prefix string, ttl time.Duration) store.Token {
		return store.Token{
			Digest: prefix + is.suffix, Kind: kind, Provider: old.Provider, ConnectionID: old.ConnectionID,
			GrantID: old.GrantID, CreatedAt: baseTime(), ExpiresAt: baseTime().Add(ttl),
		}
	}
	return []store.Token{mint(store.KindAccess, "access-", time.Hour), mint(store.KindRefresh, "refresh-", 24*time.Hour)}
}

func (is *issuer) issue(old store.Token) ([]store.Token, []byte, error) {
	is.calls.Add(1)
	return is.tokens(old), is.successor, nil
}

func consume(ctx context.Context, s store.Store, tok store.Token, now time.Time, grace time.Duration, is *issuer) ([]store.Token, store.Token, error) {
	return s.ConsumeToken(ctx, store.Consume{
		Kind: tok.Kind, Digest: tok.Digest, Provider: tok.Provider, Now: now, Grace: grace, Issue: is.issue,
	})
}

// testFlowCRUD: create, get, update and delete a flow; updates keep the
// key, an error from fn aborts, and deleting twice is not an error
// (TH-08).
func testFlowCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := baseTime()
	f := newFlow("f1", now)
	require.NoError(t, s.CreateFlow(ctx, f, 10))
	assertFlow(t, s, f, now)
	require.ErrorIs(t, s.CreateFlow(ctx, newFlow("f1", now), 10), store.ErrAlreadyExists)
	_, err := s.GetFlow(ctx, "f2", now)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.UpdateFlow(ctx, "f1", now, func(old store.Flow) (store.Flow, error) {
		assert.Equal(t, normFlow(f), normFlow(old))
		old.ID = "elsewhere"
		old.Data = []byte("sealed-step-2")
		return old, nil
	}))
	f.Data = []byte("sealed-step-2")
	assertFlow(t, s, f, now)
	_, err = s.GetFlow(ctx, "elsewhere", now)
	require.ErrorIs(t, err, store.ErrNotFound)

	boom := errors.New("boom")
	err = s.UpdateFlow(ctx, "f1", now, func(old store.Flow) (store.Flow, error) {
		old.Data = []byte("lost")
		return old, boom
	})
	require.ErrorIs(t, err, boom)
	assertFlow(t, s, f, now)
	err = s.UpdateFlow(ctx, "f2", now, func(store.Flow) (store.Flow, error) {
		t.Error("fn called for a missing flow")
		return store.Flow{}, nil
	})
	require.ErrorIs(t, err, store.ErrNotFound)

	removed, err := s.DeleteFlow(ctx, "f1")
	require.NoError(t, err)
	assert.True(t, removed)
	removed, err = s.DeleteFlow(ctx, "f1")
	require.NoError(t, err)
	assert.False(t, removed)
	_, err = s.GetFlow(ctx, "f1", now)
	require.ErrorIs(t, err, store.ErrNotFound)

	// Stored bytes are the store's own.
	g := newFlow("g", now)
	in := newFlow("g", now)
	require.NoError(t, s.CreateFlow(ctx, in, 10))
	in.Data[0] = 'X'
	got, err := s.GetFlow(ctx, "g", now)
	require.NoError(t, err)
	got.Data[0] = 'Y'
	assertFlow(t, s, g, now)
}

// testFlowExpiry: a flow works until the instant it expires; from then
// on GetFlow and UpdateFlow answer ErrExpired once and delete it.
func testFlowExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := baseTime()
	end := now.Add(flowTTL)
	for _, id := range []string{"get", "update"} {
		require.NoError(t, s.CreateFlow(ctx, newFlow(id, now), 10))
	}
	assertFlow(t, s, newFlow("get", now), end.Add(-time.Nanosecond))

	_, err := s.GetFlow(ctx, "get", end)
	require.ErrorIs(t, err, store.ErrExpired)
	_, err = s.GetFlow(ctx, "get", now)
	require.ErrorIs(t, err, store.ErrNotFound, "an expired flow is deleted as it is reported")

	err = s.UpdateFlow(ctx, "update", end, func(store.Flow) (store.Flow, error) {
		t.Error("fn called for an expired flow")
		return store.Flow{}, nil
	})
	require.ErrorIs(t, err, store.ErrExpired)
	_, err = s.GetFlow(ctx, "update", now)
	require.ErrorIs(t, err, store.ErrNotFound)

	// A flow without expiry never expires.
	forever := store.Flow{ID: "forever", Provider: "github", CreatedAt: now}
	require.NoError(t, s.CreateFlow(ctx, forever, 10))
	assertFlow(t, s, forever, now.Add(100*365*24*time.Hour))
}

// testFlowCap: CreateFlow refuses a flow once maxLive unexpired flows
// exist, counting only unexpired ones (TH-12); a refused flow is not
// stored, and a cap of zero admits nothing.
func testFlowCap(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := baseTime()
	require.ErrorIs(t, s.CreateFlow(ctx, newFlow("none", now), 0), store.ErrTooMany)

	for i := range 3 {
		require.NoError(t, s.CreateFlow(ctx, newFlow(fmt.Sprint("a", i), now), 3))
	}
	require.ErrorIs(t, s.CreateFlow(ctx, newFlow("a3", now), 3), store.ErrTooMany)
	_, err := s.GetFlow(ctx, "a3", now)
	require.ErrorIs(t, err, store.ErrNotFound)
	// A larger cap admits it: the limit is the caller's.
	require.NoError(t, s.CreateFlow(ctx, newFlow("a3", now), 4))

	// One of them is extended; when the others expire, only it counts.
	later := now.Add(flowTTL)
	require.NoError(t, s.UpdateFlow(ctx, "a0", now, func(f store.Flow) (store.Flow, error) {
		f.ExpiresAt = later.Add(time.Minute)
		return f, nil
	}))
	require.NoError(t, s.CreateFlow(ctx, newFlow("b0", later), 2))
	require.ErrorIs(t, s.CreateFlow(ctx, newFlow("b1", later), 2), store.ErrTooMany,
		"the extended flow and b0 are live")
	for _, id := range []string{"a1", "a2", "a3"} {
		_, err := s.GetFlow(ctx, id, now)
		require.Error(t, err, "flow %s", id)
		assert.True(t, errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired), "flow %s: %v", id, err)
	}
	a0 := newFlow("a0", now)
	a0.ExpiresAt = later.Add(time.Minute)
	assertFlow(t, s, a0, later)

	// An expired flow does not hold its ID either.
	require.NoError(t, s.CreateFlow(ctx, newFlow("a0", later.Add(time.Minute)), 2))
}

// testConsumeCode: redeeming a code creates the issued tokens and keeps
// the code as a consumed marker with the successor, in one call.
func testConsumeCode(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	require.NoError(t, s.CreateToken(ctx, code))
	assertTok(t, s, code) // RedirectURI round-trips

	now := baseTime().Add(10 * time.Second)
	is := &issuer{suffix: "1", successor: []byte("sealed-pair-1")}
	var seen store.Token
	issued, consumed, err := s.ConsumeToken(ctx, store.Consume{
		Kind: store.KindCode, Digest: "code-1", Provider: "github", Now: now,
		Issue: func(old store.Token) ([]store.Token, []byte, error) {
			seen = old
			return is.issue(old)
		},
	})
	require.NoError(t, err)
	assert.Equal(t, normTok(code), normTok(seen), "Issue sees the live code")
	assert.Equal(t, normToks(is.tokens(code)), normToks(issued))

	want := code
	want.ConsumedAt, want.Successor = now, []byte("sealed-pair-1")
	assert.Equal(t, normTok(want), normTok(consumed))
	assertTok(t, s, want)
	for _, tok := range issued {
		assertTok(t, s, tok)
	}
	assert.Equal(t, int32(1), is.calls.Load())

	// Returned bytes are copies.
	consumed.Successor[0] = 'X'
	assertTok(t, s, want)
}

// testConsumeMismatch: a token of another kind (TH-25) or provider
// (TH-18), or an unknown digest, is not found; Issue does not run and the
// token stays live.
func testConsumeMismatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	refresh := newToken("refresh-1", store.KindRefresh, "c1")
	require.NoError(t, s.CreateToken(ctx, code))
	require.NoError(t, s.CreateToken(ctx, refresh))
	now := baseTime()
	tests := []struct {
		name string
		c    store.Consume
	}{
		{"code as refresh", store.Consume{Kind: store.KindRefresh, Digest: "code-1", Provider: "github"}},
		{"code as access", store.Consume{Kind: store.KindAccess, Digest: "code-1", Provider: "github"}},
		{"refresh as code", store.Consume{Kind: store.KindCode, Digest: "refresh-1", Provider: "github"}},
		{"code of another provider", store.Consume{Kind: store.KindCode, Digest: "code-1", Provider: "gitlab"}},
		{"refresh of another provider", store.Consume{Kind: store.KindRefresh, Digest: "refresh-1", Provider: "linear", Grace: time.Minute}},
		{"unknown digest", store.Consume{Kind: store.KindCode, Digest: "code-2", Provider: "github"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Now = now
			tc.c.Issue = func(store.Token) ([]store.Token, []byte, error) {
				t.Error("Issue called")
				return nil, nil, nil
			}
			issued, tok, err := s.ConsumeToken(ctx, tc.c)
			require.ErrorIs(t, err, store.ErrNotFound)
			assert.Empty(t, issued)
			assert.Equal(t, store.Token{}, tok)
		})
	}
	assertTok(t, s, code)
	assertTok(t, s, refresh)
}

// testConsumeIssueError: an error from Issue (a redirect_uri mismatch,
// say) aborts: the code is not burned (TH-18) and nothing is created;
// so does an issued digest that is taken already.
func testConsumeIssueError(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	require.NoError(t, s.CreateToken(ctx, code))
	taken := newToken("access-1", store.KindAccess, "c9")
	require.NoError(t, s.CreateToken(ctx, taken))
	now := baseTime()
	is := &issuer{suffix: "2", successor: []byte("pair")}

	mismatch := errors.New("redirect_uri mismatch")
	issued, tok, err := s.ConsumeToken(ctx, store.Consume{
		Kind: store.KindCode, Digest: "code-1", Provider: "github", Now: now,
		Issue: func(old store.Token) ([]store.Token, []byte, error) {
			return is.tokens(old), []byte("pair"), mismatch
		},
	})
	require.ErrorIs(t, err, mismatch)
	assert.Empty(t, issued)
	assert.Equal(t, store.Token{}, tok)
	assertTok(t, s, code)
	assertGone(t, s, is.tokens(code)...)

	// A digest clash aborts as well, leaving the code live.
	clash := &issuer{suffix: "1"}
	_, _, err = consume(ctx, s, code, now, 0, clash)
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	assertTok(t, s, code)
	assertTok(t, s, taken)
	_, err = s.GetToken(ctx, store.KindRefresh, "refresh-1")
	require.ErrorIs(t, err, store.ErrNotFound, "no token of the aborted issue is left")

	// The unburned code still redeems once.
	issued, _, err = consume(ctx, s, code, now, 0, is)
	require.NoError(t, err)
	assert.Len(t, issued, 2)
}

// testCodeReplay: the second redemption of a code answers ErrReplayed and
// revokes every token of its grant, the code included, and nothing else
// (TH-16).
func testCodeReplay(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	other := newToken("access-other", store.KindAccess, "c1")
	other.GrantID = "g2"
	grantless := store.Token{Digest: "bare", Kind: store.KindAccess, Provider: "github", ConnectionID: "c1", CreatedAt: baseTime()}
	for _, tok := range []store.Token{code, other, grantless} {
		require.NoError(t, s.CreateToken(ctx, tok))
	}
	now := baseTime()
	is := &issuer{suffix: "1", successor: []byte("pair")}
	issued, _, err := consume(ctx, s, code, now, 0, is)
	require.NoError(t, err)

	// Even a moment later, at the same instant, a code has no grace.
	_, tok, err := consume(ctx, s, code, now, 0, is)
	require.ErrorIs(t, err, store.ErrReplayed)
	assert.Equal(t, code.GrantID, tok.GrantID)
	assert.Equal(t, int32(1), is.calls.Load())
	assertGone(t, s, code)
	assertGone(t, s, issued...)
	assertTok(t, s, other)
	assertTok(t, s, grantless)

	_, _, err = consume(ctx, s, code, now, 0, is)
	require.ErrorIs(t, err, store.ErrNotFound, "the grant is gone")

	// A clock that stepped back opens no window for a code.
	code2 := newCode("code-2", "g3")
	require.NoError(t, s.CreateToken(ctx, code2))
	_, _, err = consume(ctx, s, code2, now, 0, is)
	require.NoError(t, err)
	_, _, err = consume(ctx, s, code2, now.Add(-time.Second), 0, is)
	require.ErrorIs(t, err, store.ErrReplayed)

	// A token of no grant is itself revoked on replay.
	lone := newCode("code-3", "")
	require.NoError(t, s.CreateToken(ctx, lone))
	_, _, err = consume(ctx, s, lone, now, 0, &issuer{suffix: "3"})
	require.NoError(t, err)
	_, _, err = consume(ctx, s, lone, now, 0, &issuer{suffix: "4"})
	require.ErrorIs(t, err, store.ErrReplayed)
	assertGone(t, s, lone)
	assertTok(t, s, grantless)
}

// testRefreshGrace: a refresh token presented again within the grace
// window gets the same successor and mints nothing; after it, the replay
// revokes the grant (TH-23).
func testRefreshGrace(t *testing.T, s store.Store) {
	ctx := t.Context()
	const grace = 5 * time.Second
	r1 := newToken("refresh-0", store.KindRefresh, "c1")
	require.NoError(t, s.CreateToken(ctx, r1))
	now := baseTime().Add(time.Minute)
	is := &issuer{suffix: "1", successor: []byte("sealed-pair-1")}
	issued, _, err := consume(ctx, s, r1, now, grace, is)
	require.NoError(t, err)
	require.Len(t, issued, 2)

	retry := &issuer{suffix: "2", successor: []byte("sealed-pair-2")}
	minted, tok, err := consume(ctx, s, r1, now.Add(grace-time.Nanosecond), grace, retry)
	require.ErrorIs(t, err, store.ErrInGrace)
	assert.Empty(t, minted)
	assert.Equal(t, []byte("sealed-pair-1"), tok.Successor)
	assert.True(t, now.Equal(tok.ConsumedAt))
	assert.Zero(t, retry.calls.Load())
	assertGone(t, s, retry.tokens(r1)...)
	for _, tok := range issued {
		assertTok(t, s, tok)
	}

	_, _, err = consume(ctx, s, r1, now.Add(grace), grace, retry)
	require.ErrorIs(t, err, store.ErrReplayed)
	assert.Zero(t, retry.calls.Load())
	assertGone(t, s, r1)
	assertGone(t, s, issued...)
}

// testConsumeExpired: an expired token answers ErrExpired and is deleted
// (TH-17); an expired but consumed one is still a replay and revokes its
// grant.
func testConsumeExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	require.NoError(t, s.CreateToken(ctx, code))
	is := &issuer{suffix: "1"}
	_, tok, err := consume(ctx, s, code, code.ExpiresAt, 0, is)
	require.ErrorIs(t, err, store.ErrExpired)
	assert.Equal(t, store.Token{}, tok)
	assert.Zero(t, is.calls.Load())
	assertGone(t, s, code)

	code2 := newCode("code-2", "g2")
	require.NoError(t, s.CreateToken(ctx, code2))
	issued, _, err := consume(ctx, s, code2, baseTime(), 0, is)
	require.NoError(t, err)
	_, _, err = consume(ctx, s, code2, code2.ExpiresAt.Add(time.Hour), 0, is)
	require.ErrorIs(t, err, store.ErrReplayed)
	assertGone(t, s, issued...)
}

// raceConsume redeems tok from n goroutines at once and returns their
// errors.
func raceConsume(t *testing.T, s store.Store, tok store.Token, now time.Time, grace time.Duration, is *issuer, n int) ([]error, [][]byte) {
	t.Helper()
	ctx := t.Context()
	errs := make([]error, n)
	successors := make([][]byte, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			var got store.Token
			_, got, errs[i] = consume(ctx, s, tok, now, grace, is)
			successors[i] = got.Successor
		})
	}
	close(start)
	wg.Wait()
	return errs, successors
}

// testConsumeCodeParallel: of 20 parallel redemptions of one code exactly
// one succeeds and one Issue runs. The first loser meets the consumed
// code and revokes the grant, so the later ones find nothing (TH-16,
// TH-24).
func testConsumeCodeParallel(t *testing.T, s store.Store) {
	code := newCode("code-1", "g1")
	require.NoError(t, s.CreateToken(t.Context(), code))
	is := &issuer{suffix: "1", successor: []byte("pair")}
	errs, _ := raceConsume(t, s, code, baseTime(), 0, is, 20)

	count := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			count["ok"]++
		case errors.Is(err, store.ErrReplayed):
			count["replayed"]++
		case errors.Is(err, store.ErrNotFound):
			count["not found"]++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	assert.Equal(t, map[string]int{"ok": 1, "replayed": 1, "not found": 18}, count)
	assert.Equal(t, int32(1), is.calls.Load())
	assertGone(t, s, code)
	assertGone(t, s, is.tokens(code)...)
}

// testConsumeRefreshParallel: of 20 parallel redemptions of one refresh
// token with a grace window, exactly one mints a successor and the others
// get that same successor: one new refresh token, never two (TH-24).
func testConsumeRefreshParallel(t *testing.T, s store.Store) {
	r0 := newToken("refresh-0", store.KindRefresh, "c1")
	require.NoError(t, s.CreateToken(t.Context(), r0))
	is := &issuer{suffix: "1", successor: []byte("sealed-pair-1")}
	errs, successors := raceConsume(t, s, r0, baseTime(), 5*time.Second, is, 20)

	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.ErrorIs(t, err, store.ErrInGrace)
		assert.Equal(t, []byte("sealed-pair-1"), successors[i])
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, int32(1), is.calls.Load())
	for _, tok := range is.tokens(r0) {
		assertTok(t, s, tok)
	}
}

// testRevokeGrant: RevokeGrant deletes exactly the grant's tokens, live
// or consumed, and counts them; the empty grant ID revokes nothing.
func testRevokeGrant(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := newCode("code-1", "g1")
	require.NoError(t, s.CreateToken(ctx, code))
	issued, _, err := consume(ctx, s, code, baseTime(), 0, &issuer{suffix: "1"})
	require.NoError(t, err)
	other := newCode("code-2", "g10") // its grant ID extends g1's
	grantless := store.Token{Digest: "bare", Kind: store.KindAccess, Provider: "github", CreatedAt: baseTime()}
	require.NoError(t, s.CreateToken(ctx, other))
	require.NoError(t, s.CreateToken(ctx, grantless))

	n, err := s.RevokeGrant(ctx, "g1")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the consumed code and the two tokens it issued")
	assertGone(t, s, code)
	assertGone(t, s, issued...)
	assertTok(t, s, other)

	n, err = s.RevokeGrant(ctx, "g1")
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = s.RevokeGrant(ctx, "")
	require.NoError(t, err)
	assert.Zero(t, n)
	assertTok(t, s, grantless)

	// Tokens deleted otherwise are not counted later.
	require.NoError(t, s.DeleteToken(ctx, "code-2"))
	n, err = s.RevokeGrant(ctx, "g10")
	require.NoError(t, err)
	assert.Zero(t, n)
}

// testRevokeAfterDeleteConnection: tokens deleted with their connection
// leave no trace in the grant (TH-40), and a digest reissued in another
// grant is not revoked with the old one.
func testRevokeAfterDeleteConnection(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.CreateToken(ctx, newToken("d", store.KindAccess, "c1")))
	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	reissued := newToken("d", store.KindAccess, "c2")
	require.NoError(t, s.CreateToken(ctx, reissued))
	n, err := s.RevokeGrant(ctx, "grant-c1")
	require.NoError(t, err)
	assert.Zero(t, n)
	assertTok(t, s, reissued)
}

// testUpsertConnection: reconnecting the same upstream account to the
// same workspace replaces the connection, keeping its ID and CreatedAt
// (TH-14); another workspace gets its own.
func testUpsertConnection(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := newConn("c1", "github")
	got, created, err := s.UpsertConnection(ctx, first)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, normConn(first), normConn(got))
	assertConn(t, s, first)

	again := newConn("c2", "github")
	again.AccountKey, again.WorkspaceID, again.Owner = first.AccountKey, first.WorkspaceID, first.Owner
	again.AccountName, again.NotionToken = "Ada renamed", []byte("sealed-notion-new")
	again.CreatedAt = baseTime().Add(time.Hour)
	got, created, err = s.UpsertConnection(ctx, again)
	require.NoError(t, err)
	assert.False(t, created)
	want := again
	want.ID, want.CreatedAt = "c1", first.CreatedAt
	assert.Equal(t, normConn(want), normConn(got))
	assertConn(t, s, want)
	assert.Equal(t, []string{"c1"}, connIDs(t, s, ""))
	_, err = s.GetConnection(ctx, "c2")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Returned bytes are copies.
	got.NotionToken[0] = 'X'
	assertConn(t, s, want)

	// Another workspace, provider, account or Notion owner is another
	// identity.
	for i, change := range []func(*store.Connection){
		func(c *store.Connection) { c.WorkspaceID = "ws-other" },
		func(c *store.Connection) { c.Provider = "gitlab" },
		func(c *store.Connection) { c.AccountKey = "acct-other" },
		func(c *store.Connection) { c.Owner = "user:other" },
	} {
		c := want
		c.ID = fmt.Sprint("n", i)
		change(&c)
		got, created, err := s.UpsertConnection(ctx, c)
		require.NoError(t, err)
		assert.True(t, created, "identity %d", i)
		assert.Equal(t, c.ID, got.ID)
	}
	assert.Equal(t, []string{"c1", "n0", "n1", "n2", "n3"}, connIDs(t, s, ""))

	// A new identity whose ID is taken is refused.
	taken := newConn("c1", "github")
	taken.AccountKey = "acct-new"
	_, _, err = s.UpsertConnection(ctx, taken)
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	assertConn(t, s, want)
}

// testUpsertConnectionPerOwner: two Notion users of one workspace who
// connect the same upstream account get a connection each; a reconnect
// replaces only its own owner's, and deleting one user's connection
// leaves the other's connection, tokens and subscriptions alone (TH-39).
func testUpsertConnectionPerOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newConn("ca", "github")
	a.AccountKey, a.WorkspaceID, a.Owner = "acct-shared", "ws-shared", "user:a"
	b := a
	b.ID, b.Owner, b.NotionToken = "cb", "user:b", []byte("sealed-notion-b")
	for _, c := range []store.Connection{a, b} {
		got, created, err := s.UpsertConnection(ctx, c)
		require.NoError(t, err)
		assert.True(t, created, "owner %s", c.Owner)
		assert.Equal(t, c.ID, got.ID)
	}
	assert.Equal(t, []string{"ca", "cb"}, connIDs(t, s, ""))

	// A reconnects: A's connection is replaced, B's untouched.
	again := a
	again.ID, again.NotionToken, again.CreatedAt = "ca2", []byte("sealed-notion-a2"), baseTime().Add(time.Hour)
	got, created, err := s.UpsertConnection(ctx, again)
	require.NoError(t, err)
	assert.False(t, created)
	want := again
	want.ID, want.CreatedAt = "ca", a.CreatedAt
	assert.Equal(t, normConn(want), normConn(got))
	assertConn(t, s, want)
	assertConn(t, s, b)
	assert.Equal(t, []string{"ca", "cb"}, connIDs(t, s, ""))

	tokA, tokB := newToken("tok-a", store.KindAccess, "ca"), newToken("tok-b", store.KindAccess, "cb")
	subA, subB := newSub("github", "ca", "https://x/1"), newSub("github", "cb", "https://x/1")
	for _, tok := range []store.Token{tokA, tokB} {
		require.NoError(t, s.CreateToken(ctx, tok))
	}
	for _, sub := range []store.Subscription{subA, subB} {
		_, err := s.PutSubscription(ctx, sub)
		require.NoError(t, err)
	}
	require.NoError(t, s.DeleteConnection(ctx, "cb"))
	assertGone(t, s, tokB)
	assertConn(t, s, want)
	assertTok(t, s, tokA)
	assertSub(t, s, subA)
	_, err = s.GetSubscription(ctx, subB.SubscriptionKey)
	require.ErrorIs(t, err, store.ErrNotFound)

	// B connects again after the deletion: a new connection, A's stays.
	b.ID = "cb2"
	got, created, err = s.UpsertConnection(ctx, b)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "cb2", got.ID)
	assert.Equal(t, []string{"ca", "cb2"}, connIDs(t, s, ""))
}

// testUpsertAdoptsOwnerless: a connection stored before owners were kept
// (empty Owner) is taken over by the first owner that reconnects, with
// its ID, tokens and subscriptions; a second owner gets its own. A new
// connection whose owner is unknown (empty) matches only ownerless ones,
// never an owner's (TH-14, TH-39).
func testUpsertAdoptsOwnerless(t *testing.T, s store.Store) {
	ctx := t.Context()
	legacy := newConn("old", "github")
	legacy.Owner = ""
	require.NoError(t, s.CreateConnection(ctx, legacy))
	tok := newToken("tok-old", store.KindAccess, "old")
	require.NoError(t, s.CreateToken(ctx, tok))

	a := legacy
	a.ID, a.Owner, a.NotionToken = "new-a", "user:a", []byte("sealed-notion-a")
	got, created, err := s.UpsertConnection(ctx, a)
	require.NoError(t, err)
	assert.False(t, created, "adopted")
	want := a
	want.ID = "old"
	assert.Equal(t, normConn(want), normConn(got))
	assertConn(t, s, want)
	assertTok(t, s, tok)

	b := legacy
	b.ID, b.Owner = "new-b", "user:b"
	got, created, err = s.UpsertConnection(ctx, b)
	require.NoError(t, err)
	assert.True(t, created, "the record has an owner now: B gets its own")
	assert.Equal(t, "new-b", got.ID)

	unknown := legacy
	unknown.ID = "new-unknown"
	got, created, err = s.UpsertConnection(ctx, unknown)
	require.NoError(t, err)
	assert.True(t, created, "an unknown owner does not take an owner's connection")
	assert.Equal(t, "new-unknown", got.ID)
	unknown.ID = "new-unknown-2"
	got, created, err = s.UpsertConnection(ctx, unknown)
	require.NoError(t, err)
	assert.False(t, created, "but replaces an ownerless one")
	assert.Equal(t, "new-unknown", got.ID)
	assertConn(t, s, want)
	assert.Equal(t, []string{"new-b", "new-unknown", "old"}, connIDs(t, s, ""))
}

// testUpsertFollowsUpdateAndDelete: the identity lookup follows
// UpdateConnection and DeleteConnection, so upserts never resurrect or
// duplicate a connection.
func testUpsertFollowsUpdateAndDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	c1 := newConn("c1", "github")
	require.NoError(t, s.CreateConnection(ctx, c1))
	// A connection made by CreateConnection is found by its identity too.
	same := c1
	same.ID = "c9"
	got, created, err := s.UpsertConnection(ctx, same)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "c1", got.ID)

	require.NoError(t, s.UpdateConnection(ctx, "c1", func(c store.Connection) (store.Connection, error) {
		c.WorkspaceID = "ws-moved"
		return c, nil
	}))
	got, created, err = s.UpsertConnection(ctx, same)
	require.NoError(t, err)
	assert.True(t, created, "the old identity is free after the update")
	assert.Equal(t, "c9", got.ID)
	moved := c1
	moved.ID, moved.WorkspaceID = "c5", "ws-moved"
	got, created, err = s.UpsertConnection(ctx, moved)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "c1", got.ID)

	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	fresh := moved
	fresh.ID, fresh.CreatedAt = "c6", baseTime().Add(time.Hour)
	got, created, err = s.UpsertConnection(ctx, fresh)
	require.NoError(t, err)
	assert.True(t, created, "a deleted connection is not found by its identity")
	assert.Equal(t, normConn(fresh), normConn(got))
	assert.Equal(t, []string{"c6", "c9"}, connIDs(t, s, ""))
}

// testSweep: Sweep removes expired flows, expired live tokens and
// consumed markers past retention, and keeps everything else, notably a
// recent marker whose token has expired, which must still catch a replay
// (TH-12, TH-17, TH-23).
func testSweep(t *testing.T, s store.Store) {
	ctx := t.Context()
	const retain = time.Hour
	start := baseTime()
	now := start.Add(2 * time.Hour)

	// The live flow goes in first: CreateFlow may drop flows expired at
	// its CreatedAt, and the old one is.
	oldFlow := newFlow("old", start)
	liveFlow := newFlow("live", now.Add(-time.Minute))
	require.NoError(t, s.CreateFlow(ctx, liveFlow, 10))
	require.NoError(t, s.CreateFlow(ctx, oldFlow, 10))

	expired := newToken("expired", store.KindAccess, "c1") // expires start+1h
	live := newToken("live", store.KindAccess, "c1")
	live.ExpiresAt = now.Add(time.Nanosecond)
	forever := newToken("forever", store.KindAccess, "c1")
	forever.ExpiresAt = time.Time{}
	oldMarker := newCode("old-marker", "g-old")
	oldMarker.ConsumedAt, oldMarker.Successor = now.Add(-retain), []byte("s")
	recentMarker := newCode("recent-marker", "g-recent") // expired at start+1m
	recentMarker.ConsumedAt, recentMarker.Successor = now.Add(-retain+time.Nanosecond), []byte("s")
	for _, tok := range []store.Token{expired, live, forever, oldMarker, recentMarker} {
		require.NoError(t, s.CreateToken(ctx, tok))
	}
	sibling := newToken("sibling", store.KindAccess, "c1")
	sibling.GrantID, sibling.ExpiresAt = "g-recent", time.Time{}
	require.NoError(t, s.CreateToken(ctx, sibling))

	res, err := s.Sweep(ctx, now, retain)
	require.NoError(t, err)
	assert.Equal(t, store.SweepResult{Flows: 1, Tokens: 2}, res)
	_, err = s.GetFlow(ctx, "old", start)
	require.ErrorIs(t, err, store.ErrNotFound)
	assertFlow(t, s, liveFlow, now)
	assertGone(t, s, expired, oldMarker)
	for _, tok := range []store.Token{live, forever, recentMarker, sibling} {
		assertTok(t, s, tok)
	}

	res, err = s.Sweep(ctx, now, retain)
	require.NoError(t, err)
	assert.Equal(t, store.SweepResult{}, res, "a second sweep finds nothing")

	// The kept marker still revokes its grant on replay.
	_, _, err = consume(ctx, s, recentMarker, now, 0, &issuer{})
	require.ErrorIs(t, err, store.ErrReplayed)
	assertGone(t, s, sibling)

	// A swept token leaves nothing behind in its grant or connection.
	n, err := s.RevokeGrant(ctx, "g-old")
	require.NoError(t, err)
	assert.Zero(t, n)
	reissued := newToken("expired", store.KindAccess, "c2")
	reissued.GrantID = "g-new"
	require.NoError(t, s.CreateToken(ctx, reissued))
	require.NoError(t, s.CreateConnection(ctx, newConn("c1", "github")))
	require.NoError(t, s.DeleteConnection(ctx, "c1"))
	n, err = s.RevokeGrant(ctx, "grant-c1")
	require.NoError(t, err)
	assert.Zero(t, n)
	assertTok(t, s, reissued)
}

// testGrantsCancelledContext: with a context already cancelled every
// GrantStore method returns its error and does nothing.
func testGrantsCancelledContext(t *testing.T, s store.Store) {
	live := t.Context()
	now := baseTime()
	flow := newFlow("f1", now)
	code := newCode("code-1", "g1")
	conn := newConn("c1", "github")
	require.NoError(t, s.CreateFlow(live, flow, 10))
	require.NoError(t, s.CreateToken(live, code))
	require.NoError(t, s.CreateConnection(live, conn))

	ctx, cancel := context.WithCancel(live)
	cancel()
	called := false
	changed := conn
	changed.AccountName = "changed"
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateFlow", func() error { return s.CreateFlow(ctx, newFlow("f2", now), 10) }},
		{"GetFlow", func() error { _, err := s.GetFlow(ctx, "f1", now); return err }},
		{"UpdateFlow", func() error {
			return s.UpdateFlow(ctx, "f1", now, func(f store.Flow) (store.Flow, error) { called = true; return f, nil })
		}},
		{"DeleteFlow", func() error { _, err := s.DeleteFlow(ctx, "f1"); return err }},
		{"ConsumeToken", func() error {
			_, _, err := s.ConsumeToken(ctx, store.Consume{
				Kind: store.KindCode, Digest: "code-1", Provider: "github", Now: now,
				Issue: func(store.Token) ([]store.Token, []byte, error) { called = true; return nil, nil, nil },
			})
			return err
		}},
		{"RevokeGrant", func() error { _, err := s.RevokeGrant(ctx, "g1"); return err }},
		{"UpsertConnection", func() error { _, _, err := s.UpsertConnection(ctx, changed); return err }},
		{"Sweep", func() error { _, err := s.Sweep(ctx, now.Add(24*time.Hour), 0); return err }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.call(), context.Canceled)
		})
	}
	assert.False(t, called, "a callback ran")
	assertFlow(t, s, flow, now)
	_, err := s.GetFlow(live, "f2", now)
	require.ErrorIs(t, err, store.ErrNotFound)
	assertTok(t, s, code)
	assertConn(t, s, conn)
}
