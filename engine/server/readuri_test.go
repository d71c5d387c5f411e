package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUnfurlBodyMessages: the one-pass body reader still says precisely
// what is wrong (TH-48), and content types other than the exact
// "application/json" still go through the media-type parser.
func TestUnfurlBodyMessages(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.token("tracker")
	const ok = `{"uri":"https://tracker.example.com/acme/items/1"}`
	cases := []struct {
		name, contentType, body string
		wantHTTP                int
		wantMsg                 string
	}{
		{"parameters", "application/json; charset=utf-8", ok, 200, ""},
		{"upper case", "Application/JSON", ok, 200, ""},
		{"unknown fields tolerated", "application/json", `{"uri":"https://tracker.example.com/acme/items/1","x":[1,{"y":null}]}`, 200, ""},
		{"json suffix type", "application/problem+json", ok, 415, "content type must be application/json"},
		{"bad media type", "application/json;;", ok, 415, "content type must be application/json"},
		{"uri is a number", "application/json", `{"uri":42}`, 400, "uri must be a string"},
		{"uri is an object", "application/json", `{"uri":{"a":1}}`, 400, "uri must be a string"},
		{"uri is null", "application/json", `{"uri":null}`, 400, "uri is missing"},
		{"uri missing", "application/json", `{"url":"x"}`, 400, "uri is missing"},
		{"uri empty", "application/json", `{"uri":""}`, 400, "uri is empty"},
		{"null body", "application/json", `null`, 400, "uri is missing"},
		{"two objects", "application/json", `{"uri":"a"}{"uri":"b"}`, 400, "body must hold exactly one JSON object"},
		{"trailing data", "application/json", ok + ` x`, 400, "body must hold exactly one JSON object"},
		{"array", "application/json", `["x"]`, 400, `body must be a JSON object like {"uri": "https://..."}`},
		{"malformed", "application/json", `{"uri":`, 400, `body must be a JSON object like {"uri": "https://..."}`},
		{"invalid utf-8", "application/json", "{\"uri\":\"a\xff\"}", 400, "body is not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodPost, "/providers/tracker/unfurl", tok, tc.contentType, tc.body)
			require.Equal(t, tc.wantHTTP, rec.Code, rec.Body.String())
			if tc.wantMsg != "" {
				status, msg := errorSet(t, rec)
				assert.Equal(t, tc.wantHTTP, status)
				assert.Equal(t, tc.wantMsg, msg)
			}
		})
	}
}

// TestCachedBearerStillChecked: a bearer served from the cache is still
// refused on another provider's route (TH-27) and once it expires
// (TH-26); a connection deleted through the shared store is refused at once.
func TestCachedBearerStillChecked(t *testing.T) {
	h := newHarness(t)
	tok, conn := h.token("tracker")
	uri := "https://tracker.example.com/acme/items/1"
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok, uri).Code)

	assert.Equal(t, http.StatusUnauthorized, h.unfurl("wiki", tok, "https://wiki.example.com/pages/home").Code, "cached, other provider")

	// Deleted through the shared store (a disconnect, the connect flow,
	// the live updates): refused at once.
	require.NoError(t, h.st.DeleteConnection(t.Context(), conn))
	assert.Equal(t, http.StatusUnauthorized, h.unfurl("tracker", tok, uri).Code, "deleted through the shared store")

	// Deleted behind its back (another process on the same file):
	// served from the cache until the TTL, refused after it.
	tok2, _ := h.token("tracker")
	require.Equal(t, http.StatusOK, h.unfurl("tracker", tok2, uri).Code)
	require.NoError(t, h.raw.DeleteToken(t.Context(), digestOf(tok2)))
	assert.Equal(t, http.StatusOK, h.unfurl("tracker", tok2, uri).Code, "within the cache TTL")
	h.clock.Advance(5 * time.Second)
	assert.Equal(t, http.StatusUnauthorized, h.unfurl("tracker", tok2, uri).Code, "after the cache TTL")
}
