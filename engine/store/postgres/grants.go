package postgres

import (
	"bytes"
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.GrantStore = (*Store)(nil)

// flowCapLock serializes CreateFlow: counting the live flows and adding
// one must not interleave with another CreateFlow, or both could pass
// the cap (TH-12).
var flowCapLock = lockKey("flows", "cap")

const flowCols = `id, provider, data, created_at, expires_at`

func scanFlow(row pgx.Row) (store.Flow, error) {
	var f store.Flow
	err := row.Scan(sb(&f.ID), sb(&f.Provider), &f.Data, sns(&f.CreatedAt), sns(&f.ExpiresAt))
	return f, notFound(err)
}

// expiredFlowSQL is the condition "expires_at is set and not after $1",
// store.Token.Expired's rule: a zero (NULL) expiry never expires.
const expiredFlowSQL = `expires_at IS NOT NULL AND expires_at <= $1`

// CreateFlow implements store.GrantStore, reading the clock from
// f.CreatedAt, as bolt and memory do. Expired flows neither count nor
// hold their ID, and a successful create drops them; a failed one rolls
// back. A maxLive of zero or less admits nothing.
func (s *Store) CreateFlow(ctx context.Context, f store.Flow, maxLive int) error {
	now := ns(f.CreatedAt)
	return s.tx(ctx, "create flow", func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, flowCapLock); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM flows WHERE id = $1 AND NOT (`+
			`coalesce(expires_at <= $2, false)))`, b(f.ID), now).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return store.ErrAlreadyExists
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM flows WHERE NOT coalesce(expires_at <= $1, false)`, now).Scan(&live); err != nil {
			return err
		}
		if live >= maxLive {
			return store.ErrTooMany
		}
		if _, err := tx.Exec(ctx, `DELETE FROM flows WHERE `+expiredFlowSQL, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO flows (`+flowCols+`) VALUES ($1, $2, $3, $4, $5)`,
			b(f.ID), b(f.Provider), nullBytes(f.Data), ns(f.CreatedAt), ns(f.ExpiresAt))
		return err
	})
}

// liveFlow reads and locks flow id. An expired flow is deleted, and
// gone reports ErrExpired for the caller to return after the commit.
func liveFlow(ctx context.Context, tx pgx.Tx, id string, now time.Time) (f store.Flow, gone error, err error) {
	f, err = scanFlow(tx.QueryRow(ctx, `SELECT `+flowCols+` FROM flows WHERE id = $1 FOR UPDATE`, b(id)))
	if err != nil {
		return store.Flow{}, nil, err
	}
	if !f.ExpiresAt.IsZero() && !now.Before(f.ExpiresAt) {
		_, err := tx.Exec(ctx, `DELETE FROM flows WHERE id = $1`, b(id))
		return store.Flow{}, store.ErrExpired, err
	}
	return f, nil, nil
}

// GetFlow implements store.GrantStore.
func (s *Store) GetFlow(ctx context.Context, id string, now time.Time) (store.Flow, error) {
	var f store.Flow
	var gone error
	err := s.tx(ctx, "get flow", func(tx pgx.Tx) error {
		var err error
		f, gone, err = liveFlow(ctx, tx, id, now)
		return err
	})
	if err == nil {
		err = gone
	}
	if err != nil {
		return store.Flow{}, err
	}
	return f, nil
}

// UpdateFlow implements store.GrantStore. fn runs with the row locked;
// the flow stays under id whatever ID fn returns.
func (s *Store) UpdateFlow(ctx context.Context, id string, now time.Time, fn func(store.Flow) (store.Flow, error)) error {
	var gone error
	err := s.tx(ctx, "update flow", func(tx pgx.Tx) error {
		f, g, err := liveFlow(ctx, tx, id, now)
		if gone = g; err != nil || g != nil {
			return err
		}
		n, err := fn(f)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE flows SET provider = $2, data = $3, created_at = $4, expires_at = $5 WHERE id = $1`,
			b(id), b(n.Provider), nullBytes(n.Data), ns(n.CreatedAt), ns(n.ExpiresAt))
		return err
	})
	if err == nil {
		err = gone
	}
	return err
}

// DeleteFlow implements store.GrantStore.
func (s *Store) DeleteFlow(ctx context.Context, id string) (bool, error) {
	n, err := s.exec(ctx, "delete flow", `DELETE FROM flows WHERE id = $1`, b(id))
	return n > 0, err
}

// ConsumeToken implements store.GrantStore: the token's row is locked
// from the check to the consume, so parallel redemptions see one winner
// (TH-16, TH-24). A replay or an expiry commits its deletes and then
// reports its sentinel; on ErrReplayed the returned Token is the
// replayed one, for the caller's audit log.
func (s *Store) ConsumeToken(ctx context.Context, c store.Consume) ([]store.Token, store.Token, error) {
	var issued []store.Token
	var tok store.Token
	var verdict error
	err := s.tx(ctx, "consume token", func(tx pgx.Tx) error {
		issued, tok, verdict = nil, store.Token{}, nil
		if err := lockTokenFamily(ctx, tx, c.Digest); err != nil {
			return err
		}
		old, err := scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE digest = $1 FOR UPDATE`, b(c.Digest)))
		if err != nil {
			return err
		}
		if old.Kind != c.Kind || old.Provider != c.Provider {
			return store.ErrNotFound
		}
		if !old.ConsumedAt.IsZero() {
			if c.Grace > 0 && c.Now.Before(old.ConsumedAt.Add(c.Grace)) {
				tok, verdict = old, store.ErrInGrace
				return nil
			}
			tok, verdict = old, store.ErrReplayed
			if _, err := revoke(ctx, tx, old); err != nil {
				return err
			}
			if old.GrantID == "" {
				return notify(ctx, tx, store.Change{Kind: store.ChangeToken, ID: old.Digest})
			}
			return notify(ctx, tx, store.Change{Kind: store.ChangeGrant, ID: old.GrantID})
		}
		if old.Expired(c.Now) {
			verdict = store.ErrExpired
			_, err := tx.Exec(ctx, `DELETE FROM tokens WHERE digest = $1`, b(c.Digest))
			return err
		}
		issue, successor, err := c.Issue(old)
		if err != nil {
			return err
		}
		old.ConsumedAt, old.Successor = c.Now, bytes.Clone(successor)
		if _, err := tx.Exec(ctx, `UPDATE tokens SET consumed_at = $2, successor = $3 WHERE digest = $1`,
			b(c.Digest), ns(c.Now), nullBytes(successor)); err != nil {
			return err
		}
		for _, t := range issue {
			if err := insertToken(ctx, tx, t); err != nil {
				return err
			}
		}
		for _, t := range issue {
			t.Successor = bytes.Clone(t.Successor)
			issued = append(issued, t)
		}
		tok = old
		return nil
	})
	if err == nil {
		err = verdict
	}
	if err != nil && err != store.ErrInGrace && err != store.ErrReplayed {
		return nil, store.Token{}, err
	}
	return issued, tok, err
}

// lockTokenFamily takes, before ConsumeToken locks the token itself,
// the token's connection FOR KEY SHARE and an advisory lock on its
// grant. A statement does not see rows committed after it began, so
// without them a DeleteConnection (TH-40) or a RevokeGrant (TH-16,
// TH-23) running beside a redemption could miss the tokens it creates:
// here the deletion or revocation either comes first (the redemption
// then finds the token gone) or waits for the commit and sees them. The
// order (connection, grant, token) matches DeleteConnection's
// (connection, tokens) and RevokeGrant's (grant, tokens), so no cycle.
func lockTokenFamily(ctx context.Context, tx pgx.Tx, digest string) error {
	var connID, grantID string
	err := tx.QueryRow(ctx, `SELECT connection_id, grant_id FROM tokens WHERE digest = $1`, b(digest)).Scan(sb(&connID), sb(&grantID))
	if err := notFound(err); err != nil {
		if err == store.ErrNotFound {
			return nil // the locked read after this reports it
		}
		return err
	}
	if connID != "" {
		if _, err := tx.Exec(ctx, `SELECT FROM connections WHERE id = $1 FOR KEY SHARE`, b(connID)); err != nil {
			return err
		}
	}
	if grantID != "" {
		return advisoryLock(ctx, tx, grantLock(grantID))
	}
	return nil
}

// grantLock is the advisory lock key of a grant's tokens.
func grantLock(grantID string) int64 { return lockKey("grant", grantID) }

// revoke deletes t and every token of its grant.
func revoke(ctx context.Context, tx pgx.Tx, t store.Token) (int, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE digest = $1 OR (grant_id <> '' AND grant_id = $2)`,
		b(t.Digest), b(t.GrantID))
	return int(tag.RowsAffected()), err
}

// RevokeGrant implements store.GrantStore under the grant's advisory
// lock (see lockTokenFamily). The empty grant ID names no grant, so it
// revokes nothing.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if grantID == "" {
		return 0, nil
	}
	var n int
	err := s.tx(ctx, "revoke grant", func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, grantLock(grantID)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE grant_id = $1`, b(grantID))
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return notify(ctx, tx, store.Change{Kind: store.ChangeGrant, ID: grantID})
	})
	return n, err
}

// copyConn gives the caller its own byte slices, as a stored record
// read back would.
func copyConn(c store.Connection) store.Connection {
	c.NotionToken = bytes.Clone(c.NotionToken)
	c.UpstreamCredential = bytes.Clone(c.UpstreamCredential)
	return c
}

// UpsertConnection implements store.GrantStore. An advisory lock on the
// identity without the owner serializes the upserts that could match the
// same rows, the adoption of an ownerless record included. Should
// several connections share the identity, the one with the smallest ID
// is replaced, as in bolt's index.
func (s *Store) UpsertConnection(ctx context.Context, c store.Connection) (store.Connection, bool, error) {
	var out store.Connection
	var created bool
	err := s.tx(ctx, "upsert connection", func(tx pgx.Tx) error {
		if err := advisoryLock(ctx, tx, lockKey("identity", c.Provider, c.AccountKey, c.WorkspaceID)); err != nil {
			return err
		}
		find := func(owner string) (string, time.Time, error) {
			var id string
			var at time.Time
			err := tx.QueryRow(ctx, `SELECT id, created_at FROM connections
				WHERE provider = $1 AND account_key = $2 AND workspace_id = $3 AND owner = $4
				ORDER BY id LIMIT 1 FOR UPDATE`, b(c.Provider), b(c.AccountKey), b(c.WorkspaceID), b(owner)).Scan(sb(&id), sns(&at))
			return id, at, notFound(err)
		}
		id, at, err := find(c.Owner)
		if err == store.ErrNotFound && c.Owner != "" {
			id, at, err = find("")
		}
		switch {
		case err == store.ErrNotFound:
			tag, err := tx.Exec(ctx, insertConnSQL, connArgs(c)...)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return store.ErrAlreadyExists
			}
			out, created = copyConn(c), true
			return nil
		case err != nil:
			return err
		}
		c.ID, c.CreatedAt = id, at
		if _, err = tx.Exec(ctx, updateConnSQL, connArgs(c)...); err != nil {
			return err
		}
		out, created = copyConn(c), false
		return notify(ctx, tx, store.Change{Kind: store.ChangeConnection, ID: id})
	})
	if err != nil {
		return store.Connection{}, false, err
	}
	return out, created, nil
}

// Sweep implements store.GrantStore: expired flows, expired unconsumed
// tokens, and consumed markers retainConsumed after their consumption,
// whatever their expiry (TH-17, TH-23).
func (s *Store) Sweep(ctx context.Context, now time.Time, retainConsumed time.Duration) (store.SweepResult, error) {
	var res store.SweepResult
	err := s.tx(ctx, "sweep", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM flows WHERE `+expiredFlowSQL, ns(now))
		if err != nil {
			return err
		}
		res.Flows = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `DELETE FROM tokens WHERE
			(consumed_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1)
			OR (consumed_at IS NOT NULL AND consumed_at <= $2)`, ns(now), ns(now.Add(-retainConsumed)))
		if err != nil {
			return err
		}
		res.Tokens = int(tag.RowsAffected())
		if res.Tokens == 0 {
			return nil
		}
		return notify(ctx, tx, store.Change{Kind: store.ChangeTokens})
	})
	if err != nil {
		return store.SweepResult{}, err
	}
	return res, nil
}
