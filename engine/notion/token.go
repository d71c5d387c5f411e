package notion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/unfurld/unfurld/engine/config"
)

// BasicCredentials is the Notion integration's own client id and secret
// (pair B of protocol 1.2), sent to Notion as HTTP Basic.
type BasicCredentials struct {
	// ClientID is the integration's OAuth client id.
	ClientID string
	// ClientSecret is the integration's OAuth client secret.
	ClientSecret config.Secret
}

// ExternalAccount names the upstream account in the token exchange
// (protocol 4.2). Key is how Notion tells a reconnect of the same account
// from a new one; Name is shown in the user's "My connections".
type ExternalAccount struct {
	// Key is a stable id of the upstream account, e.g. "github:12345".
	Key string `json:"key"`
	// Name is a label the user recognises, e.g. an email address.
	Name string `json:"name"`
}

// Owner types of TokenResponse.OwnerType (protocol 4.4).
const (
	OwnerWorkspace = "workspace"
	OwnerUser      = "user"
)

// TokenResponse is Notion's answer to the code exchange (protocol 4.4),
// read leniently: a field of an unexpected type is left empty rather than
// failing the exchange, and only access_token is required. Tokens are
// config.Secret, so printing or logging a TokenResponse shows no token.
// It has no JSON tags on purpose: it is decoded by hand, not by
// encoding/json.
type TokenResponse struct {
	// AccessToken is the Notion token for PATCH /v1/external/object (R7).
	AccessToken config.Secret
	// TokenType is "bearer" in every known response.
	TokenType string
	// RefreshToken is present in newer responses only (protocol 10 #25).
	RefreshToken config.Secret
	// BotID identifies this authorization.
	BotID string
	// WorkspaceID is the Notion workspace where the flow ran.
	WorkspaceID string
	// WorkspaceName is the workspace's name; may be empty.
	WorkspaceName string
	// WorkspaceIcon is a URL or an emoji; may be empty.
	WorkspaceIcon string
	// Owner is the raw owner object; see OwnerType and friends for the
	// parts we understand (protocol 10 #24).
	Owner json.RawMessage
	// OwnerType is OwnerWorkspace, OwnerUser, or empty when the owner
	// shape is unknown. A legacy {"workspace": true} counts as workspace.
	OwnerType string
	// OwnerUserID is owner.user.id when the owner is a user.
	OwnerUserID string
	// OwnerName is owner.user.name when present (a partial user has none).
	OwnerName string
	// DuplicatedTemplateID is always empty for Link Preview integrations.
	DuplicatedTemplateID string
	// RequestID is Notion's request id, from the body or the
	// x-notion-request-id header.
	RequestID string
}

// LogValue implements slog.LogValuer with the identifying fields only.
func (t TokenResponse) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bot_id", t.BotID),
		slog.String("workspace_id", t.WorkspaceID),
		slog.String("owner_type", t.OwnerType),
		slog.String("request_id", t.RequestID),
	)
}

// Owner keys returned by TokenResponse.OwnerKey.
const (
	// OwnerKeyWorkspace is the owner key of an authorization owned by the
	// whole workspace.
	OwnerKeyWorkspace = "workspace"
	// ownerKeyUser prefixes a Notion user id.
	ownerKeyUser = "user:"
	// ownerKeyBot prefixes a bot_id, the fallback for an owner we cannot
	// read.
	ownerKeyBot = "bot:"
)

// OwnerKey is a stable, non-secret name for who in Notion owns this
// authorization, so that two Notion users of one workspace who connect
// the same upstream account keep separate connections (protocol 1.6,
// 4.4): "user:<id>" for a user owner, "workspace" for a workspace owner.
// An owner that is missing or of a shape we do not know falls back to
// "bot:<bot_id>", because bot_id identifies the authorization (protocol
// 4.4): two users then never share a connection, at worst one user's
// reconnect makes a second one. With neither, the key is empty; a
// missing owner never fails the exchange (protocol 10 #24).
//
// A workspace owner names no user, and it is what Notion answered Link
// Preview integrations in the one recorded exchange (protocol 4.4). One
// key for the whole workspace would merge every user who connects the
// same upstream account into one connection, so that one user's deleted
// token breaks the others' previews (TH-39). The authorization's bot_id
// keeps them apart: "workspace:<bot_id>". If Notion mints a new bot_id
// when the same user reconnects, the cost is a second connection until
// Notion deletes the old token (it removes duplicates of one
// external_account itself, protocol 1.6), never a merged one. Only
// without a bot_id is the key the bare "workspace".
func (t TokenResponse) OwnerKey() string {
	switch {
	case t.OwnerType == OwnerUser && t.OwnerUserID != "":
		return ownerKeyUser + t.OwnerUserID
	case t.OwnerType == OwnerWorkspace && t.BotID != "":
		return OwnerKeyWorkspace + ":" + t.BotID
	case t.OwnerType == OwnerWorkspace:
		return OwnerKeyWorkspace
	case t.BotID != "":
		return ownerKeyBot + t.BotID
	}
	return ""
}

// tokenRequest is the JSON body of R2 (protocol 4.1). redirect_uri is
// deliberately absent: the Link Preview flow does not send it.
type tokenRequest struct {
	GrantType       string          `json:"grant_type"`
	Code            string          `json:"code"`
	ExternalAccount ExternalAccount `json:"external_account"`
}

// ExchangeCode is R2 (protocol 4.1): it trades the code Notion sent to our
// authorize URL for a Notion access token. It POSTs /v1/oauth/token with
// HTTP Basic from creds and the JSON body {grant_type:
// "authorization_code", code, external_account}. Non-2xx answers are
// *APIError; an expired or used code is 400 invalid_grant. The call is not
// retried here: a code is single use.
func (c *Client) ExchangeCode(ctx context.Context, creds BasicCredentials, code string, account ExternalAccount) (*TokenResponse, error) {
	switch {
	case creds.ClientID == "" || creds.ClientSecret.IsZero():
		return nil, errors.New("notion exchange code: integration client id and secret are required")
	case code == "":
		return nil, errors.New("notion exchange code: code is empty")
	case account.Key == "":
		return nil, errors.New("notion exchange code: external account key is empty")
	}
	body, err := json.Marshal(tokenRequest{GrantType: "authorization_code", Code: code, ExternalAccount: account})
	if err != nil {
		return nil, fmt.Errorf("notion exchange code: encode body: %w", err)
	}
	scrub := []string{code, creds.ClientSecret.Reveal()}
	resp, err := c.do(ctx, request{
		op:      "exchange code",
		method:  http.MethodPost,
		path:    tokenPath,
		version: c.tokenVersion,
		auth: func(r *http.Request) {
			// Notion documents base64(id:secret) without the RFC 6749
			// 2.3.1 form-encoding of each part (protocol 4.1).
			r.SetBasicAuth(creds.ClientID, creds.ClientSecret.Reveal())
		},
		body:  body,
		scrub: scrub,
	})
	if err != nil {
		return nil, err
	}
	if resp.status < 200 || resp.status > 299 {
		return nil, fmt.Errorf("notion exchange code: %w", parseAPIError(resp, scrub))
	}
	if resp.truncated {
		return nil, fmt.Errorf("notion exchange code: %w (over %d bytes)", ErrBodyTooLarge, c.maxBody)
	}
	tr, err := decodeTokenResponse(resp, scrub)
	if err != nil {
		return nil, fmt.Errorf("notion exchange code: %w", err)
	}
	return tr, nil
}

// decodeTokenResponse reads a 2xx token body leniently (protocol 4.4,
// 10 #24-#25). A 2xx carrying an error body instead of a token is turned
// into an APIError.
func decodeTokenResponse(resp *response, scrub []string) (*TokenResponse, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &f); err != nil {
		// The json error names at most one offending character, never
		// the token.
		return nil, fmt.Errorf("decode token response: %w", err)
	}
	t := &TokenResponse{
		AccessToken:          config.Secret(firstString(f, "access_token")),
		TokenType:            firstString(f, "token_type"),
		RefreshToken:         config.Secret(firstString(f, "refresh_token")),
		BotID:                firstString(f, "bot_id"),
		WorkspaceID:          firstString(f, "workspace_id"),
		WorkspaceName:        firstString(f, "workspace_name"),
		WorkspaceIcon:        firstString(f, "workspace_icon"),
		DuplicatedTemplateID: firstString(f, "duplicated_template_id"),
		RequestID:            firstString(f, "request_id"),
	}
	if t.RequestID == "" {
		t.RequestID = resp.header.Get("x-notion-request-id")
	}
	if t.AccessToken.IsZero() {
		if _, isErr := errorFields(resp.body); isErr {
			return nil, parseAPIError(resp, scrub)
		}
		return nil, errors.New("token response has no access_token")
	}
	if raw, ok := f["owner"]; ok && string(raw) != "null" {
		t.Owner = raw
		t.OwnerType, t.OwnerUserID, t.OwnerName = parseOwner(raw)
	}
	return t, nil
}

// parseOwner reads the owner variants of protocol 4.4:
// {type:"workspace", workspace:true}, {type:"user", user:{…}}, the legacy
// {workspace:true} without type, and a partial user {object:"user", id}.
// Anything else gives empty results, never an error.
func parseOwner(raw json.RawMessage) (ownerType, userID, name string) {
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil {
		return "", "", ""
	}
	ownerType = firstString(o, "type")
	if u, ok := o["user"]; ok && string(u) != "null" {
		var user map[string]json.RawMessage
		if json.Unmarshal(u, &user) == nil {
			userID, name = firstString(user, "id"), firstString(user, "name")
		}
		if ownerType == "" {
			ownerType = OwnerUser
		}
	}
	if ws, ok := o["workspace"]; ok && ownerType == "" && string(ws) == "true" {
		ownerType = OwnerWorkspace
	}
	return ownerType, userID, name
}
