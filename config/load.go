package config

import (
	"os"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Load reads and parses the configuration file at path. See Parse.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, newError(hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "cannot read configuration: " + err.Error(),
		}}, nil, err)
	}
	return Parse(path, src)
}

// Parse parses src, the HCL native syntax of a configuration file, and
// returns the validated runtime Config with every default applied.
// filename names src in messages. When the configuration cannot be used the
// error is an *Error holding every problem found.
func Parse(filename string, src []byte) (*Config, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	files := map[string]*hcl.File{filename: file}
	if diags.HasErrors() {
		// The parser already reports every syntax error it can. Decoding a
		// body it had to guess at would add errors about settings the user
		// wrote correctly, so stop here.
		return nil, newError(diags, files, nil)
	}

	f, decodeDiags := decodeFile(file.Body)
	diags = append(diags, decodeDiags...)
	// Carry on after decoding errors (an unknown attribute, say): the
	// blocks that did decode still deserve to be checked in the same run.
	cfg, buildDiags := build(f, file.Body.MissingItemRange())
	diags = append(diags, buildDiags...)
	if diags.HasErrors() {
		return nil, newError(diags, files, nil)
	}
	return cfg, nil
}

// Minimal returns the configuration of `wsalive run -listen ... -upstream
// ...` without a file: one listener on listen and one route named
// "default" to upstream, with every default applied. It goes through the
// same conversion as a file, so it accepts and refuses exactly what a file
// would; a problem is reported against the flag's value, as if the flag
// were a one-line file named after it.
func Minimal(listen, upstream string) (*Config, error) {
	files := map[string]*hcl.File{}
	flag := func(flag, setting, value string) *hcl.Attribute {
		files[flag] = &hcl.File{Bytes: []byte(value)}
		rng := hcl.Range{
			Filename: flag,
			Start:    hcl.InitialPos,
			End: hcl.Pos{
				Line:   1,
				Column: 1 + utf8.RuneCountInString(value),
				Byte:   len(value),
			},
		}
		return &hcl.Attribute{
			Name:      setting,
			Expr:      hcl.StaticExpr(cty.StringVal(value), rng),
			Range:     rng,
			NameRange: rng,
		}
	}
	f := &fileConfig{
		Listeners: []*listenerBlock{{Address: flag("-listen", "address", listen)}},
		Routes: []*routeBlock{{
			Name:     minimalRouteName,
			Upstream: flag("-upstream", "upstream", upstream),
		}},
	}
	cfg, diags := build(f, hcl.Range{})
	if diags.HasErrors() {
		return nil, newError(diags, files, nil)
	}
	return cfg, nil
}
