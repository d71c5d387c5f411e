package connect

import (
	"context"
	"errors"
	"net/http"

	"github.com/unfurld/unfurld/engine/notion"
)

// Outcome is what the browser gets next. Exactly one of Redirect and Page
// is set.
type Outcome struct {
	// Redirect is an absolute URL to send the browser to.
	Redirect string
	// ToNotion marks the final redirect to Notion's redirect_uri: 302 as
	// protocol 3.3 shows; every other redirect is a 303.
	ToNotion bool
	// Handle, when set, is a new flow handle to store in the cookie.
	Handle string
	// Clear says the flow is over: clear the cookie.
	Clear bool
	// Page is a page to render.
	Page *Page
	// RetryAfter, in seconds, accompanies a 503 page.
	RetryAfter int
}

// PageKind names the page to render.
type PageKind int

// Pages.
const (
	PageError PageKind = iota
	PageConsent
	PageAPIKey
)

// Page is the data of a page; engine/server renders it.
type Page struct {
	Kind   PageKind
	Status int
	// Error page.
	Title, Message string
	// Consent and API-key pages.
	ServiceName, IconURL string
	AccountName          string
	Shares               []string
	CSRF                 string
	HelpText, HelpURL    string
	// Error is the API-key form's complaint about the last key.
	Error string
	// Fields are the API-key form's inputs, in order.
	Fields []KeyField
	// FormAction lists where the form's POST may redirect (TH-55).
	FormAction []string
}

// KeyField is one input of the API-key form.
type KeyField struct {
	// Input is the form field's name: "api_key" for a single key,
	// "field_<name>" for each of upstream.auth.api_key.fields.
	Input string
	// Label is shown next to the input.
	Label string
	// Type is the HTML input type: password, text or email.
	Type string
	// Value refills a text or email input after a refused key; a secret
	// is never sent back to the browser.
	Value string
}

func pageError(status int, title, msg string) *Outcome {
	return &Outcome{Page: &Page{Kind: PageError, Status: status, Title: title, Message: msg}}
}

// exchangeFailure picks the error redirect for a failed exchange of
// Notion's code (R2, protocol 3.5), in RFC 6749 4.1.2.1's codes; Notion
// shows error_description to the user as it is, so each one says what to
// do next.
//
//   - An outage - Notion answered 429, 529 or another 5xx, timed out, or
//     could not be reached - is temporarily_unavailable: the user did
//     nothing wrong, and connecting again later works (security.md F7).
//   - Any other answer from Notion, a 4xx such as 400 invalid_grant (the
//     code expired or was used) or 401 invalid_client, is a refusal:
//     access_denied.
//   - A success we could not read is our failure: server_error.
//
// The exchange is not retried. Notion's code is single use and Notion may
// have spent it before failing, so a second try could only turn an outage
// into a misleading "code expired"; the user gets a fresh code by
// connecting again from Notion.
func exchangeFailure(err error) (code, desc string) {
	var ae *notion.APIError
	switch {
	case notion.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded):
		return "temporarily_unavailable", "Notion is not answering right now; wait a minute, then try again from Notion"
	case errors.As(err, &ae) && ae.Code == "invalid_grant":
		return "access_denied", "The connection took too long and Notion's code expired; start again from Notion"
	case errors.As(err, &ae) && ae.Status >= http.StatusBadRequest && ae.Status < http.StatusInternalServerError:
		return "access_denied", "Notion did not accept the connection; start again from Notion"
	}
	return "server_error", "Notion's answer could not be read; try connecting again from Notion"
}
