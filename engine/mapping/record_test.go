package mapping

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/config"
)

// TestRecordCompiler: expressions over records (upstream.auth.value over
// the credential's fields and the operator's secrets) see exactly the
// declared keys, so a typo fails at load with a hint, and read nothing
// else: no response, group or uri.
func TestRecordCompiler(t *testing.T) {
	t.Parallel()
	records := map[string][]string{"credential": {"email", "token"}, "secrets": {"app_key"}}
	env := &Env{Records: map[string]map[string]string{
		"credential": {"email": "mia@example.com", "token": "ATATT3xFfGF0"},
		"secrets":    {"app_key": "k3y"},
	}}
	tests := []struct {
		name, src string
		want      string
		wantErr   string
	}{
		{name: "basic", src: `"Basic " + base64(credential.email + ":" + credential.token)`, want: "Basic bWlhQGV4YW1wbGUuY29tOkFUQVRUM3hGZkdGMA=="},
		{name: "oauth header", src: `"OAuth oauth_consumer_key=\"" + secrets.app_key + "\", oauth_token=\"" + credential.token + "\""`, want: `OAuth oauth_consumer_key="k3y", oauth_token="ATATT3xFfGF0"`},
		{name: "index form", src: `credential["token"]`, want: "ATATT3xFfGF0"},
		{name: "typo", src: `credential.emial`, wantErr: "x.yaml:3:22: auth.value: unknown credential key emial (did you mean email?)"},
		{name: "unknown secret", src: `secrets.nope`, wantErr: "x.yaml:3:19: auth.value: unknown secrets key nope (the keys of secrets are app_key)"},
		{name: "no groups", src: `groups.id`, wantErr: "x.yaml:3:11: auth.value: unknown name groups"},
		{name: "no uri", src: `uri`, wantErr: "x.yaml:3:11: auth.value: unknown name uri (did you mean trim?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewRecordCompiler(records)
			prog, err := c.Compile(tc.src, config.Pos{File: "x.yaml", Line: 3, Col: 11}, "auth.value")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, tc.wantErr, err.Error())
				return
			}
			require.NoError(t, err)
			got, err := prog.Eval(env)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestRecordMissing: a record or key absent at run time reads as nil, so
// a credential stored without a field gives "" rather than a panic.
func TestRecordMissing(t *testing.T) {
	t.Parallel()
	prog, err := NewRecordCompiler(map[string][]string{"credential": {"token"}}).Compile(`"x" + credential.token`, config.Pos{}, "v")
	require.NoError(t, err)
	got, err := prog.Eval(&Env{})
	require.NoError(t, err)
	assert.Equal(t, "x", got)
}
