package status_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/status"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// TestAddSealingKeys_TH42: the report counts records per key id, the
// primary first, and lists an id the keyring lacks.
func TestAddSealingKeys_TH42(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	key := func(seed byte) []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = seed + byte(i)
		}
		return b
	}
	k0, err := sealing.NewKeyring("k0", key(9), nil)
	require.NoError(t, err)
	k1, err := sealing.NewKeyring("k1", key(1), nil)
	require.NoError(t, err)
	ring, err := sealing.NewKeyring("k2", key(2), map[string][]byte{"k1": key(1)})
	require.NoError(t, err)

	st := memory.New()
	for i, k := range []*sealing.Keyring{k1, k1, k0, ring} {
		c := store.Connection{ID: string(rune('a' + i)), Provider: "github", AccountKey: string(rune('a' + i)), Status: store.StatusActive}
		c.NotionToken, err = sealing.SealConnectionField(k, c, sealing.FieldNotionToken, []byte("secret"))
		require.NoError(t, err)
		require.NoError(t, st.CreateConnection(ctx, c))
	}
	r, err := status.Build(ctx, st, []status.Provider{{Name: "github", Auth: "oauth2"}}, status.Query{}, nil, now)
	require.NoError(t, err)
	require.NoError(t, r.AddSealingKeys(ctx, st, ring, now))
	assert.Equal(t, []sealing.KeyUsage{
		{ID: "k2", Primary: true, InKeyring: true, Connections: 1},
		{ID: "k1", InKeyring: true, Connections: 2},
		{ID: "k0", Connections: 1},
	}, r.SealingKeys)
}
