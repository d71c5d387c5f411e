package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// DocsURL is where the home page and the start banner send people for
// documentation: the project's README, the landing page that links
// every page of docs/.
const DocsURL = "https://github.com/unfurld/unfurld#readme"

// homeHandler answers GET / with a small page naming the providers and
// linking the documentation and, when it is on, the lab page, so someone who opens the server's address in
// a browser learns what it is instead of reading a bare JSON 404. It is
// public: it shows display names and link domains, which Notion's
// integration listing shows anyway, and nothing from the store.
type homeHandler struct {
	s *Server
	// lab is true when the lab page is served, so the page links it.
	lab bool
}

// Register mounts GET and HEAD /.
func (h *homeHandler) Register(e *echo.Echo) {
	e.GET("/", h.home)
	e.HEAD("/", h.home)
}

// homePage is the data of the home page.
type homePage struct {
	Providers []homeProvider
	DocsURL   string
	// Lab links /lab when the lab page is on.
	Lab bool
}

// homeProvider is one provider on the home page.
type homeProvider struct {
	DisplayName, Domain string
}

func (h *homeHandler) home(c echo.Context) error {
	ps, err := loadPages()
	if err != nil {
		return err
	}
	p := homePage{DocsURL: DocsURL, Lab: h.lab}
	if reg := h.s.cfg.Registry; reg != nil {
		for _, pr := range reg.All() {
			hp := homeProvider{DisplayName: pr.DisplayName}
			if pr.Config != nil {
				hp.Domain = pr.Config.Notion.Domain
			}
			p.Providers = append(p.Providers, hp)
		}
	}
	return writePage(c.Response(), ps.home, http.StatusOK, p, nil)
}
