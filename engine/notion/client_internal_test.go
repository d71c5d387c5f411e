package notion

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultTransportIgnoresEnvProxy checks that the default client does
// not take HTTP(S)_PROXY from the environment, which would route Notion
// tokens and our integration secret through it (security.md TH-49).
// Observing this from outside is not possible: Go never proxies loopback.
func TestDefaultTransportIgnoresEnvProxy(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	c, err := NewClient(ClientOptions{})
	require.NoError(t, err)
	tr, ok := c.hc.Transport.(*http.Transport)
	require.True(t, ok)
	assert.Nil(t, tr.Proxy)
	assert.Equal(t, DefaultTimeout, c.hc.Timeout)
	assert.NotNil(t, c.hc.CheckRedirect)

	// A caller's client is used as given.
	own := &http.Client{}
	c, err = NewClient(ClientOptions{HTTPClient: own})
	require.NoError(t, err)
	assert.Same(t, own, c.hc)
}
