package provider

import (
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/upstream"
)

// Registry holds the compiled providers of one configuration.
type Registry struct {
	providers []*Provider
	byName    map[string]*Provider
	// sem bounds upstream work in flight across all providers (TH-38).
	sem chan struct{}
}

// Get returns the provider called name.
func (r *Registry) Get(name string) (*Provider, bool) {
	p, ok := r.byName[name]
	return p, ok
}

// All returns the providers in configuration order.
func (r *Registry) All() []*Provider { return r.providers }

// Match finds the provider and pattern for uri across all providers, for
// the preview command, which has no route to name the provider.
func (r *Registry) Match(uri string) (*Provider, *Match, error) {
	var firstErr error
	for _, p := range r.providers {
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
	for _, p := range r.providers {
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

	reg         *Registry
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
