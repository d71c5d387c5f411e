package canary

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/clock"
	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/provider"
)

// Verdicts of a sample.
const (
	// VerdictOK: the sample maps, and as the baseline has it when there
	// is one (new attributes are noted, not held against it).
	VerdictOK = "ok"
	// VerdictChanged: the sample answers, but differently from the
	// baseline: its status changed, or an attribute went missing or
	// changed kind.
	VerdictChanged = "changed"
	// VerdictFailed: the upstream gave no usable answer (timeout, 5xx,
	// refused call, not JSON), or, without a baseline entry, the sample
	// did not map.
	VerdictFailed = "failed"
)

// SkipNoCredential is why an oauth2 or api_key provider without
// canary.credential is skipped: its samples need someone's credential.
const SkipNoCredential = "no canary credential (set canary.credential or canary.credential_fields on this provider)"

// canaryKey is the cache identity of a canary credential; canaries run
// with NoCache anyway, so it only keeps them apart from real users.
const canaryKey = "canary"

// Options configure a Runner.
type Options struct {
	// Registry holds the providers whose samples run.
	Registry *provider.Registry
	// Logger receives one line per provider run and one per problem;
	// nil discards.
	Logger *slog.Logger
	// Clock spaces the requests; nil is the wall clock. Tests inject a
	// fake whose After fires without sleeping (STYLE.md 9).
	Clock clock.Clock
	// Timeout bounds one sample's unfurl; 0 means 30s.
	Timeout time.Duration
}

// Runner runs canaries.
type Runner struct {
	reg     *provider.Registry
	log     *slog.Logger
	clock   clock.Clock
	timeout time.Duration
}

// New returns a Runner.
func New(opts Options) *Runner {
	r := &Runner{reg: opts.Registry, log: opts.Logger, clock: opts.Clock, timeout: opts.Timeout}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.clock == nil {
		r.clock = clock.Real{}
	}
	if r.timeout <= 0 {
		r.timeout = 30 * time.Second
	}
	return r
}

// Report is the outcome of one canary run.
type Report struct {
	// StartedAt and FinishedAt bound the run.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Baseline tells whether the run was compared with a baseline.
	Baseline bool `json:"baseline"`
	// Providers are the providers run, in configuration order.
	Providers []ProviderResult `json:"providers"`
}

// ProviderResult is one provider's part of a run.
type ProviderResult struct {
	Provider string `json:"provider"`
	// Skipped says why the provider's samples did not run; empty when
	// they did.
	Skipped string `json:"skipped,omitempty"`
	// At is when the provider's run finished.
	At      time.Time      `json:"at"`
	Samples []SampleResult `json:"samples,omitempty"`
}

// SampleResult is one sample URL's outcome.
type SampleResult struct {
	Pattern string `json:"pattern"`
	URL     string `json:"url"`
	// Status is 200 when the sample mapped to attributes, otherwise the
	// status of the error operation Notion would get (404, 401, 503...).
	Status int `json:"status"`
	// Attributes are the ids of the attributes present, with their kinds
	// (kindOf); never their values.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Error says why the upstream gave no usable answer; it names hosts,
	// never credentials, queries or bodies.
	Error string `json:"error,omitempty"`
	// Verdict is ok, changed or failed.
	Verdict string `json:"verdict"`
	// Changes describe, one per line, what differs from the baseline.
	Changes []string `json:"changes,omitempty"`
}

// Counts sums the verdicts of the provider's samples.
func (p ProviderResult) Counts() (ok, changed, failed int) {
	for _, s := range p.Samples {
		switch s.Verdict {
		case VerdictOK:
			ok++
		case VerdictChanged:
			changed++
		default:
			failed++
		}
	}
	return ok, changed, failed
}

// Regressions counts the samples that changed or failed across the run:
// non-zero makes `unfurld canary` exit 1.
func (r *Report) Regressions() int {
	n := 0
	for _, p := range r.Providers {
		_, c, f := p.Counts()
		n += c + f
	}
	return n
}

// Run runs the samples of the named providers (all when names is empty)
// and compares them with base, which may be nil. Providers run
// concurrently; each one's requests are spaced by its
// live.max_requests_per_hour. It returns when every provider is done or
// ctx ends (the samples not run then report the cancellation).
func (r *Runner) Run(ctx context.Context, names []string, base *Baseline) *Report {
	rep := &Report{StartedAt: r.clock.Now().UTC(), Baseline: base != nil}
	var ps []*provider.Provider
	for _, p := range r.reg.All() {
		if len(names) == 0 || slices.Contains(names, p.Name) {
			ps = append(ps, p)
		}
	}
	rep.Providers = make([]ProviderResult, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { rep.Providers[i] = r.runProvider(ctx, p, base) })
	}
	wg.Wait()
	rep.FinishedAt = r.clock.Now().UTC()
	return rep
}

// credential picks what a provider's canaries run with: its
// canary.credential_fields or canary.credential, else for auth none the
// provider's own token (the zero Credential), else nothing.
func credential(p *provider.Provider) (provider.Credential, bool) {
	c := p.Config.Canary
	if len(c.CredentialFields) > 0 {
		return provider.Credential{Key: canaryKey, Fields: c.CredentialFields}, true
	}
	if !c.Credential.IsZero() {
		return provider.Credential{Key: canaryKey, Token: c.Credential}, true
	}
	switch p.Config.Upstream.Auth.Type {
	case "", config.AuthNone:
		return provider.Credential{}, true
	}
	return provider.Credential{}, false
}

func (r *Runner) runProvider(ctx context.Context, p *provider.Provider, base *Baseline) ProviderResult {
	res := ProviderResult{Provider: p.Name}
	log := r.log.With("provider", p.Name)
	cred, ok := credential(p)
	if !ok {
		res.Skipped = SkipNoCredential
		res.At = r.clock.Now().UTC()
		log.InfoContext(ctx, "canary skipped", "reason", res.Skipped)
		return res
	}
	// The provider's polling budget paces canaries too: a request every
	// hour/max_requests_per_hour, so a run never bursts.
	var gap time.Duration
	if n := p.Config.Live.MaxRequestsPerHour; n > 0 {
		gap = time.Hour / time.Duration(n)
	}
	var wait time.Duration
	for _, pat := range p.Patterns {
		for _, uri := range pat.Samples {
			if wait > 0 {
				select {
				case <-ctx.Done():
				case <-r.clock.After(wait):
				}
			}
			s, sent := r.sample(ctx, p, pat.Name, uri, cred)
			s.judge(base.lookup(p.Name, pat.Name, uri))
			if s.Verdict != VerdictOK {
				log.WarnContext(ctx, "canary "+s.Verdict, "pattern", s.Pattern, "uri", s.URL, "status", s.Status, "problem", s.problem())
			}
			res.Samples = append(res.Samples, s)
			wait = gap * time.Duration(sent)
		}
	}
	res.At = r.clock.Now().UTC()
	okN, changed, failed := res.Counts()
	log.InfoContext(ctx, "canary run", "ok", okN, "changed", changed, "failed", failed)
	return res
}

// sample unfurls one sample URL through the provider's own path, with
// the trace on (it counts the requests sent) and no cache.
func (r *Runner) sample(ctx context.Context, p *provider.Provider, pattern, uri string, cred provider.Credential) (SampleResult, int) {
	s := SampleResult{Pattern: pattern, URL: uri}
	if err := ctx.Err(); err != nil {
		s.Error = fmt.Sprintf("not run: %v", err)
		return s, 0
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res := p.Unfurl(ctx, uri, cred, provider.UnfurlOptions{Trace: true, NoCache: true})
	sent := 0
	if res.Trace != nil {
		for _, rt := range res.Trace.Requests {
			if rt.Skipped == "" {
				sent++
			}
		}
	}
	switch {
	case res.Error != nil:
		s.Status = res.Error.Status
	default:
		s.Status = 200
		s.Attributes = make(map[string]string, len(res.Attributes))
		for _, a := range res.Attributes {
			s.Attributes[a.ID] = kindOf(a)
		}
	}
	if f := res.Failure; f != nil {
		// A Failure carries no credential, body or query (TH-36, TH-49).
		s.Error = fmt.Sprintf("request %s: %s: %v", f.Request, f.Kind, f.Err)
	}
	return s, sent
}

// kindOf names an attribute's shape: its type and, for inline ones, the
// sub-type ("inline.enum", "embed"). A kind change breaks the preview as
// much as a missing attribute does.
func kindOf(a notion.Attribute) string {
	if in := a.Inline; in != nil {
		switch {
		case in.Title != nil:
			return "inline.title"
		case in.PlainText != nil:
			return "inline.plain_text"
		case in.Enum != nil:
			return "inline.enum"
		case in.Date != nil:
			return "inline.date"
		case in.Datetime != nil:
			return "inline.datetime"
		case in.Color != nil:
			return "inline.color"
		}
	}
	return a.Type
}

// judge sets the verdict against the baseline entry (nil: none).
func (s *SampleResult) judge(was *BaselineSample) {
	switch {
	case s.Error != "":
		s.Verdict = VerdictFailed
		return
	case was == nil && s.Status != 200:
		s.Verdict = VerdictFailed
		return
	case was == nil:
		s.Verdict = VerdictOK
		return
	}
	regressed := false
	if s.Status != was.Status {
		s.Changes = append(s.Changes, fmt.Sprintf("status %d, was %d", s.Status, was.Status))
		regressed = true
	}
	if s.Status == 200 {
		for _, id := range sortedKeys(was.Attributes) {
			kind, ok := s.Attributes[id]
			switch {
			case !ok:
				s.Changes = append(s.Changes, fmt.Sprintf("attribute %s missing (was %s)", id, was.Attributes[id]))
				regressed = true
			case kind != was.Attributes[id]:
				s.Changes = append(s.Changes, fmt.Sprintf("attribute %s is %s, was %s", id, kind, was.Attributes[id]))
				regressed = true
			}
		}
		for _, id := range sortedKeys(s.Attributes) {
			if _, ok := was.Attributes[id]; !ok {
				s.Changes = append(s.Changes, fmt.Sprintf("attribute %s new (%s)", id, s.Attributes[id]))
			}
		}
	}
	s.Verdict = VerdictOK
	if regressed {
		s.Verdict = VerdictChanged
	}
}

// problem is the one-line reason of a verdict other than ok.
func (s *SampleResult) problem() string {
	switch {
	case s.Error != "":
		return s.Error
	case len(s.Changes) > 0:
		return strings.Join(s.Changes, "; ")
	case s.Status != 200:
		return fmt.Sprintf("does not map: status %d", s.Status)
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
