package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecurePageHeaders pins every header of our HTML pages (TH-03, TH-05,
// TH-10) and how form-action is built from the caller's list (TH-55).
func TestSecurePageHeaders(t *testing.T) {
	t.Parallel()
	base := "default-src 'none'; style-src '" + pageStyleHash() + "'; img-src https: data:; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	cases := []struct {
		name       string
		formAction []string
		want       string // what follows "form-action 'self'"
	}{
		{name: "no form", want: ""},
		{name: "origins", formAction: []string{"https://github.com", "https://www.notion.so"}, want: " https://github.com https://www.notion.so"},
		{
			name:       "full URLs reduce to their origin",
			formAction: []string{"https://github.com/login/oauth/authorize?client_id=a&scope=repo#x", "https://notion.so/externalintegrationauthcallback"},
			want:       " https://github.com https://notion.so",
		},
		{name: "case is folded and duplicates dropped", formAction: []string{"HTTPS://GitHub.com/a", "https://github.com/b", "https://github.com"}, want: " https://github.com"},
		{name: "ports are kept", formAction: []string{"http://127.0.0.1:8080/cb", "https://auth.example:8443"}, want: " http://127.0.0.1:8080 https://auth.example:8443"},
		{name: "IPv6 literal", formAction: []string{"https://[::1]:9000/x"}, want: " https://[::1]:9000"},
		{
			name: "anything that could add a directive or a wider source is dropped",
			formAction: []string{
				"https://a.example; script-src *",
				"https://a.example,https://b.example",
				"https://a.example\r\nSet-Cookie: x=1",
				"https://a.example/ x",
				"'unsafe-inline'",
				"*",
				"https://*.example.com",
				"https:",
				"https://",
				"javascript:alert(1)",
				"data:text/html,x",
				"ftp://a.example",
				"//a.example",
				"/relative",
				"https://user:pw@a.example",
				"https://a.example\\@b.example",
				"https://ä.example",
				"",
			},
			want: "",
		},
		{name: "valid entries survive next to invalid ones", formAction: []string{"bad value", "https://ok.example/cb"}, want: " https://ok.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			h.Set("Content-Type", "application/json") // must be replaced, not appended
			securePageHeaders(h, tc.formAction)
			want := http.Header{
				"Content-Type":            {"text/html; charset=utf-8"},
				"X-Content-Type-Options":  {"nosniff"},
				"X-Frame-Options":         {"DENY"},
				"Referrer-Policy":         {"no-referrer"},
				"Cache-Control":           {"no-store"},
				"Pragma":                  {"no-cache"},
				"Content-Security-Policy": {base + tc.want},
			}
			assert.Equal(t, want, h)
			csp := h.Get("Content-Security-Policy")
			assert.Contains(t, csp, "frame-ancestors 'none'")
			assert.NotContains(t, csp, "script-src")
			assert.NotContains(t, csp, "unsafe")
			assert.Equal(t, 5, strings.Count(csp, ";"), "exactly six directives")
		})
	}
}

func TestPageStyleHashShape(t *testing.T) {
	t.Parallel()
	h := pageStyleHash()
	require.True(t, strings.HasPrefix(h, "sha256-"), h)
	assert.Len(t, h, len("sha256-")+44, "base64 of 32 bytes")
}
