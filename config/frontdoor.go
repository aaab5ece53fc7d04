package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// This file holds the front door's settings: what a listener trusts and
// bounds, what a route does with plain HTTP requests, which origins it
// admits and how many pairs it carries, and the process-wide bound on
// connections still in their handshake. Defaults are in defaults.go.

// ListenerFrontDoor is the front-door part of a Listener.
type ListenerFrontDoor struct {
	// TrustedProxies lists the peers whose X-Forwarded-For, -Proto and
	// -Host are believed. From any other peer the three are replaced by
	// what wsalive saw itself. Empty by default.
	TrustedProxies []netip.Prefix
	// ForwardedProto is the X-Forwarded-Proto wsalive sends for a client
	// it accepted itself: "http" on a plain listener, "https" on a TLS one.
	ForwardedProto string
	// MaxConnections bounds the client connections of the listener in any
	// state (handshake, plain HTTP keep-alive, live pair); 0 means no
	// bound but the descriptor limit.
	MaxConnections int
	// HTTPIdleTimeout closes a plain HTTP keep-alive connection idle
	// between requests for this long.
	HTTPIdleTimeout time.Duration
	// MaxHeaderLines bounds the header lines of a request head (431).
	MaxHeaderLines int
}

// HTTPMode says what a route does with a request that is not a WebSocket
// upgrade.
type HTTPMode string

const (
	// HTTPProxy passes plain HTTP requests to the upstream (the default).
	HTTPProxy HTTPMode = "proxy"
	// HTTPReject answers them 426 Upgrade Required.
	HTTPReject HTTPMode = "reject"
)

// RouteFrontDoor is the front-door part of a Route.
type RouteFrontDoor struct {
	// HTTP says what becomes of plain HTTP requests.
	HTTP HTTPMode
	// MaxBodySize bounds a plain HTTP request body (413); 0 means none.
	MaxBodySize int64
	// AllowedOrigins, when not empty, lists the Origin values admitted;
	// any other Origin is answered 403.
	AllowedOrigins []Origin
	// RequireOrigin refuses requests without an Origin header (403).
	RequireOrigin bool
	// MaxPairs bounds the route's live pairs, MaxPairsPerClientIP those of
	// one client address; a handshake beyond either is answered 503 with
	// Retry-After. 0 means no bound.
	MaxPairs            int
	MaxPairsPerClientIP int
}

// Limits bounds what the whole process takes on: the connections that
// have not finished their first request head, process-wide and per client
// address (the peer's address: forwarded headers are not read yet), and
// the replay bytes of all resumable sessions together.
type Limits struct {
	MaxHandshakes            int
	MaxHandshakesPerClientIP int
	// ResumeMemory bounds the bytes all resumable sessions hold for
	// replay; a session that would pass it ends (see resume.go).
	ResumeMemory int64
}

// Origin is one entry of allowed_origins: a scheme, a host and a port, the
// host optionally a wildcard for one or more leftmost labels.
type Origin struct {
	Scheme string // "http" or "https"
	// Host is lower-case; for a wildcard it is the suffix after "*."
	// ("example.com" for "*.example.com").
	Host     string
	Wildcard bool
	// Port is always set: the scheme's default when none was written.
	Port string
}

// String returns the origin as it would be written, port always shown.
func (o Origin) String() string {
	h := o.Host
	if o.Wildcard {
		h = "*." + h
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return o.Scheme + "://" + h + ":" + o.Port
}

// ParseOrigin parses an origin, "scheme://host[:port]", as a browser
// serializes it (RFC 6454 §6.2), or an allowed_origins entry whose host
// starts with "*." (pattern true). The result is normalized for
// comparison: lower case, default port made explicit.
func ParseOrigin(s string, pattern bool) (Origin, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Origin{}, fmt.Errorf("want scheme://host[:port], got %q", s)
	}
	scheme = strings.ToLower(scheme)
	var port string
	switch scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return Origin{}, fmt.Errorf("unsupported scheme %q: want http or https", scheme)
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return Origin{}, fmt.Errorf("an origin is scheme://host[:port] with no path, query or user, got %q", s)
	}
	o := Origin{Scheme: scheme, Port: port}
	host := rest
	if h, p, err := splitOriginHost(rest); err != nil {
		return Origin{}, err
	} else {
		host = h
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return Origin{}, fmt.Errorf("invalid port %q", p)
			}
			o.Port = strconv.Itoa(n)
		}
	}
	host = strings.ToLower(host)
	if pattern {
		if name, ok := strings.CutPrefix(host, "*."); ok {
			o.Wildcard = true
			host = name
		}
	}
	if host == "" || strings.Contains(host, "*") {
		return Origin{}, fmt.Errorf(`a wildcard is only allowed as the leftmost label, as in "https://*.example.com", got %q`, s)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		for label := range strings.SplitSeq(host, ".") {
			if label == "" {
				return Origin{}, fmt.Errorf("empty label in host %q", host)
			}
		}
	} else if o.Wildcard {
		return Origin{}, fmt.Errorf("a wildcard needs a domain name, not an IP address")
	}
	o.Host = host
	return o, nil
}

// splitOriginHost splits "host", "host:port", "[v6]" or "[v6]:port".
func splitOriginHost(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("missing ']' in %q", s)
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", "", fmt.Errorf("unexpected %q after ']'", rest)
		}
		return host, rest[1:], nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if strings.Count(s, ":") > 1 {
			return "", "", fmt.Errorf("write an IPv6 address in brackets: %q", s)
		}
		return s[:i], s[i+1:], nil
	}
	return s, "", nil
}

// The settings of this file, as attributes of the blocks they belong to.
var (
	listenerFrontDoorNames = []string{"trusted_proxies", "max_connections", "http_idle_timeout", "max_header_lines"}
	routeFrontDoorNames    = []string{"http", "max_body_size", "allowed_origins", "require_origin", "max_pairs", "max_pairs_per_client_ip"}
	limitsSchema           = attributes("max_handshakes", "max_handshakes_per_client_ip", "resume_memory")
)

type listenerFrontDoorAttrs struct {
	TrustedProxies, MaxConnections, HTTPIdleTimeout, MaxHeaderLines *hcl.Attribute
}

type routeFrontDoorAttrs struct {
	HTTP, MaxBodySize, AllowedOrigins, RequireOrigin, MaxPairs, MaxPairsPerClientIP *hcl.Attribute
}

// limitsBlock is the `limits { ... }` block.
type limitsBlock struct {
	MaxHandshakes, MaxHandshakesPerClientIP, ResumeMemory *hcl.Attribute

	DefRange hcl.Range
}

func decodeListenerFrontDoor(a hcl.Attributes) listenerFrontDoorAttrs {
	return listenerFrontDoorAttrs{
		TrustedProxies:  a["trusted_proxies"],
		MaxConnections:  a["max_connections"],
		HTTPIdleTimeout: a["http_idle_timeout"],
		MaxHeaderLines:  a["max_header_lines"],
	}
}

func decodeRouteFrontDoor(a hcl.Attributes) routeFrontDoorAttrs {
	return routeFrontDoorAttrs{
		HTTP:                a["http"],
		MaxBodySize:         a["max_body_size"],
		AllowedOrigins:      a["allowed_origins"],
		RequireOrigin:       a["require_origin"],
		MaxPairs:            a["max_pairs"],
		MaxPairsPerClientIP: a["max_pairs_per_client_ip"],
	}
}

func decodeLimits(b *hcl.Block, diags *hcl.Diagnostics) *limitsBlock {
	c, d := b.Body.Content(limitsSchema)
	*diags = append(*diags, d...)
	return &limitsBlock{
		MaxHandshakes:            c.Attributes["max_handshakes"],
		MaxHandshakesPerClientIP: c.Attributes["max_handshakes_per_client_ip"],
		ResumeMemory:             c.Attributes["resume_memory"],
		DefRange:                 b.DefRange,
	}
}

func (s scope) buildListenerFrontDoor(b *listenerFrontDoorAttrs, l *ListenerFrontDoor) {
	for _, e := range s.stringList(b.TrustedProxies, `["10.0.0.0/8", "127.0.0.1/32"]`) {
		p, err := parsePrefix(e.text)
		if err != nil {
			s.fail(e.rng, b.TrustedProxies.Name, fmt.Sprintf("invalid CIDR %q: %v", e.text, err),
				`A trusted proxy is a network such as "10.0.0.0/8", or one address such as "192.0.2.7" (taken as /32 or /128).`)
			continue
		}
		l.TrustedProxies = append(l.TrustedProxies, p)
	}
	if n, ok := s.integer(b.MaxConnections, 0, maxCount); ok {
		l.MaxConnections = int(n)
	}
	if d, ok := s.durationIn(b.HTTPIdleTimeout, minHTTPIdleTimeout, maxHTTPIdleTimeout); ok {
		l.HTTPIdleTimeout = d
	}
	if n, ok := s.integer(b.MaxHeaderLines, minMaxHeaderLines, maxMaxHeaderLines); ok {
		l.MaxHeaderLines = int(n)
	}
}

// parsePrefix parses a CIDR, or a bare address as the network of just it.
func parsePrefix(text string) (netip.Prefix, error) {
	if strings.Contains(text, "/") {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("host bits are set: did you mean %q?", p.Masked().String())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (s scope) buildRouteFrontDoor(b *routeFrontDoorAttrs, r *RouteFrontDoor) {
	if m, ok := s.str(b.HTTP, `"proxy"`); ok {
		switch HTTPMode(m) {
		case HTTPProxy, HTTPReject:
			r.HTTP = HTTPMode(m)
		default:
			s.fail(b.HTTP.Expr.Range(), b.HTTP.Name, fmt.Sprintf("unknown mode %q: want \"proxy\" or \"reject\"", m),
				`"proxy" passes requests that are not WebSocket upgrades to the upstream as plain HTTP; "reject" answers them 426.`)
		}
	}
	if n, ok := s.size(b.MaxBodySize, 0, maxMaxBodySize); ok {
		r.MaxBodySize = n
	}
	for _, e := range s.stringList(b.AllowedOrigins, `["https://app.example.com"]`) {
		o, err := ParseOrigin(e.text, true)
		if err != nil {
			s.fail(e.rng, b.AllowedOrigins.Name, fmt.Sprintf("invalid origin %q: %v", e.text, err),
				`An origin is scheme://host[:port] as a browser sends it, such as "https://app.example.com" or "https://*.example.com:8443".`)
			continue
		}
		r.AllowedOrigins = append(r.AllowedOrigins, o)
	}
	if v, ok := s.boolean(b.RequireOrigin); ok {
		r.RequireOrigin = v
	}
	if n, ok := s.integer(b.MaxPairs, 0, maxCount); ok {
		r.MaxPairs = int(n)
	}
	if n, ok := s.integer(b.MaxPairsPerClientIP, 0, maxCount); ok {
		r.MaxPairsPerClientIP = int(n)
	}
}

func (s scope) buildLimits(b *limitsBlock, l *Limits) {
	if b == nil {
		return
	}
	sc := s.child("limits")
	if n, ok := sc.integer(b.MaxHandshakes, 1, maxCount); ok {
		l.MaxHandshakes = int(n)
	}
	if n, ok := sc.integer(b.MaxHandshakesPerClientIP, 1, maxCount); ok {
		l.MaxHandshakesPerClientIP = int(n)
	}
	if n, ok := sc.size(b.ResumeMemory, minResumeMemory, maxResumeMemory); ok {
		l.ResumeMemory = n
	}
}

// listElem is one string of a list attribute, with where it was written.
type listElem struct {
	text string
	rng  hcl.Range
}

// stringList converts an optional list-of-strings attribute; each element
// keeps its own range, so a bad one is pointed at.
func (s scope) stringList(attr *hcl.Attribute, hint string) []listElem {
	if attr == nil {
		return nil
	}
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		s.fail(attr.Expr.Range(), attr.Name, "must be a list of strings", "Write it as "+hint+".")
		return nil
	}
	var out []listElem
	for _, e := range exprs {
		v, d := e.Value(nil)
		*s.diags = append(*s.diags, d...)
		if d.HasErrors() {
			continue
		}
		if v.IsNull() || v.Type() != cty.String {
			s.fail(e.Range(), attr.Name, "list elements must be strings", "Write it as "+hint+".")
			continue
		}
		out = append(out, listElem{text: v.AsString(), rng: e.Range()})
	}
	return out
}
