package sealing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestConnectionFieldBoundToOwner covers TH-41 with TH-39: a Notion token
// sealed for one Notion user's connection does not open in the record of
// another user of the same workspace and upstream account, while a record
// sealed before owners were kept still opens.
func TestConnectionFieldBoundToOwner(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	a := store.Connection{ID: "ca", Provider: "tracker", AccountKey: "tracker:1", WorkspaceID: "ws", Owner: "user:a"}
	b := a
	b.ID, b.Owner = "cb", "user:b"

	sealed, err := SealConnectionField(k, a, FieldNotionToken, []byte("notion-a"))
	require.NoError(t, err)
	got, err := OpenConnectionField(k, a, FieldNotionToken, sealed)
	require.NoError(t, err)
	assert.Equal(t, []byte("notion-a"), got)
	_, err = OpenConnectionField(k, b, FieldNotionToken, sealed)
	require.Error(t, err, "moved to another owner's record")
	_, err = OpenConnectionField(k, a, FieldUpstreamCredential, sealed)
	require.Error(t, err, "moved to the other field")

	// The AAD of a record without an owner is the one used before owners
	// were kept, so such records open as they did.
	legacy := a
	legacy.Owner = ""
	assert.Equal(t, []byte("unfurld/connection/v1\x00notion_token\x00tracker\x00tracker:1\x00ws"), connectionAAD(legacy, FieldNotionToken))
}
