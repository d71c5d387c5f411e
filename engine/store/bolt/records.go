package bolt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// Records as stored. The store types carry no JSON tags; these do, with
// the schema version "v", so the file format is explicit and a later
// version can tell old records apart. Keys (digest, connection id,
// subscription key) are not repeated in the values.
//
// Times are stored in UTC: RFC 3339 cannot carry a zone's name or an
// offset with seconds, and the instant is what callers compare
// (time.Equal). Strings are JSON strings, so they should be valid UTF-8:
// encoding/json replaces invalid bytes with U+FFFD.

type tokenRecord struct {
	V            int       `json:"v"`
	Kind         string    `json:"kind"`
	Provider     string    `json:"provider"`
	ConnectionID string    `json:"connection_id,omitempty"`
	GrantID      string    `json:"grant_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	// The fields below came with issue 3. They are omitted while empty,
	// so records written before read as live tokens without a redirect
	// URI and the version stays 1.
	RedirectURI string    `json:"redirect_uri,omitempty"`
	ConsumedAt  time.Time `json:"consumed_at,omitzero"`
	Successor   []byte    `json:"successor,omitempty"`
}

type connRecord struct {
	V             int    `json:"v"`
	Provider      string `json:"provider"`
	AccountKey    string `json:"account_key"`
	AccountName   string `json:"account_name,omitempty"`
	WorkspaceID   string `json:"workspace_id,omitempty"`
	WorkspaceName string `json:"workspace_name,omitempty"`
	BotID         string `json:"bot_id,omitempty"`
	// Owner came with the per-owner identity. It is omitted while empty,
	// so records written before read with no owner and the version stays
	// 1 (UpsertConnection says how they match).
	Owner              string    `json:"owner,omitempty"`
	NotionToken        []byte    `json:"notion_token,omitempty"`
	UpstreamCredential []byte    `json:"upstream_credential,omitempty"`
	UpstreamExpiry     time.Time `json:"upstream_expiry,omitzero"`
	Status             string    `json:"status,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	// The fields below came with the operator's connection view. They
	// are omitted while empty, so records written before read as never
	// refreshed and never failed, and the version stays 1.
	UpstreamRefreshedAt time.Time     `json:"upstream_refreshed_at,omitzero"`
	Reconnect           eventRecord   `json:"reconnect,omitzero"`
	Failures            []eventRecord `json:"failures,omitempty"`
}

// eventRecord is store.ConnectionEvent as stored.
type eventRecord struct {
	At     time.Time `json:"at,omitzero"`
	Call   string    `json:"call,omitempty"`
	URI    string    `json:"uri,omitempty"`
	Status int       `json:"status,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

func toEventRecord(e store.ConnectionEvent) eventRecord {
	return eventRecord{At: e.At.UTC(), Call: e.Call, URI: e.URI, Status: e.Status, Detail: e.Detail}
}

func fromEventRecord(r eventRecord) store.ConnectionEvent {
	return store.ConnectionEvent{At: r.At, Call: r.Call, URI: r.URI, Status: r.Status, Detail: r.Detail}
}

type subRecord struct {
	V            int       `json:"v"`
	AttrHash     string    `json:"attr_hash,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Refresh came with issue 4. It is omitted while zero, so records
	// written before read as never refreshed and the version stays 1.
	Refresh refreshRecord `json:"refresh,omitzero"`
	// DeliveredAt came with the operator's connection view; omitted
	// while zero, so the version stays 1.
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	// UnfurledAt came with the poll schedule (issue 11); omitted while
	// zero, so the version stays 1. NextPollAt is not in the record: it
	// is the schedule's (schedule.go).
	UnfurledAt time.Time `json:"unfurled_at,omitzero"`
}

// refreshRecord is store.RefreshRecord as stored.
type refreshRecord struct {
	At      time.Time `json:"at,omitzero"`
	Trigger string    `json:"trigger,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Status  int       `json:"status,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// versioned is implemented by every record, for decode's check.
type versioned interface{ version() int }

func (r *tokenRecord) version() int { return r.V }
func (r *connRecord) version() int  { return r.V }
func (r *subRecord) version() int   { return r.V }

// decode unmarshals a stored value, which copies it out of bbolt's memory
// map, and refuses a schema version it does not know.
func decode(what string, v []byte, rec versioned) error {
	if err := json.Unmarshal(v, rec); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	if rec.version() != schemaVersion {
		return fmt.Errorf("decode %s: record version %d, this unfurld reads version %d", what, rec.version(), schemaVersion)
	}
	return nil
}

// encode marshals a record; it fails only on a time outside years 0-9999.
func encode(what string, rec any) ([]byte, error) {
	v, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return v, nil
}

// encodeSub marshals a subscription record exactly as encode does (a
// test holds them equal on any record), without reflection: it runs once
// per record of every group commit of cold unfurls, where encoding/json
// was a third of the CPU spent writing the records (perf on the real
// server under the load tool's scenario c, issue 11).
func encodeSub(r subRecord) ([]byte, error) {
	b := make([]byte, 0, 320) // a new subscription's record is about 200 bytes
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = appendStringField(b, `,"attr_hash":`, r.AttrHash)
	b = appendStringField(b, `,"etag":`, r.ETag)
	b = appendStringField(b, `,"last_modified":`, r.LastModified)
	var err error
	if b, err = appendTimeField(b, `,"created_at":`, r.CreatedAt); err != nil {
		return nil, err
	}
	if b, err = appendTimeField(b, `,"updated_at":`, r.UpdatedAt); err != nil {
		return nil, err
	}
	if r.Refresh != (refreshRecord{}) { // omitzero: the struct's zero value
		b = append(b, `,"refresh":{`...)
		n := len(b)
		if !r.Refresh.At.IsZero() {
			if b, err = appendTimeField(b, `,"at":`, r.Refresh.At); err != nil {
				return nil, err
			}
		}
		b = appendStringField(b, `,"trigger":`, r.Refresh.Trigger)
		b = appendStringField(b, `,"outcome":`, r.Refresh.Outcome)
		if r.Refresh.Status != 0 {
			b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Refresh.Status), 10)
		}
		b = appendStringField(b, `,"detail":`, r.Refresh.Detail)
		if len(b) > n { // the object's first member has no comma
			b = append(b[:n], b[n+1:]...)
		}
		b = append(b, '}')
	}
	if !r.DeliveredAt.IsZero() { // omitzero: time.Time's IsZero
		if b, err = appendTimeField(b, `,"delivered_at":`, r.DeliveredAt); err != nil {
			return nil, err
		}
	}
	if !r.UnfurledAt.IsZero() {
		if b, err = appendTimeField(b, `,"unfurled_at":`, r.UnfurledAt); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendStringField appends name and s unless s is empty (omitempty).
func appendStringField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, name...), s)
}

// appendJSONString appends s quoted as encoding/json quotes it. Printable
// ASCII that needs no escape (hashes, validators, times, outcomes) is
// copied as it is; anything else, rare in a subscription record, goes
// through encoding/json itself, so its escapes (HTML characters, invalid
// UTF-8, U+2028) stay exactly encoding/json's.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTimeField appends name and t as time.Time's MarshalJSON writes it,
// failing as it fails (a year outside 0-9999).
func appendTimeField(b []byte, name string, t time.Time) ([]byte, error) {
	b = append(append(b, name...), '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, fmt.Errorf("encode subscription: %w", err)
	}
	return append(b, '"'), nil
}

func toTokenRecord(t store.Token) tokenRecord {
	return tokenRecord{
		V: schemaVersion, Kind: string(t.Kind), Provider: t.Provider, ConnectionID: t.ConnectionID,
		GrantID: t.GrantID, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
		RedirectURI: t.RedirectURI, ConsumedAt: t.ConsumedAt.UTC(), Successor: t.Successor,
	}
}

func fromTokenRecord(digest string, r tokenRecord) store.Token {
	return store.Token{
		Digest: digest, Kind: store.TokenKind(r.Kind), Provider: r.Provider, ConnectionID: r.ConnectionID,
		GrantID: r.GrantID, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		RedirectURI: r.RedirectURI, ConsumedAt: r.ConsumedAt, Successor: r.Successor,
	}
}

func toConnRecord(c store.Connection) connRecord {
	rec := connRecord{
		V: schemaVersion, Provider: c.Provider, AccountKey: c.AccountKey, AccountName: c.AccountName,
		WorkspaceID: c.WorkspaceID, WorkspaceName: c.WorkspaceName, BotID: c.BotID, Owner: c.Owner,
		NotionToken: c.NotionToken, UpstreamCredential: c.UpstreamCredential,
		UpstreamExpiry: c.UpstreamExpiry.UTC(), Status: c.Status,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
		UpstreamRefreshedAt: c.UpstreamRefreshedAt.UTC(), Reconnect: toEventRecord(c.Reconnect),
	}
	for _, e := range c.Failures {
		rec.Failures = append(rec.Failures, toEventRecord(e))
	}
	return rec
}

func fromConnRecord(id string, r connRecord) store.Connection {
	c := store.Connection{
		ID: id, Provider: r.Provider, AccountKey: r.AccountKey, AccountName: r.AccountName,
		WorkspaceID: r.WorkspaceID, WorkspaceName: r.WorkspaceName, BotID: r.BotID, Owner: r.Owner,
		NotionToken: r.NotionToken, UpstreamCredential: r.UpstreamCredential,
		UpstreamExpiry: r.UpstreamExpiry, Status: r.Status,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		UpstreamRefreshedAt: r.UpstreamRefreshedAt, Reconnect: fromEventRecord(r.Reconnect),
	}
	for _, e := range r.Failures {
		c.Failures = append(c.Failures, fromEventRecord(e))
	}
	return c
}

func toSubRecord(s store.Subscription) subRecord {
	return subRecord{
		V: schemaVersion, AttrHash: s.AttrHash, ETag: s.ETag, LastModified: s.LastModified,
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
		Refresh:     toRefreshRecord(s.Refresh),
		DeliveredAt: s.DeliveredAt.UTC(),
		UnfurledAt:  s.UnfurledAt.UTC(),
	}
}

func fromSubRecord(k store.SubscriptionKey, r subRecord) store.Subscription {
	return store.Subscription{
		SubscriptionKey: k, AttrHash: r.AttrHash, ETag: r.ETag, LastModified: r.LastModified,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Refresh:     fromRefreshRecord(r.Refresh),
		DeliveredAt: r.DeliveredAt,
		UnfurledAt:  r.UnfurledAt,
	}
}

func toRefreshRecord(r store.RefreshRecord) refreshRecord {
	return refreshRecord{At: r.At.UTC(), Trigger: r.Trigger, Outcome: r.Outcome, Status: r.Status, Detail: r.Detail}
}

func fromRefreshRecord(r refreshRecord) store.RefreshRecord {
	return store.RefreshRecord{At: r.At, Trigger: r.Trigger, Outcome: r.Outcome, Status: r.Status, Detail: r.Detail}
}
