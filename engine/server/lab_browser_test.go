package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// update rewrites the lab's golden screenshots: go test ./engine/server
// -run TestLabInChromium -update. Review the PNGs like code.
var update = flag.Bool("update", false, "rewrite golden files under testdata")

// Budgets of the lab's browser test: the whole run takes a few seconds;
// these only stop a hung browser from eating CI's time.
const (
	labBrowserBudget = 40 * time.Second
	labStepTimeout   = 10 * time.Second
	labViewportW     = 900
	labViewportH     = 1600
)

// Golden screenshot tolerance. The goldens pin what Debian's Chromium
// draws with the machine's default sans-serif and monospace fonts; two
// runs of the same Chromium and fonts give the same pixels. The tolerance
// absorbs rasterizer noise between Chromium versions: any channel may be
// off by up to labPixelTol (of 255) everywhere, and by more on at most
// labMaxDiffShare of the pixels (anti-aliased glyph edges). It is tight
// enough that one of Notion's tag colors swapped for another fails (their
// channels differ by 20 to 40). It does not absorb another font: glyphs of
// a different face move whole strokes and usually change the element's
// size, which fails with a hint to regenerate with -update.
const (
	labPixelTol     = 16
	labMaxDiffShare = 0.03
)

// labShots are the screenshots compared with testdata/lab/<name>.png: one
// element per attribute kind and section of the preview (protocol 6.2,
// 6.4, 6.6), and the mention.
var labShots = []struct{ name, sel string }{
	{"title", `#card .card-head`},
	{"text", `#card .body`},
	{"enum", `#card [data-kind="enum"]`},
	{"date", `#card [data-kind="date"]`},
	{"datetime", `#card [data-kind="datetime"]`},
	{"color", `#card [data-kind="entity"]`},
	{"embed", `#card .embed`},
	{"avatar", `#card [data-kind="avatar"]`},
	{"footer", `#card-foot`},
	{"mention", `#mention`},
	// The whole card, for the background section and the layout.
	{"card", `#card`},
}

// jsProbe is a page whose inline script renames it: with JavaScript off
// its title stays "js-off". It proves the switch works, so the lab's run
// below really happened without JavaScript.
const jsProbe = `<!doctype html><html><head><title>js-off</title><link rel="icon" href="data:,"></head><body><script>document.title="js-on"</script></body></html>`

// TestLabInChromium drives the lab in headless Chromium with JavaScript
// disabled: fill the form, submit it, get the preview, the trace and the
// playground's answer. The page loads nothing but itself, the browser
// reports no CSP violation (our one style is allowed by its hash), and
// each attribute kind looks like its golden image.
func TestLabInChromium(t *testing.T) {
	chromium := labChromium(t)
	e := newLabEnv(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/lab", e.srv.Handler())
	mux.HandleFunc("/js-probe", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(jsProbe))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := labBrowser(t, chromium)
	var (
		mu       sync.Mutex
		requests []string
		problems []string
	)
	// fn runs on chromedp's event loop: quick, and no commands.
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *cdplog.EventEntryAdded:
			if ev.Entry != nil && (ev.Entry.Level == cdplog.EntryLevelError || strings.Contains(ev.Entry.Text, "Content Security Policy")) {
				problems = append(problems, ev.Entry.Text)
			}
		}
	}))
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, labStepTimeout)
		defer cancel()
		require.NoError(t, chromedp.Do(sctx, steps...), what)
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, labStepTimeout)
		defer cancel()
		v, err := chromedp.Run(sctx, a)
		require.NoError(t, err, what)
		return v
	}
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err, "enable network events")
	_, err = chromedp.Call(ctx, cdplog.Enable, cdp.Empty{})
	require.NoError(t, err, "enable log events")
	_, err = chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	require.NoError(t, err, "disable JavaScript")
	do("set the viewport", chromedp.EmulateViewport(labViewportW, labViewportH, chromedp.EmulateScale(1)))

	do("open the probe", chromedp.Navigate(srv.URL+"/js-probe"))
	require.Equal(t, "js-off", get("read the probe's title", chromedp.Title()), "JavaScript must be off for this test")

	do("run the lab from its form",
		chromedp.Navigate(srv.URL+"/lab"),
		chromedp.WaitVisible(chromedp.CSS(`#url`)),
		chromedp.SendKeys(chromedp.CSS(`#url`), "https://kinds.example.com/items/1"),
		chromedp.SendKeys(chromedp.CSS(`#source`), `join(map(item.labels, .name), ", ")`),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#card`)),
	)
	assert.Equal(t, srv.URL+"/lab", get("read the URL", chromedp.Location()), "the form posts to the page itself")
	assert.Equal(t, `"bug, p1"`, get("read the playground", chromedp.Text(chromedp.CSS(`#playground-result`))))
	trace := get("read the trace", chromedp.Text(chromedp.CSS(`#trace`)))
	assert.Contains(t, trace, "Fix the flux capacitor")
	assert.Contains(t, trace, "GET "+e.up.URL()+"/items/1")
	assert.Len(t, e.up.Requests(), 1)

	shots := map[string][]byte{}
	for _, s := range labShots {
		sctx, cancel := context.WithTimeout(ctx, labStepTimeout)
		buf, err := chromedp.Run(sctx, chromedp.Screenshot(chromedp.CSS(s.sel), chromedp.NodeVisible))
		cancel()
		require.NoError(t, err, "screenshot %s", s.name)
		shots[s.name] = buf
	}

	mu.Lock()
	gotRequests, gotProblems := append([]string(nil), requests...), append([]string(nil), problems...)
	mu.Unlock()
	for _, u := range gotRequests {
		assert.True(t, strings.HasPrefix(u, srv.URL+"/") || strings.HasPrefix(u, "data:"), "the page loads nothing from other origins, but asked for %s", u)
	}
	assert.Empty(t, gotProblems, "browser errors (a CSP violation means our own style was blocked)")

	for _, s := range labShots {
		t.Run(s.name, func(t *testing.T) {
			compareGolden(t, filepath.Join("testdata", "lab", s.name+".png"), shots[s.name])
		})
	}
}

// labChromium finds Chromium. The lab is tested in a real browser, so a
// missing one is a failure that says how to install it, never a skip.
func labChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not on PATH: the lab page is tested in headless Chromium; install it with: apt-get install -y chromium")
	return ""
}

// labBrowser starts one headless Chromium and returns its tab's context.
func labBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		// Containers often lack the namespaces Chromium's sandbox needs,
		// and the only pages loaded are our own test server's.
		chromedp.NoSandbox,
		chromedp.WindowSize(labViewportW, labViewportH),
		// Tests never leave loopback: other hosts never resolve, so even a
		// page bug could not reach the internet.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		// Steadier glyphs for the goldens.
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	base, cancelBase := context.WithTimeout(context.Background(), labBrowserBudget)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, _ := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx) // closes the browser gracefully
		cancelAlloc()
		cancelBase()
	})
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// compareGolden compares a PNG with the golden at path, or writes it
// with -update.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	require.NotEmpty(t, got, "no screenshot")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	wantRaw, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./engine/server -run TestLabInChromium -update to create it")
	want, err := png.Decode(bytes.NewReader(wantRaw))
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(got))
	require.NoError(t, err)
	share, err := imageDiff(want, img, labPixelTol)
	require.NoError(t, err, "%s: if this machine's fonts differ from the goldens', regenerate them with -update and review them", path)
	assert.LessOrEqual(t, share, labMaxDiffShare, "%s: %.1f%% of the pixels differ", path, share*100)
}

// imageDiff returns the share of pixels where any channel of a and b
// differs by more than tol (0-255). Images of different sizes are an
// error: nothing sensible lines them up.
func imageDiff(a, b image.Image, tol int) (float64, error) {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Dx() != bb.Dx() || ab.Dy() != bb.Dy() {
		return 1, fmt.Errorf("size %dx%d, golden %dx%d", bb.Dx(), bb.Dy(), ab.Dx(), ab.Dy())
	}
	if ab.Empty() {
		return 0, nil
	}
	differ := 0
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, a1 := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, a2 := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			if far(r1, r2, tol) || far(g1, g2, tol) || far(b1, b2, tol) || far(a1, a2, tol) {
				differ++
			}
		}
	}
	return float64(differ) / float64(ab.Dx()*ab.Dy()), nil
}

// far compares two 16-bit channels at 8-bit precision.
func far(x, y uint32, tol int) bool {
	d := int(x>>8) - int(y>>8)
	return d > tol || -d > tol
}

// TestImageDiff pins the comparison the goldens rely on.
func TestImageDiff(t *testing.T) {
	t.Parallel()
	plain := func(w, h int, fill uint8) *image.NRGBA {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = fill
		}
		return img
	}
	noisy := plain(10, 10, 200)
	noisy.Pix[0] = 200 - labPixelTol // within tolerance
	twoOff := plain(10, 10, 200)
	twoOff.Pix[0], twoOff.Pix[4] = 0, 0 // two pixels far off
	tests := []struct {
		name    string
		a, b    image.Image
		want    float64
		wantErr bool
	}{
		{name: "same", a: plain(10, 10, 200), b: plain(10, 10, 200), want: 0},
		{name: "noise within tolerance", a: plain(10, 10, 200), b: noisy, want: 0},
		{name: "two of a hundred pixels", a: plain(10, 10, 200), b: twoOff, want: 0.02},
		{name: "all different", a: plain(10, 10, 0), b: plain(10, 10, 255), want: 1},
		{name: "size differs", a: plain(10, 10, 0), b: plain(10, 11, 0), want: 1, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := imageDiff(tc.a, tc.b, labPixelTol)
			assert.Equal(t, tc.wantErr, err != nil, "err: %v", err)
			assert.InDelta(t, tc.want, got, 1e-9)
		})
	}
}
