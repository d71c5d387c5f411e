package server

import (
	"net"

	"github.com/labstack/echo/v4"

	"github.com/unfurld/unfurld/engine/config"
)

// ipExtractor picks the client address that rate limits and logs use
// (TH-50). Without trusted proxies it is the direct peer, and any
// X-Forwarded-For is ignored. With them, echo walks X-Forwarded-For from
// the right, starting at the direct peer, and takes the first address
// that is not a trusted proxy: a peer that is not a trusted proxy is
// itself the answer, so a client cannot choose its address by sending
// the header. echo's default trust of loopback, link-local and private
// ranges is switched off; only the configured ranges count.
func ipExtractor(trusted []config.CIDR) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, c := range trusted {
		p := c.Prefix()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
