package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/notion/notiontest"
	"github.com/unfurld/unfurld/engine/sealing"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
)

// Secrets of the kill test's configuration; development mode accepts
// them written in the file (TH-53).
const (
	killWebhookSecret = "kill-test-webhook-secret-0123456789"
	killAdminToken    = "kill-test-admin-token-0123456789"
)

// killConfig serves one provider whose previews change only through
// signed webhooks: poll_interval 0s turns polling off, so nothing but the
// webhooks and the recovery after a restart can bring a change to Notion.
// KEYS, DB, NOTION and UP are replaced.
const killConfig = `server:
  mode: development
  secret_keys: "KEYS"
  admin_token: ` + killAdminToken + `
  shutdown_timeout: 5s
  log: {level: info, format: json}
storage: {path: DB}
notion: {api_base_url: NOTION, timeout: 30s}
providers:
  - name: tracker
    dev: Acme
    upstream: {base_url: UP, allow_private_networks: true, timeout: 30s}
    live:
      poll_interval: 0s
      webhook:
        secret: ` + killWebhookSecret + `
        header: X-Tracker-Signature
        prefix: "sha256="
        uris: '[event.item.url]'
    patterns:
      - name: item
        regex: '^https://tracker\.example\.com/items/(?<id>\d{1,10})$'
        samples: [https://tracker.example.com/items/1]
        requests: [{name: item, url: "/items/{id}"}]
        attributes:
          - {id: title, kind: title, path: title}
          - {id: state, kind: enum, path: state}
`

// killObjects is how many upstream objects change during the burst.
const killObjects = 6

// itemURI is the link of object n.
func itemURI(n int) string { return "https://tracker.example.com/items/" + strconv.Itoa(n) }

// itemTitle and itemState are object n's attributes at version v: every
// version is a state Notion must be able to tell from the others.
func itemTitle(n, v int) string { return fmt.Sprintf("Item %d v%d", n, v) }

func itemState(v int) string {
	if v%2 == 0 {
		return "closed"
	}
	return "open"
}

// TestKillMidBurst_F1 is issue 4's durability bar, driven through the real
// binary (security.md F1, TH-44): a burst of signed webhooks, each
// counted as acknowledged only once answered 202, while Notion hangs on
// the first PATCH (so later states pile up in the outbox) and, for the
// second half, the upstream hangs too (so acknowledged refreshes have not
// run); then SIGKILL. The file opens clean, holds every acknowledged
// refresh as a pending mark and the undelivered states in the outbox.
// Restarted with both fakes healthy, the binary brings every preview to
// its latest state: the last PATCH Notion accepted for each subscription
// carries exactly that state, no PATCH carries an older state after a
// newer one, and nothing is left queued or pending.
func TestKillMidBurst_F1(t *testing.T) {
	bin := buildUnfurld(t)
	up := newBurstUpstream(t)
	nt := notiontest.New(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "data", "unfurld.db")
	keySpec := sealing.GenerateKeySpec("k1")
	cfgPath := filepath.Join(dir, "config.yaml")
	yml := strings.NewReplacer("KEYS", keySpec, "DB", dbPath, "NOTION", nt.URL(), "UP", up.URL).Replace(killConfig)
	require.NoError(t, os.WriteFile(cfgPath, []byte(yml), 0o600))

	// Two connections: c1 pasted every object, c2 the first half. Their
	// subscriptions start with a hash no state has, so each object's
	// first refresh is a change.
	subs := seedKillStore(t, dbPath, keySpec, nt, map[string][]int{
		"c1": {1, 2, 3, 4, 5, 6},
		"c2": {1, 2, 3},
	})
	latest := map[int]int{}

	// Run 1. The first PATCH hangs; it holds the delivery pass, so every
	// later state stays in the outbox until the kill.
	nt.ScriptPatch(notiontest.Response{Hang: true})
	p1 := startUnfurld(t, bin, cfgPath)
	for range 2 {
		for n := 1; n <= killObjects; n++ {
			v := up.bump(n)
			require.Equal(t, http.StatusAccepted, p1.webhook(t, n), "webhook for %s v%d", itemURI(n), v)
			latest[n] = v
		}
	}
	select {
	case <-nt.Hung():
	case <-time.After(10 * time.Second): // a guard against a hang, not a wait
		t.Fatalf("no PATCH reached Notion\n%s", p1.logs)
	}
	waitFor(t, 10*time.Second, p1, "every subscription refreshed once", func() bool { return up.served() >= len(subs) })

	// The second half of the burst: the upstream hangs, so these
	// acknowledged refreshes are still queued or in flight at the kill.
	up.block()
	for n := 1; n <= killObjects; n++ {
		v := up.bump(n)
		require.Equal(t, http.StatusAccepted, p1.webhook(t, n), "webhook for %s v%d", itemURI(n), v)
		latest[n] = v
	}
	p1.kill(t)

	// The file checks clean (bolt.Open runs the integrity check) and
	// holds what was acknowledged: a pending mark on every subscription
	// (the second half's refreshes never ran) and the states Notion has
	// not accepted.
	st, err := bolt.Open(dbPath, bolt.Options{LockTimeout: time.Second})
	require.NoError(t, err, "the file after kill -9")
	pending := 0
	require.NoError(t, st.ListSubscriptions(t.Context(), "tracker", func(s store.Subscription) error {
		if s.Refresh.Outcome == store.RefreshPending {
			pending++
		}
		return nil
	}))
	depth, err := st.OutboxDepth(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	assert.Equal(t, len(subs), pending, "every acknowledged refresh is marked pending")
	assert.Positive(t, depth["tracker"], "undelivered states wait in the outbox")
	before := len(nt.PatchCalls())
	t.Logf("killed after %d PATCHes (one hung); %d marks pending, %d states queued", before, pending, depth["tracker"])

	// Run 2: both fakes healthy. F1: the restart serves within 5 s.
	up.unblock()
	p2 := startUnfurld(t, bin, cfgPath)
	waitFor(t, 20*time.Second, p2, "every preview at its latest state", func() bool {
		last := lastAccepted(t, nt.PatchCalls())
		for _, k := range subs {
			if last[k] != latest[objectOf(k.URI)] {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, p2, "nothing queued or pending", func() bool {
		pr := p2.adminStatus(t)
		return pr.QueueDepth == 0 && pr.Outcomes[store.RefreshPending] == 0
	})

	// Every PATCH carried a full state of its object (title and state of
	// one version), and none an older state after a newer one.
	calls := nt.PatchCalls()
	t.Logf("restarted: %d PATCHes for %d subscriptions", len(calls)-before, len(subs))
	seen := map[patchKey]int{}
	for i, c := range calls {
		k := patchKey{Token: c.Token, URI: c.Body.URI}
		title, state := patchAttributes(t, c.Raw)
		v := versionOf(t, title)
		n := objectOf(c.Body.URI)
		assert.Equal(t, itemTitle(n, v), title, "call %d", i)
		assert.Equal(t, itemState(v), state, "call %d: the state of the same version", i)
		assert.GreaterOrEqual(t, v, seen[k], "call %d: %s got v%d after v%d", i, c.Body.URI, v, seen[k])
		seen[k] = max(seen[k], v)
	}

	// A clean stop leaves a clean file with nothing left to do (F15).
	p2.stop(t)
	st, err = bolt.Open(dbPath, bolt.Options{LockTimeout: time.Second})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	depth, err = st.OutboxDepth(t.Context())
	require.NoError(t, err)
	assert.Empty(t, depth)
}

// patchKey is a subscription as Notion sees it: a connection's token and
// a URI.
type patchKey struct{ Token, URI string }

// seedKillStore creates the connections, each with a sealed Notion token
// the fake Notion accepts (ntn_<id>), and their subscriptions, as the
// OAuth flow and the unfurls would have; then closes the file for the
// binary.
func seedKillStore(t *testing.T, dbPath, keySpec string, nt *notiontest.Server, objects map[string][]int) []patchKey {
	t.Helper()
	ctx := t.Context()
	st, err := bolt.Open(dbPath, bolt.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	kr, err := sealing.ParseKeyring(keySpec)
	require.NoError(t, err)
	now := time.Now().UTC()
	var subs []patchKey
	for id, ns := range objects {
		conn := store.Connection{
			ID: id, Provider: "tracker", AccountKey: "tracker:" + id, AccountName: id,
			WorkspaceID: "ws-" + id, Status: store.StatusActive, CreatedAt: now, UpdatedAt: now,
		}
		token := "ntn_" + id
		conn.NotionToken, err = sealing.SealConnectionField(kr, conn, sealing.FieldNotionToken, []byte(token))
		require.NoError(t, err)
		require.NoError(t, st.CreateConnection(ctx, conn))
		nt.AddToken(token)
		for _, n := range ns {
			k := store.SubscriptionKey{Provider: "tracker", ConnectionID: id, URI: itemURI(n)}
			_, err := st.PutSubscription(ctx, store.Subscription{SubscriptionKey: k, AttrHash: "seeded", CreatedAt: now, UpdatedAt: now})
			require.NoError(t, err)
			subs = append(subs, patchKey{Token: token, URI: k.URI})
		}
	}
	return subs
}

// buildUnfurld builds the binary under test from this package.
func buildUnfurld(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unfurld")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// unfurldProc is a running binary.
type unfurldProc struct {
	cmd  *exec.Cmd
	addr string
	logs *logSink
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startUnfurld runs `unfurld serve` on a free loopback port and waits, at
// most 5 s (F1), until it listens. It is killed when the test ends, and
// its log is printed if the test failed.
func startUnfurld(t *testing.T, bin, cfgPath string) *unfurldProc {
	t.Helper()
	return startUnfurldWith(t, bin, cfgPath, "127.0.0.1:0", nil)
}

// startUnfurldWith is startUnfurld listening on listen, with env (NAME=value)
// as its whole environment besides HOME. It runs in a directory of its
// own, where relative paths (development mode's generated secrets among
// them) land; cfgPath must be absolute.
func startUnfurldWith(t *testing.T, bin, cfgPath, listen string, env []string) *unfurldProc {
	t.Helper()
	require.True(t, filepath.IsAbs(cfgPath), cfgPath)
	p := &unfurldProc{logs: &logSink{addr: make(chan string, 1)}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--config", cfgPath, "--listen", listen)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append([]string{"HOME=" + p.cmd.Dir}, env...) // nothing from the real environment
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("unfurld (pid %d) log:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	select {
	case p.addr = <-p.logs.addr:
	case <-p.done:
		t.Fatalf("unfurld exited: %v\n%s", p.err, p.logs)
	case <-time.After(5 * time.Second):
		t.Fatalf("unfurld did not listen within 5 s\n%s", p.logs)
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *unfurldProc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL, not %v", p.err)
}

// stop sends SIGTERM and requires a clean exit within the shutdown
// timeout.
func (p *unfurldProc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("unfurld did not stop on SIGTERM\n%s", p.logs)
	}
	require.NoError(t, p.err, "exit status after SIGTERM")
}

// webhook posts the signed event of object n and returns the status.
func (p *unfurldProc) webhook(t *testing.T, n int) int {
	t.Helper()
	event := fmt.Sprintf(`{"action":"updated","item":{"url":%q}}`, itemURI(n))
	mac := hmac.New(sha256.New, []byte(killWebhookSecret))
	mac.Write([]byte(event))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+p.addr+"/providers/tracker/webhook", strings.NewReader(event))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tracker-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// providerStatus is the part of the admin report the test reads.
type providerStatus struct {
	Name       string         `json:"name"`
	QueueDepth int            `json:"queue_depth"`
	Outcomes   map[string]int `json:"outcomes"`
}

// adminStatus reads the tracker's line of GET /admin/status.
func (p *unfurldProc) adminStatus(t *testing.T) providerStatus {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.addr+"/admin/status", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+killAdminToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var report struct {
		Providers []providerStatus `json:"providers"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&report))
	require.Len(t, report.Providers, 1)
	return report.Providers[0]
}

// waitFor polls cond every 20 ms until it holds, failing with the binary's
// log after timeout.
func waitFor(t *testing.T, timeout time.Duration, p *unfurldProc, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s\n%s", timeout, what, p.logs)
		}
		select {
		case <-p.done:
			t.Fatalf("unfurld exited while waiting for %s: %v\n%s", what, p.err, p.logs)
		case <-time.After(20 * time.Millisecond): // a poll interval, not a synchronisation
		}
	}
}

// lastAccepted is, per subscription, the version of the last PATCH Notion
// answered 200.
func lastAccepted(t *testing.T, calls []notiontest.PatchCall) map[patchKey]int {
	t.Helper()
	out := map[patchKey]int{}
	for _, c := range calls {
		if c.Status != http.StatusOK {
			continue
		}
		title, _ := patchAttributes(t, c.Raw)
		out[patchKey{Token: c.Token, URI: c.Body.URI}] = versionOf(t, title)
	}
	return out
}

// patchAttributes returns the title and state a PATCH sets (protocol 7.2:
// the full attribute set on the "attributes" path).
func patchAttributes(t *testing.T, raw []byte) (title, state string) {
	t.Helper()
	var env struct {
		Operations []struct {
			Path []string `json:"path"`
			Set  []struct {
				ID     string `json:"id"`
				Inline struct {
					Title *struct{ Value string } `json:"title"`
					Enum  *struct{ Value string } `json:"enum"`
				} `json:"inline"`
			} `json:"set"`
		} `json:"operations"`
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	require.Len(t, env.Operations, 1, "%s", raw)
	require.Equal(t, []string{"attributes"}, env.Operations[0].Path, "%s", raw)
	for _, a := range env.Operations[0].Set {
		switch {
		case a.ID == "title" && a.Inline.Title != nil:
			title = a.Inline.Title.Value
		case a.ID == "state" && a.Inline.Enum != nil:
			state = a.Inline.Enum.Value
		}
	}
	return title, state
}

var versionRE = regexp.MustCompile(`^Item \d+ v(\d+)$`)

// versionOf reads the version out of a title.
func versionOf(t *testing.T, title string) int {
	t.Helper()
	m := versionRE.FindStringSubmatch(title)
	require.NotNil(t, m, "title %q", title)
	v, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return v
}

// objectOf is the object number of a link.
func objectOf(uri string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(uri, "https://tracker.example.com/items/"))
	return n
}

// burstUpstream is an upstream whose objects gain a version at each
// bump. While blocked, requests hang until unblocked or abandoned.
type burstUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	versions map[int]int
	ok       int
	blocked  chan struct{} // nil when not blocked; closed to release
}

func newBurstUpstream(t *testing.T) *burstUpstream {
	t.Helper()
	u := &burstUpstream{versions: map[int]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		u.unblock()
		u.Close()
	})
	return u
}

func (u *burstUpstream) serve(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/items/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	u.mu.Lock()
	gate := u.blocked
	u.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	u.mu.Lock()
	v := u.versions[n]
	u.ok++
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"title":%q,"state":%q}`, itemTitle(n, v), itemState(v))
}

// bump changes object n and returns its new version.
func (u *burstUpstream) bump(n int) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.versions[n]++
	return u.versions[n]
}

// served counts the answers sent.
func (u *burstUpstream) served() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ok
}

func (u *burstUpstream) block() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.blocked == nil {
		u.blocked = make(chan struct{})
	}
}

func (u *burstUpstream) unblock() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.blocked != nil {
		close(u.blocked)
		u.blocked = nil
	}
}

// logSink keeps a process's log and reports the address of its
// "listening" record.
type logSink struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	addr    chan string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(l.partial[:i], &rec) != nil {
			// The text format (the default: examples/compose logs so).
			if m := textListening.FindSubmatch(l.partial[:i]); m != nil {
				rec.Msg, rec.Addr = "listening", string(m[1])
			}
		}
		if rec.Msg == "listening" {
			select {
			case l.addr <- rec.Addr:
			default:
			}
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// textListening is the "listening" record in slog's text format.
var textListening = regexp.MustCompile(`\bmsg=listening addr=(\S+)`)

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}
