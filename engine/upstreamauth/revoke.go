package upstreamauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
)

// revokeRetryDelay spaces the one retry of a revocation.
const revokeRetryDelay = time.Second

// RevokeError is an upstream's refusal of a revocation: its status only,
// since the body may echo what we sent.
type RevokeError struct {
	Provider string
	Status   int
}

func (e *RevokeError) Error() string {
	return fmt.Sprintf("revoke upstream grant for %s: upstream answered %d", e.Provider, e.Status)
}

// CanRevoke reports whether the provider declares a revocation endpoint
// (auth.oauth2.revocation).
func (u *Client) CanRevoke() bool { return u.revocation.URL != "" }

// Revoke asks the upstream to revoke the grant behind tok, so the token
// stops working there too when the user disconnects (security.md TH-40).
// It makes one attempt and, after a network error, a 429 or a 5xx, one
// retry; each attempt is bounded by timeout. Callers run it after the
// local deletion has committed, never inside a store transaction
// (TH-43). Nothing of the token or the upstream's body is in the error.
func (u *Client) Revoke(ctx context.Context, tok Token, timeout time.Duration) error {
	if !u.CanRevoke() {
		return nil
	}
	if tok.AccessToken.IsZero() && tok.RefreshToken.IsZero() {
		return fmt.Errorf("revoke upstream grant for %s: no token", u.provider)
	}
	var err error
	for attempt := range 2 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("revoke upstream grant for %s: %w", u.provider, ctx.Err())
			case <-time.After(u.revokeDelay):
			}
		}
		var retry bool
		retry, err = u.revokeOnce(ctx, tok, timeout)
		if err == nil || !retry {
			return err
		}
	}
	return err
}

// revokeOnce sends one revocation request and says whether a failure is
// worth one retry.
func (u *Client) revokeOnce(parent context.Context, tok Token, timeout time.Duration) (bool, error) {
	ctx := parent
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := u.revokeRequest(ctx, tok)
	if err != nil {
		return false, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		// url.Error names the URL, which holds no secret. A timeout of
		// this attempt is worth a retry; the caller giving up is not.
		return parent.Err() == nil, fmt.Errorf("revoke upstream grant for %s: %w", u.provider, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	return retry, &RevokeError{Provider: u.provider, Status: resp.StatusCode}
}

// revokeRequest builds the request of the configured style.
func (u *Client) revokeRequest(ctx context.Context, tok Token) (*http.Request, error) {
	id, secret := u.cfg.ClientID, u.cfg.ClientSecret
	switch u.revocation.Style {
	case config.RevocationGitHubGrant:
		// DELETE /applications/{client_id}/grant revokes the whole
		// authorization: every token of the app for that user.
		body, err := json.Marshal(map[string]string{"access_token": tok.AccessToken.Reveal()})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.revocation.URL, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("revoke upstream grant for %s: %w", u.provider, err)
		}
		req.SetBasicAuth(id, secret)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/vnd.github+json")
		return req, nil
	default: // RFC 7009 2.1
		// Revoking the refresh token revokes the grant's access tokens
		// too (RFC 7009 2.1); without one, the access token is all there
		// is.
		form := url.Values{}
		if !tok.RefreshToken.IsZero() {
			form.Set("token", tok.RefreshToken.Reveal())
			form.Set("token_type_hint", "refresh_token")
		} else {
			form.Set("token", tok.AccessToken.Reveal())
			form.Set("token_type_hint", "access_token")
		}
		if u.paramsAuth {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.revocation.URL, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("revoke upstream grant for %s: %w", u.provider, err)
		}
		if !u.paramsAuth {
			// RFC 6749 2.3.1: form-encode both before Basic.
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
}
