package provider

import (
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/upstream"
)

// Registry holds the compiled providers of one configuration. A reload
// replaces them whole with Swap; every reader sees either the old set or
// the new one, never a mix, because the set sits behind one atomic
// pointer. A request looks its provider up once, at its start, and keeps
// that *Provider to the end, so an in-flight request finishes on the
// provider it started with.
type Registry struct {
	set atomic.Pointer[providerSet]
	// sem bounds upstream work in flight across all providers (TH-38).
	// Providers swapped in share it, so a reload does not open a second
	// allowance beside the first.
	sem chan struct{}
}

// providerSet is one immutable generation of providers.
type providerSet struct {
	providers []*Provider
	byName    map[string]*Provider
}

func newRegistry(providers []*Provider, sem chan struct{}) *Registry {
	r := &Registry{sem: sem}
	set := &providerSet{providers: providers, byName: make(map[string]*Provider, len(providers))}
	for _, p := range providers {
		set.byName[p.Name] = p
	}
	r.set.Store(set)
	return r
}

// Get returns the provider called name.
func (r *Registry) Get(name string) (*Provider, bool) {
	p, ok := r.set.Load().byName[name]
	return p, ok
}

// All returns the providers in configuration order.
func (r *Registry) All() []*Provider { return r.set.Load().providers }

// Match finds the provider and pattern for uri across all providers, for
// the preview command, which has no route to name the provider.
func (r *Registry) Match(uri string) (*Provider, *Match, error) {
	var firstErr error
	for _, p := range r.All() {
		m, err := p.Match(uri)
		if err == nil {
			return p, m, nil
		}
		if firstErr == nil || errors.Is(firstErr, ErrNoMatch) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = ErrNoMatch
	}
	return nil, nil, firstErr
}

// Close releases idle upstream connections.
func (r *Registry) Close() {
	for _, p := range r.All() {
		p.client.CloseIdleConnections()
	}
}

// Changes says what a Swap did, by provider name, each list in
// configuration order.
type Changes struct {
	// Added are providers that were not there before.
	Added []string `json:"added,omitempty"`
	// Changed are providers whose configuration differs: they were
	// compiled again, so their caches start empty.
	Changed []string `json:"changed,omitempty"`
	// Removed are providers no longer served; their stored connections
	// and subscriptions stay in the store.
	Removed []string `json:"removed,omitempty"`
	// Retired are the compiled providers no longer in use (changed and
	// removed), for CloseRetired once no request holds them.
	Retired []*Provider `json:"-"`
}

// Swap makes next's providers the ones r serves. A provider whose
// configuration is unchanged keeps its compiled instance, so its caches
// and connections survive the reload; changed and added ones come from
// next. next must come from Build and is used up: only r is used after.
func (r *Registry) Swap(next *Registry) Changes {
	old := r.set.Load()
	var ch Changes
	providers := make([]*Provider, 0, len(next.All()))
	kept := map[string]bool{}
	for _, np := range next.All() {
		op, ok := old.byName[np.Name]
		switch {
		case ok && reflect.DeepEqual(op.Config, np.Config):
			providers = append(providers, op)
			kept[np.Name] = true
			continue
		case ok:
			ch.Changed = append(ch.Changed, np.Name)
			ch.Retired = append(ch.Retired, op)
		default:
			ch.Added = append(ch.Added, np.Name)
		}
		// Not yet published, so no other goroutine reads np.
		np.sem = r.sem
		providers = append(providers, np)
	}
	for _, op := range old.providers {
		if _, ok := next.Get(op.Name); !ok {
			ch.Removed = append(ch.Removed, op.Name)
			ch.Retired = append(ch.Retired, op)
		}
	}
	for _, np := range next.All() {
		if kept[np.Name] {
			// next's compiled copy of an unchanged provider is never
			// served.
			np.client.CloseIdleConnections()
		}
	}
	set := &providerSet{providers: providers, byName: make(map[string]*Provider, len(providers))}
	for _, p := range providers {
		set.byName[p.Name] = p
	}
	r.set.Store(set)
	return ch
}

// CloseRetired releases the idle upstream connections of providers a
// Swap retired. Call it once the requests that looked them up before
// the swap are over; calling it earlier only closes connections that
// are idle, never one a request is using.
func CloseRetired(ps []*Provider) {
	for _, p := range ps {
		p.client.CloseIdleConnections()
	}
}

// Provider is one compiled provider.
type Provider struct {
	// Name is the provider's route name.
	Name string
	// DisplayName is shown to people.
	DisplayName string
	// Dev is the text of the dev attribute.
	Dev string
	// Patterns are the compiled URL rules, in configuration order.
	Patterns []*Pattern
	// Config is the provider's configuration, defaults applied.
	Config *config.Provider

	// sem is the registry-wide cap on upstream requests in flight.
	sem         chan struct{}
	log         *slog.Logger
	now         func() time.Time
	client      *upstream.Client
	obs         Observer // nil: none
	baseURL     string
	headers     http.Header
	staticAuth  config.Auth
	maxText     int
	messages    config.ErrorMessages
	errorStatus int
	cacheTTL    time.Duration
	// uriHosts are the hosts a pasted URI may name (TH-28): the hosts of
	// the samples and the configured domain.
	uriHosts map[string]bool
	// uriDomain, when set (notion.subdomains), also serves every
	// subdomain of it: a host that ends in "."+uriDomain.
	uriDomain string
	// embedHosts are the hosts URL-valued attributes may point at (TH-31).
	embedHosts map[string]bool
	results    resultCache
	// identity is the compiled identity request; nil without one.
	identity *identityPlan
	// webhookURIs is the compiled live.webhook.uris; nil without one
	// (webhook.go).
	webhookURIs *mapping.Program
	// authValue is the compiled upstream.auth.value; nil without one
	// (credential.go).
	authValue *mapping.Program
	// statuses is errors.statuses: what an upstream status means for
	// unfurls, when the upstream uses it unlike HTTP.
	statuses map[int]string
}

// Pattern is one compiled URL rule.
type Pattern struct {
	// Name is the rule name.
	Name string
	// Regex is the compiled pattern.
	Regex *regexp.Regexp
	// Groups are the regex's named groups in order.
	Groups []string
	// Samples are the URLs that must match.
	Samples []string
	// Config is the pattern's configuration.
	Config *config.Pattern

	requests    []*requestPlan
	attrs       []*attrPlan
	hasDev      bool
	placeholder []notion.Attribute
	// comp is the compiler the attributes were compiled with, kept so
	// that the lab's playground (Evaluate) compiles with exactly the same
	// names, limits and helpers.
	comp *mapping.Compiler
}

// Placeholder returns the Unfurl Regex Attributes to paste into Notion's
// dashboard for this rule (protocol 9.1).
func (p *Pattern) Placeholder() []notion.Attribute { return p.placeholder }

type requestPlan struct {
	name     string
	method   string
	url      *upstream.Template
	headers  map[string]*upstream.Template
	body     *bodyNode
	optional bool
}

type attrPlan struct {
	id, name, kind, section string
	maxLen                  int
	expr                    *mapping.Program
	path, from              string
	literal                 string
	color                   *mapping.Program
	colors                  map[string]notion.RGB
}

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }
