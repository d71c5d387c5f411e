package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckAdminURL_TH53: the admin token goes over plain http only to
// loopback (TH-53, TH-49: no secret in clear on the network).
func TestCheckAdminURL_TH53(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, err string
	}{
		{name: "loopback v4", raw: "http://127.0.0.1:8080"},
		{name: "loopback range", raw: "http://127.1.2.3:8080"},
		{name: "loopback v6", raw: "http://[::1]:8080"},
		{name: "localhost", raw: "http://LocalHost:8080/"},
		{name: "https anywhere", raw: "https://unfurl.example.com"},
		{name: "plain http remote name", raw: "http://unfurl.example.com", err: "plain http to unfurl.example.com would send the admin token in clear"},
		{name: "plain http private address", raw: "http://10.0.0.5:8080", err: "plain http to 10.0.0.5"},
		{name: "name that starts like loopback", raw: "http://127.0.0.1.example.com", err: "plain http to 127.0.0.1.example.com"},
		{name: "every interface is not loopback", raw: "http://0.0.0.0:8080", err: "plain http to 0.0.0.0"},
		{name: "not http", raw: "ftp://127.0.0.1", err: "want an absolute http(s) URL"},
		{name: "relative", raw: "127.0.0.1:8080", err: "want an absolute http(s) URL"},
		{name: "user info", raw: "https://admin:pw@unfurl.example.com", err: "credentials do not belong in the URL"},
		{name: "query", raw: "https://unfurl.example.com/?x=1", err: "without query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := CheckAdminURL(tc.raw)
			if tc.err == "" {
				require.NoError(t, err)
				assert.NotNil(t, u)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}
