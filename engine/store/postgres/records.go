package postgres

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// Columns, in the order the scan functions read them.
const (
	tokenCols = `digest, kind, provider, connection_id, grant_id, created_at, expires_at, redirect_uri, consumed_at, successor`
	connCols  = `id, provider, account_key, account_name, workspace_id, workspace_name, bot_id, owner,
		notion_token, upstream_credential, upstream_expiry, status, created_at, updated_at,
		upstream_refreshed_at, reconnect, failures`
	subCols = `provider, connection_id, uri, attr_hash, etag, last_modified, created_at, updated_at,
		refresh_at, refresh_trigger, refresh_outcome, refresh_status, refresh_detail, delivered_at,
		unfurled_at, next_poll_at`
)

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	var kind string
	err := row.Scan(sb(&t.Digest), sb(&kind), sb(&t.Provider), sb(&t.ConnectionID), sb(&t.GrantID),
		sns(&t.CreatedAt), sns(&t.ExpiresAt), sb(&t.RedirectURI), sns(&t.ConsumedAt), &t.Successor)
	t.Kind = store.TokenKind(kind)
	return t, notFound(err)
}

func tokenArgs(t store.Token) []any {
	return []any{b(t.Digest), b(string(t.Kind)), b(t.Provider), b(t.ConnectionID), b(t.GrantID),
		ns(t.CreatedAt), ns(t.ExpiresAt), b(t.RedirectURI), ns(t.ConsumedAt), nullBytes(t.Successor)}
}

// insertToken stores t unless its digest is taken.
func insertToken(ctx context.Context, tx pgx.Tx, t store.Token) error {
	tag, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`, tokenArgs(t)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}

func scanConn(row pgx.Row) (store.Connection, error) {
	var c store.Connection
	var reconnect, failures []byte
	err := row.Scan(sb(&c.ID), sb(&c.Provider), sb(&c.AccountKey), sb(&c.AccountName), sb(&c.WorkspaceID),
		sb(&c.WorkspaceName), sb(&c.BotID), sb(&c.Owner), &c.NotionToken, &c.UpstreamCredential,
		sns(&c.UpstreamExpiry), sb(&c.Status), sns(&c.CreatedAt), sns(&c.UpdatedAt),
		sns(&c.UpstreamRefreshedAt), &reconnect, &failures)
	if err != nil {
		return c, notFound(err)
	}
	if len(reconnect) > 0 {
		var ev eventJSON
		if err := json.Unmarshal(reconnect, &ev); err != nil {
			return c, fmt.Errorf("decode connection %s reconnect: %w", c.ID, err)
		}
		c.Reconnect = ev.event()
	}
	if len(failures) > 0 {
		var evs []eventJSON
		if err := json.Unmarshal(failures, &evs); err != nil {
			return c, fmt.Errorf("decode connection %s failures: %w", c.ID, err)
		}
		for _, ev := range evs {
			c.Failures = append(c.Failures, ev.event())
		}
	}
	return c, nil
}

func connArgs(c store.Connection) []any {
	var reconnect, failures []byte
	if c.Reconnect != (store.ConnectionEvent{}) {
		// Marshalling plain strings, ints and times cannot fail for times
		// the ns columns accept.
		reconnect, _ = json.Marshal(toEventJSON(c.Reconnect))
	}
	if len(c.Failures) > 0 {
		evs := make([]eventJSON, len(c.Failures))
		for i, f := range c.Failures {
			evs[i] = toEventJSON(f)
		}
		failures, _ = json.Marshal(evs)
	}
	return []any{b(c.ID), b(c.Provider), b(c.AccountKey), b(c.AccountName), b(c.WorkspaceID),
		b(c.WorkspaceName), b(c.BotID), b(c.Owner), nullBytes(c.NotionToken), nullBytes(c.UpstreamCredential),
		ns(c.UpstreamExpiry), b(c.Status), ns(c.CreatedAt), ns(c.UpdatedAt),
		ns(c.UpstreamRefreshedAt), nullBytes(reconnect), nullBytes(failures)}
}

// eventJSON is a store.ConnectionEvent in the reconnect and failures
// columns (migrations/0002_connection_story.sql). Times are nanoseconds
// since the epoch, as in every other column, so instants survive exactly.
type eventJSON struct {
	At     int64  `json:"at,omitempty"`
	Call   string `json:"call,omitempty"`
	URI    string `json:"uri,omitempty"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func toEventJSON(e store.ConnectionEvent) eventJSON {
	out := eventJSON{Call: e.Call, URI: e.URI, Status: e.Status, Detail: e.Detail}
	if !e.At.IsZero() {
		out.At = e.At.UnixNano()
	}
	return out
}

func (e eventJSON) event() store.ConnectionEvent {
	out := store.ConnectionEvent{Call: e.Call, URI: e.URI, Status: e.Status, Detail: e.Detail}
	if e.At != 0 {
		out.At = time.Unix(0, e.At).UTC()
	}
	return out
}

const insertConnSQL = `INSERT INTO connections (` + connCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`

// updateConnSQL replaces every column of connection $1 but its id.
const updateConnSQL = `UPDATE connections SET provider = $2, account_key = $3, account_name = $4,
	workspace_id = $5, workspace_name = $6, bot_id = $7, owner = $8, notion_token = $9,
	upstream_credential = $10, upstream_expiry = $11, status = $12, created_at = $13, updated_at = $14,
	upstream_refreshed_at = $15, reconnect = $16, failures = $17
	WHERE id = $1`

// subColsOf is subCols qualified by a table alias, for joins.
func subColsOf(alias string) string {
	cols := columns(subCols)
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

func scanSub(row pgx.Row) (store.Subscription, error) {
	var s store.Subscription
	err := row.Scan(sb(&s.Provider), sb(&s.ConnectionID), sb(&s.URI), sb(&s.AttrHash), sb(&s.ETag),
		sb(&s.LastModified), sns(&s.CreatedAt), sns(&s.UpdatedAt), sns(&s.Refresh.At), sb(&s.Refresh.Trigger),
		sb(&s.Refresh.Outcome), &s.Refresh.Status, sb(&s.Refresh.Detail), sns(&s.DeliveredAt),
		sns(&s.UnfurledAt), snext(&s.NextPollAt))
	return s, notFound(err)
}

func subArgs(s store.Subscription) []any {
	return []any{b(s.Provider), b(s.ConnectionID), b(s.URI), b(s.AttrHash), b(s.ETag), b(s.LastModified),
		ns(s.CreatedAt), ns(s.UpdatedAt), ns(s.Refresh.At), b(s.Refresh.Trigger), b(s.Refresh.Outcome),
		s.Refresh.Status, b(s.Refresh.Detail), ns(s.DeliveredAt), ns(s.UnfurledAt), nextPoll(s.NextPollAt)}
}

// subByteaCols marks the bytea columns of subCols; the others are int8.
var subByteaCols = [...]bool{true, true, true, true, true, true, false, false, false, true, true, false, true, false, false, false}

// subColumns turns subs into one array argument per column of subCols,
// for insertSubsSQL: the values subArgs gives, bytea columns as [][]byte
// and int8 columns as []*int64 (nil for NULL).
func subColumns(subs []store.Subscription) ([]any, error) {
	bytea := make([][][]byte, len(subByteaCols))
	int8s := make([][]*int64, len(subByteaCols))
	for j, isBytea := range subByteaCols {
		if isBytea {
			bytea[j] = make([][]byte, 0, len(subs))
		} else {
			int8s[j] = make([]*int64, 0, len(subs))
		}
	}
	for _, sub := range subs {
		for j, a := range subArgs(sub) {
			v := a
			if vr, ok := a.(driver.Valuer); ok {
				var err error
				if v, err = vr.Value(); err != nil {
					return nil, err
				}
			}
			if subByteaCols[j] {
				p, _ := v.([]byte)
				if p == nil {
					p = []byte{} // every bytea column of subscriptions is NOT NULL
				}
				bytea[j] = append(bytea[j], p)
				continue
			}
			switch n := v.(type) {
			case nil:
				int8s[j] = append(int8s[j], nil)
			case int64:
				int8s[j] = append(int8s[j], &n)
			case int:
				n64 := int64(n)
				int8s[j] = append(int8s[j], &n64)
			default:
				return nil, fmt.Errorf("subscription column %d: unexpected %T", j, v)
			}
		}
	}
	out := make([]any, len(subByteaCols))
	for j, isBytea := range subByteaCols {
		if isBytea {
			out[j] = bytea[j]
		} else {
			out[j] = int8s[j]
		}
	}
	return out, nil
}

// updateArgs are subArgs without next_poll_at, the last: for
// updateSubSQL, which leaves the schedule alone.
func updateArgs(s store.Subscription) []any {
	args := subArgs(s)
	return args[:len(args)-1]
}

// keyArgs are a subscription key's columns, for WHERE provider = $1 AND
// connection_id = $2 AND uri = $3.
func keyArgs(k store.SubscriptionKey) []any {
	return []any{b(k.Provider), b(k.ConnectionID), b(k.URI)}
}

// keyWhere matches keyArgs.
const keyWhere = `provider = $1 AND connection_id = $2 AND uri = $3`

// notFound turns pgx's "no rows" into the store's sentinel.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// collect scans every row with scan and closes rows.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
