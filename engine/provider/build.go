package provider

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
	"github.com/unfurld/unfurld/engine/notion"
	"github.com/unfurld/unfurld/engine/upstream"
)

// maxURILength caps the URIs we accept from Notion and that patterns run
// against (TH-28, TH-35).
const maxURILength = 2048

// Options are the dependencies of the compiled providers.
type Options struct {
	// Logger receives provider-scoped logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observer learns of upstream exchanges, refused calls and collapsed
	// unfurls, for metrics; nil observes nothing.
	Observer Observer
}

// Observer learns what the providers do, for metrics (engine/metrics
// implements it). Its methods run on the request path and must not
// block.
type Observer interface {
	upstream.Observer
	// Collapsed reports an unfurl that waited for an identical one in
	// flight instead of running its own (TH-38).
	Collapsed(provider string)
}

// Build compiles every provider of cfg. It returns the registry and all
// problems found (errors and warnings, sorted). The registry is nil when
// there is any error.
func Build(cfg *config.Config, opts Options) (*Registry, config.Errors) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &builder{cfg: cfg, pos: cfg.Positions}
	sem := make(chan struct{}, max(cfg.Server.MaxConcurrentUpstream, 1))
	var providers []*Provider
	for i := range cfg.Providers {
		pc := &cfg.Providers[i]
		if p := b.provider(pc, opts, sem); p != nil {
			providers = append(providers, p)
		}
	}
	b.checkSharedDomains(providers)
	b.errs.Sort()
	if b.errs.HasErrors() {
		return nil, b.errs
	}
	return newRegistry(providers, sem), b.errs
}

// checkSharedDomains runs each sample of a provider that shares its
// domain (notion.shared_domain) against the patterns of the others on
// that domain. Which of two integrations on one domain Notion asks about
// a link is not documented (protocol 1.3), so a link both would claim
// must not exist.
func (b *builder) checkSharedDomains(ps []*Provider) {
	for _, p := range ps {
		if !p.Config.Notion.SharedDomain {
			continue
		}
		for _, q := range ps {
			if q == p || !q.Config.Notion.SharedDomain || !config.DomainsOverlap(p.Config.Notion.Domain, q.Config.Notion.Domain) {
				continue
			}
			for _, pat := range p.Patterns {
				for i, s := range pat.Samples {
					for _, other := range q.Patterns {
						if other.Regex.MatchString(s) {
							b.fail(fmt.Sprintf("providers.%s.patterns.%s.samples[%d]", p.Name, pat.Name, i),
								"sample %q also matches pattern %q of provider %q, which shares this domain; Notion does not document which integration gets such a link, so make the patterns disjoint (see %s)",
								s, other.Name, q.Name, sharedDomainDoc)
						}
					}
				}
			}
		}
	}
}

type builder struct {
	cfg  *config.Config
	pos  config.Positions
	errs config.Errors
}

func (b *builder) fail(path, format string, args ...any) {
	b.errs.Add(b.pos.Of(path), path, format, args...)
}

func (b *builder) warn(path, format string, args ...any) {
	b.errs.Warn(b.pos.Of(path), path, format, args...)
}

func (b *builder) provider(pc *config.Provider, opts Options, sem chan struct{}) *Provider {
	path := "providers." + pc.Name
	p := &Provider{
		Name:        pc.Name,
		DisplayName: pc.DisplayName,
		Dev:         pc.Dev,
		Config:      pc,
		sem:         sem,
		now:         opts.Now,
		obs:         opts.Observer,
		log:         opts.Logger.With("provider", pc.Name),
		maxText:     pc.MaxTextLength,
		messages:    pc.Errors,
		uriHosts:    map[string]bool{},
		embedHosts:  map[string]bool{},
		staticAuth:  pc.Upstream.Auth,
		headers:     http.Header{},
		cacheTTL:    pc.Upstream.CacheTTL.D(),
		errorStatus: b.cfg.Server.UnfurlErrorStatus,
	}
	if p.maxText <= 0 {
		p.maxText = 2000
	}
	fillMessages(&p.messages)

	base, err := url.Parse(pc.Upstream.BaseURL)
	if err != nil || base.Host == "" {
		b.fail(path+".upstream.base_url", "want an absolute URL like https://api.example.com")
		return nil
	}
	p.baseURL = strings.TrimRight(pc.Upstream.BaseURL, "/")
	for _, h := range pc.Upstream.AllowedHosts {
		p.embedHosts[strings.ToLower(h)] = true
	}
	for _, h := range pc.Upstream.EmbedHosts {
		p.embedHosts[strings.ToLower(h)] = true
	}
	for k, v := range pc.Upstream.Headers {
		if strings.ContainsAny(k+v, "\r\n\x00") {
			b.fail(path+".upstream.headers."+k, "header names and values cannot hold line breaks")
			continue
		}
		p.headers.Set(k, v)
	}
	client, err := upstream.New(upstream.Options{
		Provider:             pc.Name,
		AllowedHosts:         pc.Upstream.AllowedHosts,
		AllowPrivateNetworks: pc.Upstream.AllowPrivateNetworks,
		Timeout:              pc.Upstream.Timeout.D(),
		MaxBodyBytes:         int64(pc.Upstream.MaxBodyBytes),
		CacheTTL:             pc.Upstream.CacheTTL.D(),
		Now:                  opts.Now,
		Observer:             upstreamObserver(opts.Observer),
		// As many idle connections as calls may be in flight (TH-38's
		// cap), so that bursts reuse them instead of dialing again.
		IdleConnsPerHost: cap(sem),
	})
	if err != nil {
		b.fail(path+".upstream", "%v", err)
		return nil
	}
	p.client = client

	names := map[string]bool{}
	for i := range pc.Patterns {
		pat := b.pattern(p, &pc.Patterns[i], path+".patterns."+pc.Patterns[i].Name)
		if pat == nil {
			continue
		}
		p.Patterns = append(p.Patterns, pat)
		names[pat.Name] = true
		for _, s := range pat.Samples {
			if u, err := url.Parse(s); err == nil && u.Host != "" {
				p.uriHosts[strings.ToLower(u.Host)] = true
			}
		}
	}
	if d := pc.Notion.Domain; d != "" {
		p.uriHosts[strings.ToLower(d)] = true
		p.uriHosts["www."+strings.ToLower(d)] = true
		if pc.Notion.Subdomains {
			p.uriDomain = strings.ToLower(d)
		}
	} else if len(p.Patterns) > 0 && len(p.Patterns[0].Samples) > 0 {
		if u, err := url.Parse(p.Patterns[0].Samples[0]); err == nil {
			pc.Notion.Domain = strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
		}
	}
	b.buildIdentity(p, &pc.Upstream.Auth.Identity, path+".upstream.auth.identity")
	b.buildCredential(p, &pc.Upstream.Auth, path+".upstream.auth")
	p.statuses = statuses(pc.Errors.Statuses)
	b.buildWebhook(p, &pc.Live.Webhook, path+".live.webhook")
	b.checkSamples(p, path)
	return p
}

func fillMessages(m *config.ErrorMessages) {
	if m.NotFound == "" {
		m.NotFound = "Not found"
	}
	if m.Reconnect == "" {
		m.Reconnect = "Reconnect your account to see this preview"
	}
	if m.TryLater == "" {
		m.TryLater = "The service is unavailable, try again later"
	}
}

// checkSamples runs every sample against every pattern of the provider:
// each must match its own pattern and no other (Notion rejects a rule
// whose samples do not match; two matches would make routing depend on
// order). Negative samples must match nothing of their own pattern.
func (b *builder) checkSamples(p *Provider, path string) {
	for _, pat := range p.Patterns {
		ppath := path + ".patterns." + pat.Name
		for i, s := range pat.Samples {
			spath := fmt.Sprintf("%s.samples[%d]", ppath, i)
			if !pat.Regex.MatchString(s) {
				b.fail(spath, "sample %q does not match the regex", s)
				continue
			}
			for _, other := range p.Patterns {
				if other != pat && other.Regex.MatchString(s) {
					b.fail(spath, "sample %q also matches pattern %q; make the regexes disjoint", s, other.Name)
				}
			}
			if err := checkURI(s, nil); err != nil {
				b.fail(spath, "sample %q would be refused: %v", s, err)
			}
		}
		for i, s := range pat.Config.NegativeSamples {
			if pat.Regex.MatchString(s) {
				b.fail(fmt.Sprintf("%s.negative_samples[%d]", ppath, i), "negative sample %q matches the regex", s)
			}
		}
	}
}

// unsupportedRegex explains RE2's refusals in Notion's terms (protocol
// 9.3): patterns written for JavaScript may use constructs RE2 cannot run.
func unsupportedRegex(src string, err error) string {
	var se *syntax.Error
	if !errorsAs(err, &se) {
		return err.Error()
	}
	switch {
	case strings.Contains(src, "(?=") || strings.Contains(src, "(?!") ||
		strings.Contains(src, "(?<=") || strings.Contains(src, "(?<!"):
		return "lookahead and lookbehind are not supported: Go's RE2 engine cannot run them; rewrite the pattern without them"
	case se.Code == syntax.ErrInvalidEscape && regexp.MustCompile(`\\[1-9]`).MatchString(src):
		return "backreferences like \\1 are not supported: Go's RE2 engine cannot run them"
	}
	return fmt.Sprintf("invalid regex: %s", se.Code)
}

func (b *builder) pattern(p *Provider, pc *config.Pattern, path string) *Pattern {
	if msg := notionSyntax(pc.Regex); msg != "" {
		b.fail(path+".regex", "%s", msg)
		return nil
	}
	re, err := regexp.Compile(pc.Regex)
	if err != nil {
		b.fail(path+".regex", "%s", unsupportedRegex(pc.Regex, err))
		return nil
	}
	b.checkAnchors(re, pc, path+".regex")
	pat := &Pattern{
		Name:    pc.Name,
		Regex:   re,
		Samples: pc.Samples,
		Config:  pc,
	}
	groups := map[string]bool{}
	for _, g := range re.SubexpNames() {
		if g != "" {
			groups[g] = true
			pat.Groups = append(pat.Groups, g)
		}
	}

	// Requests: templates may name groups and earlier responses only.
	seen := map[string]bool{}
	var docNames []string
	for i := range pc.Requests {
		rc := &pc.Requests[i]
		rpath := path + ".requests." + rc.Name
		rp := b.request(rc, rpath, groups, seen)
		if rp != nil {
			pat.requests = append(pat.requests, rp)
		}
		seen[rc.Name] = true
		if !mapping.IsReserved(rc.Name) { // reported once, by request()
			docNames = append(docNames, rc.Name)
		}
	}

	comp := mapping.NewCompiler(docNames, pat.Groups)
	pat.comp = comp
	hasTitle := false
	for i := range pc.Attributes {
		ac := &pc.Attributes[i]
		apath := path + ".attributes." + ac.ID
		if ac.ID == "title" {
			// Counted before compiling, so a title whose expression fails
			// is reported once, for its expression.
			hasTitle = true
			if ac.Kind != config.KindTitle {
				b.fail(apath+".kind", "the title attribute must have kind title")
			}
		}
		ap := b.attribute(p, ac, apath, comp, groups, docNames)
		if ap == nil {
			continue
		}
		if ap.id == "dev" {
			pat.hasDev = true
		}
		pat.attrs = append(pat.attrs, ap)
	}
	if !hasTitle {
		b.fail(path+".attributes", "a title attribute (id: title, kind: title) is required")
	}
	pat.placeholder = b.placeholder(p, pc, path, groups)
	return pat
}

func (b *builder) request(rc *config.Request, path string, groups, earlier map[string]bool) *requestPlan {
	rp := &requestPlan{name: rc.Name, method: strings.ToUpper(rc.Method), optional: rc.Optional}
	if mapping.IsReserved(rc.Name) {
		// Expressions name responses by request name, so a request may
		// not shadow a helper or keyword.
		b.fail(path+".name", "%q is reserved in expressions (a helper, keyword or built-in name); choose another request name", rc.Name)
		return nil
	}
	if rp.method == "" {
		rp.method = http.MethodGet
	}
	t, err := upstream.ParseURLTemplate(rc.URL)
	if err != nil {
		b.fail(path+".url", "%v", err)
		return nil
	}
	ok := b.checkPlaceholders(t, path+".url", groups, earlier)
	rp.url = t
	for k, v := range rc.Headers {
		ht, err := upstream.ParseTemplate(v)
		if err != nil {
			b.fail(path+".headers."+k, "%v", err)
			ok = false
			continue
		}
		ok = b.checkPlaceholders(ht, path+".headers."+k, groups, earlier) && ok
		if rp.headers == nil {
			rp.headers = map[string]*upstream.Template{}
		}
		rp.headers[k] = ht
	}
	if rc.Body != nil {
		body, bodyOK := b.bodyTemplate(rc.Body, path+".body", groups, earlier)
		rp.body = body
		ok = ok && bodyOK
	}
	if !ok {
		return nil
	}
	return rp
}

// checkPlaceholders verifies that every placeholder names a captured group
// or an earlier response, so a typo fails at load, not per request.
func (b *builder) checkPlaceholders(t *upstream.Template, path string, groups, earlier map[string]bool) bool {
	ok := true
	for _, ph := range t.Placeholders() {
		switch {
		case groups[ph.Name] && ph.Path == "":
		case groups[ph.Name]:
			b.fail(path, "{%s.%s}: %q is a captured group, which has no fields", ph.Name, ph.Path, ph.Name)
			ok = false
		case earlier[ph.Name]:
			if ph.Path == "" {
				b.fail(path, "{%s} names a whole response; add a path like {%s.id}", ph.Name, ph.Name)
				ok = false
			}
		default:
			b.fail(path, "{%s} is neither a group of the regex (%s) nor an earlier request", ph.Name, strings.Join(sortedKeys(groups), ", "))
			ok = false
		}
	}
	return ok
}

// bodyNode is a JSON body template: maps, lists, scalars, with templated
// strings.
type bodyNode struct {
	tmpl  *upstream.Template
	obj   map[string]*bodyNode
	list  []*bodyNode
	value any // literal number, bool or nil
}

func (b *builder) bodyTemplate(v any, path string, groups, earlier map[string]bool) (*bodyNode, bool) {
	switch x := v.(type) {
	case string:
		t, err := upstream.ParseTemplate(x)
		if err != nil {
			b.fail(path, "%v", err)
			return nil, false
		}
		return &bodyNode{tmpl: t}, b.checkPlaceholders(t, path, groups, earlier)
	case map[string]any:
		n := &bodyNode{obj: map[string]*bodyNode{}}
		ok := true
		for k, child := range x {
			c, cok := b.bodyTemplate(child, path+"."+k, groups, earlier)
			n.obj[k] = c
			ok = ok && cok
		}
		return n, ok
	case []any:
		n := &bodyNode{list: []*bodyNode{}}
		ok := true
		for i, child := range x {
			c, cok := b.bodyTemplate(child, fmt.Sprintf("%s[%d]", path, i), groups, earlier)
			n.list = append(n.list, c)
			ok = ok && cok
		}
		return n, ok
	case nil, bool, int, int64, float64:
		return &bodyNode{value: x}, true
	default:
		b.fail(path, "unsupported value of type %T in a JSON body", v)
		return nil, false
	}
}

// validSections is protocol 6.6's table: which sub-types each section
// accepts. A pair outside it is a warning, not an error, because the
// table and Notion's own examples disagree (protocol 6.6, 10 #15).
var validSections = map[string][]string{
	"title":      {config.KindTitle},
	"identifier": {config.KindImage, config.KindPlainText},
	"primary":    {config.KindEnum, config.KindDate, config.KindDatetime, config.KindPlainText, config.KindRelation},
	"secondary":  {config.KindDate, config.KindDatetime, config.KindPlainText},
	"body":       {config.KindPlainText},
	"background": {config.KindColor},
	"entity":     {config.KindColor, config.KindImage},
	"avatar":     {config.KindImage, config.KindPlainText},
	"embed":      {config.KindAudio, config.KindHTML, config.KindImage, config.KindPDF, config.KindVideo},
}

func (b *builder) attribute(p *Provider, ac *config.Attribute, path string, comp *mapping.Compiler, groups map[string]bool, docs []string) *attrPlan {
	ap := &attrPlan{id: ac.ID, name: ac.Name, kind: ac.Kind, section: ac.Section, maxLen: ac.MaxLength}
	if ap.name == "" {
		ap.name = ap.id
	}
	if ap.section == "" {
		ap.section = config.DefaultSection(ap.kind)
	}
	if ap.maxLen <= 0 || ap.maxLen > p.maxText {
		ap.maxLen = p.maxText
	}
	// sectionsDoc is where the repository summarises which kinds each
	// section takes (protocol 6.6).
	const sectionsDoc = "docs/protocol.md#66-sections"
	kinds, known := validSections[ap.section]
	switch {
	case !known:
		b.fail(path+".section", "unknown section %q; want one of %s", ap.section, strings.Join(sortedKeys(validSections), ", "))
		return nil
	case !slices.Contains(kinds, ap.kind):
		b.warn(path+".section", "Notion's documentation does not list kind %q for section %q (it lists %s); Notion may not render it (see %s)",
			ap.kind, ap.section, strings.Join(kinds, ", "), sectionsDoc)
	}
	if ap.kind == config.KindPDF {
		b.warn(path+".kind", "pdf embeds appear only in Notion's section table, never in an example; Notion may not render them (see %s)", sectionsDoc)
	}
	ok := true
	switch {
	case ac.Expr != "":
		prog, err := comp.Compile(ac.Expr, b.pos.Of(path+".expr"), path+".expr")
		if err != nil {
			b.addExprError(path+".expr", err)
			ok = false
		}
		ap.expr = prog
	case ac.Path != "":
		ap.path = ac.Path
		ap.from = ac.From
		if ap.from == "" {
			if len(docs) == 0 {
				b.fail(path+".path", "path needs a request to read from; this pattern has none")
				ok = false
			} else {
				ap.from = docs[0]
			}
		} else if !slices.Contains(docs, ap.from) {
			b.fail(path+".from", "no request named %q in this pattern", ap.from)
			ok = false
		}
	default:
		ap.literal = ac.Value
		for _, g := range placeholderNames(ac.Value) {
			if !groups[g] {
				b.fail(path+".value", "$<%s> is not a group of the regex", g)
				ok = false
			}
		}
	}
	if ac.Color != "" {
		prog, err := comp.Compile(ac.Color, b.pos.Of(path+".color"), path+".color")
		if err != nil {
			b.addExprError(path+".color", err)
			ok = false
		}
		ap.color = prog
	}
	if len(ac.Colors) > 0 {
		ap.colors = map[string]notion.RGB{}
		for k, v := range ac.Colors {
			r, g, bl, err := mapping.ParseColor(v)
			if err != nil {
				b.fail(path+".colors."+k, "%v", err)
				ok = false
				continue
			}
			ap.colors[k] = notion.RGB{R: r, G: g, B: bl}
		}
	}
	if !ok {
		return nil
	}
	return ap
}

// addExprError keeps the position mapping engine/mapping computed.
func (b *builder) addExprError(path string, err error) {
	var ce *config.Error
	if errorsAs(err, &ce) {
		b.errs = append(b.errs, *ce)
		return
	}
	b.fail(path, "%v", err)
}

// placeholder builds the "Unfurl Regex Attributes" of protocol 9.1; its
// $<group> placeholders stay in the text for Notion to fill.
func (b *builder) placeholder(p *Provider, pc *config.Pattern, path string, groups map[string]bool) []notion.Attribute {
	list := pc.Placeholder
	if len(list) == 0 {
		list = []config.PlaceholderAttribute{{ID: "title", Kind: config.KindTitle, Value: p.DisplayName + " " + pc.Name}}
	}
	var out []notion.Attribute
	hasDev := false
	for i, pa := range list {
		ppath := fmt.Sprintf("%s.placeholder[%d]", path, i)
		for _, g := range placeholderNames(pa.Value) {
			if !groups[g] {
				b.fail(ppath+".value", "$<%s> is not a group of the regex", g)
			}
		}
		kind := pa.Kind
		if kind == "" {
			kind = config.KindPlainText
		}
		section := pa.Section
		if section == "" {
			section = config.DefaultSection(kind)
		}
		name := pa.Name
		if name == "" {
			name = pa.ID
		}
		a, err := textAttribute(pa.ID, name, kind, section, pa.Value)
		if err != nil {
			b.fail(ppath+".kind", "%v", err)
			continue
		}
		hasDev = hasDev || pa.ID == "dev"
		out = append(out, a)
	}
	if !hasDev {
		out = append(out, devAttribute(p.Dev))
	}
	return out
}

func devAttribute(dev string) notion.Attribute {
	a, _ := textAttribute("dev", "Developer Name", config.KindPlainText, "secondary", dev)
	return a
}

// textAttribute builds an inline attribute whose value is text.
func textAttribute(id, name, kind, section, value string) (notion.Attribute, error) {
	t := &notion.Text{Value: value, Section: section}
	in := &notion.Inline{}
	switch kind {
	case config.KindTitle:
		in.Title = t
	case config.KindPlainText:
		in.PlainText = t
	case config.KindDate:
		in.Date = t
	case config.KindDatetime:
		in.Datetime = t
	case config.KindEnum:
		in.Enum = &notion.Enum{Value: value, Section: section}
	default:
		return notion.Attribute{}, fmt.Errorf("kind %q cannot hold literal text here", kind)
	}
	return notion.Attribute{ID: id, Name: name, Type: "inline", Inline: in}, nil
}

var placeholderRE = regexp.MustCompile(`\$<([A-Za-z_][A-Za-z0-9_]*)>`)

// placeholderNames lists the $<group> names in s.
func placeholderNames(s string) []string {
	var out []string
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// expandPlaceholders replaces $<group> with the group's text, or with ""
// when the group did not take part in the match: JavaScript's
// GetSubstitution rule, which Notion's own placeholders follow (protocol
// 9.2). Go's Regexp.Expand does not know the $<name> form (protocol 9.3).
func expandPlaceholders(s string, groups map[string]string) string {
	if !strings.Contains(s, "$<") {
		return s
	}
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		return groups[m[2:len(m)-1]]
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// upstreamObserver keeps a nil Observer nil as an interface, so the
// client's nil check holds.
func upstreamObserver(o Observer) upstream.Observer {
	if o == nil {
		return nil
	}
	return o
}
