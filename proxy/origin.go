package proxy

import (
	"net/http"
	"strings"

	"github.com/wsalive/wsalive/config"
)

// originPolicy is a route's allowed_origins and require_origin. A browser
// sends Origin with every WebSocket handshake and every cross-site
// request; checking it is what stops a page on another site from opening
// a WebSocket with the user's cookies (cross-site WebSocket hijacking).
type originPolicy struct {
	allowed []config.Origin
	require bool
}

func (p *originPolicy) active() bool { return len(p.allowed) > 0 || p.require }

// check returns nil when the request's Origin is admitted, or the 403 to
// answer. A request without Origin (a non-browser client) is admitted
// unless require is set; "null" (an opaque origin) and a malformed or
// repeated Origin only pass when no allowlist is set.
func (p *originPolicy) check(h http.Header) *rejection {
	values := h["Origin"]
	switch {
	case len(values) == 0:
		if p.require {
			return reject(http.StatusForbidden, "an Origin header is required")
		}
		return nil
	case len(p.allowed) == 0:
		return nil
	case len(values) > 1:
		return reject(http.StatusForbidden, "more than one Origin header")
	}
	o, err := config.ParseOrigin(strings.TrimSpace(values[0]), false)
	if err != nil {
		return reject(http.StatusForbidden, "origin not allowed")
	}
	for _, a := range p.allowed {
		if a.Scheme != o.Scheme || a.Port != o.Port {
			continue
		}
		if a.Host == o.Host && !a.Wildcard {
			return nil
		}
		// "*.example.com" admits "a.example.com" and "a.b.example.com",
		// not "example.com" itself.
		if a.Wildcard && len(o.Host) > len(a.Host)+1 && strings.HasSuffix(o.Host, a.Host) && o.Host[len(o.Host)-len(a.Host)-1] == '.' {
			return nil
		}
	}
	return reject(http.StatusForbidden, "origin not allowed")
}
