package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tidwall/gjson"
)

// itemURI is the bench provider's one pattern, as unfurldConfig has it.
var itemURI = regexp.MustCompile(`^https://bench\.example/items/(\d+)$`)

// runHandwritten is the "handwritten" subcommand: the baseline for a cold
// unfurl, the bench provider written directly in Go the way one would
// without unfurld. It checks the bearer, reads {"uri"}, matches the
// pattern, fetches the item from the upstream with a keep-alive client
// under a timeout, reads the six attributes with gjson and answers the
// envelope with encoding/json. It records no subscription, keeps no
// cache, and has no outbound guard or request collapsing: what is left
// of unfurld's cost over it is the price of those. It runs until SIGINT
// or SIGTERM.
func runHandwritten(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("unfurld-load handwritten", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	upstream := fs.String("upstream", "", "base `URL` of the upstream (required)")
	token := fs.String("token", "", "bearer `token` to accept (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || host != "127.0.0.1" || *upstream == "" || *token == "" {
		fmt.Fprintf(stderr, "unfurld-load handwritten: --listen 127.0.0.1:PORT, --upstream and --token are required\n")
		return exitUsage
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}
	h := &handwritten{client: client, upstream: *upstream, bearer: "Bearer " + *token}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.POST("/providers/:provider/unfurl", h.unfurl)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	return serveUntilSignal("handwritten", *listen, e, stderr)
}

// handwritten serves the hand-written baseline.
type handwritten struct {
	client   *http.Client
	upstream string
	bearer   string
}

// The envelope, as the bench provider answers it.
type (
	hwEnvelope struct {
		URI        string        `json:"uri"`
		Operations []hwOperation `json:"operations"`
	}
	hwOperation struct {
		Path []string      `json:"path"`
		Set  []hwAttribute `json:"set"`
	}
	hwAttribute struct {
		ID     string            `json:"id"`
		Name   string            `json:"name"`
		Type   string            `json:"type"`
		Inline map[string]hwText `json:"inline,omitempty"`
		Embed  *hwEmbed          `json:"embed,omitempty"`
	}
	hwText struct {
		Value   string `json:"value"`
		Section string `json:"section"`
	}
	hwEmbed struct {
		SrcURL string `json:"src_url"`
		Image  hwText `json:"image"`
	}
)

func (h *handwritten) unfurl(c echo.Context) error {
	req := c.Request()
	if req.Header.Get(echo.HeaderAuthorization) != h.bearer {
		return c.NoContent(http.StatusUnauthorized)
	}
	var in struct {
		URI string `json:"uri"`
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil || json.Unmarshal(body, &in) != nil {
		return c.NoContent(http.StatusBadRequest)
	}
	m := itemURI.FindStringSubmatch(in.URI)
	if m == nil {
		return c.NoContent(http.StatusNotFound)
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	up, err := http.NewRequestWithContext(ctx, http.MethodGet, h.upstream+"/items/"+m[1], nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(up)
	if err != nil {
		return c.NoContent(http.StatusBadGateway)
	}
	defer func() { _ = resp.Body.Close() }()
	var doc bytes.Buffer
	if _, err := doc.ReadFrom(io.LimitReader(resp.Body, 2<<20)); err != nil || resp.StatusCode != http.StatusOK || !gjson.ValidBytes(doc.Bytes()) {
		return c.NoContent(http.StatusBadGateway)
	}
	item := gjson.ParseBytes(doc.Bytes())
	labels := ""
	for i, l := range item.Get("labels.#.name").Array() {
		if i > 0 {
			labels += ", "
		}
		labels += l.String()
	}
	inline := func(kind, value, section string) map[string]hwText {
		return map[string]hwText{kind: {Value: value, Section: section}}
	}
	out := hwEnvelope{URI: in.URI, Operations: []hwOperation{{Path: []string{"attributes"}, Set: []hwAttribute{
		{ID: "title", Name: "Title", Type: "inline", Inline: inline("title", "#"+m[1]+" "+item.Get("title").String(), "title")},
		{ID: "state", Name: "State", Type: "inline", Inline: inline("enum", item.Get("state").String(), "primary")},
		{ID: "author", Name: "Author", Type: "inline", Inline: inline("plain_text", item.Get("user.login").String(), "secondary")},
		{ID: "avatar", Name: "Avatar", Type: "embed", Embed: &hwEmbed{SrcURL: item.Get("user.avatar_url").String(), Image: hwText{Section: "avatar"}}},
		{ID: "updated", Name: "Updated", Type: "inline", Inline: inline("datetime", item.Get("updated_at").String(), "secondary")},
		{ID: "labels", Name: "Labels", Type: "inline", Inline: inline("plain_text", labels, "secondary")},
	}}}}
	return c.JSON(http.StatusOK, out)
}
