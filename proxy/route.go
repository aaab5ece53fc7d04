package proxy

import (
	"fmt"
	"net"
	"strings"

	"github.com/wsalive/wsalive/config"
)

// router selects the route for a request by host and path prefix.
//
// Specificity, most specific first (what an nginx user expects: the host
// picks the server block, then the longest location prefix wins):
//
//  1. a route with an exact host beats one with a wildcard host ("*.x.com"),
//     which beats a host-less route (Host "" matches any host);
//  2. between wildcard hosts, the longer suffix wins ("*.a.x.com" over
//     "*.x.com");
//  3. then the longest path prefix wins;
//  4. remaining ties go to the route that comes first in the configuration.
type router struct {
	entries []routeEntry
}

// hostKind ranks how specifically a route names its host; a higher value is
// more specific.
type hostKind uint8

const (
	hostAny      hostKind = iota // Host "" (or "*"): every host
	hostWildcard                 // "*.example.com": any subdomain
	hostExact                    // "example.com"
)

type routeEntry struct {
	route *config.Route
	kind  hostKind
	// host is the normalized host for hostExact, and the suffix including
	// its leading dot (".example.com") for hostWildcard.
	host string
}

func newRouter(routes []*config.Route) (*router, error) {
	rt := &router{entries: make([]routeEntry, 0, len(routes))}
	for i, r := range routes {
		if r == nil {
			return nil, fmt.Errorf("proxy: route %d is nil", i)
		}
		e := routeEntry{route: r}
		h := normalizeHost(r.Host)
		switch {
		case h == "" || h == "*":
			e.kind = hostAny
		case strings.HasPrefix(h, "*."):
			e.kind = hostWildcard
			e.host = h[1:]
			if len(e.host) < 2 {
				return nil, fmt.Errorf("proxy: route %q: bad wildcard host %q", r.Name, r.Host)
			}
		case strings.Contains(h, "*"):
			return nil, fmt.Errorf("proxy: route %q: wildcard only allowed as a leading \"*.\" in host %q", r.Name, r.Host)
		default:
			e.kind = hostExact
			e.host = h
		}
		rt.entries = append(rt.entries, e)
	}
	return rt, nil
}

// match returns the most specific route for the request's Host header value
// (port allowed) and decoded path, or nil when no route matches.
func (rt *router) match(hostport, path string) *config.Route {
	host := normalizeHost(hostport)
	var best *routeEntry
	for i := range rt.entries {
		e := &rt.entries[i]
		if !e.matchHost(host) || !strings.HasPrefix(path, e.route.PathPrefix) {
			continue
		}
		if best == nil || e.moreSpecificThan(best) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	return best.route
}

func (e *routeEntry) matchHost(host string) bool {
	switch e.kind {
	case hostExact:
		return host == e.host
	case hostWildcard:
		// "*.example.com" matches "a.example.com" and "a.b.example.com",
		// not "example.com" itself.
		return len(host) > len(e.host) && strings.HasSuffix(host, e.host)
	default:
		return true
	}
}

// moreSpecificThan reports whether e strictly beats o; equal entries keep
// the earlier one because match only replaces on a strict win.
func (e *routeEntry) moreSpecificThan(o *routeEntry) bool {
	if e.kind != o.kind {
		return e.kind > o.kind
	}
	if e.kind == hostWildcard && len(e.host) != len(o.host) {
		return len(e.host) > len(o.host)
	}
	return len(e.route.PathPrefix) > len(o.route.PathPrefix)
}

// normalizeHost turns a Host header value (or a configured host) into the
// form routes compare: no port, no IPv6 brackets, no trailing dot,
// lower case.
func normalizeHost(hostport string) string {
	h := hostport
	// Only a value with a colon can have a port. Checking first spares
	// Host headers without one (the usual case) SplitHostPort's error,
	// which is an allocation.
	split := false
	if strings.Contains(hostport, ":") {
		if host, _, err := net.SplitHostPort(hostport); err == nil {
			h, split = host, true
		}
	}
	if !split && strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h)
}
