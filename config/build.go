package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// build turns a configuration in the user's shape into the runtime Config:
// it starts from the defaults in defaults.go, converts and checks every
// setting the file gives, then checks the blocks against each other. Parse
// and Minimal both come through here, so a default or a rule lives in one
// place. missing is where a missing top-level block is reported.
//
// Every problem is recorded and conversion carries on with the default, so
// that one run reports all of them. The Config is meaningful only when the
// diagnostics hold no error.
func build(f *fileConfig, missing hcl.Range) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	top := scope{diags: &diags}
	cfg := &Config{
		Static:     Static{Engine: newEngine(), Limits: newLimits()},
		Reloadable: Reloadable{Drain: newDrain(), LogLevel: DefaultLogLevel},
	}
	if lvl, ok := top.logLevel(f.LogLevel); ok {
		cfg.LogLevel = lvl
	}
	if f.Drain != nil {
		top.child("drain").buildDrain(f.Drain, &cfg.Drain)
	}

	if len(f.Listeners) == 0 {
		top.fail(missing, "", "no listener block: at least one is required",
			`Add a block such as: listener { address = "127.0.0.1:8080" }`)
	}
	// Listen addresses seen so far, to refuse the same address twice: the
	// second bind would fail at start, far from the line at fault.
	listening := map[string]hcl.Range{}
	for _, b := range f.Listeners {
		s := top.child("listener")
		l := newListener()
		if addr, ok := s.requiredListenAddress(b.Address, b.DefRange); ok {
			l.Address = addr
			s.checkUnique(listening, b.Address, addr, "the listener")
		}
		if n, ok := s.size(b.MaxHeaderBytes, minMaxHeaderBytes, maxMaxHeaderBytes); ok {
			l.MaxHeaderBytes = int(n)
		}
		s.buildListenerFrontDoor(&b.listenerFrontDoorAttrs, &l.ListenerFrontDoor)
		if b.TLS != nil {
			l.TLS = s.buildListenerTLS(b.TLS)
			l.ForwardedProto = "https" // the client reached us over TLS
		}
		cfg.Listeners = append(cfg.Listeners, l)
	}

	if b := f.Admin; b != nil {
		s := top.child("admin")
		cfg.Admin = &Admin{}
		if addr, ok := s.requiredListenAddress(b.Address, b.DefRange); ok {
			cfg.Admin.Address = addr
			s.checkUnique(listening, b.Address, addr, "a listener")
		}
		if b.Pprof != nil {
			if v, ok := s.boolean(b.Pprof); ok {
				cfg.Admin.Pprof = v
			}
		}
	}

	if b := f.Engine; b != nil {
		s := top.child("engine")
		if n, ok := s.integer(b.Loops, 0, maxLoops); ok {
			cfg.Engine.Loops = int(n)
		}
		if b.IOUring != nil {
			if v, ok := s.boolean(b.IOUring); ok {
				cfg.Engine.IOUring = v
			}
		}
	}

	top.buildLimits(f.Limits, &cfg.Limits)

	if len(f.Routes) == 0 {
		top.fail(missing, "", "no route block: at least one is required",
			`Add a block such as: route "default" { upstream = "ws://127.0.0.1:3000" }`)
	}
	names := map[string]hcl.Range{}     // route name -> its label
	matches := map[string]*routeBlock{} // host and path_prefix -> first route
	for _, b := range f.Routes {
		r, matchOK := buildRoute(top, b)
		cfg.Routes = append(cfg.Routes, r)

		s := top.child(fmt.Sprintf("route %q", b.Name))
		s.checkResumeMemory(b.Resume, r.Resume, cfg.Limits.ResumeMemory)
		if first, dup := names[b.Name]; dup {
			s.fail(b.NameRange, "", fmt.Sprintf("duplicate route name: a route %q is already defined on line %d", b.Name, first.Start.Line),
				"Route names identify routes in logs and metrics, so each must be unique.")
		} else {
			names[b.Name] = b.NameRange
		}
		// Two routes matching the same requests would leave one of them
		// unreachable. Only exact duplicates are caught; a wildcard host
		// overlapping an exact one is a legitimate design.
		if !matchOK {
			continue // already reported; a comparison would only add noise
		}
		key := r.Host + "\x00" + r.PathPrefix
		if first, dup := matches[key]; dup {
			s.fail(b.DefRange, "", fmt.Sprintf("same host %q and path_prefix %q as route %q on line %d",
				r.Host, r.PathPrefix, first.Name, first.DefRange.Start.Line),
				"Two routes cannot match the same requests: change host or path_prefix in one of them.")
		} else {
			matches[key] = b
		}
	}
	return cfg, diags
}

// buildRoute converts one route block. matchOK reports whether host and
// path_prefix are valid, so that they can be compared with other routes.
func buildRoute(top scope, b *routeBlock) (r *Route, matchOK bool) {
	s := top.child(fmt.Sprintf("route %q", b.Name))
	r = newRoute(b.Name)
	if b.Name == "" {
		s.fail(b.NameRange, "", "route name must not be empty",
			"Route names identify routes in logs and metrics.")
	}
	matchOK = true

	if h, ok := s.str(b.Host, `"example.com"`); ok {
		if host, err := checkHost(h); err != nil {
			s.fail(b.Host.Expr.Range(), b.Host.Name, fmt.Sprintf("invalid host %q: %v", h, err),
				`A host is a name such as "example.com", a wildcard such as "*.example.com", or an IP address; the request's port is ignored.`)
			matchOK = false
		} else {
			r.Host = host
		}
	} else if b.Host != nil {
		matchOK = false
	}

	if p, ok := s.str(b.PathPrefix, `"/ws"`); ok {
		if err := checkPathPrefix(p); err != nil {
			s.fail(b.PathPrefix.Expr.Range(), b.PathPrefix.Name, err.Error(),
				`A path prefix is the start of the request path, such as "/ws" or "/api/socket".`)
			matchOK = false
		} else {
			r.PathPrefix = p
		}
	} else if b.PathPrefix != nil {
		matchOK = false
	}

	s.buildPool(b, r)
	s.buildUpstreamTLS(b.UpstreamTLS, r, len(r.Servers) > 0)

	if n, ok := s.size(b.MaxFrameSize, minMaxFrameSize, maxMaxFrameSize); ok {
		r.MaxFrameSize = n
	}
	if d, ok := s.positiveDuration(b.HandshakeTimeout); ok {
		r.HandshakeTimeout = d
	}
	if d, ok := s.positiveDuration(b.CloseTimeout); ok {
		r.CloseTimeout = d
	}
	s.buildLiveness(b, r)
	s.buildRouteFrontDoor(&b.routeFrontDoorAttrs, &r.RouteFrontDoor)
	r.Resume = s.buildResume(b.Resume)
	return r, matchOK
}

// checkUnique records addr, set by attr, in seen, and reports an address
// that an earlier block (described by what) already uses. Port 0 is left
// out: every bind to it gets a different free port.
func (s scope) checkUnique(seen map[string]hcl.Range, attr *hcl.Attribute, addr, what string) {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return
	}
	rng := attr.Expr.Range()
	if first, dup := seen[addr]; dup {
		s.fail(rng, attr.Name, fmt.Sprintf("%q is already used by %s on line %d", addr, what, first.Start.Line), "")
		return
	}
	seen[addr] = rng
}

// checkHost checks a route's host and returns it in the form requests are
// compared with: lower-cased (host names are case-insensitive) and without
// the trailing dot of a fully qualified name. An empty host, or "*", matches
// every request and is returned as "".
func checkHost(h string) (string, error) {
	h = strings.ToLower(h)
	if h == "" || h == "*" {
		return "", nil
	}
	if strings.HasSuffix(h, ".") && !strings.HasSuffix(h, "..") {
		h = h[:len(h)-1]
	}
	if net.ParseIP(h) != nil {
		return h, nil
	}
	name, wildcard := strings.CutPrefix(h, "*.")
	switch {
	case strings.Contains(h, "/"):
		return "", errors.New("want a host name, not a URL: a path goes in path_prefix")
	case strings.Contains(name, "*"):
		return "", errors.New(`a wildcard is only allowed as a leading "*.", as in "*.example.com"`)
	case strings.HasPrefix(h, "["):
		return "", errors.New("write an IPv6 address without brackets")
	case strings.Contains(name, ":"):
		return "", errors.New("must not include a port: the request's port is ignored when matching")
	case wildcard && net.ParseIP(name) != nil:
		return "", errors.New("a wildcard needs a domain name, not an IP address")
	case len(name) > 253:
		return "", errors.New("longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return "", errors.New(`empty label: a host cannot start or end with "." or contain ".."`)
		}
		if len(label) > 63 {
			return "", fmt.Errorf("label %q is longer than 63 characters", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return h, nil
}

// checkPathPrefix checks a route's path_prefix. An empty prefix matches
// every path.
func checkPathPrefix(p string) error {
	switch {
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf(`must start with "/", got %q`, p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Errorf(`must not contain "?" or "#", got %q: only the path is matched`, p)
	case hasSpace(p):
		return fmt.Errorf("must not contain white space, got %q", p)
	}
	return nil
}
