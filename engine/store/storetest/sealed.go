package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// RunSealed runs the conformance suite of store.SealedStore: the walks
// and the read-modify-write key rotation relies on (security.md TH-42).
// newStore is as for Run.
func RunSealed(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	runCases(t, newStore, parallel, []suiteCase[store.Store]{
		{"ListFlows_TH42", testListFlows},
		{"ListSuccessors_TH42", testListSuccessors},
		{"UpdateSuccessor_TH42", testUpdateSuccessor},
		{"UpdateSuccessorAtomic_TH42", testUpdateSuccessorAtomic},
		{"SealedCancelledContext", testSealedCancelledContext},
	})
}

// consumed stores a refresh token of grant g and consumes it with
// successor, as the token URL does, and returns the consumed record.
func consumed(t *testing.T, s store.Store, digest, grant string, successor []byte) store.Token {
	t.Helper()
	tok := newToken(digest, store.KindRefresh, "c1")
	tok.GrantID = grant
	require.NoError(t, s.CreateToken(t.Context(), tok))
	is := &issuer{suffix: digest, successor: successor}
	_, spent, err := consume(t.Context(), s, tok, baseTime(), time.Minute, is)
	require.NoError(t, err)
	return spent
}

// testListFlows: every flow, expired ones included, in ID order, with
// its sealed bytes.
func testListFlows(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListFlows(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	old := newFlow("f-b", baseTime().Add(-time.Hour)) // expired by baseTime
	young := newFlow("f-a", baseTime())
	// Created in this order, since a create purges what has expired by
	// its CreatedAt.
	require.NoError(t, s.CreateFlow(ctx, young, 10))
	require.NoError(t, s.CreateFlow(ctx, old, 10))
	list, err = s.ListFlows(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, normFlow(young), normFlow(list[0]))
	assert.Equal(t, normFlow(old), normFlow(list[1]))

	list[0].Data[0] = 'X'
	again, err := s.ListFlows(ctx)
	require.NoError(t, err)
	assert.Equal(t, normFlow(young), normFlow(again[0]), "the list is a copy")
}

// testListSuccessors: only tokens holding a successor, in digest order.
func testListSuccessors(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.NoError(t, s.CreateToken(ctx, newToken("live", store.KindAccess, "c1")))
	list, err := s.ListSuccessors(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	b := consumed(t, s, "d-b", "g1", []byte("sealed-b"))
	a := consumed(t, s, "d-a", "g2", []byte("sealed-a"))
	list, err = s.ListSuccessors(ctx)
	require.NoError(t, err)
	assert.Equal(t, normToks([]store.Token{a, b}), normToks(list))
}

// testUpdateSuccessor: only the successor changes, the grant index
// still finds the token, fn's error aborts, an empty result clears it.
func testUpdateSuccessor(t *testing.T, s store.Store) {
	ctx := t.Context()
	spent := consumed(t, s, "d-1", "g1", []byte("sealed-old"))

	require.ErrorIs(t, s.UpdateSuccessor(ctx, "absent", func(store.Token) ([]byte, error) { return []byte("x"), nil }), store.ErrNotFound)

	var seen store.Token
	require.NoError(t, s.UpdateSuccessor(ctx, "d-1", func(old store.Token) ([]byte, error) {
		seen = old
		return []byte("sealed-new"), nil
	}))
	assert.Equal(t, normTok(spent), normTok(seen), "fn gets the stored token")
	want := spent
	want.Successor = []byte("sealed-new")
	assertTok(t, s, want)

	boom := errors.New("boom")
	err := s.UpdateSuccessor(ctx, "d-1", func(store.Token) ([]byte, error) { return []byte("lost"), boom })
	require.ErrorIs(t, err, boom)
	assertTok(t, s, want)

	require.NoError(t, s.UpdateSuccessor(ctx, "d-1", func(store.Token) ([]byte, error) { return nil, nil }))
	list, err := s.ListSuccessors(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "an empty successor is cleared")

	// The grant index is untouched: revoking the grant still reaches the
	// updated marker and the tokens issued with it.
	n, err := s.RevokeGrant(ctx, "g1")
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assertGone(t, s, spent)
}

// testUpdateSuccessorAtomic: concurrent read-modify-writes lose nothing.
func testUpdateSuccessorAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	consumed(t, s, "d-1", "g1", []byte("s"))
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			assert.NoError(t, s.UpdateSuccessor(ctx, "d-1", func(old store.Token) ([]byte, error) {
				return append(old.Successor, '+'), nil
			}))
		})
	}
	wg.Wait()
	list, err := s.ListSuccessors(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Len(t, list[0].Successor, 1+n)
}

func testSealedCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.ListFlows(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.ListSuccessors(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.UpdateSuccessor(ctx, "d", func(store.Token) ([]byte, error) { return nil, nil }), context.Canceled)
}
