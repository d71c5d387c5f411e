package provider

import (
	"errors"
	"fmt"
	"slices"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/mapping"
)

// webhookEvent is the name under which live.webhook.uris sees the event
// body, e.g. "[event.issue.html_url]".
const webhookEvent = "event"

// MaxWebhookURIs bounds the links one event may name; an expression that
// gives more is cut there, so a crafted event cannot fan out into
// thousands of refreshes.
const MaxWebhookURIs = 100

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
// several (nil and "" items skipped). Duplicates are dropped and at most
// MaxWebhookURIs kept. A link is not checked here; the refresher matches
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
	for _, it := range items {
		switch s := it.(type) {
		case nil:
		case string:
			if s != "" && len(s) <= maxURILength && !slices.Contains(out, s) {
				out = append(out, s)
			}
		default:
			return nil, fmt.Errorf("%s: want links, got a list holding %s", p.webhookURIs, typeName(it))
		}
		if len(out) == MaxWebhookURIs {
			break
		}
	}
	return out, nil
}
