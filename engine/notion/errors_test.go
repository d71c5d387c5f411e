package notion_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/unfurld/unfurld/engine/notion"
)

func TestAPIErrorString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  *notion.APIError
		want string
	}{
		{name: "status only", err: &notion.APIError{Status: 502}, want: "notion status 502"},
		{name: "full", err: &notion.APIError{Status: 429, Code: "rate_limited", Message: "slow down", RequestID: "r-1", RetryAfter: 2 * time.Second},
			want: "notion status 429 rate_limited: slow down (request id r-1) (retry after 2s)"},
		{name: "additional data never printed", err: &notion.APIError{Status: 400, Code: "validation_error", AdditionalData: []byte(`{"x":"hidden"}`)},
			want: "notion status 400 validation_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.err.Error())
		})
	}
}

// TestErrorClasses checks the helpers a PATCH worker branches on
// (security.md TH-52), through wrapping.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                        string
		err                         error
		auth, rateLimited, retrying bool
	}{
		{name: "401", err: &notion.APIError{Status: 401}, auth: true},
		{name: "403", err: &notion.APIError{Status: 403}, auth: true},
		{name: "404", err: &notion.APIError{Status: 404}},
		{name: "400", err: &notion.APIError{Status: 400}},
		{name: "429", err: &notion.APIError{Status: 429}, rateLimited: true, retrying: true},
		{name: "529", err: &notion.APIError{Status: notion.StatusServiceOverload}, rateLimited: true, retrying: true},
		{name: "500", err: &notion.APIError{Status: 500}, retrying: true},
		{name: "504 wrapped", err: fmt.Errorf("push: %w", &notion.APIError{Status: 504}), retrying: true},
		{name: "unavailable", err: fmt.Errorf("notion update object: %w: %w", notion.ErrUnavailable, errors.New("connection refused")), retrying: true},
		{name: "other", err: errors.New("boom")},
		{name: "nil", err: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.auth, notion.IsAuth(tc.err), "IsAuth")
			assert.Equal(t, tc.rateLimited, notion.IsRateLimited(tc.err), "IsRateLimited")
			assert.Equal(t, tc.retrying, notion.IsRetryable(tc.err), "IsRetryable")
		})
	}
}
