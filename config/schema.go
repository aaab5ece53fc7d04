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
// defaults.go. A nested block (heartbeat "client" { ... } in a route, say)
// goes in the parent's schema Blocks, with a struct and decode function of
// its own like the ones below.
//
// The decoding is written out rather than done by gohcl: it is short, needs
// no reflection, and gohcl imports hclwrite, whose own dependencies this
// module does not carry.

// fileConfig is a whole configuration file.
type fileConfig struct {
	Listeners []*listenerBlock
	Admin     *adminBlock  // nil when absent
	Engine    *engineBlock // nil when absent
	Routes    []*routeBlock
}

// listenerBlock is a `listener { ... }` block.
type listenerBlock struct {
	Address        *hcl.Attribute
	MaxHeaderBytes *hcl.Attribute

	DefRange hcl.Range // the block header, where a missing setting is reported
}

// adminBlock is the `admin { ... }` block.
type adminBlock struct {
	Address *hcl.Attribute

	DefRange hcl.Range
}

// engineBlock is the `engine { ... }` block.
type engineBlock struct {
	Loops *hcl.Attribute

	DefRange hcl.Range
}

// routeBlock is a `route "name" { ... }` block.
type routeBlock struct {
	Name             string
	Host             *hcl.Attribute
	PathPrefix       *hcl.Attribute
	Upstream         *hcl.Attribute
	MaxFrameSize     *hcl.Attribute
	HandshakeTimeout *hcl.Attribute
	CloseTimeout     *hcl.Attribute

	NameRange hcl.Range // the label, where a bad or duplicate name is reported
	DefRange  hcl.Range
}

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "listener"},
		{Type: "admin"},
		{Type: "engine"},
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
	listenerSchema = attributes("address", "max_header_bytes")
	adminSchema    = attributes("address")
	engineSchema   = attributes("loops")
	routeSchema    = attributes("host", "path_prefix", "upstream",
		"max_frame_size", "handshake_timeout", "close_timeout")
)

// decodeFile splits body into its blocks. It reports unknown or duplicated
// blocks and attributes, and returns everything it could decode despite
// them, so that build can check the rest in the same run.
func decodeFile(body hcl.Body) (*fileConfig, hcl.Diagnostics) {
	content, diags := body.Content(fileSchema)
	f := &fileConfig{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "listener":
			c, d := b.Body.Content(listenerSchema)
			diags = append(diags, d...)
			f.Listeners = append(f.Listeners, &listenerBlock{
				Address:        c.Attributes["address"],
				MaxHeaderBytes: c.Attributes["max_header_bytes"],
				DefRange:       b.DefRange,
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
				DefRange: b.DefRange,
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
				DefRange: b.DefRange,
			}
		case "route":
			c, d := b.Body.Content(routeSchema)
			diags = append(diags, d...)
			f.Routes = append(f.Routes, &routeBlock{
				Name:             b.Labels[0],
				Host:             c.Attributes["host"],
				PathPrefix:       c.Attributes["path_prefix"],
				Upstream:         c.Attributes["upstream"],
				MaxFrameSize:     c.Attributes["max_frame_size"],
				HandshakeTimeout: c.Attributes["handshake_timeout"],
				CloseTimeout:     c.Attributes["close_timeout"],
				NameRange:        b.LabelRanges[0],
				DefRange:         b.DefRange,
			})
		}
	}
	return f, diags
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
