package connect

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
	// FormAction lists where the form's POST may redirect (TH-55).
	FormAction []string
}

func pageError(status int, title, msg string) *Outcome {
	return &Outcome{Page: &Page{Kind: PageError, Status: status, Title: title, Message: msg}}
}
