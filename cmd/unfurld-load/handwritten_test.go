package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// TestHandwritten: the hand-written baseline answers what scenario e
// accepts (an attributes operation, read from the fake upstream's item)
// and refuses a wrong bearer and a URI off the pattern.
func TestHandwritten(t *testing.T) {
	fake, err := startFake()
	require.NoError(t, err)
	t.Cleanup(fake.close)
	h := &handwritten{client: &http.Client{}, upstream: fake.URL, bearer: "Bearer tok"}
	e := echo.New()
	e.POST("/providers/:provider/unfurl", h.unfurl)

	tests := []struct {
		name, bearer, uri string
		want              int
	}{
		{"answers", "Bearer tok", "https://bench.example/items/7", http.StatusOK},
		{"wrong bearer", "Bearer other", "https://bench.example/items/7", http.StatusUnauthorized},
		{"off the pattern", "Bearer tok", "https://bench.example/other/7", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/providers/bench/unfurl", strings.NewReader(`{"uri":"`+tc.uri+`"}`))
			req.Header.Set("Authorization", tc.bearer)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			require.Equal(t, tc.want, rec.Code, rec.Body.String())
			if tc.want != http.StatusOK {
				return
			}
			require.NoError(t, hasAttributes(rec.Code, rec.Body.Bytes()))
			title := gjson.Get(rec.Body.String(), `operations.0.set.#(id=="title").inline.title.value`).String()
			assert.Equal(t, "#7 "+gjson.GetBytes(issueJSON, "title").String(), title)
		})
	}
}
