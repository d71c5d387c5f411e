package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckAdminURL parses the base URL of a running server's admin API
// (server.admin_url, `unfurld status --server`). The admin token is sent
// to it, so plain http is accepted only to a loopback host: anywhere else
// the token would cross the network readable by anyone on the path. The
// same rule serves the configuration check and the command, so neither
// can accept what the other refuses.
func CheckAdminURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("want an absolute http(s) URL like http://127.0.0.1:8080, got %q", raw)
	}
	if u.User != nil {
		return nil, errors.New("credentials do not belong in the URL; the admin token is sent as a header")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want a base URL without query or fragment")
	}
	if u.Scheme == "http" && !LoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("plain http to %s would send the admin token in clear; use https, or a loopback address such as http://127.0.0.1:8080", u.Hostname())
	}
	return u, nil
}

// LoopbackHost reports whether host is "localhost" or a loopback IP
// literal (127.0.0.0/8, ::1). Other names are not resolved: what a name
// resolves to can change between this check and the request.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
