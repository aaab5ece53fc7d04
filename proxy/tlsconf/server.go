package tlsconf

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsalive/wsalive/config"
)

// ALPN is the one application protocol wsalive offers and accepts:
// WebSocket upgrades are HTTP/1.1 requests (RFC 6455; WebSocket over
// HTTP/2, RFC 8441, is not supported), so a client that negotiated h2
// could not upgrade at all.
const ALPN = "http/1.1"

// Options are a Server's collaborators; the zero value is usable.
type Options struct {
	// Logger receives reloads and reload failures; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnReload, when not nil, is called after each reload attempt that
	// changed something or failed: err is nil when new material is in
	// use, and the reason when the previous material was kept. It runs on
	// the watcher's goroutine (or Reload's caller) and must not block.
	OnReload func(err error)
	// Now is the clock used to warn about expired certificates; nil means
	// time.Now.
	Now func() time.Time
}

// Server is the TLS material of one listener. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  config.ListenerTLS
	opts Options
	log  *slog.Logger
	// base is the configuration handed to tls.Server: it only defers, per
	// handshake, to the material current at that moment.
	base *tls.Config

	reloadMu sync.Mutex // serializes Reload
	cur      atomic.Pointer[material]

	watchMu sync.Mutex
	watch   *watcher // nil until Watch
}

// material is one loaded set of files: what a handshake uses. It is never
// modified once stored, so a handshake that picked it up keeps a
// consistent view even while a reload builds the next one.
type material struct {
	// certs in configuration order; certs[0] is the default.
	certs []*tls.Certificate
	// exact maps lower-cased DNS names to the first certificate that
	// names them; wildcard does the same for "*.suffix" names, keyed by
	// suffix.
	exact, wildcard map[string]*tls.Certificate
	// conf is returned by GetConfigForClient.
	conf *tls.Config
	// sum identifies the files' contents, so that an event that changed
	// nothing (a touch, a chmod) does not count as a reload.
	sum [sha256.Size]byte
}

// NewServer loads the files cfg names. Its error names the file at fault.
// Call Watch to follow changes on disk.
func NewServer(cfg *config.ListenerTLS, opts Options) (*Server, error) {
	if cfg == nil || len(cfg.Certificates) == 0 {
		return nil, errors.New("tls: no certificate configured")
	}
	s := &Server{cfg: *cfg, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.warnValidity(m)
	s.base = &tls.Config{
		// The material's own MinVersion and ALPN are what a handshake
		// uses; these repeat them for anything that reads the base.
		MinVersion:         s.cfg.MinVersion,
		NextProtos:         []string{ALPN},
		GetConfigForClient: s.configForClient,
	}
	return s, nil
}

// TLSConfig returns the configuration for tls.Server. It follows reloads:
// each handshake uses the material current when its ClientHello arrives.
func (s *Server) TLSConfig() *tls.Config { return s.base }

func (s *Server) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return s.cur.Load().conf, nil
}

// Reload reads the files again. When they changed and load, new
// handshakes use them; when they do not load, the previous material stays
// in use and the error says why. Unchanged files are not a reload.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	m, err := s.load()
	if err != nil {
		s.log.Warn("tls: reloading certificates failed; the previous ones stay in use", "err", err)
		s.notify(err)
		return err
	}
	if m.sum == s.cur.Load().sum {
		return nil
	}
	s.cur.Store(m)
	s.log.Info("tls: certificates reloaded", "names", m.names())
	s.warnValidity(m)
	s.notify(nil)
	return nil
}

func (s *Server) notify(err error) {
	if s.opts.OnReload != nil {
		s.opts.OnReload(err)
	}
}

// load reads and checks every file.
func (s *Server) load() (*material, error) {
	h := sha256.New()
	read := func(path, setting string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("tls: %s: %w", setting, err)
		}
		// Length first, so that moving bytes from one file to the next
		// cannot give the same sum.
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
		return b, nil
	}
	m := &material{
		exact:    map[string]*tls.Certificate{},
		wildcard: map[string]*tls.Certificate{},
	}
	for i, files := range s.cfg.Certificates {
		certPEM, err := read(files.CertFile, "cert_file")
		if err != nil {
			return nil, err
		}
		keyPEM, err := read(files.KeyFile, "key_file")
		if err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s with key %s: %w", files.CertFile, files.KeyFile, err)
		}
		if c.Leaf == nil {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls: certificate %s: %w", files.CertFile, err)
			}
		}
		if i == 0 && len(c.Leaf.DNSNames) == 0 && len(c.Leaf.IPAddresses) == 0 {
			// Not an error: a default certificate without names still
			// serves clients that verify against their own pins.
			s.log.Warn("tls: the default certificate names no host (no subject alternative names); clients that verify names will refuse it",
				"cert_file", files.CertFile)
		}
		m.add(&c)
	}
	conf := &tls.Config{
		MinVersion:     s.cfg.MinVersion,
		NextProtos:     []string{ALPN},
		GetCertificate: m.certificate,
	}
	if s.cfg.ClientCAFile != "" {
		pemCAs, err := read(s.cfg.ClientCAFile, "client_ca_file")
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCAs) {
			return nil, fmt.Errorf("tls: client_ca_file %s: no PEM certificate in it", s.cfg.ClientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		// Tickets of this material only: a session resumed from a ticket
		// skips the client certificate check, so tickets issued while
		// another client CA was in force must not be accepted.
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			return nil, err
		}
		conf.SetSessionTicketKeys([][32]byte{key})
	}
	copy(m.sum[:], h.Sum(nil))
	m.conf = conf
	return m, nil
}

// add indexes c under the names it covers; an earlier certificate keeps a
// name it shares with a later one.
func (m *material) add(c *tls.Certificate) {
	m.certs = append(m.certs, c)
	for _, n := range c.Leaf.DNSNames {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		index, key := m.exact, n
		if suffix, ok := strings.CutPrefix(n, "*."); ok {
			index, key = m.wildcard, suffix
		}
		if _, taken := index[key]; !taken {
			index[key] = c
		}
	}
}

// certificate picks the certificate for a handshake: the one naming the
// SNI host exactly, else one whose wildcard covers it (one label, as
// RFC 6125 §6.4.3 allows), else the default.
func (m *material) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := m.exact[name]; c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := m.wildcard[name[i+1:]]; c != nil {
				return c, nil
			}
		}
	}
	return m.certs[0], nil
}

// names lists every certificate's names, for the reload log line.
func (m *material) names() []string {
	var out []string
	for _, c := range m.certs {
		out = append(out, c.Leaf.DNSNames...)
		for _, ip := range c.Leaf.IPAddresses {
			out = append(out, ip.String())
		}
	}
	return out
}

// warnValidity warns about certificates that are expired or not yet
// valid: still served (the operator may know better, and refusing to
// start would take every other name down), but clients will refuse them.
func (s *Server) warnValidity(m *material) {
	now := s.opts.Now()
	for i, c := range m.certs {
		file := s.cfg.Certificates[i].CertFile
		switch {
		case now.After(c.Leaf.NotAfter):
			s.log.Warn("tls: certificate has expired; clients will refuse it",
				"cert_file", file, "not_after", c.Leaf.NotAfter)
		case now.Before(c.Leaf.NotBefore):
			s.log.Warn("tls: certificate is not valid yet; clients will refuse it",
				"cert_file", file, "not_before", c.Leaf.NotBefore)
		}
	}
}

// Current returns the leaf certificate a handshake started now with SNI
// name serverName ("" for none) would get.
func (s *Server) Current(serverName string) *x509.Certificate {
	c, _ := s.cur.Load().certificate(&tls.ClientHelloInfo{ServerName: serverName})
	return c.Leaf
}

// files lists every file the server reads, for the watcher.
func (s *Server) files() []string {
	var out []string
	for _, c := range s.cfg.Certificates {
		out = append(out, c.CertFile, c.KeyFile)
	}
	if s.cfg.ClientCAFile != "" {
		out = append(out, s.cfg.ClientCAFile)
	}
	return out
}
