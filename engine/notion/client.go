package notion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by NewClient to zero ClientOptions fields.
const (
	// DefaultBaseURL is Notion's public API origin.
	DefaultBaseURL = "https://api.notion.com"
	// DefaultTokenVersion is the Notion-Version sent to /v1/oauth/token,
	// the value of the Link Preview guide (protocol 4.3, 10 #19).
	DefaultTokenVersion = "2022-06-28"
	// DefaultObjectVersion is the Notion-Version sent to
	// /v1/external/object, the only value ever documented for it
	// (protocol 7.1, 10 #20).
	DefaultObjectVersion = "2021-08-16"
	// DefaultTimeout bounds each call.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBodyBytes caps how much of a response body is read.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultUserAgent is sent when ClientOptions.UserAgent is empty.
	DefaultUserAgent = "unfurld"
)

// Endpoint paths, relative to the base URL.
const (
	tokenPath  = "/v1/oauth/token"
	objectPath = "/v1/external/object"
)

// ClientOptions configures a Client. Zero fields take the defaults above.
type ClientOptions struct {
	// BaseURL is Notion's API origin, default DefaultBaseURL. Tests point
	// it at notiontest (STYLE.md 3: every outbound base URL can be
	// overridden). It must be http or https with a host and nothing after
	// the path.
	BaseURL string
	// TokenVersion is the Notion-Version header for /v1/oauth/token,
	// default DefaultTokenVersion (protocol 4.3).
	TokenVersion string
	// ObjectVersion is the Notion-Version header for /v1/external/object,
	// default DefaultObjectVersion (protocol 7.1).
	ObjectVersion string
	// Timeout bounds each call, from dial to the last body byte read.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MaxBodyBytes caps how much of any response body is read, default
	// DefaultMaxBodyBytes (security.md TH-32 applied to Notion).
	MaxBodyBytes int64
	// HTTPClient, when set, is used as is. The default client has its own
	// transport with no proxy from the environment and never follows
	// redirects, so Notion tokens and our integration secret reach no
	// third party.
	HTTPClient *http.Client
	// UserAgent is the User-Agent header, default DefaultUserAgent.
	UserAgent string
}

// Client calls Notion's token and external-object endpoints. It is safe
// for concurrent use.
type Client struct {
	base          string
	tokenVersion  string
	objectVersion string
	timeout       time.Duration
	maxBody       int64
	hc            *http.Client
	userAgent     string
}

// NewClient validates opts, applies defaults and returns a Client.
func NewClient(opts ClientOptions) (*Client, error) {
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("notion base url: %w", err)
	}
	// Userinfo, a query or a fragment would end up in every request URL
	// and in transport errors; none has a legitimate use here.
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("notion base url %q: want http(s)://host[:port][/path]", base)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("notion timeout %s is negative", opts.Timeout)
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("notion max body bytes %d is negative", opts.MaxBodyBytes)
	}
	c := &Client{
		base:          strings.TrimRight(u.String(), "/"),
		tokenVersion:  orDefault(opts.TokenVersion, DefaultTokenVersion),
		objectVersion: orDefault(opts.ObjectVersion, DefaultObjectVersion),
		timeout:       opts.Timeout,
		maxBody:       opts.MaxBodyBytes,
		hc:            opts.HTTPClient,
		userAgent:     orDefault(opts.UserAgent, DefaultUserAgent),
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	if c.hc == nil {
		tr, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			return nil, errors.New("notion: default transport is not *http.Transport")
		}
		tr = tr.Clone()
		// HTTP(S)_PROXY from the environment would route bearer tokens
		// and our integration secret through whatever it names.
		tr.Proxy = nil
		c.hc = &http.Client{
			Transport: tr,
			Timeout:   c.timeout,
			// Notion's API does not redirect; a 3xx is reported as an
			// APIError rather than followed with credentials attached.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// orDefault returns v, or def when v is empty.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// CloseIdleConnections closes idle keep-alive connections of the client's
// transport, for shutdown and for leak checks in tests (security.md
// TH-54).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// request is one call: everything do needs besides the context.
type request struct {
	op      string // names the operation in errors: "exchange code", "update object"
	method  string
	path    string
	version string
	auth    func(*http.Request)
	body    []byte
	// scrub lists values that must never appear in an error, should
	// Notion echo one back in a message.
	scrub []string
}

// response is a finished call: the status, headers and a capped body.
type response struct {
	status int
	header http.Header
	body   []byte
	// truncated is true when the body was longer than the cap.
	truncated bool
}

// do sends r under the client's per-call deadline and reads at most
// maxBody bytes of the answer. Transport failures and the per-call timeout
// are wrapped with ErrUnavailable; the caller's own cancellation is
// returned as the context's error.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, r.method, c.base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return nil, fmt.Errorf("notion %s: build request: %w", r.op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Notion-Version", r.version)
	req.Header.Set("User-Agent", c.userAgent)
	r.auth(req)

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, r.op, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, c.transportError(ctx, r.op, fmt.Errorf("read body: %w", err))
	}
	out := &response{status: resp.StatusCode, header: resp.Header, body: body}
	if int64(len(body)) > c.maxBody {
		out.body, out.truncated = body[:c.maxBody], true
	}
	return out, nil
}

// transportError classifies a failure to get a whole answer. If the
// caller's context is done, that is the caller's decision and not worth a
// retry; otherwise (refused, reset, our own per-call deadline) Notion was
// unavailable and the call may be retried (security.md TH-52).
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("notion %s: %w", op, err)
		}
		return fmt.Errorf("notion %s: %w: %w", op, ctxErr, err)
	}
	return fmt.Errorf("notion %s: %w: %w", op, ErrUnavailable, err)
}
