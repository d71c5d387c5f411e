package issuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

const testRedirect = "https://notion.so/externalIntegrationAuthCallback"

// issuerFixture is an Issuer on a memory store with a settable clock.
type issuerFixture struct {
	iss   *Issuer
	st    store.Store
	clock *clocktest.Fake
	conn  string
}

func newIssuerFixture(t *testing.T) *issuerFixture {
	t.Helper()
	f := &issuerFixture{st: memory.New(), clock: clocktest.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)), conn: "conn-1"}
	f.iss = &Issuer{Store: f.st, Keyring: newTestKeyring(t), Now: f.clock.Now}
	return f
}

// newTestKeyring builds a one-key keyring for sealing successor pairs.
func newTestKeyring(t *testing.T) *sealing.Keyring {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(1 + i)
	}
	k, err := sealing.NewKeyring("k1", key, nil)
	require.NoError(t, err)
	return k
}

func (f *issuerFixture) code(t *testing.T, provider string) string {
	t.Helper()
	code, err := f.iss.MintCode(t.Context(), provider, f.conn, testRedirect)
	require.NoError(t, err)
	return code
}

var (
	longLived = Client{Provider: "tracker"}
	expiring  = Client{Provider: "tracker", AccessTokenTTL: time.Hour, RefreshGrace: 30 * time.Second}
)

// requireGrantError asserts an *Error with invalid_grant (or want).
func requireOAuthError(t *testing.T, err error, want string) {
	t.Helper()
	var oe *Error
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, want, oe.Code, oe.Description)
}

func (f *issuerFixture) tokenGone(t *testing.T, kind store.TokenKind, tok string) {
	t.Helper()
	_, err := f.st.GetToken(t.Context(), kind, Digest(tok))
	require.ErrorIs(t, err, store.ErrNotFound, "%s token should be gone", kind)
}

func TestMintCodeStoresDigestBoundAndShortLived(t *testing.T) {
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")

	kind, ok := KindOf(code)
	require.True(t, ok)
	assert.Equal(t, store.KindCode, kind)
	got, err := f.st.GetToken(t.Context(), store.KindCode, Digest(code))
	require.NoError(t, err)
	assert.Equal(t, "tracker", got.Provider)
	assert.Equal(t, f.conn, got.ConnectionID)
	assert.Equal(t, testRedirect, got.RedirectURI, "TH-18: bound to the authorize redirect_uri")
	assert.Equal(t, f.clock.Now().Add(2*time.Minute), got.ExpiresAt, "TH-17: two-minute code")
	assert.NotEmpty(t, got.GrantID)
	assert.NotEqual(t, code, got.Digest, "TH-41: only the digest is stored")

	other := f.code(t, "tracker")
	o, err := f.st.GetToken(t.Context(), store.KindCode, Digest(other))
	require.NoError(t, err)
	assert.NotEqual(t, got.GrantID, o.GrantID, "each code starts its own grant")
}

func TestRedeemCodeLongLived(t *testing.T) {
	// Protocol 2.3: TTL 0 gives a long-lived access token and no refresh.
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")

	resp, err := f.iss.RedeemCode(t.Context(), longLived, code, testRedirect)
	require.NoError(t, err)
	assert.Equal(t, "bearer", resp.TokenType)
	assert.True(t, strings.HasPrefix(resp.AccessToken, PrefixAccess))
	assert.Empty(t, resp.RefreshToken)
	assert.Zero(t, resp.ExpiresIn)

	at, err := f.st.GetToken(t.Context(), store.KindAccess, Digest(resp.AccessToken))
	require.NoError(t, err)
	assert.True(t, at.ExpiresAt.IsZero())
	assert.Equal(t, f.conn, at.ConnectionID)
	cd, err := f.st.GetToken(t.Context(), store.KindCode, Digest(code))
	require.NoError(t, err)
	assert.Equal(t, cd.GrantID, at.GrantID)
	assert.Equal(t, f.clock.Now(), cd.ConsumedAt)
	assert.Empty(t, cd.Successor, "a code keeps no successor: it has no grace")
}

func TestRedeemCodeExpiring(t *testing.T) {
	f := newIssuerFixture(t)
	resp, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(resp.RefreshToken, PrefixRefresh))
	assert.Equal(t, int64(3600), resp.ExpiresIn, "protocol 2.3: expires_in with refresh_token")

	at, err := f.st.GetToken(t.Context(), store.KindAccess, Digest(resp.AccessToken))
	require.NoError(t, err)
	assert.Equal(t, f.clock.Now().Add(time.Hour), at.ExpiresAt)
	rt, err := f.st.GetToken(t.Context(), store.KindRefresh, Digest(resp.RefreshToken))
	require.NoError(t, err)
	assert.Equal(t, f.clock.Now().Add(DefaultRefreshTTL), rt.ExpiresAt, "TH-23: inactivity expiry")
	assert.Equal(t, at.GrantID, rt.GrantID)
}

func TestRedeemCodeReplayRevokesIssuedTokensTH16(t *testing.T) {
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")
	resp, err := f.iss.RedeemCode(t.Context(), expiring, code, testRedirect)
	require.NoError(t, err)

	_, err = f.iss.RedeemCode(t.Context(), expiring, code, testRedirect)
	requireOAuthError(t, err, CodeInvalidGrant)
	f.tokenGone(t, store.KindAccess, resp.AccessToken)
	f.tokenGone(t, store.KindRefresh, resp.RefreshToken)
}

func TestRedeemCodeExpiredTH17(t *testing.T) {
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")
	f.clock.Advance(CodeTTL)

	_, err := f.iss.RedeemCode(t.Context(), longLived, code, testRedirect)
	requireOAuthError(t, err, CodeInvalidGrant)
	assert.Contains(t, err.Error(), "expired")

	// One tick earlier it would have worked.
	f2 := newIssuerFixture(t)
	code2 := f2.code(t, "tracker")
	f2.clock.Advance(CodeTTL - time.Nanosecond)
	_, err = f2.iss.RedeemCode(t.Context(), longLived, code2, testRedirect)
	require.NoError(t, err)
}

func TestRedeemCodeRefusalsDoNotBurnTheCodeTH18(t *testing.T) {
	tests := []struct {
		name     string
		client   Client
		redirect string
	}{
		{"other provider", Client{Provider: "wiki"}, testRedirect},
		{"other host", longLived, "https://evil.example/externalIntegrationAuthCallback"},
		{"look-alike host", longLived, "https://notion.so.evil.example/externalIntegrationAuthCallback"},
		{"other path", longLived, "https://notion.so/other"},
		{"http scheme", longLived, "http://notion.so/externalIntegrationAuthCallback"},
		{"extra query", longLived, testRedirect + "?x=1"},
		{"fragment", longLived, testRedirect + "#x"},
		{"user info", longLived, "https://user@notion.so/externalIntegrationAuthCallback"},
		{"path prefix", longLived, "https://notion.so/externalIntegrationAuthCallbackX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIssuerFixture(t)
			code := f.code(t, "tracker")
			_, err := f.iss.RedeemCode(t.Context(), tc.client, code, tc.redirect)
			requireOAuthError(t, err, CodeInvalidGrant)

			cd, err := f.st.GetToken(t.Context(), store.KindCode, Digest(code))
			require.NoError(t, err)
			assert.True(t, cd.ConsumedAt.IsZero(), "the code is not burned")
			_, err = f.iss.RedeemCode(t.Context(), longLived, code, testRedirect)
			require.NoError(t, err, "the right client still redeems it")
		})
	}
}

func TestRedeemCodeTolerantRedirectProtocol22(t *testing.T) {
	// Notion's docs print leg B's redirect_uri without a scheme (protocol
	// 2.1, 3.4); the spellings below all name the same callback.
	for _, presented := range []string{
		testRedirect,
		"",
		"notion.so/externalIntegrationAuthCallback",
		"https://www.notion.so/externalintegrationauthcallback",
		"HTTPS://Notion.SO/externalintegrationauthcallback/",
	} {
		t.Run(presented, func(t *testing.T) {
			f := newIssuerFixture(t)
			_, err := f.iss.RedeemCode(t.Context(), longLived, f.code(t, "tracker"), presented)
			require.NoError(t, err)
		})
	}
}

func TestTokenTypeConfusionTH25(t *testing.T) {
	f := newIssuerFixture(t)
	resp, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	code := f.code(t, "tracker")

	_, err = f.iss.RedeemCode(t.Context(), expiring, resp.AccessToken, testRedirect)
	requireOAuthError(t, err, CodeInvalidGrant)
	_, err = f.iss.RedeemCode(t.Context(), expiring, resp.RefreshToken, testRedirect)
	requireOAuthError(t, err, CodeInvalidGrant)
	_, err = f.iss.Refresh(t.Context(), expiring, resp.AccessToken)
	requireOAuthError(t, err, CodeInvalidGrant)
	_, err = f.iss.Refresh(t.Context(), expiring, code)
	requireOAuthError(t, err, CodeInvalidGrant)
	// A refresh token with its prefix swapped is another token.
	_, err = f.iss.RedeemCode(t.Context(), expiring, PrefixCode+strings.TrimPrefix(resp.RefreshToken, PrefixRefresh), testRedirect)
	requireOAuthError(t, err, CodeInvalidGrant)

	// Nothing above consumed anything.
	_, err = f.iss.Refresh(t.Context(), expiring, resp.RefreshToken)
	require.NoError(t, err)
	_, err = f.iss.RedeemCode(t.Context(), expiring, code, testRedirect)
	require.NoError(t, err)
}

func TestRefreshRotatesWithGraceTH23(t *testing.T) {
	f := newIssuerFixture(t)
	first, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)

	second, err := f.iss.Refresh(t.Context(), expiring, first.RefreshToken)
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, second.AccessToken)
	assert.NotEqual(t, first.RefreshToken, second.RefreshToken)
	assert.Equal(t, int64(3600), second.ExpiresIn)

	// The spent token keeps the pair sealed, never in clear (TH-41).
	spent, err := f.st.GetToken(t.Context(), store.KindRefresh, Digest(first.RefreshToken))
	require.NoError(t, err)
	require.NotEmpty(t, spent.Successor)
	assert.False(t, bytes.Contains(spent.Successor, []byte(second.AccessToken)))
	assert.False(t, bytes.Contains(spent.Successor, []byte(second.RefreshToken)))

	// A retry inside the grace gets the very same pair (TH-24).
	f.clock.Advance(29 * time.Second)
	retry, err := f.iss.Refresh(t.Context(), expiring, first.RefreshToken)
	require.NoError(t, err)
	assert.Equal(t, second, retry)

	// After the grace the replay revokes the grant (TH-23): every access
	// and refresh token of the family is gone, the live pair included.
	f.clock.Advance(time.Second)
	_, err = f.iss.Refresh(t.Context(), expiring, first.RefreshToken)
	requireOAuthError(t, err, CodeInvalidGrant)
	f.tokenGone(t, store.KindAccess, first.AccessToken)
	f.tokenGone(t, store.KindAccess, second.AccessToken)
	f.tokenGone(t, store.KindRefresh, second.RefreshToken)
	_, err = f.iss.Refresh(t.Context(), expiring, second.RefreshToken)
	requireOAuthError(t, err, CodeInvalidGrant)
}

func TestRefreshSuccessorBoundToItsTokenTH41(t *testing.T) {
	// A sealed successor copied onto another spent token does not open:
	// the retry is refused instead of handing out another grant's pair.
	f := newIssuerFixture(t)
	a, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	_, err = f.iss.Refresh(t.Context(), expiring, a.RefreshToken)
	require.NoError(t, err)
	spentA, err := f.st.GetToken(t.Context(), store.KindRefresh, Digest(a.RefreshToken))
	require.NoError(t, err)

	_, err = f.iss.openSuccessor(store.Token{Successor: spentA.Successor}, sealing.SuccessorAAD(Digest("ufd_rt_other")))
	requireOAuthError(t, err, CodeInvalidGrant)
	got, err := f.iss.openSuccessor(spentA, sealing.SuccessorAAD(spentA.Digest))
	require.NoError(t, err)
	assert.NotEmpty(t, got.AccessToken)
}

func TestRefreshExpired(t *testing.T) {
	f := newIssuerFixture(t)
	c := expiring
	c.RefreshTTL = time.Hour * 2
	a, err := f.iss.RedeemCode(t.Context(), c, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	f.clock.Advance(2 * time.Hour)
	_, err = f.iss.Refresh(t.Context(), c, a.RefreshToken)
	requireOAuthError(t, err, CodeInvalidGrant)
	assert.Contains(t, err.Error(), "expired")
}

func TestRefreshOtherProviderTH18(t *testing.T) {
	f := newIssuerFixture(t)
	a, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	wiki := expiring
	wiki.Provider = "wiki"
	_, err = f.iss.Refresh(t.Context(), wiki, a.RefreshToken)
	requireOAuthError(t, err, CodeInvalidGrant)
	_, err = f.iss.Refresh(t.Context(), expiring, a.RefreshToken)
	require.NoError(t, err, "not consumed by the other provider's attempt")
}

func TestRefreshRefusedForLongLivedClients(t *testing.T) {
	// A refresh token left from an expiring configuration, presented after
	// the provider switched to long-lived tokens: refused, not consumed.
	f := newIssuerFixture(t)
	a, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	_, err = f.iss.Refresh(t.Context(), longLived, a.RefreshToken)
	requireOAuthError(t, err, CodeUnsupportedGrantType)
	rt, err := f.st.GetToken(t.Context(), store.KindRefresh, Digest(a.RefreshToken))
	require.NoError(t, err)
	assert.True(t, rt.ConsumedAt.IsZero())
}

func TestParallelRedemptionsOneWinnerTH16(t *testing.T) {
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")
	results := make([]error, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			_, results[i] = f.iss.RedeemCode(t.Context(), expiring, code, testRedirect)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
			continue
		}
		requireOAuthError(t, err, CodeInvalidGrant)
	}
	assert.Equal(t, 1, wins)
}

func TestParallelRefreshesOneSuccessorTH24(t *testing.T) {
	f := newIssuerFixture(t)
	a, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	type result struct {
		resp TokenResponse
		err  error
	}
	results := make([]result, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r, err := f.iss.Refresh(t.Context(), expiring, a.RefreshToken)
			results[i] = result{r, err}
		})
	}
	wg.Wait()
	pairs := map[string]bool{}
	for _, r := range results {
		if r.err != nil {
			requireOAuthError(t, r.err, CodeInvalidGrant)
			continue
		}
		pairs[r.resp.AccessToken+" "+r.resp.RefreshToken] = true
	}
	assert.Len(t, pairs, 1, "exactly one successor pair")
}

// failingStore fails ConsumeToken like a full disk (TH-46).
type failingStore struct{ store.Store }

func (failingStore) ConsumeToken(context.Context, store.Consume) ([]store.Token, store.Token, error) {
	return nil, store.Token{}, errors.New("write: no space left on device")
}

func TestRedeemStoreFailureIsNotAnOAuthErrorTH46(t *testing.T) {
	f := newIssuerFixture(t)
	code := f.code(t, "tracker")
	iss := &Issuer{Store: failingStore{f.st}, Keyring: f.iss.Keyring, Now: f.clock.Now}
	resp, err := iss.RedeemCode(t.Context(), expiring, code, testRedirect)
	require.Error(t, err)
	var oe *Error
	assert.False(t, errors.As(err, &oe), "a store failure must not read as a refusal")
	assert.Empty(t, resp.AccessToken)
}

func TestRefreshWithoutKeyringFails(t *testing.T) {
	f := newIssuerFixture(t)
	a, err := f.iss.RedeemCode(t.Context(), expiring, f.code(t, "tracker"), testRedirect)
	require.NoError(t, err)
	iss := &Issuer{Store: f.st, Now: f.clock.Now}
	_, err = iss.Refresh(t.Context(), expiring, a.RefreshToken)
	require.Error(t, err)
	rt, err := f.st.GetToken(t.Context(), store.KindRefresh, Digest(a.RefreshToken))
	require.NoError(t, err)
	assert.True(t, rt.ConsumedAt.IsZero())
}

func TestTokenResponseNeverPrintsTokensTH49(t *testing.T) {
	r := TokenResponse{AccessToken: "ufd_at_SECRETA", RefreshToken: "ufd_rt_SECRETR", TokenType: "bearer", ExpiresIn: 60}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "resp", r)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "resp", r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s %q", r, r, r, r, r), buf.String()} {
		assert.NotContains(t, s, "SECRET")
	}
}

func TestNormaliseRedirect(t *testing.T) {
	tests := map[string]string{
		"notion.so/externalIntegrationAuthCallback":             "https://notion.so/externalintegrationauthcallback",
		"https://www.notion.so/externalintegrationauthcallback": "https://notion.so/externalintegrationauthcallback",
		"https://notion.so/x?y=1":                               "",
		"https://a@notion.so/x":                                 "",
		"https://notion.so/x#f":                                 "",
		"https://notion.so/x?":                                  "",
		"":                                                      "",
		"https://":                                              "",
	}
	for in, want := range tests {
		assert.Equal(t, want, normaliseRedirect(in), in)
	}
}
