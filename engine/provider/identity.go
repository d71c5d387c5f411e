package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
)

// identityDoc is the name under which identity expressions see the
// identity response, e.g. "string(identity.id)".
const identityDoc = "identity"

// maxAccountText caps external_account key and name: they travel to Notion
// (protocol 4.2) and show on the consent page.
const maxAccountText = 200

// Account is the upstream account a credential belongs to: Notion's
// external_account (protocol 4.2).
type Account struct {
	// Key is a stable account id, never a secret (TH-14).
	Key string
	// Name is display text.
	Name string
}

// identityPlan is the compiled upstream.auth.identity of a provider.
type identityPlan struct {
	req       *requestPlan
	key, name *mapping.Program
}

// ErrCredentialRejected means the upstream refused the credential (401 or
// 403) on the identity request: a pasted API key is wrong or a fresh
// OAuth token lacks scope.
var ErrCredentialRejected = errors.New("the service refused the credential")

// AuthType is the provider's upstream sign-in: none, oauth2 or api_key.
func (p *Provider) AuthType() string {
	if p.Config.Upstream.Auth.Type == "" {
		return config.AuthNone
	}
	return p.Config.Upstream.Auth.Type
}

// HasIdentity reports whether the provider can tell whose credential it
// is; without it (auth none with no identity request) every Notion user
// shares one anonymous account.
func (p *Provider) HasIdentity() bool { return p.identity != nil }

// Identify asks the upstream whose credential cred is, with the
// configured identity request, and evaluates key and name over the
// answer. It never uses or fills the response caches: the answer is about
// this credential only.
func (p *Provider) Identify(ctx context.Context, cred Credential) (Account, error) {
	if p.identity == nil {
		return Account{}, errors.New("no identity request configured")
	}
	if cred.Key == "" {
		cred.Key = "identify"
	}
	m := &Match{Pattern: &Pattern{Name: identityDoc}, Groups: map[string]string{}}
	doc, uerr := p.fetch(ctx, m, p.identity.req, map[string]mapping.Doc{}, cred, UnfurlOptions{NoCache: true}, nil, nil)
	if uerr != nil {
		// 401 or 403 (upstreamError keeps the status): Figma, for one,
		// answers a bad token with 403. A rate limit's 403 carries
		// Retry-After and became a 503 there, so it is not taken for a
		// refusal.
		if uerr.status == 401 || uerr.status == 403 {
			return Account{}, fmt.Errorf("%w: %s", ErrCredentialRejected, uerr.cause)
		}
		return Account{}, fmt.Errorf("identity request: %s", uerr.cause)
	}
	env := &mapping.Env{Groups: map[string]string{}, Docs: map[string]mapping.Doc{identityDoc: doc}}
	key, err := accountText(p.identity.key, env)
	if err != nil {
		return Account{}, fmt.Errorf("identity key: %w", err)
	}
	if key == "" {
		return Account{}, errors.New("identity key is empty: the identity response lacks the account id")
	}
	name, err := accountText(p.identity.name, env)
	if err != nil {
		return Account{}, fmt.Errorf("identity name: %w", err)
	}
	if name == "" {
		name = key
	}
	return Account{Key: key, Name: name}, nil
}

func accountText(prog *mapping.Program, env *mapping.Env) (string, error) {
	v, err := prog.Eval(env)
	if err != nil {
		return "", err
	}
	if isEmpty(v) {
		return "", nil
	}
	s, ok := scalarText(v)
	if !ok {
		return "", fmt.Errorf("want a string or number, got %s", typeName(v))
	}
	return sanitize(strings.TrimSpace(s), false, maxAccountText), nil
}

// buildIdentity compiles upstream.auth.identity, if set.
func (b *builder) buildIdentity(p *Provider, id *config.Identity, path string) {
	if id.URL == "" {
		return
	}
	rc := &config.Request{Name: identityDoc, Method: id.Method, URL: id.URL, Body: id.Body}
	rp := b.request(rc, path, map[string]bool{}, map[string]bool{})
	comp := mapping.NewCompiler([]string{identityDoc}, nil)
	var plan identityPlan
	plan.req = rp
	ok := rp != nil
	for _, f := range []struct {
		key  string
		src  string
		dest **mapping.Program
	}{{"key", id.Key, &plan.key}, {"name", id.Name, &plan.name}} {
		if f.src == "" {
			ok = false
			continue // validate reported it
		}
		prog, err := comp.Compile(f.src, b.pos.Of(path+"."+f.key), path+"."+f.key)
		if err != nil {
			b.addExprError(path+"."+f.key, err)
			ok = false
			continue
		}
		*f.dest = prog
	}
	if ok {
		p.identity = &plan
	}
}

// HTTPClient is a standard client bound to the provider's upstream
// allowlist and dial guard, for the upstream OAuth token endpoint.
func (p *Provider) HTTPClient() *http.Client { return p.client.HTTPClient() }
