package upstream

import "net/http"

// HTTPClient returns a standard *http.Client over this client's guarded
// transport, for libraries that need one (golang.org/x/oauth2 talking to
// the upstream's token endpoint). The same rules hold as for Do: the
// first request and every redirect must go to an allowed host, the dial
// guard refuses special addresses (TH-30), and the timeout applies. Body
// caps are the library's own (x/oauth2 reads at most 1 MiB).
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{
		Transport:     guardedTransport{c: c},
		CheckRedirect: c.checkRedirect,
		Timeout:       c.timeout,
	}
}

// guardedTransport checks each request's URL against the allowlist before
// it reaches the shared transport.
type guardedTransport struct{ c *Client }

func (g guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := g.c.checkURL(r.URL); err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, err
	}
	return g.c.transport.RoundTrip(r)
}
