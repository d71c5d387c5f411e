package provider

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckURI(t *testing.T) { // TH-28
	p := &Provider{uriHosts: map[string]bool{"github.com": true}}
	cases := []struct {
		uri string
		ok  bool
	}{
		{"https://github.com/golang/go/issues/1", true},
		{"http://github.com/golang/go/issues/1", true}, // Notion's own example is http (protocol 5.1)
		{"https://github.com/golang/go/issues/1?x=1#y", true},
		{"", false},
		{"https://evil.com/golang/go/issues/1", false},
		{"https://github.com.evil.com/a", false},
		{"https://user@github.com/a", false},
		{"https://user:pw@github.com/a", false},
		{"https://github.com:443/a", false},
		{"https://github.com:8080/a", false},
		{"https://GitHub.com/a", false},
		{"https://github.com./a", false},
		{"https://ｇｉｔｈｕｂ.com/a", false},
		{"https://xn--gthub-cta.com/a", false},
		{"https://github.com/a\u200b", false},
		{"https://github.com/a b", false},
		{"https://github.com/a\n", false},
		{"https://github.com/a\x00", false},
		{"javascript:alert(1)", false},
		{"ftp://github.com/a", false},
		{"//github.com/a", false},
		{"https://github.com/" + strings.Repeat("a", 2100), false},
		{"https://github.com/\xff", false},
	}
	for _, tc := range cases {
		err := checkURI(tc.uri, p.serves)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.uri, err)
	}
}

// TestCheckURISubdomains: notion.subdomains serves every customer host
// under the domain and nothing that merely ends like it (TH-28).
func TestCheckURISubdomains(t *testing.T) {
	p := &Provider{uriHosts: map[string]bool{"pagerduty.com": true, "acme.pagerduty.com": true}}
	assert.Error(t, checkURI("https://other.pagerduty.com/incidents/P1", p.serves), "without subdomains only listed hosts")
	p.uriDomain = "pagerduty.com"
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"https://other.pagerduty.com/incidents/P1", true},
		{"https://acme.eu.pagerduty.com/incidents/P1", true},
		{"https://pagerduty.com/incidents/P1", true},
		{"https://evilpagerduty.com/incidents/P1", false},
		{"https://pagerduty.com.evil.com/incidents/P1", false},
		{"https://Other.pagerduty.com/incidents/P1", false},
		{"https://other.pagerduty.com./incidents/P1", false},
		{"https://ｏther.pagerduty.com/incidents/P1", false},
		{"https://other.pagerduty.com:8443/incidents/P1", false},
	} {
		err := checkURI(tc.uri, p.serves)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.uri, err)
	}
}

func TestExpandPlaceholders(t *testing.T) { // protocol 9.2
	groups := map[string]string{"itemNo": "23487", "site": "https://acme.com", "empty": ""}
	cases := map[string]string{
		"Acme Item #$<itemNo>":   "Acme Item #23487",
		"$<site>/$<itemNo>":      "https://acme.com/23487",
		"no placeholder":         "no placeholder",
		"missing $<nope> is ''":  "missing  is ''",
		"unmatched $<empty>!":    "unmatched !",
		"not one: $itemNo $<1a>": "not one: $itemNo $<1a>",
	}
	for in, want := range cases {
		assert.Equal(t, want, expandPlaceholders(in, groups), in)
	}
	assert.Equal(t, []string{"itemNo", "site"}, placeholderNames("$<itemNo> and $<site>"))
}

func TestSanitize(t *testing.T) { // TH-33
	cases := []struct {
		name, in string
		keepNL   bool
		max      int
		want     string
	}{
		{"plain", "hello", false, 100, "hello"},
		{"controls", "a\x00b\x1bc\x7fd", false, 100, "abcd"},
		{"newlines in title become spaces", "a\nb\r\nc", false, 100, "a b  c"},
		{"newlines kept in plain text", "a\r\nb\nc", true, 100, "a\nb\nc"},
		{"bidi override removed", "abc\u202edef", false, 100, "abcdef"},
		{"zwj kept", "👩\u200d💻", false, 100, "👩\u200d💻"},
		{"invalid utf-8", "a\xffb", false, 100, "a\uFFFDb"},
		{"truncated", strings.Repeat("é", 10), false, 5, "éééé…"},
		{"trimmed", "  x  ", false, 100, "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sanitize(tc.in, tc.keepNL, tc.max))
		})
	}
}
