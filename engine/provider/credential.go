package provider

import (
	"maps"
	"slices"
	"strconv"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
)

// The names upstream.auth.value reads: credential.<field> and
// secrets.<name>. A credential without form fields (an OAuth token, a
// single pasted key, the service-wide token) is credential.token.
const (
	recordCredential = "credential"
	recordSecrets    = "secrets"
	credentialToken  = "token"
)

// buildCredential compiles upstream.auth.value against the credential's
// fields and the operator's secrets, so a misspelt field fails at load.
func (b *builder) buildCredential(p *Provider, a *config.Auth, path string) {
	if a.Value == "" {
		return
	}
	fields := []string{credentialToken}
	if len(a.APIKey.Fields) > 0 {
		fields = fields[:0]
		for _, f := range a.APIKey.Fields {
			fields = append(fields, f.Name)
		}
	}
	comp := mapping.NewRecordCompiler(map[string][]string{
		recordCredential: fields,
		recordSecrets:    slices.Sorted(maps.Keys(a.Secrets)),
	})
	prog, err := comp.Compile(a.Value, b.pos.Of(path+".value"), path+".value")
	if err != nil {
		b.addExprError(path+".value", err)
		return
	}
	p.authValue = prog
}

// statuses reads errors.statuses, which validation has checked: status
// code to meaning.
func statuses(m map[string]string) map[int]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[int]string, len(m))
	for code, meaning := range m {
		if n, err := strconv.Atoi(code); err == nil {
			out[n] = meaning
		}
	}
	return out
}

// isIdentity reports whether rp is the identity request, whose 401 always
// means a refused credential.
func (p *Provider) isIdentity(rp *requestPlan) bool {
	return p.identity != nil && p.identity.req == rp
}
