package connect

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/issuer"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/upstreamauth"
)

// Defaults and limits.
const (
	// DefaultFlowTTL is how long a pending flow lives: Notion's code lives
	// 10 minutes (protocol 3.2 ordering note), so a longer flow could not
	// finish anyway.
	DefaultFlowTTL = 10 * time.Minute
	// DefaultMaxFlows caps live pending flows (TH-12).
	DefaultMaxFlows = 10000
	// maxState is the cap on Notion's state (TH-11).
	maxState = 1024
	// maxParam caps every other authorize parameter.
	maxParam = 2048
	// maxAPIKey caps a pasted API key.
	maxAPIKey = 4096
)

// CodeMinter mints our one-time authorization code (protocol 3.2 step
// 5b). issuer.Issuer implements it.
type CodeMinter interface {
	MintCode(ctx context.Context, provider, connectionID, redirectURI string) (string, error)
}

// Options configures New. Every dependency is passed in (STYLE.md 7).
type Options struct {
	Store    store.Store
	Keyring  *sealing.Keyring
	Registry *provider.Registry
	Notion   *notion.Client
	Codes    CodeMinter
	// PublicURL is the configured base URL; every URL we build starts with
	// it, never with a request's Host (TH-13).
	PublicURL string
	// RedirectURIs is the exact-match allowlist for Notion's redirect_uri
	// (TH-01, protocol 3.4).
	RedirectURIs []string
	// FlowTTL and MaxFlows default to DefaultFlowTTL and DefaultMaxFlows.
	FlowTTL  time.Duration
	MaxFlows int
	Logger   *slog.Logger
	Now      func() time.Time
	// Observe, when set, learns of every step of the flows and of
	// credential renewals, for metrics: the provider, the step
	// (authorize, upstream_exchange, identity, notion_exchange, consent,
	// refresh, reconnect) and its result. It must not block.
	Observe func(provider, step, result string)
}

// Service runs connection flows for every provider of a registry.
type Service struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// upstreams holds the upstream OAuth client of each oauth2 provider
	// by name; a reload replaces the map whole (SetProviders).
	upstreams atomic.Pointer[map[string]upstreamClient]
}

// New builds the service and one upstream OAuth client per oauth2
// provider.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Keyring == nil || opts.Registry == nil || opts.Notion == nil || opts.Codes == nil {
		return nil, errors.New("connect: store, keyring, registry, notion client and code minter are required")
	}
	if opts.FlowTTL <= 0 || opts.FlowTTL > DefaultFlowTTL {
		opts.FlowTTL = DefaultFlowTTL
	}
	if opts.MaxFlows <= 0 {
		opts.MaxFlows = DefaultMaxFlows
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now}
	ups, err := s.build(opts.Registry.All(), nil)
	if err != nil {
		return nil, err
	}
	s.upstreams.Store(&ups)
	return s, nil
}

// upstreamClient is the upstream OAuth client built for one compiled
// provider.
type upstreamClient struct {
	p *provider.Provider
	u *upstreamauth.Client
}

// build makes the upstream OAuth clients of the oauth2 providers among
// ps. A provider whose configuration is unchanged (the rule by which a
// reload keeps its compiled instance, provider.Registry.Swap) keeps its
// client from old, whose state must survive: the refreshes in flight it
// merges and the refresh tokens it knows are spent.
func (s *Service) build(ps []*provider.Provider, old map[string]upstreamClient) (map[string]upstreamClient, error) {
	ups := map[string]upstreamClient{}
	for _, p := range ps {
		if p.AuthType() != config.AuthOAuth2 {
			continue
		}
		if c, ok := old[p.Name]; ok && reflect.DeepEqual(c.p.Config, p.Config) {
			ups[p.Name] = c
			continue
		}
		u, err := NewUpstream(p, s.opts.PublicURL, s.opts.Now)
		if err != nil {
			return nil, err
		}
		ups[p.Name] = upstreamClient{p: p, u: u}
	}
	return ups, nil
}

// SetProviders prepares the service for the providers a reload is about
// to serve: it builds the upstream OAuth clients of new and changed
// providers (unchanged ones keep theirs) and adds them to the ones in
// use, so a flow finds its client whether its request looked the
// provider up before or after the registry's swap. Call the returned
// function after the swap to drop the clients of removed providers.
// Nothing changes when it returns an error.
func (s *Service) SetProviders(ps []*provider.Provider) (prune func(), err error) {
	cur := *s.upstreams.Load()
	next, err := s.build(ps, cur)
	if err != nil {
		return nil, err
	}
	both := maps.Clone(cur)
	maps.Copy(both, next)
	s.upstreams.Store(&both)
	return func() { s.upstreams.Store(&next) }, nil
}

// upstream returns the upstream OAuth client of an oauth2 provider.
func (s *Service) upstream(providerName string) (*upstreamauth.Client, bool) {
	c, ok := (*s.upstreams.Load())[providerName]
	return c.u, ok
}

// NewUpstream builds the upstream OAuth client of oauth2 provider p, whose
// callback lives under publicURL. New calls it for every such provider;
// app.Check calls it too, so that `unfurld validate` refuses what serve
// would refuse at start (an extra_params key the flow sets itself, a
// callback URL that cannot be built).
func NewUpstream(p *provider.Provider, publicURL string, now func() time.Time) (*upstreamauth.Client, error) {
	o := p.Config.Upstream.Auth.OAuth2
	return upstreamauth.New(upstreamauth.Options{
		Provider:           p.Name,
		OAuth2:             o,
		RedirectURL:        callbackURL(strings.TrimRight(publicURL, "/"), p.Name),
		HTTPClient:         p.HTTPClient(),
		ClientAuthInParams: o.ClientAuth == config.ClientAuthParams,
		Now:                now,
	})
}

// callbackURL is the upstream OAuth redirect URI of a provider under base
// (TH-07: one per provider).
func callbackURL(base, providerName string) string {
	return base + "/providers/" + providerName + "/callback"
}

// CallbackURL is the upstream OAuth redirect URI of a provider, to be
// registered at the upstream (TH-07: one per provider).
func (s *Service) CallbackURL(providerName string) string {
	return callbackURL(s.opts.PublicURL, providerName)
}

// FlowTTL is how long a pending flow lives; the flow cookie lives as long.
func (s *Service) FlowTTL() time.Duration { return s.opts.FlowTTL }

// MaxFlows is the cap on live pending flows; the server gives each
// caller address a share of it.
func (s *Service) MaxFlows() int { return s.opts.MaxFlows }

// ContinueURL is the clean URL the browser continues on after authorize
// (TH-03).
func (s *Service) ContinueURL(providerName string) string {
	return s.opts.PublicURL + "/providers/" + providerName + "/connect"
}

// Upstream returns the upstream OAuth client of an oauth2 provider.
func (s *Service) Upstream(providerName string) (*upstreamauth.Client, bool) {
	return s.upstream(providerName)
}

// Flow stages.
const (
	stageSignIn  = "sign_in"
	stageConsent = "consent"
)

// flowData is the sealed content of a pending flow.
type flowData struct {
	V           int    `json:"v"`
	Provider    string `json:"provider"`
	RedirectURI string `json:"redirect_uri"`
	State       string `json:"state"`
	// NotionCode is Notion's one-time code for R2 (protocol 3.1): a
	// secret, which is why the whole flow is sealed.
	NotionCode string `json:"notion_code"`
	Stage      string `json:"stage"`
	CSRF       string `json:"csrf"`
	// UpstreamState is the digest of the upstream state while a sign-in
	// is outstanding, empty once used (TH-06, TH-08).
	UpstreamState string `json:"upstream_state,omitempty"`
	Verifier      string `json:"verifier,omitempty"`
	// Credential is the encoded upstream credential once signed in.
	Credential  []byte `json:"credential,omitempty"`
	AccountKey  string `json:"account_key,omitempty"`
	AccountName string `json:"account_name,omitempty"`
}

const flowVersion = 1

func (s *Service) seal(id string, d *flowData) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode flow: %w", err)
	}
	return sealing.SealFlow(s.opts.Keyring, id, b)
}

func (s *Service) open(f store.Flow) (*flowData, error) {
	b, err := sealing.OpenFlow(s.opts.Keyring, f)
	if err != nil {
		return nil, err
	}
	var d flowData
	if err := json.Unmarshal(b, &d); err != nil || d.V != flowVersion {
		return nil, errors.New("open flow: unreadable flow record")
	}
	return &d, nil
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Begin handles Notion's authorize redirect (protocol 3.1, 3.2; TH-01,
// TH-02, TH-09, TH-11). On success it stores a pending flow and returns
// its handle, to be set as a cookie, with a redirect to the clean
// continue URL.
func (s *Service) Begin(ctx context.Context, p *provider.Provider, rawQuery string) *Outcome {
	return s.counted(p, "authorize", s.begin(ctx, p, rawQuery))
}

func (s *Service) begin(ctx context.Context, p *provider.Provider, rawQuery string) *Outcome {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return pageError(400, "Invalid request", "The link that brought you here is malformed. Start again from Notion.")
	}
	for k, v := range q {
		if len(v) > 1 {
			// Parameter pollution: refuse rather than pick one (TH-09).
			return pageError(400, "Invalid request", "The parameter "+k+" appears more than once. Start again from Notion.")
		}
	}
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	if clientID == "" || clientID != p.Config.Notion.ClientID {
		return pageError(400, "Unknown application", "This sign-in link names an application this server does not know.")
	}
	// Exact, byte-for-byte match against the allowlist; the success and
	// error redirects go to the matched string (TH-01).
	i := slices.Index(s.opts.RedirectURIs, redirectURI)
	if redirectURI == "" || i < 0 {
		return pageError(400, "Invalid redirect", "This sign-in link asks to return to an address this server does not allow.")
	}
	redirectURI = s.opts.RedirectURIs[i]
	state := q.Get("state")
	if len(state) > maxState {
		return pageError(400, "Invalid request", "The state parameter is too long.")
	}
	if !q.Has("state") || state == "" {
		return s.errorRedirect(redirectURI, "", "invalid_request", "state is missing")
	}
	if rt := q.Get("response_type"); rt != "code" {
		return s.errorRedirect(redirectURI, state, "unsupported_response_type", "response_type must be code")
	}
	code := q.Get("code")
	if code == "" || len(code) > maxParam {
		return s.errorRedirect(redirectURI, state, "invalid_request", "Notion's code is missing")
	}
	handle := randomToken()
	d := &flowData{
		V: flowVersion, Provider: p.Name, RedirectURI: redirectURI, State: state,
		NotionCode: code, Stage: stageSignIn, CSRF: randomToken(),
	}
	id := issuer.Digest(handle)
	sealed, err := s.seal(id, d)
	if err != nil {
		return s.serverError(ctx, "seal flow", err)
	}
	now := s.now().UTC()
	err = s.opts.Store.CreateFlow(ctx, store.Flow{ID: id, Provider: p.Name, Data: sealed, CreatedAt: now, ExpiresAt: now.Add(s.opts.FlowTTL)}, s.opts.MaxFlows)
	if errors.Is(err, store.ErrTooMany) {
		o := pageError(503, "Busy", "Too many sign-ins are in progress. Try again in a minute.")
		o.RetryAfter = 60
		return o
	}
	if err != nil {
		return s.serverError(ctx, "store flow", err)
	}
	return &Outcome{Redirect: s.ContinueURL(p.Name), Handle: handle}
}

// load reads the flow of a cookie handle for provider p. A flow of
// another provider is refused (TH-07).
func (s *Service) load(ctx context.Context, p *provider.Provider, handle string) (string, *flowData, *Outcome) {
	if handle == "" {
		return "", nil, expired()
	}
	id := issuer.Digest(handle)
	f, err := s.opts.Store.GetFlow(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
		return "", nil, expired()
	}
	if err != nil {
		return "", nil, s.serverError(ctx, "load flow", err)
	}
	if f.Provider != p.Name {
		return "", nil, pageError(400, "Wrong service", "This sign-in was started for another service. Start again from Notion.")
	}
	d, err := s.open(f)
	if err != nil || d.Provider != p.Name {
		s.log.WarnContext(ctx, "unreadable flow", "provider", p.Name, "err", err)
		_, _ = s.opts.Store.DeleteFlow(ctx, id)
		return "", nil, expired()
	}
	return id, d, nil
}

// save seals d back into flow id, in one transaction with the check that
// the flow still exists.
func (s *Service) save(ctx context.Context, id string, d *flowData) error {
	sealed, err := s.seal(id, d)
	if err != nil {
		return err
	}
	return s.opts.Store.UpdateFlow(ctx, id, s.now(), func(f store.Flow) (store.Flow, error) {
		f.Data = sealed
		return f, nil
	})
}

// Continue shows the next step of a flow on the clean URL: the upstream
// sign-in, the API-key form, or the consent page.
func (s *Service) Continue(ctx context.Context, p *provider.Provider, handle string) *Outcome {
	id, d, o := s.load(ctx, p, handle)
	if o != nil {
		return o
	}
	if d.Stage == stageConsent {
		return s.consentPage(p, d)
	}
	switch p.AuthType() {
	case config.AuthOAuth2:
		u, _ := s.upstream(p.Name)
		st := u.Start()
		d.UpstreamState, d.Verifier = issuer.Digest(st.State), st.Verifier
		if err := s.save(ctx, id, d); err != nil {
			return s.flowWriteError(ctx, err)
		}
		return &Outcome{Redirect: st.AuthURL}
	case config.AuthAPIKey:
		return s.apiKeyPage(p, d, "", nil)
	default:
		acct := provider.Account{Key: "public:" + p.Name, Name: p.DisplayName}
		if p.HasIdentity() {
			// The service-wide token's account: every Notion user of
			// this provider shares it.
			a, err := p.Identify(ctx, provider.Credential{Key: "static"})
			if err != nil {
				s.log.WarnContext(ctx, "identity request failed", "provider", p.Name, "err", err)
				return s.errorRedirect(d.RedirectURI, d.State, "temporarily_unavailable", p.DisplayName+" did not answer; try connecting again in a minute")
			}
			acct = a
		}
		d.Stage, d.AccountKey, d.AccountName = stageConsent, acct.Key, acct.Name
		if err := s.save(ctx, id, d); err != nil {
			return s.flowWriteError(ctx, err)
		}
		return s.consentPage(p, d)
	}
}

// Callback handles the upstream's OAuth redirect (TH-06 to TH-08): the
// state is checked and spent before the code is redeemed.
func (s *Service) Callback(ctx context.Context, p *provider.Provider, handle, rawQuery string) *Outcome {
	u, ok := s.upstream(p.Name)
	if !ok {
		return pageError(404, "Not found", "This service does not sign in with OAuth.")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return pageError(400, "Invalid request", "The sign-in answer is malformed.")
	}
	for k, v := range q {
		if len(v) > 1 {
			return pageError(400, "Invalid request", "The parameter "+k+" appears more than once.")
		}
	}
	id, d, o := s.load(ctx, p, handle)
	if o != nil {
		return o
	}
	if d.Stage != stageSignIn || d.UpstreamState == "" {
		// Replay of a callback whose state was spent (TH-08).
		return pageError(400, "Already used", "This sign-in answer was already used. Start again from Notion.")
	}
	if !equal(issuer.Digest(q.Get("state")), d.UpstreamState) {
		// Login CSRF or a stale tab: destroy the flow, redeem nothing (TH-06).
		_, _ = s.opts.Store.DeleteFlow(ctx, id)
		o := pageError(403, "Sign-in mismatch", "This sign-in answer does not belong to your browser session. Start again from Notion.")
		o.Clear = true
		return o
	}
	verifier := d.Verifier
	d.UpstreamState, d.Verifier = "", ""
	if err := s.save(ctx, id, d); err != nil {
		return s.flowWriteError(ctx, err)
	}
	if e := q.Get("error"); e != "" {
		_, _ = s.opts.Store.DeleteFlow(ctx, id)
		o := s.errorRedirect(d.RedirectURI, d.State, "access_denied", p.DisplayName+" sign-in was cancelled or refused")
		o.Clear = true
		return o
	}
	tok, err := u.Exchange(ctx, q.Get("code"), verifier)
	s.event(p.Name, "upstream_exchange", err)
	if err != nil {
		s.log.WarnContext(ctx, "upstream code exchange failed", "provider", p.Name, "err", err)
		_, _ = s.opts.Store.DeleteFlow(ctx, id)
		o := s.errorRedirect(d.RedirectURI, d.State, "access_denied", p.DisplayName+" refused the sign-in; try connecting again")
		o.Clear = true
		return o
	}
	return s.signedIn(ctx, p, id, d, tok)
}

// SubmitAPIKey handles the API-key form: the key, or every field of a
// form that asks for several (upstream.auth.api_key.fields), is checked
// with the identity request before it is accepted (issue 3 item 2). form
// reads one value of the submitted form.
func (s *Service) SubmitAPIKey(ctx context.Context, p *provider.Provider, handle, csrf, decision string, form func(name string) string) *Outcome {
	if p.AuthType() != config.AuthAPIKey {
		return pageError(404, "Not found", "This service does not take API keys.")
	}
	id, d, o := s.load(ctx, p, handle)
	if o != nil {
		return o
	}
	if !equal(csrf, d.CSRF) {
		return pageError(403, "Forbidden", "The form expired or was not sent from this page. Reload it and try again.")
	}
	if d.Stage != stageSignIn {
		return s.consentPage(p, d)
	}
	if decision == "cancel" {
		return s.cancel(ctx, id, d)
	}
	fields := p.Config.Upstream.Auth.APIKey.Fields
	if len(fields) == 0 {
		key := strings.TrimSpace(form(singleKeyInput))
		switch {
		case key == "":
			return s.apiKeyPage(p, d, "Paste your API key.", nil)
		case len(key) > maxAPIKey || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r == 0x7f }):
			return s.apiKeyPage(p, d, "That does not look like an API key: it is too long or holds spaces or control characters.", nil)
		}
		return s.signedIn(ctx, p, id, d, upstreamauth.Token{AccessToken: config.Secret(key)})
	}
	// Every field is checked before any is used.
	tok := upstreamauth.Token{Fields: make(map[string]config.Secret, len(fields))}
	var complaint string
	for _, f := range fields {
		v := strings.TrimSpace(form(fieldInput(f.Name)))
		if complaint == "" {
			complaint = CheckKeyField(f, v)
		}
		tok.Fields[f.Name] = config.Secret(v)
	}
	if complaint != "" {
		return s.apiKeyPage(p, d, complaint, kept(p, tok))
	}
	return s.signedIn(ctx, p, id, d, tok)
}

// kept returns the text and email fields of tok, to refill the form
// after a refusal; secrets are never sent back to the browser.
func kept(p *provider.Provider, tok upstreamauth.Token) map[string]string {
	out := map[string]string{}
	for _, f := range p.Config.Upstream.Auth.APIKey.Fields {
		if f.Type != config.FieldSecret {
			out[f.Name] = tok.Fields[f.Name].Reveal()
		}
	}
	return out
}

// singleKeyInput is the form field of a single API key.
const singleKeyInput = "api_key"

// fieldInput is the form field of one of upstream.auth.api_key.fields.
func fieldInput(name string) string { return "field_" + name }

// CheckKeyField says what is wrong with the value v of form field f, or
// "" when nothing is.
func CheckKeyField(f config.APIKeyField, v string) string {
	switch {
	case v == "":
		return "Fill in " + f.Label + "."
	case len(v) > maxAPIKey:
		return f.Label + " is too long."
	case f.Type == config.FieldText && strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return f.Label + " holds control characters."
	case f.Type != config.FieldText && strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return f.Label + " holds spaces or control characters."
	case f.Type == config.FieldEmail && !strings.Contains(v, "@"):
		return f.Label + " does not look like an e-mail address."
	}
	return ""
}

// signedIn identifies the account behind a fresh credential and moves the
// flow to consent.
func (s *Service) signedIn(ctx context.Context, p *provider.Provider, id string, d *flowData, tok upstreamauth.Token) *Outcome {
	acct, err := p.Identify(ctx, provider.Credential{Key: "identify:" + id, Token: tok.AccessToken, Fields: tok.Fields})
	s.event(p.Name, "identity", err)
	if err != nil {
		s.log.WarnContext(ctx, "identity request failed", "provider", p.Name, "err", err)
		if p.AuthType() == config.AuthAPIKey && errors.Is(err, provider.ErrCredentialRejected) {
			return s.apiKeyPage(p, d, p.DisplayName+" did not accept this key. Check that it is complete and still valid.", kept(p, tok))
		}
		if p.AuthType() == config.AuthAPIKey {
			return s.apiKeyPage(p, d, p.DisplayName+" could not be reached to check the key. Try again in a minute.", kept(p, tok))
		}
		_, _ = s.opts.Store.DeleteFlow(ctx, id)
		o := s.errorRedirect(d.RedirectURI, d.State, "temporarily_unavailable", "Could not read your "+p.DisplayName+" account; try connecting again")
		o.Clear = true
		return o
	}
	enc, err := tok.Encode()
	if err != nil {
		return s.serverError(ctx, "encode credential", err)
	}
	d.Stage, d.Credential, d.AccountKey, d.AccountName = stageConsent, enc, acct.Key, acct.Name
	if err := s.save(ctx, id, d); err != nil {
		return s.flowWriteError(ctx, err)
	}
	return &Outcome{Redirect: s.ContinueURL(p.Name)}
}

// Decide handles the consent form (protocol 3.2 steps 5 and 6). The flow
// is deleted before Notion's code is spent, so a double submit or a
// replay cannot run R2 twice (TH-08).
func (s *Service) Decide(ctx context.Context, p *provider.Provider, handle, csrf, decision string) *Outcome {
	return s.counted(p, "consent", s.decide(ctx, p, handle, csrf, decision))
}

func (s *Service) decide(ctx context.Context, p *provider.Provider, handle, csrf, decision string) *Outcome {
	id, d, o := s.load(ctx, p, handle)
	if o != nil {
		return o
	}
	if !equal(csrf, d.CSRF) {
		return pageError(403, "Forbidden", "The form expired or was not sent from this page. Reload it and try again.")
	}
	if d.Stage != stageConsent {
		return pageError(400, "Not ready", "Sign in to "+p.DisplayName+" first.")
	}
	if decision != "allow" {
		return s.cancel(ctx, id, d)
	}
	removed, err := s.opts.Store.DeleteFlow(ctx, id)
	if err != nil {
		return s.serverError(ctx, "spend flow", err)
	}
	if !removed {
		return pageError(400, "Already used", "This approval was already sent. Go back to Notion.")
	}
	o = s.finish(ctx, p, d)
	o.Clear = true
	return o
}

// cancel ends a flow with access_denied (protocol 3.2 step 6).
func (s *Service) cancel(ctx context.Context, id string, d *flowData) *Outcome {
	_, _ = s.opts.Store.DeleteFlow(ctx, id)
	o := s.errorRedirect(d.RedirectURI, d.State, "access_denied", "The user has denied your application access")
	o.Clear = true
	return o
}

// finish runs R2, stores the connection, mints our code and answers R3.
func (s *Service) finish(ctx context.Context, p *provider.Provider, d *flowData) *Outcome {
	creds := notion.BasicCredentials{
		ClientID:     p.Config.Notion.IntegrationClientID,
		ClientSecret: p.Config.Notion.IntegrationClientSecret,
	}
	tr, err := s.opts.Notion.ExchangeCode(ctx, creds, d.NotionCode, notion.ExternalAccount{Key: d.AccountKey, Name: d.AccountName})
	s.event(p.Name, "notion_exchange", err)
	if err != nil {
		code, desc := exchangeFailure(err)
		if notion.IsAuth(err) {
			// Notion refused our integration's own credentials: the
			// operator must fix the config, no user can.
			s.log.ErrorContext(ctx, "notion refused the integration credentials", "provider", p.Name, "err", err)
		} else {
			s.log.WarnContext(ctx, "notion code exchange failed", "provider", p.Name, "err", err)
		}
		return s.errorRedirect(d.RedirectURI, d.State, code, desc)
	}
	now := s.now().UTC()
	// The owner is part of the connection's identity: two Notion users
	// who connect the same upstream account keep one connection each
	// (TH-39); the account key stays the stable upstream id (TH-14).
	c := store.Connection{
		ID: issuer.NewID(), Provider: p.Name,
		AccountKey: d.AccountKey, AccountName: d.AccountName,
		WorkspaceID: tr.WorkspaceID, WorkspaceName: tr.WorkspaceName, BotID: tr.BotID, Owner: tr.OwnerKey(),
		Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
	if c.NotionToken, err = sealing.SealConnectionField(s.opts.Keyring, c, sealing.FieldNotionToken, []byte(tr.AccessToken.Reveal())); err != nil {
		return s.serverErrorRedirect(ctx, d, "seal notion token", err)
	}
	if len(d.Credential) > 0 {
		if c.UpstreamCredential, err = sealing.SealConnectionField(s.opts.Keyring, c, sealing.FieldUpstreamCredential, d.Credential); err != nil {
			return s.serverErrorRedirect(ctx, d, "seal credential", err)
		}
		if t, err := upstreamauth.DecodeToken(d.Credential); err == nil {
			c.UpstreamExpiry = t.Expiry
		}
	}
	stored, created, err := s.opts.Store.UpsertConnection(ctx, c)
	if err != nil {
		return s.serverErrorRedirect(ctx, d, "store connection", err)
	}
	code, err := s.opts.Codes.MintCode(ctx, p.Name, stored.ID, d.RedirectURI)
	if err != nil {
		return s.serverErrorRedirect(ctx, d, "mint code", err)
	}
	s.log.InfoContext(ctx, "connection stored", "provider", p.Name, "connection", stored.ID, "created", created, "notion", tr)
	return &Outcome{Redirect: redirectWith(d.RedirectURI, url.Values{"code": {code}, "state": {d.State}}), ToNotion: true}
}

func (s *Service) consentPage(p *provider.Provider, d *flowData) *Outcome {
	name := p.DisplayName
	return &Outcome{Page: &Page{
		Kind: PageConsent, Status: 200, ServiceName: name, IconURL: p.Config.IconURL,
		AccountName: d.AccountName, CSRF: d.CSRF,
		Shares: []string{
			"Previews of " + name + " links you paste in Notion, read as " + d.AccountName,
			"Updates to those previews when they change in " + name,
		},
		FormAction: []string{d.RedirectURI},
	}}
}

// apiKeyPage is the key form, with msg as its complaint and kept
// refilling the text and email fields.
func (s *Service) apiKeyPage(p *provider.Provider, d *flowData, msg string, kept map[string]string) *Outcome {
	a := p.Config.Upstream.Auth.APIKey
	fields := []KeyField{{Input: singleKeyInput, Label: "API key", Type: "password"}}
	if len(a.Fields) > 0 {
		fields = make([]KeyField, len(a.Fields))
		for i, f := range a.Fields {
			typ := "password"
			if f.Type != config.FieldSecret {
				typ = f.Type
			}
			fields[i] = KeyField{Input: fieldInput(f.Name), Label: f.Label, Type: typ, Value: kept[f.Name]}
		}
	}
	return &Outcome{Page: &Page{
		Kind: PageAPIKey, Status: 200, ServiceName: p.DisplayName, IconURL: p.Config.IconURL,
		HelpText: a.HelpText, HelpURL: a.HelpURL, CSRF: d.CSRF, Error: msg, Fields: fields,
		FormAction: []string{d.RedirectURI},
	}}
}

// errorRedirect is the error redirect of protocol 3.5, to an allowlisted
// redirect_uri only, with state whenever the request had one.
func (s *Service) errorRedirect(redirectURI, state, code, desc string) *Outcome {
	v := url.Values{"error": {code}}
	if desc != "" {
		v.Set("error_description", desc)
	}
	if state != "" {
		v.Set("state", state)
	}
	return &Outcome{Redirect: redirectWith(redirectURI, v), ToNotion: true}
}

func (s *Service) serverError(ctx context.Context, op string, err error) *Outcome {
	s.log.ErrorContext(ctx, "connect: "+op, "err", err)
	return pageError(503, "Unavailable", "Something went wrong on our side. Try again in a minute.")
}

func (s *Service) serverErrorRedirect(ctx context.Context, d *flowData, op string, err error) *Outcome {
	s.log.ErrorContext(ctx, "connect: "+op, "err", err)
	return s.errorRedirect(d.RedirectURI, d.State, "server_error", "Could not save the connection; try again from Notion")
}

func (s *Service) flowWriteError(ctx context.Context, err error) *Outcome {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
		return expired()
	}
	return s.serverError(ctx, "save flow", err)
}

// redirectWith adds v to base's query with a URL builder (protocol 3.3).
func redirectWith(base string, v url.Values) string {
	u, err := url.Parse(base)
	if err != nil {
		// Unreachable: base is an allowlist entry checked at load.
		return base
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func expired() *Outcome {
	o := pageError(400, "Sign-in expired", "This sign-in has expired or was already used. Start again from Notion.")
	o.Clear = true
	return o
}

// event reports a step that succeeded (err nil) or failed.
func (s *Service) event(providerName, step string, err error) {
	if s.opts.Observe == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "failed"
	}
	s.opts.Observe(providerName, step, result)
}

// counted reports a browser-facing step by what the browser gets: ok (a
// redirect or a page to go on with), refused (an error page the user
// caused: a bad link, an expired flow) or error (our failure), and
// returns o.
func (s *Service) counted(p *provider.Provider, step string, o *Outcome) *Outcome {
	if s.opts.Observe == nil {
		return o
	}
	result := "ok"
	switch {
	case o.Page != nil && o.Page.Kind == PageError && o.Page.Status >= 500:
		result = "error"
	case o.Page != nil && o.Page.Kind == PageError:
		result = "refused"
	}
	s.opts.Observe(p.Name, step, result)
	return o
}
