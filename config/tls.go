package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// This file holds the two TLS blocks: a listener's `tls { ... }` (wsalive
// terminates TLS for its clients) and a route's `upstream_tls { ... }`
// (wsalive speaks TLS to a wss:// upstream). Both only name files and
// choices here; loading and watching the files is proxy/tlsconf's job at
// start, because a certificate is material that changes on disk while the
// configuration does not.
//
// A listener serves one or more certificates:
//
//	tls {
//	  cert_file = "/etc/wsalive/tls/server.crt"   # the default certificate
//	  key_file  = "/etc/wsalive/tls/server.key"
//	  certificate {                               # more, chosen by SNI
//	    cert_file = "/etc/wsalive/tls/other.crt"
//	    key_file  = "/etc/wsalive/tls/other.key"
//	  }
//	}
//
// Which certificate answers a handshake is decided by the names in the
// certificates themselves (their DNS SANs), not by a second list in the
// file that could disagree with them: the SNI name is matched exactly, then
// against wildcard names ("*.example.com" covers one label), and a client
// that sends no name, or one no certificate covers, gets the default. The
// default is the block's own cert_file/key_file, or the first certificate
// block when the block has none of its own.

// CertFiles names a certificate chain and its private key, both PEM.
type CertFiles struct {
	// CertFile holds the leaf certificate first, then any intermediates.
	CertFile string
	KeyFile  string
}

// ListenerTLS is a listener's TLS termination.
type ListenerTLS struct {
	// Certificates are served by SNI; the first is the default. At least
	// one.
	Certificates []CertFiles
	// MinVersion is the oldest protocol version accepted:
	// tls.VersionTLS12 or tls.VersionTLS13.
	MinVersion uint16
	// ClientCAFile, when not empty, makes client certificates mandatory:
	// a client must present one that chains to a CA in this PEM file
	// (mutual TLS).
	ClientCAFile string
}

// UpstreamTLS is how wsalive speaks TLS to a wss:// upstream. Every route
// with a wss:// upstream has one, defaults applied, whether or not the
// file has an upstream_tls block.
type UpstreamTLS struct {
	// CAFile, when not empty, holds the CAs the upstream's certificate
	// must chain to; empty means the system's roots.
	CAFile string
	// ServerName is sent as SNI and checked against the upstream's
	// certificate. Empty (the default) means each server's own host, as
	// its URL names it, so that every server of a pool is verified
	// against its own name.
	ServerName string
	// ClientCert, when not nil, is presented to an upstream that asks for
	// a client certificate.
	ClientCert *CertFiles
	// InsecureSkipVerify accepts any certificate the upstream presents.
	// Allowed for test backends; wsalive logs a warning at start.
	InsecureSkipVerify bool
}

// tlsBlock is a listener's `tls { ... }` block.
type tlsBlock struct {
	CertFile     *hcl.Attribute
	KeyFile      *hcl.Attribute
	MinVersion   *hcl.Attribute
	ClientCAFile *hcl.Attribute
	Certificates []*certificateBlock

	DefRange hcl.Range
}

// certificateBlock is a `certificate { ... }` block inside tls.
type certificateBlock struct {
	CertFile *hcl.Attribute
	KeyFile  *hcl.Attribute

	DefRange hcl.Range
}

// upstreamTLSBlock is a route's `upstream_tls { ... }` block.
type upstreamTLSBlock struct {
	CAFile             *hcl.Attribute
	ServerName         *hcl.Attribute
	CertFile           *hcl.Attribute
	KeyFile            *hcl.Attribute
	InsecureSkipVerify *hcl.Attribute

	DefRange hcl.Range
}

var (
	tlsSchema = withBlocks(attributes("cert_file", "key_file", "min_version", "client_ca_file"),
		hcl.BlockHeaderSchema{Type: "certificate"})
	certificateSchema = attributes("cert_file", "key_file")
	upstreamTLSSchema = attributes("ca_file", "server_name", "cert_file", "key_file", "insecure_skip_verify")
)

// decodeListenerTLS decodes the tls blocks among a listener's nested
// blocks; a second one is reported and left out.
func decodeListenerTLS(blocks hcl.Blocks, diags *hcl.Diagnostics) *tlsBlock {
	var t *tlsBlock
	for _, b := range blocks {
		if b.Type != "tls" {
			continue
		}
		if t != nil {
			scope{diags: diags}.child("listener").fail(b.DefRange, "tls",
				fmt.Sprintf("duplicate block: a listener has at most one tls block, the first is on line %d", t.DefRange.Start.Line),
				"Merge the settings of both tls blocks into the first one; several certificates go in certificate { ... } blocks inside it.")
			continue
		}
		c, d := b.Body.Content(tlsSchema)
		*diags = append(*diags, d...)
		t = &tlsBlock{
			CertFile:     c.Attributes["cert_file"],
			KeyFile:      c.Attributes["key_file"],
			MinVersion:   c.Attributes["min_version"],
			ClientCAFile: c.Attributes["client_ca_file"],
			DefRange:     b.DefRange,
		}
		for _, cb := range c.Blocks {
			cc, d := cb.Body.Content(certificateSchema)
			*diags = append(*diags, d...)
			t.Certificates = append(t.Certificates, &certificateBlock{
				CertFile: cc.Attributes["cert_file"],
				KeyFile:  cc.Attributes["key_file"],
				DefRange: cb.DefRange,
			})
		}
	}
	return t
}

// decodeUpstreamTLS decodes an upstream_tls block into *slot, reporting a
// second one in s, the route's scope.
func decodeUpstreamTLS(s scope, b *hcl.Block, slot **upstreamTLSBlock, diags *hcl.Diagnostics) {
	if *slot != nil {
		s.fail(b.DefRange, "upstream_tls",
			fmt.Sprintf("duplicate block: a route has at most one upstream_tls block, the first is on line %d", (*slot).DefRange.Start.Line),
			"Merge the settings of both upstream_tls blocks into the first one.")
		return
	}
	c, d := b.Body.Content(upstreamTLSSchema)
	*diags = append(*diags, d...)
	*slot = &upstreamTLSBlock{
		CAFile:             c.Attributes["ca_file"],
		ServerName:         c.Attributes["server_name"],
		CertFile:           c.Attributes["cert_file"],
		KeyFile:            c.Attributes["key_file"],
		InsecureSkipVerify: c.Attributes["insecure_skip_verify"],
		DefRange:           b.DefRange,
	}
}

// tlsVersions are the accepted min_version values.
var tlsVersions = map[string]uint16{
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

const minVersionHelp = `min_version is "1.2" (the default) or "1.3".`

// buildListenerTLS converts a listener's tls block.
func (s scope) buildListenerTLS(b *tlsBlock) *ListenerTLS {
	s = s.child("tls")
	t := &ListenerTLS{MinVersion: DefaultTLSMinVersion}
	// Certificates seen so far, by cert_file, to refuse the same one
	// twice: the second could never be chosen.
	seen := map[string]hcl.Range{}
	add := func(cert, key *hcl.Attribute, block hcl.Range, optional bool) {
		if optional && cert == nil && key == nil {
			return
		}
		pair, ok := s.certPair(cert, key, block)
		if !ok {
			return
		}
		if first, dup := seen[pair.CertFile]; dup {
			s.fail(cert.Expr.Range(), "cert_file",
				fmt.Sprintf("%q is already served by the certificate on line %d", pair.CertFile, first.Start.Line),
				"Each certificate is listed once; the names it covers come from the certificate itself.")
			return
		}
		seen[pair.CertFile] = cert.Expr.Range()
		t.Certificates = append(t.Certificates, pair)
	}
	if len(b.Certificates) == 0 && b.CertFile == nil && b.KeyFile == nil {
		s.fail(b.DefRange, "", "no certificate: set cert_file and key_file",
			`Add cert_file = "/etc/wsalive/tls/server.crt" and key_file = "/etc/wsalive/tls/server.key" to this block, or certificate { ... } blocks for several names.`)
	} else {
		add(b.CertFile, b.KeyFile, b.DefRange, len(b.Certificates) > 0)
	}
	for _, cb := range b.Certificates {
		add(cb.CertFile, cb.KeyFile, cb.DefRange, false)
	}

	if v, ok := s.str(b.MinVersion, `"1.2"`); ok {
		if ver, known := tlsVersions[strings.TrimSpace(v)]; known {
			t.MinVersion = ver
		} else {
			msg := fmt.Sprintf("unknown TLS version %q", v)
			if v == "1.0" || v == "1.1" {
				msg = fmt.Sprintf("TLS %s is not accepted: it is deprecated (RFC 8996)", v)
			}
			s.fail(b.MinVersion.Expr.Range(), "min_version", msg, minVersionHelp)
		}
	}
	if f, ok := s.filePath(b.ClientCAFile); ok {
		t.ClientCAFile = f
	}
	return t
}

// buildUpstreamTLS sets r.UpstreamTLS for a wss:// upstream, from b when
// the route has an upstream_tls block. upstreamOK says whether the
// upstream parsed; when it did not, only b's own values are checked.
func (s scope) buildUpstreamTLS(b *upstreamTLSBlock, r *Route, upstreamOK bool) {
	if upstreamOK && r.Upstream.TLS {
		r.UpstreamTLS = DefaultUpstreamTLS(r.Upstream)
	}
	if b == nil {
		return
	}
	s = s.child("upstream_tls")
	t := &UpstreamTLS{}
	if upstreamOK && !r.Upstream.TLS {
		s.fail(b.DefRange, "", fmt.Sprintf("this route's upstream %q is not wss://", r.Upstream.Raw),
			`upstream_tls configures TLS toward the upstream: write the upstream as "wss://host[:port][/path]", or remove this block.`)
	}
	if f, ok := s.filePath(b.CAFile); ok {
		t.CAFile = f
	}
	if name, ok := s.str(b.ServerName, `"backend.internal"`); ok {
		if err := checkServerName(name); err != nil {
			s.fail(b.ServerName.Expr.Range(), "server_name", fmt.Sprintf("invalid server name %q: %v", name, err),
				"server_name is the host name the upstream's certificate must cover, such as \"backend.internal\", without scheme or port.")
		} else {
			t.ServerName = name
		}
	}
	if b.CertFile != nil || b.KeyFile != nil {
		if pair, ok := s.certPair(b.CertFile, b.KeyFile, b.DefRange); ok {
			t.ClientCert = &pair
		}
	}
	if v, ok := s.boolean(b.InsecureSkipVerify); ok {
		t.InsecureSkipVerify = v
	}
	if t.InsecureSkipVerify && b.CAFile != nil {
		s.fail(b.CAFile.Expr.Range(), "ca_file", "has no effect with insecure_skip_verify = true",
			"Keep ca_file and remove insecure_skip_verify, so that the upstream's certificate is verified against it.")
	}
	if r.UpstreamTLS != nil {
		r.UpstreamTLS = t
	}
}

// DefaultUpstreamTLS is the TLS toward a wss:// upstream u without an
// upstream_tls block: the system's roots, and each server's host as the
// name its certificate must cover (an empty ServerName).
func DefaultUpstreamTLS(Upstream) *UpstreamTLS {
	return &UpstreamTLS{}
}

// certPair converts a cert_file/key_file pair; both are required. block
// is where a missing one is reported.
func (s scope) certPair(cert, key *hcl.Attribute, block hcl.Range) (CertFiles, bool) {
	c, okC := s.requiredFilePath(cert, block, "cert_file", `"/etc/wsalive/tls/server.crt"`)
	k, okK := s.requiredFilePath(key, block, "key_file", `"/etc/wsalive/tls/server.key"`)
	return CertFiles{CertFile: c, KeyFile: k}, okC && okK
}

// filePath converts an optional file path; an empty one is refused, since it
// reads as set but names nothing.
func (s scope) filePath(attr *hcl.Attribute) (string, bool) {
	p, ok := s.str(attr, `"/etc/wsalive/tls/ca.crt"`)
	if !ok {
		return "", false
	}
	return s.checkPath(attr, p)
}

// requiredFilePath is filePath for a setting without a default.
func (s scope) requiredFilePath(attr *hcl.Attribute, block hcl.Range, setting, hint string) (string, bool) {
	p, ok := s.requiredStr(attr, block, setting, hint)
	if !ok {
		return "", false
	}
	return s.checkPath(attr, p)
}

func (s scope) checkPath(attr *hcl.Attribute, p string) (string, bool) {
	if strings.TrimSpace(p) == "" {
		s.fail(attr.Expr.Range(), attr.Name, "file name must not be empty",
			"A file is named by its path; a relative path is relative to wsalive's working directory.")
		return "", false
	}
	return p, true
}

// checkServerName accepts a DNS name or an IP address, as TLS verifies
// either.
func checkServerName(name string) error {
	if net.ParseIP(name) != nil {
		return nil
	}
	switch {
	case name == "":
		return fmt.Errorf("empty")
	case strings.Contains(name, "://"):
		return fmt.Errorf("want a host name, not a URL")
	case strings.HasPrefix(name, "*"):
		return fmt.Errorf("a wildcard cannot be verified against; name one host")
	case strings.Contains(name, ":"):
		return fmt.Errorf("must not include a port: the port is the upstream URL's")
	}
	h, err := checkHost(name)
	if err != nil {
		return err
	}
	if h == "" {
		return fmt.Errorf("empty")
	}
	return nil
}
