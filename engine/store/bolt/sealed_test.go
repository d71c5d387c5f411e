package bolt

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

func TestSealedConformance(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) store.Store { s, _ := openTemp(t); return s })
}

// BenchmarkListSuccessors measures the walk the startup sealing-key check
// and the re-seal scan make over the tokens bucket: 20,000 tokens, half of
// them consumed refresh tokens with a sealed successor (the 7-day markers),
// half live access tokens. ns/op is per token in the bucket:
//
//	go test -run '^$' -bench ListSuccessors ./engine/store/bolt
func BenchmarkListSuccessors(b *testing.B) {
	ctx := b.Context()
	s, _ := openTemp(b)
	const n = 20000
	successor := make([]byte, 180) // a sealed token pair is about this size
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for i := range n {
			t := store.Token{
				Digest: fmt.Sprintf("%064x", i), Kind: store.KindAccess, Provider: "github",
				ConnectionID: fmt.Sprintf("conn-%d", i%500), GrantID: fmt.Sprintf("grant-%d", i%500),
				CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
			}
			if i%2 == 0 {
				t.Kind, t.ConsumedAt, t.Successor = store.KindRefresh, time.Now(), successor
			}
			if err := insertToken(tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		toks, err := s.ListSuccessors(ctx)
		if err != nil || len(toks) != n/2 {
			b.Fatal(len(toks), err)
		}
	}
}
