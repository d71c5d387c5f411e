package canary_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/canary"
	"github.com/unfurld/unfurld/engine/upstream/upstreamtest"
)

// sampleByURL finds a sample of a provider in a report.
func sampleByURL(t *testing.T, r *canary.Report, prov, url string) canary.SampleResult {
	t.Helper()
	for _, p := range r.Providers {
		if p.Provider != prov {
			continue
		}
		for _, s := range p.Samples {
			if s.URL == url {
				return s
			}
		}
	}
	require.Failf(t, "no sample", "%s %s", prov, url)
	return canary.SampleResult{}
}

func providerResult(t *testing.T, r *canary.Report, prov string) canary.ProviderResult {
	t.Helper()
	for _, p := range r.Providers {
		if p.Provider == prov {
			return p
		}
	}
	require.Failf(t, "no provider", "%s", prov)
	return canary.ProviderResult{}
}

// breakUpstream makes sample 2 lose its author, sample 3 answer 404 and
// sample 4 fail with a 500.
func breakUpstream(up *upstreamtest.Server) {
	up.Set("/items/2", upstreamtest.Response{Status: 200, JSON: map[string]any{"title": "Two"}})
	up.Set("/items/3", upstreamtest.Response{Status: 404, JSON: map[string]any{"message": "Not Found"}})
	up.Set("/items/4", upstreamtest.Response{Status: 500, JSON: map[string]any{"message": "boom"}})
}

// TestRunAgainstBaseline records a baseline from a healthy upstream, then
// breaks it: a sample that still maps is ok, one whose attribute went
// missing and one whose status changed are "changed", one whose upstream
// errs is "failed"; the api_key provider with a canary credential runs,
// the one without is skipped.
func TestRunAgainstBaseline(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock()})

	first := r.Run(t.Context(), nil, nil)
	require.Zero(t, first.Regressions(), "%+v", first)
	base, left := canary.NewBaseline(first)
	require.Empty(t, left)
	require.Len(t, base.Samples, 6)

	breakUpstream(up)
	rep := r.Run(t.Context(), nil, base)
	assert.True(t, rep.Baseline)

	const items = "https://things.example.com/items/"
	tests := []struct {
		name, prov, url string
		verdict         string
		status          int
		changes         []string
		errSet          bool
	}{
		{name: "still maps", prov: "things", url: items + "1", verdict: canary.VerdictOK, status: 200},
		{name: "attribute went missing", prov: "things", url: items + "2", verdict: canary.VerdictChanged, status: 200,
			changes: []string{"attribute author missing (was inline.plain_text)"}},
		{name: "status changed to 404", prov: "things", url: items + "3", verdict: canary.VerdictChanged, status: 404,
			changes: []string{"status 404, was 200"}},
		{name: "upstream errors", prov: "things", url: items + "4", verdict: canary.VerdictFailed, status: 503, errSet: true},
		{name: "api_key with a canary credential", prov: "keyed", url: "https://keyed.example.com/docs/7", verdict: canary.VerdictOK, status: 200},
		{name: "api_key form of two fields", prov: "pair", url: "https://pair.example.com/docs/3", verdict: canary.VerdictOK, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleByURL(t, rep, tc.prov, tc.url)
			assert.Equal(t, tc.verdict, s.Verdict)
			assert.Equal(t, tc.status, s.Status)
			assert.Equal(t, tc.changes, s.Changes)
			if tc.errSet {
				assert.Contains(t, s.Error, "request item: status")
			} else {
				assert.Empty(t, s.Error)
			}
		})
	}
	assert.Equal(t, canary.SkipNoCredential, providerResult(t, rep, "nocred").Skipped)
	assert.Equal(t, 3, rep.Regressions())
	ok, changed, failed := providerResult(t, rep, "things").Counts()
	assert.Equal(t, [3]int{1, 2, 1}, [3]int{ok, changed, failed})
}

// TestRunWithoutBaseline: with nothing to compare with, a sample that
// maps is ok and one that does not map or errs fails.
func TestRunWithoutBaseline(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	breakUpstream(up)
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock()})
	rep := r.Run(t.Context(), []string{"things"}, nil)
	require.Len(t, rep.Providers, 1, "only the provider asked for")
	assert.False(t, rep.Baseline)
	got := map[string]string{}
	for _, s := range rep.Providers[0].Samples {
		got[s.URL] = s.Verdict
	}
	assert.Equal(t, map[string]string{
		"https://things.example.com/items/1": canary.VerdictOK,
		"https://things.example.com/items/2": canary.VerdictOK, // title alone still maps
		"https://things.example.com/items/3": canary.VerdictFailed,
		"https://things.example.com/items/4": canary.VerdictFailed,
	}, got)
	s2 := sampleByURL(t, rep, "things", "https://things.example.com/items/2")
	assert.Equal(t, map[string]string{"title": "inline.title", "dev": "inline.plain_text"}, s2.Attributes)
	assert.Equal(t, 2, rep.Regressions())
}

// TestNewAttributeIsNotARegression: an attribute the baseline lacks is
// reported, but the sample stays ok.
func TestNewAttributeIsNotARegression(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	up.Set("/items/1", upstreamtest.Response{Status: 200, JSON: map[string]any{"title": "One"}})
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock()})
	base, _ := canary.NewBaseline(r.Run(t.Context(), []string{"things"}, nil))
	up.Set("/items/1", upstreamtest.Response{Status: 200, JSON: map[string]any{"title": "One", "author": "ann"}})
	s := sampleByURL(t, r.Run(t.Context(), []string{"things"}, base), "things", "https://things.example.com/items/1")
	assert.Equal(t, canary.VerdictOK, s.Verdict)
	assert.Equal(t, []string{"attribute author new (inline.plain_text)"}, s.Changes)
}

// TestCanaryCredentials (TH-27, TH-49): the auth-none provider runs with
// its own service token, the api_key providers with their canary
// credential (one value, or the fields of a two-field form), and no
// credential appears in the logs or the report.
func TestCanaryCredentials(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	breakUpstream(up) // failures and changes get logged too
	logs := &logBuffer{}
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock(), Logger: newLogger(logs)})
	base, _ := canary.NewBaseline(r.Run(t.Context(), nil, nil))
	rep := r.Run(t.Context(), nil, base)

	assert.Equal(t, "Bearer "+staticToken, authOf(up, "/items/1"))
	assert.Equal(t, "Bearer "+canaryToken, authOf(up, "/keyed/docs/7"))
	assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("ops@example.com:"+pairToken)), authOf(up, "/pair/docs/3"))
	assert.Empty(t, authOf(up, "/nocred/docs/1"), "a skipped provider sends nothing")

	js, err := json.Marshal(rep)
	require.NoError(t, err)
	require.Contains(t, logs.String(), "canary failed", "the scan covers the problem lines")
	for _, secret := range []string{staticToken, canaryToken, pairToken} {
		assert.NotContains(t, logs.String(), secret)
		assert.NotContains(t, string(js), secret)
	}
}

// TestRequestsSpacedByBudget: the provider's max_requests_per_hour (60)
// spaces its samples a minute per request sent, without sleeping.
func TestRequestsSpacedByBudget(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := canary.New(canary.Options{Registry: registry(t, newFakeUpstream(t)), Clock: clock})
	start := clock.Now()
	rep := r.Run(t.Context(), []string{"things"}, nil)
	assert.Equal(t, []time.Duration{time.Minute, time.Minute, time.Minute}, clock.Waits())
	assert.Equal(t, start.Add(3*time.Minute), rep.FinishedAt)
}

// TestRunCancelled: samples not run because ctx ended are failures, and
// nothing waits.
func TestRunCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := canary.New(canary.Options{Registry: registry(t, newFakeUpstream(t)), Clock: newFakeClock()})
	rep := r.Run(ctx, []string{"things"}, nil)
	for _, s := range rep.Providers[0].Samples {
		assert.Equal(t, canary.VerdictFailed, s.Verdict)
		assert.Contains(t, s.Error, "not run")
	}
}

// TestBaselineFile: a baseline survives a write and a read, Merge keeps
// the providers a run did not cover, and a file of another version is
// refused with a way out.
func TestBaselineFile(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock()})
	base, _ := canary.NewBaseline(r.Run(t.Context(), nil, nil))
	path := filepath.Join(t.TempDir(), "canary.json")
	require.NoError(t, base.Write(path))
	got, err := canary.ReadBaseline(path)
	require.NoError(t, err)
	assert.Equal(t, base.Samples, got.Samples)

	// Re-recording "things" alone keeps the others.
	up.Set("/items/1", upstreamtest.Response{Status: 200, JSON: map[string]any{"title": "One"}})
	part, _ := canary.NewBaseline(r.Run(t.Context(), []string{"things"}, nil))
	part.Merge(got, []string{"things"})
	require.Len(t, part.Samples, 6)
	assert.Equal(t, "keyed", part.Samples[4].Provider)
	assert.Equal(t, "pair", part.Samples[5].Provider)
	assert.Equal(t, map[string]string{"title": "inline.title", "dev": "inline.plain_text"}, part.Samples[0].Attributes)

	require.NoError(t, os.WriteFile(path, []byte(`{"v": 9, "samples": []}`), 0o600))
	_, err = canary.ReadBaseline(path)
	require.ErrorContains(t, err, "record it again")
	require.NoError(t, os.WriteFile(path, []byte(`{"v": 1,`), 0o600))
	_, err = canary.ReadBaseline(path)
	require.ErrorContains(t, err, path)
}

// TestBaselineLeavesFailuresOut: a sample whose upstream failed is not
// how it should look, so it is not recorded, and the caller is told.
func TestBaselineLeavesFailuresOut(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t)
	up.Set("/items/4", upstreamtest.Response{Status: 502, JSON: map[string]any{}})
	r := canary.New(canary.Options{Registry: registry(t, up), Clock: newFakeClock()})
	base, left := canary.NewBaseline(r.Run(t.Context(), []string{"things"}, nil))
	assert.Len(t, base.Samples, 3)
	require.Len(t, left, 1)
	assert.Contains(t, left[0], "https://things.example.com/items/4")
}
