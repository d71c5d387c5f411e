package provider

import (
	"errors"
	"fmt"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
)

// webhookEvent is the name under which live.webhook.uris sees the event
// body, e.g. "[event.issue.html_url]".
const webhookEvent = "event"

// MaxWebhookURIs bounds the distinct links one event may name; an event
// that names more is refused whole (400), never cut: a 202 says every
// link it named was marked for a refresh, so dropping the rest silently
// would acknowledge work that is lost. It was 100: a signed event is the upstream's
// (or whoever holds its secret, who could as well send a hundred events),
// and the links of one event now cost one store read and one commit
// together, so the bound only keeps one event's work finite. 10,000 is
// what one event of a bulk change names (issue 11: "a webhook naming
// 10,000 linked URIs queues its refreshes in under 1 s"), and fits the
// default 1 MiB body limit.
const MaxWebhookURIs = 10_000

// buildWebhook compiles live.webhook.uris, if set, whether or not a
// secret turns the route on, so that a typo fails at load (STYLE.md rule
// 1) and not on the first event after someone sets the secret.
func (b *builder) buildWebhook(p *Provider, w *config.Webhook, path string) {
	if w.URIs == "" {
		return
	}
	comp := mapping.NewCompiler([]string{webhookEvent}, nil)
	prog, err := comp.Compile(w.URIs, b.pos.Of(path+".uris"), path+".uris")
	if err != nil {
		b.addExprError(path+".uris", err)
		return
	}
	p.webhookURIs = prog
}

// HasWebhook reports whether POST /providers/<name>/webhook is served:
// live updates are on, and both a secret and a uris expression are set.
func (p *Provider) HasWebhook() bool {
	l := p.Config.Live
	return l.IsEnabled() && !l.Webhook.Secret.IsZero() && p.webhookURIs != nil
}

// WebhookURIs maps a webhook event, a JSON body, to the links it affects
// with live.webhook.uris: nil or "" is no link, a string one, a list
// several (nil and "" items skipped). Duplicates are dropped; more than
// MaxWebhookURIs distinct links is an error. A link is not checked here; the refresher matches
// each against the patterns and the subscriptions.
func (p *Provider) WebhookURIs(event []byte) ([]string, error) {
	if p.webhookURIs == nil {
		return nil, errors.New("no webhook uris expression configured")
	}
	doc, err := mapping.NewDoc(event)
	if err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	v, err := p.webhookURIs.Eval(&mapping.Env{Docs: map[string]mapping.Doc{webhookEvent: doc}})
	if err != nil {
		return nil, err
	}
	var items []any
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		items = []any{x}
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("%s: want a link or a list of links, got %s", p.webhookURIs, typeName(v))
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range items {
		switch s := it.(type) {
		case nil:
		case string:
			if s != "" && len(s) <= maxURILength && !seen[s] {
				if len(out) == MaxWebhookURIs {
					return nil, fmt.Errorf("the event names more than %d links; nothing was queued: send the change as several events", MaxWebhookURIs)
				}
				seen[s] = true
				out = append(out, s)
			}
		default:
			return nil, fmt.Errorf("%s: want links, got a list holding %s", p.webhookURIs, typeName(it))
		}
	}
	return out, nil
}
