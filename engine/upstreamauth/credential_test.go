package upstreamauth

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// TestUpstreamTokenFields: a credential of several form fields encodes
// and decodes whole, never prints its values (TH-41: only Encode reveals
// them, for sealing), and does not count as expired; a single key encoded
// before fields existed still decodes as it was.
func TestUpstreamTokenFields(t *testing.T) {
	t.Parallel()
	tok := Token{Fields: map[string]config.Secret{"email": "mia@example.com", "token": "ATATT3xFfGF0"}}
	enc, err := tok.Encode()
	require.NoError(t, err)
	got, err := DecodeToken(enc)
	require.NoError(t, err)
	assert.Equal(t, tok, got)
	assert.False(t, got.Expired(time.Now(), time.Minute))

	printed, err := json.Marshal(got)
	require.NoError(t, err)
	for _, s := range []string{string(printed), fmt.Sprintf("%v %+v", got, got)} {
		assert.NotContains(t, s, "ATATT3xFfGF0")
		assert.NotContains(t, s, "mia@example.com")
	}

	old, err := DecodeToken([]byte(`{"v":1,"access_token":"bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="}`))
	require.NoError(t, err)
	assert.Equal(t, Token{AccessToken: "bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="}, old)

	_, err = Token{}.Encode()
	require.Error(t, err)
	_, err = DecodeToken([]byte(`{"v":1,"access_token":"","fields":{}}`))
	require.Error(t, err)
}
