package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/unfurld/unfurld/engine/config"
)

// adminClient calls a running server's admin API (`status`, `disconnect`)
// with server.admin_token.
type adminClient struct {
	token string
	// dial replaces the default dialer when set (tests).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// call sends method to the admin path under base and returns the status
// and body. The token goes only where config.CheckAdminURL allows (https,
// or plain http to loopback) and no redirect is followed, so it cannot be
// led to another host or scheme (TH-49, TH-53). A 401 or a redirect is an
// error; other statuses are the caller's to read.
func (a adminClient) call(ctx context.Context, base, method string, query url.Values, timeout time.Duration, path ...string) (int, []byte, error) {
	u, err := config.CheckAdminURL(base)
	if err != nil {
		return 0, nil, fmt.Errorf("admin URL: %w", err)
	}
	if a.token == "" {
		return 0, nil, errors.New("server.admin_token is not set, so the running server's admin API is off; set it in the configuration the server runs with")
	}
	target := u.JoinPath(path...)
	target.RawQuery = query.Encode()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if a.dial != nil {
		tr.DialContext = a.dial
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("ask the running server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read the server's answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, nil, fmt.Errorf("%s refused the admin token: is server.admin_token the one the server runs with?", u.Redacted())
	case resp.StatusCode/100 == 3:
		return 0, nil, fmt.Errorf("%s answered %s to %s; give the final address with --server (redirects are not followed, so the token stays where it was sent)", u.Redacted(), resp.Status, resp.Header.Get("Location"))
	}
	return resp.StatusCode, body, nil
}

// adminBase is the admin API's address: --server, else server.admin_url.
// Never one guessed from server.listen, which may be a proxy's view or
// another host's.
func adminBase(flag string, cfg *config.Config) string {
	if flag != "" {
		return flag
	}
	return cfg.Server.AdminURL
}
