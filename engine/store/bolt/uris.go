package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

// SubscriptionKeysByURIs implements store.Store from the subs_by_uri
// index alone, in one read transaction: a key there is <provider> 00
// <uri> 00 <connID>, so an exact URI is a seek to <provider> 00 <uri> 00
// (its subscriptions only, not the longer URIs it is a prefix of) and a
// prefix is a seek to the escaped prefix; the key names the subscription,
// so no record is read or decoded. A webhook naming 10,000 links took
// up to twelve transactions per link before, each decoding every record
// it walked past (issue 11).
func (s *Store) SubscriptionKeysByURIs(ctx context.Context, provider string, uris, prefixes []string, limit int) ([]store.SubscriptionKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []store.SubscriptionKey
	err := s.view("subscription keys by uri", func(tx *bbolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketSubsByURI).Cursor()
		seek := make([]byte, 0, 256)
		scan := func(seek []byte) error {
			n := 0
			for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, seek) && n < limit; k, _ = c.Next() {
				parts, err := splitKey(k, 3)
				if err != nil {
					return fmt.Errorf("subs_by_uri %q: %w", k, err)
				}
				out = append(out, store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[2], URI: parts[1]})
				n++
			}
			return nil
		}
		for i, uri := range uris {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seek = append(appendPart(append(appendPart(seek[:0], provider), keySep), uri), keySep)
			if err := scan(seek); err != nil {
				return err
			}
		}
		for i, prefix := range prefixes {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seek = appendPart(append(appendPart(seek[:0], provider), keySep), prefix)
			if err := scan(seek); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
