package config

import (
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// This file converts a route's upstream pool: the upstream setting (one URL
// or a list), the server blocks beside it, and the pool-wide settings.
//
//	route "chat" {
//	  upstream     = ["ws://10.0.1.10:3000", "ws://10.0.1.11:3000"]
//	  balance      = "hash"      # round_robin | least_pairs | hash
//	  hash_key     = "client_ip" # client_ip | header:NAME | cookie:NAME | query:NAME
//	  max_fails    = 1           # defaults for every server of the route
//	  fail_timeout = "10s"
//	  dns_ttl      = "30s"
//
//	  server "ws://10.0.1.12:3000" {
//	    weight       = 2         # twice the share of a server of weight 1
//	    backup       = true
//	    max_fails    = 3
//	    fail_timeout = "30s"
//	  }
//	}
//
// A server block is a server of the pool with settings of its own; the
// list is shorthand for servers that only take the route's defaults. The
// block is named "server", not "upstream", because HCL cannot tell an
// attribute from a block of the same name in one body, and because the
// Nomad and Consul readers know a labelled block as "one of these".

// serverBlock is a `server "URL" { ... }` block inside a route.
type serverBlock struct {
	URL         string
	Weight      *hcl.Attribute
	Backup      *hcl.Attribute
	MaxFails    *hcl.Attribute
	FailTimeout *hcl.Attribute

	URLRange hcl.Range // the label, where a bad URL is reported
	DefRange hcl.Range
}

var serverSchema = attributes("weight", "backup", "max_fails", "fail_timeout")

func decodeServer(b *hcl.Block, diags *hcl.Diagnostics) *serverBlock {
	c, d := b.Body.Content(serverSchema)
	*diags = append(*diags, d...)
	return &serverBlock{
		URL:         b.Labels[0],
		Weight:      c.Attributes["weight"],
		Backup:      c.Attributes["backup"],
		MaxFails:    c.Attributes["max_fails"],
		FailTimeout: c.Attributes["fail_timeout"],
		URLRange:    b.LabelRanges[0],
		DefRange:    b.DefRange,
	}
}

const upstreamHelp = `An upstream is a WebSocket URL such as "ws://127.0.0.1:3000/path" or "wss://backend:9443/path", or host:port such as "127.0.0.1:3000".`

// pooledServer is a server being built, with where it was written.
type pooledServer struct {
	UpstreamServer
	at   hcl.Range
	line int
}

// buildPool converts the route's upstream list, server blocks and pool
// settings into r.Servers, r.Upstream, r.Balance, r.HashKey and r.DNSTTL.
func (s scope) buildPool(b *routeBlock, r *Route) {
	maxFails, failTimeout := DefaultMaxFails, DefaultFailTimeout
	if n, ok := s.integer(b.MaxFails, 0, maxMaxFails); ok {
		maxFails = int(n)
	}
	if d, ok := s.durationIn(b.FailTimeout, minFailTimeout, maxFailTimeout); ok {
		failTimeout = d
	}
	if d, ok := s.durationIn(b.DNSTTL, 0, maxDNSTTL); ok {
		r.DNSTTL = d
	}

	var servers []pooledServer
	add := func(text string, at hcl.Range, setting string) (UpstreamServer, bool) {
		up, err := ParseUpstream(text)
		if err != nil {
			s.fail(at, setting, err.Error(), upstreamHelp)
			return UpstreamServer{}, false
		}
		return UpstreamServer{Upstream: up, MaxFails: maxFails, FailTimeout: failTimeout, Weight: DefaultWeight}, true
	}

	if b.Upstream == nil && len(b.Servers) == 0 {
		s.fail(b.DefRange, "upstream", "required setting is missing",
			`Add upstream = "ws://127.0.0.1:3000" (or a list of URLs, or server "URL" { } blocks) to this block.`)
	}
	for _, e := range s.upstreamList(b.Upstream) {
		if srv, ok := add(e.text, e.rng, "upstream"); ok {
			servers = append(servers, pooledServer{srv, e.rng, e.rng.Start.Line})
		}
	}
	for _, sb := range b.Servers {
		ss := s.child(fmt.Sprintf("server %q", sb.URL))
		srv, ok := add(sb.URL, sb.URLRange, "")
		if n, set := ss.integer(sb.Weight, 1, maxWeight); set {
			srv.Weight = int(n)
		}
		if v, set := ss.boolean(sb.Backup); set {
			srv.Backup = v
		}
		if n, set := ss.integer(sb.MaxFails, 0, maxMaxFails); set {
			srv.MaxFails = int(n)
		}
		if d, set := ss.durationIn(sb.FailTimeout, minFailTimeout, maxFailTimeout); set {
			srv.FailTimeout = d
		}
		if ok {
			servers = append(servers, pooledServer{srv, sb.URLRange, sb.DefRange.Start.Line})
		}
	}
	s.checkServers(b, servers)
	for _, p := range servers {
		r.Servers = append(r.Servers, p.UpstreamServer)
	}
	for _, srv := range r.Servers {
		if !srv.Backup {
			r.Upstream = srv.Upstream
			break
		}
	}

	balanceOK := b.Balance == nil
	if text, ok := s.str(b.Balance, `"round_robin"`); ok {
		if !slices.Contains(balances, text) {
			msg := fmt.Sprintf("unknown balance %q: want one of %s", text, strings.Join(balances, ", "))
			if sug := suggest(text, balances); sug != "" {
				msg += fmt.Sprintf("; did you mean %q?", sug)
			}
			s.fail(b.Balance.Expr.Range(), "balance", msg, "")
		} else {
			r.Balance, balanceOK = Balance(text), true
		}
	}
	if text, ok := s.str(b.HashKey, `"client_ip"`); ok {
		if k, err := parseHashKey(text); err != nil {
			s.fail(b.HashKey.Expr.Range(), "hash_key", err.Error(),
				`A hash key is "client_ip", or "header:NAME", "cookie:NAME" or "query:NAME" with the name of a header, cookie or query parameter.`)
		} else {
			r.HashKey = k
		}
		// A key that is never used is a sign of a forgotten balance.
		if balanceOK && r.Balance != BalanceHash {
			s.fail(b.HashKey.Expr.Range(), "hash_key",
				fmt.Sprintf("only used with balance = %q, and this route balances %q", BalanceHash, r.Balance),
				`Set balance = "hash" in this route, or remove hash_key.`)
		}
	}
}

// upstreamList reads the upstream setting, one string or a list of them,
// keeping each element's own range so that a bad URL in a list is pointed
// at, not the whole list.
func (s scope) upstreamList(attr *hcl.Attribute) []listElem {
	v, ok := s.eval(attr)
	if !ok {
		return nil
	}
	rng := attr.Expr.Range()
	if v.IsNull() {
		s.fail(rng, "upstream", "required setting is null", `Set it to a value such as "ws://127.0.0.1:3000".`)
		return nil
	}
	if v.Type() == cty.String {
		return []listElem{{text: v.AsString(), rng: rng}}
	}
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		s.fail(rng, "upstream", "must be a string or a list of strings, got "+v.Type().FriendlyName(),
			`Write one URL in quotes, or a list such as ["ws://10.0.1.10:3000", "ws://10.0.1.11:3000"].`)
		return nil
	}
	if v.LengthInt() == 0 {
		s.fail(rng, "upstream", "empty list: a route needs at least one server",
			`Write at least one URL, such as ["ws://127.0.0.1:3000"].`)
		return nil
	}
	// A literal list has one expression per element; anything else
	// (which a constant-only file cannot produce) is pointed at as a
	// whole.
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() || len(exprs) != v.LengthInt() {
		exprs = nil
	}
	var out []listElem
	for i, ev := range v.AsValueSlice() {
		at := rng
		if exprs != nil {
			at = exprs[i].Range()
		}
		if ev.IsNull() || ev.Type() != cty.String {
			s.fail(at, "upstream", fmt.Sprintf("element %d must be a string, got %s", i+1, ev.Type().FriendlyName()),
				`Write each URL in quotes.`)
			continue
		}
		out = append(out, listElem{text: ev.AsString(), rng: at})
	}
	return out
}

// checkServers checks a route's servers against each other: no server
// twice, one request path for all, at least one primary, not too many.
//
// The path must be shared because the request target is built before a
// server is picked, and a failover to a server that expects another path
// would change what the client asked for behind its back.
func (s scope) checkServers(b *routeBlock, servers []pooledServer) {
	if len(servers) > maxServers {
		s.fail(servers[maxServers].at, "", fmt.Sprintf("too many servers: at most %d per route", maxServers), "")
	}
	seen := map[string]int{}
	primary := false
	for i, p := range servers {
		primary = primary || !p.Backup
		key := p.Address
		if first, dup := seen[key]; dup {
			s.fail(p.at, "", fmt.Sprintf("server %s is already in this route's pool, on line %d", p.Address, servers[first].line),
				"Each server may appear once, in the upstream list or as a server block.")
			continue
		}
		seen[key] = i
		if p.TLS != servers[0].TLS {
			s.fail(p.at, "", fmt.Sprintf("scheme of %s differs from that of the first server, on line %d", p.Raw, servers[0].line),
				"A route speaks TLS to all of its servers or to none: write them all as wss:// or all as ws://, or split them into routes.")
		}
		if p.Path != servers[0].Path {
			s.fail(p.at, "", fmt.Sprintf("path %q differs from %q of the first server, on line %d", p.Path, servers[0].Path, servers[0].line),
				"Every server of a route is asked for the same path: a failover must not change what the client asked for. Give all servers the same path, or split them into routes.")
		}
	}
	if len(servers) > 0 && !primary {
		s.fail(b.DefRange, "", "every server is a backup: at least one must be a primary",
			"Backup servers are used only when every primary is down; remove backup = true from at least one server.")
	}
}

// parseHashKey parses a hash_key value.
func parseHashKey(text string) (HashKey, error) {
	source, name, hasName := strings.Cut(text, ":")
	k := HashKey{Source: HashKeySource(source)}
	switch k.Source {
	case HashClientIP:
		if hasName {
			return HashKey{}, fmt.Errorf("%q takes no name", HashClientIP)
		}
		return k, nil
	case HashHeader, HashCookie, HashQuery:
		if name == "" {
			return HashKey{}, fmt.Errorf("%q needs a name, as in %q", source, source+":X-Session")
		}
		if hasSpace(name) {
			return HashKey{}, fmt.Errorf("name %q must not contain white space", name)
		}
		if k.Source == HashHeader {
			name = textproto.CanonicalMIMEHeaderKey(name)
		}
		k.Name = name
		return k, nil
	default:
		sources := []string{string(HashClientIP), string(HashHeader), string(HashCookie), string(HashQuery)}
		msg := fmt.Sprintf("unknown hash key %q: want client_ip, header:NAME, cookie:NAME or query:NAME", text)
		if sug := suggest(source, sources); sug != "" {
			msg += fmt.Sprintf("; did you mean %q?", sug)
		}
		return HashKey{}, fmt.Errorf("%s", msg)
	}
}
