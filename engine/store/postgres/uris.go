package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/unfurld/unfurld/engine/store"
)

// SubscriptionKeysByURIs implements store.Store in one statement, so one
// round trip answers a whole webhook: each exact URI and each prefix is
// a row [lo, hi) of the unnested arrays, and a lateral subquery per row
// walks the (provider, uri, connection_id) index over that range, reading
// only the key columns. An exact URI u is [u, u+"\x00"), the smallest
// range that holds u alone; a prefix p is [p, the first string after
// every string that starts with p). A prefix with no such bound (empty,
// or only 0xff bytes) is listed on its own.
func (s *Store) SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 || len(uris)+len(prefixes) == 0 {
		return nil, nil
	}
	lo := make([][]byte, 0, len(uris)+len(prefixes))
	hi := make([][]byte, 0, cap(lo))
	var out []store.SubscriptionKey
	for _, u := range uris {
		lo, hi = append(lo, []byte(u)), append(hi, append([]byte(u), 0))
	}
	for _, p := range prefixes {
		end, ok := prefixEnd(p)
		if !ok {
			subs, err := s.ListSubscriptionsByURIPrefix(ctx, provider, p, limit)
			if err != nil {
				return nil, err
			}
			for _, sub := range subs {
				out = append(out, sub.SubscriptionKey)
			}
			continue
		}
		lo, hi = append(lo, []byte(p)), append(hi, end)
	}
	rows, err := s.pool.Query(ctx, `SELECT m.connection_id, m.uri
		FROM unnest($2::bytea[], $3::bytea[]) AS q(lo, hi)
		CROSS JOIN LATERAL (
			SELECT connection_id, uri FROM subscriptions
			WHERE provider = $1 AND uri >= q.lo AND uri < q.hi
			ORDER BY uri, connection_id LIMIT $4) AS m`,
		b(provider), lo, hi, limit)
	keys, err := collect(rows, err, func(row pgx.Row) (store.SubscriptionKey, error) {
		k := store.SubscriptionKey{Provider: provider}
		err := row.Scan(sb(&k.ConnectionID), sb(&k.URI))
		return k, err
	})
	if err != nil {
		return nil, wrap("subscription keys by uri", err)
	}
	return append(out, keys...), nil
}

// prefixEnd returns the smallest byte string greater than every string
// that starts with p: p with its last byte below 0xff incremented and
// what follows dropped. There is none when p is empty or all 0xff.
func prefixEnd(p string) ([]byte, bool) {
	end := []byte(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1], true
		}
	}
	return nil, false
}
