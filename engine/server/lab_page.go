package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"sync"
)

// labTemplate parses lab.html and hashes lab.css on first use, as
// loadPages does for the flow pages. The lab has its own stylesheet: it
// is a wide tool page, and the consent page should not carry its CSS.
var labTemplate = sync.OnceValues(func() (*labPage, error) {
	css, err := templateFS.ReadFile("templates/lab.css")
	if err != nil {
		return nil, fmt.Errorf("read lab stylesheet: %w", err)
	}
	sum := sha256.Sum256(css)
	funcs := template.FuncMap{
		// template.CSS marks trusted CSS: our embedded file, never input.
		"labStyle": func() template.CSS { return template.CSS(css) },
	}
	t, err := template.New("lab.html").Funcs(funcs).ParseFS(templateFS, "templates/lab.html")
	if err != nil {
		return nil, fmt.Errorf("parse page lab.html: %w", err)
	}
	return &labPage{t: t, styleHash: "sha256-" + base64.StdEncoding.EncodeToString(sum[:])}, nil
})

// labPage is the parsed lab template and the CSP hash of its stylesheet.
type labPage struct {
	t         *template.Template
	styleHash string
}

// labCSP is the lab's Content-Security-Policy. It is the consent page's
// policy with the lab's style hash and images only from data: URLs (the favicon): the preview
// shows upstream images as placeholders, so the page loads nothing from
// another origin, and no upstream host learns an operator's address or
// which links they try (TH-03). Forms post to the page itself only.
func labCSP(styleHash string) string {
	return "default-src 'none'; style-src '" + styleHash + "'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
}

// writeLabPage renders into a buffer first, so a template error leaves
// the response untouched for the error handler. The headers are the
// consent page's (securePageHeaders), with the lab's CSP.
func writeLabPage(w http.ResponseWriter, status int, v labView) error {
	lp, err := labTemplate()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := lp.t.ExecuteTemplate(&buf, "lab", v); err != nil {
		return fmt.Errorf("render page lab.html: %w", err)
	}
	securePageHeaders(w.Header(), nil)
	w.Header().Set("Content-Security-Policy", labCSP(lp.styleHash))
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write page lab.html: %w", err)
	}
	return nil
}
