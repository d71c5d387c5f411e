package bolt

import (
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.Exporter = (*Store)(nil)

// Export implements store.Exporter: one read transaction over the record
// buckets (the index buckets are derived from them), each in key order.
func (s *Store) Export(ctx context.Context) (store.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return store.Snapshot{}, err
	}
	var snap store.Snapshot
	err := s.view("export", func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketConns).ForEach(func(k, v []byte) error {
			var rec connRecord
			if err := decode("connection", v, &rec); err != nil {
				return err
			}
			snap.Connections = append(snap.Connections, fromConnRecord(string(k), rec))
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var rec tokenRecord
			if err := decode("token", v, &rec); err != nil {
				return err
			}
			snap.Tokens = append(snap.Tokens, fromTokenRecord(string(k), rec))
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketFlows).ForEach(func(k, v []byte) error {
			var rec flowRecord
			if err := decode("flow", v, &rec); err != nil {
				return err
			}
			snap.Flows = append(snap.Flows, fromFlowRecord(string(k), rec))
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketSubs).ForEach(func(k, v []byte) error {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("subscription key %q: %w", k, err)
			}
			var rec subRecord
			if err := decode("subscription", v, &rec); err != nil {
				return err
			}
			key := store.SubscriptionKey{Provider: parts[0], ConnectionID: parts[1], URI: parts[2]}
			sub, err := withMark(tx.Bucket(bucketMarks), k, fromSubRecord(key, rec))
			if err != nil {
				return err
			}
			sub.NextPollAt = nextOf(tx.Bucket(bucketPolls), k)
			snap.Subscriptions = append(snap.Subscriptions, sub)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			parts, err := splitKey(k, 3)
			if err != nil {
				return fmt.Errorf("outbox key %q: %w", k, err)
			}
			var rec outboxRecord
			if err := decode("outbox item", v, &rec); err != nil {
				return err
			}
			key := store.SubscriptionKey{Provider: parts[0], URI: parts[1], ConnectionID: parts[2]}
			snap.Outbox = append(snap.Outbox, fromOutboxRecord(key, rec))
			return nil
		})
	})
	if err != nil {
		return store.Snapshot{}, err
	}
	return snap, nil
}
