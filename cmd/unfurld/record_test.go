package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ticketAPI is a tracker whose ticket URLs end in a slash and whose user
// lookup takes a query string: the two fixture names a user got wrong.
func ticketAPI(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.RequestURI() {
		case "/api/v2/tickets/OPS-1/":
			_, _ = io.WriteString(w, `{"summary":"Assigned","owner_id":"u1"}`)
		case "/api/v2/tickets/OPS-2/":
			_, _ = io.WriteString(w, `{"summary":"Unassigned","owner_id":null}`)
		case "/api/v2/users/u1?fields=name,email":
			_, _ = io.WriteString(w, `{"name":"Ann"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"Not Found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeTicketConfig(t *testing.T, api string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`server: {mode: development}
providers:
  - name: acme
    upstream: {base_url: `+api+`/api, allow_private_networks: true}
    patterns:
      - name: ticket
        regex: '^https://acme\.example/t/(?<key>[A-Z]{2,10}-\d{1,8})$'
        samples: [https://acme.example/t/OPS-1]
        requests:
          - {name: ticket, url: '/v2/tickets/{key}/'}
          - {name: owner, url: '/v2/users/{ticket.owner_id}?fields=name,email', optional: true}
        attributes:
          - {id: title, kind: title, path: summary}
          - {id: owner, kind: plain_text, path: name, from: owner}
`), 0o600))
	return cfg
}

// TestPreviewRecord: `preview --record` writes a complete case through
// the provider's own client (trailing-slash path, query string, status
// file), and `test` passes every recorded case as it stands. An error
// answer is recorded only with --expect-error.
func TestPreviewRecord(t *testing.T) {
	cfg := writeTicketConfig(t, ticketAPI(t).URL)
	dir := filepath.Join(t.TempDir(), "testdata")
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantErr   string
		wantFiles []string // under DIR/acme/; nil: nothing recorded
	}{
		{
			name: "assigned", args: []string{"https://acme.example/t/OPS-1"},
			wantErr:   "recorded " + filepath.Join(dir, "acme", "ticket-OPS-1") + " (2 upstream answers)",
			wantFiles: []string{"ticket-OPS-1/request.json", "ticket-OPS-1/upstream/api/v2/tickets/OPS-1/index.json", "ticket-OPS-1/upstream/api/v2/users/u1%3Ffields=name,email.json", "ticket-OPS-1/want.golden.json"},
		},
		{
			name: "unassigned skips the owner", args: []string{"--trace", "--case", "unassigned", "https://acme.example/t/OPS-2"},
			wantErr:   "skipped: {ticket.owner_id}: value is null or absent",
			wantFiles: []string{"unassigned/request.json", "unassigned/upstream/api/v2/tickets/OPS-2/index.json", "unassigned/want.golden.json"},
		},
		{
			name: "error answer not expected", args: []string{"--case", "missing", "https://acme.example/t/OPS-3"},
			wantCode: exitFailure,
			wantErr:  `not recorded: the answer is an error operation (404 "Not found"); run with --trace to see why, or add --expect-error to record a case that expects it`,
		},
		{
			name: "error answer expected", args: []string{"--case", "missing", "--expect-error", "https://acme.example/t/OPS-3"},
			wantErr:   "recorded ",
			wantFiles: []string{"missing/request.json", "missing/upstream/api/v2/tickets/OPS-3/index.status", "missing/want.golden.json"},
		},
		{
			name: "an existing case is kept", args: []string{"https://acme.example/t/OPS-1"},
			wantCode: exitFailure,
			wantErr:  "already exists",
		},
		{
			name: "bad case name", args: []string{"--case", "../x", "https://acme.example/t/OPS-1"},
			wantCode: exitFailure,
			wantErr:  `case name "../x"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := listFiles(t, filepath.Join(dir, "acme"))
			e, _, errb := testEnv(nil)
			code := run(t.Context(), append([]string{"preview", "--config", cfg, "--record", dir}, tc.args...), e)
			assert.Equal(t, tc.wantCode, code, errb.String())
			assert.Contains(t, errb.String(), tc.wantErr)
			added := newFiles(before, listFiles(t, filepath.Join(dir, "acme")))
			if tc.wantFiles == nil {
				assert.Empty(t, added, "nothing recorded")
				return
			}
			assert.ElementsMatch(t, tc.wantFiles, added)
		})
	}

	golden, err := os.ReadFile(filepath.Join(dir, "acme", "ticket-OPS-1", "want.golden.json"))
	require.NoError(t, err)
	assert.Contains(t, string(golden), `"Ann"`, "the owner came through the query-string request")
	golden, err = os.ReadFile(filepath.Join(dir, "acme", "unassigned", "want.golden.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(golden), `"owner"`, "the skipped request's attribute is missing")
	assert.Contains(t, string(golden), `"Unassigned"`)

	e, out, errb := testEnv(nil)
	require.Equal(t, exitOK, run(t.Context(), []string{"test", "--config", cfg, "-v", dir}, e), out.String()+errb.String())
	assert.Contains(t, out.String(), "3 passed, 0 failed")
}

// TestTestUpdateRefusesErrorGolden: `test --update` never writes an error
// answer as the golden of a case that does not expect one, nor a golden
// from a run with a missing fixture file; it exits 1 and says why.
func TestTestUpdateRefusesErrorGolden(t *testing.T) {
	cfg := writeTicketConfig(t, "https://api.acme.example")
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "error answer",
			files: map[string]string{
				"request.json": `{"uri": "https://acme.example/t/OPS-3"}`,
				"upstream/api/v2/tickets/OPS-3/index.status": "404\n",
			},
			want: []string{`the case does not expect an error, but the answer is one: error operation 404 "Not found"`, `add "expect_error": true to request.json`, "want.golden.json not written"},
		},
		{
			name:  "fixture at a path the request never reads",
			files: map[string]string{"request.json": `{"uri": "https://acme.example/t/OPS-2"}`, "upstream/api/v2/tickets/OPS-2/.json": `{"summary":"Unassigned"}`},
			want: []string{
				"GET /api/v2/tickets/OPS-2/ has no fixture file: add upstream/api/v2/tickets/OPS-2/index.json",
				"upstream/api/v2/tickets/OPS-2/.json was not read by any request",
				"want.golden.json not written",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			caseDir := filepath.Join(dir, "acme", "case")
			for rel, body := range tc.files {
				p := filepath.Join(caseDir, filepath.FromSlash(rel))
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			}
			e, out, errb := testEnv(nil)
			assert.Equal(t, exitFailure, run(t.Context(), []string{"test", "--config", cfg, "--update", dir}, e), errb.String())
			assert.Contains(t, out.String(), "FAIL acme/case")
			assert.Contains(t, out.String(), "0 passed, 1 failed")
			for _, w := range tc.want {
				assert.Contains(t, out.String(), w)
			}
			assert.NoFileExists(t, filepath.Join(caseDir, "want.golden.json"))
		})
	}
}

// listFiles lists the files under dir, relative and slash-separated.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return files
}

// newFiles is after without before.
func newFiles(before, after []string) []string {
	seen := map[string]bool{}
	for _, f := range before {
		seen[f] = true
	}
	var out []string
	for _, f := range after {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}
