package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// The types in this file are the configuration file in the user's shape:
// blocks and attributes exactly as written, nothing defaulted, nothing
// checked. Each block has a schema, so hcl itself reports an unknown block
// or attribute with its range and a "did you mean" suggestion.
//
// Attributes are kept as *hcl.Attribute (nil when absent) rather than as Go
// values, for two reasons: every validation problem can then point at the
// exact value the user wrote, and each value is converted exactly once, by
// the helpers in attrs.go, into the runtime Config (build.go). Settings that
// accept more than one form (a size as a number or as "16MiB") need that
// control anyway.
//
// To add a setting: add it to the block's schema and struct here, convert it
// in build.go with a helper from attrs.go, and give it a default in
// defaults.go. A nested block goes in the parent's schema Blocks, with a
// struct of its own, decoded by the parent's decode function: see
// heartbeatBlock and appPingBlock in decodeRoute.
//
// The decoding is written out rather than done by gohcl: it is short, needs
// no reflection, and gohcl imports hclwrite, whose own dependencies this
// module does not carry.

// fileConfig is a whole configuration file.
type fileConfig struct {
	Listeners []*listenerBlock
	Admin     *adminBlock  // nil when absent
	Engine    *engineBlock // nil when absent
	Limits    *limitsBlock // nil when absent
	Routes    []*routeBlock
	Drain     *drainBlock    // nil when absent
	LogLevel  *hcl.Attribute // top-level log_level; nil when absent
}

// listenerBlock is a `listener { ... }` block.
type listenerBlock struct {
	Address        *hcl.Attribute
	MaxHeaderBytes *hcl.Attribute
	TLS            *tlsBlock // nil when absent
	listenerFrontDoorAttrs

	DefRange hcl.Range // the block header, where a missing setting is reported
}

// adminBlock is the `admin { ... }` block.
type adminBlock struct {
	Address *hcl.Attribute
	Pprof   *hcl.Attribute

	DefRange hcl.Range
}

// drainBlock is the `drain { ... }` block.
type drainBlock struct {
	Delay     *hcl.Attribute
	Window    *hcl.Attribute
	CloseCode *hcl.Attribute

	DefRange hcl.Range
}

// engineBlock is the `engine { ... }` block.
type engineBlock struct {
	Loops   *hcl.Attribute
	IOUring *hcl.Attribute

	DefRange hcl.Range
}

// routeBlock is a `route "name" { ... }` block.
type routeBlock struct {
	Name              string
	Host              *hcl.Attribute
	PathPrefix        *hcl.Attribute
	Upstream          *hcl.Attribute
	MaxFrameSize      *hcl.Attribute
	HandshakeTimeout  *hcl.Attribute
	CloseTimeout      *hcl.Attribute
	NATIdleTimeout    *hcl.Attribute
	NATProfile        *hcl.Attribute
	IdleTimeout       *hcl.Attribute
	MaxLifetime       *hcl.Attribute
	MaxLifetimeJitter *hcl.Attribute
	routeFrontDoorAttrs

	ClientHeartbeat   *heartbeatBlock // heartbeat "client"; nil when absent
	UpstreamHeartbeat *heartbeatBlock // heartbeat "upstream"; nil when absent
	AppPing           *appPingBlock   // nil when absent

	UpstreamTLS *upstreamTLSBlock // nil when absent (see tls.go)
	Resume      *resumeBlock      // nil when absent (see resume.go)
	// The upstream pool's settings (pool.go).
	Balance     *hcl.Attribute
	HashKey     *hcl.Attribute
	MaxFails    *hcl.Attribute
	FailTimeout *hcl.Attribute
	DNSTTL      *hcl.Attribute
	Servers     []*serverBlock // server "URL" { ... } blocks, in file order

	NameRange hcl.Range // the label, where a bad or duplicate name is reported
	DefRange  hcl.Range
}

// The two sides of a pair, as heartbeat block labels.
const (
	sideClient   = "client"
	sideUpstream = "upstream"
)

// heartbeatBlock is a `heartbeat "client" { ... }` or
// `heartbeat "upstream" { ... }` block inside a route.
type heartbeatBlock struct {
	Side        string // sideClient or sideUpstream
	Enabled     *hcl.Attribute
	Interval    *hcl.Attribute
	Timeout     *hcl.Attribute
	MaxMissed   *hcl.Attribute
	MinInterval *hcl.Attribute
	MaxInterval *hcl.Attribute
	AnswerPings *hcl.Attribute

	TCPKeepaliveIdle     *hcl.Attribute
	TCPKeepaliveInterval *hcl.Attribute
	TCPKeepaliveCount    *hcl.Attribute
	TCPUserTimeout       *hcl.Attribute

	DefRange hcl.Range
}

// appPingBlock is the `app_ping { ... }` block inside a route.
type appPingBlock struct {
	Match *hcl.Attribute
	Reply *hcl.Attribute

	DefRange hcl.Range
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "log_level"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "drain"},
		{Type: "listener"},
		{Type: "admin"},
		{Type: "engine"},
		{Type: "limits"},
		{Type: "route", LabelNames: []string{"name"}},
	},
}

// attributes returns a schema of optional attributes. None is marked
// Required: build reports a missing one itself, in the same words as any
// other problem of that block.
func attributes(names ...string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, n := range names {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	return s
}

var (
	listenerSchema = withBlocks(attributes(append([]string{"address", "max_header_bytes"}, listenerFrontDoorNames...)...), hcl.BlockHeaderSchema{Type: "tls"})
	adminSchema    = attributes("address", "pprof")
	drainSchema    = attributes("delay", "window", "close_code")
	engineSchema   = attributes("loops", "io_uring")
	routeSchema    = withBlocks(attributes(append([]string{"host", "path_prefix", "upstream",
		"max_frame_size", "handshake_timeout", "close_timeout",
		"nat_idle_timeout", "nat_profile", "idle_timeout",
		"max_lifetime", "max_lifetime_jitter",
		"balance", "hash_key", "max_fails", "fail_timeout", "dns_ttl"}, routeFrontDoorNames...)...),
		hcl.BlockHeaderSchema{Type: "heartbeat", LabelNames: []string{"side"}},
		hcl.BlockHeaderSchema{Type: "app_ping"},
		hcl.BlockHeaderSchema{Type: "server", LabelNames: []string{"url"}},
		hcl.BlockHeaderSchema{Type: "upstream_tls"},
		hcl.BlockHeaderSchema{Type: "resume"},
	)
	heartbeatSchema = attributes("enabled", "interval", "timeout", "max_missed",
		"min_interval", "max_interval", "answer_pings",
		"tcp_keepalive_idle", "tcp_keepalive_interval", "tcp_keepalive_count",
		"tcp_user_timeout")
	appPingSchema = attributes("match", "reply")
)

// withBlocks adds nested block types to s and returns it.
func withBlocks(s *hcl.BodySchema, blocks ...hcl.BlockHeaderSchema) *hcl.BodySchema {
	s.Blocks = append(s.Blocks, blocks...)
	return s
}

// decodeFile splits body into its blocks. It reports unknown or duplicated
// blocks and attributes, and returns everything it could decode despite
// them, so that build can check the rest in the same run.
func decodeFile(body hcl.Body) (*fileConfig, hcl.Diagnostics) {
	content, diags := body.Content(fileSchema)
	f := &fileConfig{LogLevel: content.Attributes["log_level"]}
	for _, b := range content.Blocks {
		switch b.Type {
		case "listener":
			c, d := b.Body.Content(listenerSchema)
			diags = append(diags, d...)
			f.Listeners = append(f.Listeners, &listenerBlock{
				Address:                c.Attributes["address"],
				MaxHeaderBytes:         c.Attributes["max_header_bytes"],
				listenerFrontDoorAttrs: decodeListenerFrontDoor(c.Attributes),
				TLS:                    decodeListenerTLS(c.Blocks, &diags),
				DefRange:               b.DefRange,
			})
		case "admin":
			if f.Admin != nil {
				diags = append(diags, duplicateBlock(b, f.Admin.DefRange))
				continue
			}
			c, d := b.Body.Content(adminSchema)
			diags = append(diags, d...)
			f.Admin = &adminBlock{
				Address:  c.Attributes["address"],
				Pprof:    c.Attributes["pprof"],
				DefRange: b.DefRange,
			}
		case "drain":
			if f.Drain != nil {
				diags = append(diags, duplicateBlock(b, f.Drain.DefRange))
				continue
			}
			c, d := b.Body.Content(drainSchema)
			diags = append(diags, d...)
			f.Drain = &drainBlock{
				Delay:     c.Attributes["delay"],
				Window:    c.Attributes["window"],
				CloseCode: c.Attributes["close_code"],
				DefRange:  b.DefRange,
			}
		case "engine":
			if f.Engine != nil {
				diags = append(diags, duplicateBlock(b, f.Engine.DefRange))
				continue
			}
			c, d := b.Body.Content(engineSchema)
			diags = append(diags, d...)
			f.Engine = &engineBlock{
				Loops:    c.Attributes["loops"],
				IOUring:  c.Attributes["io_uring"],
				DefRange: b.DefRange,
			}
		case "limits":
			if f.Limits != nil {
				diags = append(diags, duplicateBlock(b, f.Limits.DefRange))
				continue
			}
			f.Limits = decodeLimits(b, &diags)
		case "route":
			f.Routes = append(f.Routes, decodeRoute(b, &diags))
		}
	}
	return f, diags
}

// decodeRoute splits a route block into its settings and nested blocks,
// recording problems in diags. A heartbeat block with a label other than
// "client" or "upstream", and a second block of a kind that may appear
// once, are reported and left out.
func decodeRoute(b *hcl.Block, diags *hcl.Diagnostics) *routeBlock {
	c, d := b.Body.Content(routeSchema)
	*diags = append(*diags, d...)
	r := &routeBlock{
		Name:                b.Labels[0],
		Host:                c.Attributes["host"],
		PathPrefix:          c.Attributes["path_prefix"],
		Upstream:            c.Attributes["upstream"],
		MaxFrameSize:        c.Attributes["max_frame_size"],
		HandshakeTimeout:    c.Attributes["handshake_timeout"],
		CloseTimeout:        c.Attributes["close_timeout"],
		NATIdleTimeout:      c.Attributes["nat_idle_timeout"],
		NATProfile:          c.Attributes["nat_profile"],
		IdleTimeout:         c.Attributes["idle_timeout"],
		MaxLifetime:         c.Attributes["max_lifetime"],
		MaxLifetimeJitter:   c.Attributes["max_lifetime_jitter"],
		Balance:             c.Attributes["balance"],
		HashKey:             c.Attributes["hash_key"],
		MaxFails:            c.Attributes["max_fails"],
		FailTimeout:         c.Attributes["fail_timeout"],
		DNSTTL:              c.Attributes["dns_ttl"],
		routeFrontDoorAttrs: decodeRouteFrontDoor(c.Attributes),
		NameRange:           b.LabelRanges[0],
		DefRange:            b.DefRange,
	}
	s := scope{diags: diags}.child(fmt.Sprintf("route %q", r.Name))
	for _, nb := range c.Blocks {
		switch nb.Type {
		case "heartbeat":
			side := nb.Labels[0]
			var slot **heartbeatBlock
			switch side {
			case sideClient:
				slot = &r.ClientHeartbeat
			case sideUpstream:
				slot = &r.UpstreamHeartbeat
			default:
				s.fail(nb.LabelRanges[0], "heartbeat",
					unknownSide(side),
					`heartbeat "client" is the policy toward the clients that connect to wsalive; heartbeat "upstream" is the policy toward the upstream server.`)
				continue
			}
			if *slot != nil {
				s.fail(nb.DefRange, fmt.Sprintf("heartbeat %q", side),
					fmt.Sprintf("duplicate block: a route has at most one heartbeat %q block, the first is on line %d",
						side, (*slot).DefRange.Start.Line),
					fmt.Sprintf("Merge the settings of both heartbeat %q blocks into the first one.", side))
				continue
			}
			hc, d := nb.Body.Content(heartbeatSchema)
			*diags = append(*diags, d...)
			*slot = &heartbeatBlock{
				Side:                 side,
				Enabled:              hc.Attributes["enabled"],
				Interval:             hc.Attributes["interval"],
				Timeout:              hc.Attributes["timeout"],
				MaxMissed:            hc.Attributes["max_missed"],
				MinInterval:          hc.Attributes["min_interval"],
				MaxInterval:          hc.Attributes["max_interval"],
				AnswerPings:          hc.Attributes["answer_pings"],
				TCPKeepaliveIdle:     hc.Attributes["tcp_keepalive_idle"],
				TCPKeepaliveInterval: hc.Attributes["tcp_keepalive_interval"],
				TCPKeepaliveCount:    hc.Attributes["tcp_keepalive_count"],
				TCPUserTimeout:       hc.Attributes["tcp_user_timeout"],
				DefRange:             nb.DefRange,
			}
		case "app_ping":
			if r.AppPing != nil {
				s.fail(nb.DefRange, "app_ping",
					fmt.Sprintf("duplicate block: a route has at most one app_ping block, the first is on line %d",
						r.AppPing.DefRange.Start.Line),
					"Merge the settings of both app_ping blocks into the first one.")
				continue
			}
			ac, d := nb.Body.Content(appPingSchema)
			*diags = append(*diags, d...)
			r.AppPing = &appPingBlock{
				Match:    ac.Attributes["match"],
				Reply:    ac.Attributes["reply"],
				DefRange: nb.DefRange,
			}
		case "upstream_tls":
			decodeUpstreamTLS(s, nb, &r.UpstreamTLS, diags)
		case "server":
			r.Servers = append(r.Servers, decodeServer(nb, diags))
		case "resume":
			decodeResume(s, nb, &r.Resume, diags)
		}
	}
	return r
}

// duplicateBlock reports a second block of a kind that may appear once.
func duplicateBlock(b *hcl.Block, first hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary: fmt.Sprintf("%s: duplicate block: only one %s block is allowed, the first is on line %d",
			b.Type, b.Type, first.Start.Line),
		Detail:  fmt.Sprintf("Merge the settings of both %s blocks into the first one.", b.Type),
		Subject: b.DefRange.Ptr(),
	}
}

// unknownSide is the message for a heartbeat block labelled side, which is
// neither "client" nor "upstream".
func unknownSide(side string) string {
	msg := fmt.Sprintf("unknown side %q: the label must be %q or %q", side, sideClient, sideUpstream)
	if s := suggest(side, []string{sideClient, sideUpstream}); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}
