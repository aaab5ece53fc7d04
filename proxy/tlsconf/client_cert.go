package tlsconf

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/wsalive/wsalive/config"
)

// clientCert presents upstream_tls's client certificate, read again when
// its files change. Such certificates are short-lived (cert-manager renews
// them every few weeks), and presenting the expired one until a restart
// would cut the route off.
//
// Unlike a listener's certificates, these are not watched: they are only
// needed when an upstream asks for a certificate, so each such handshake
// compares the files' identity, size and modification time with what was
// loaded (two stat calls), and reads them again when they differ. A rename
// over a file and the Kubernetes ..data swap both give a different file.
// Files that do not load (a renewal half written) keep the previous
// certificate in use.
type clientCert struct {
	files config.CertFiles
	log   *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]os.FileInfo // of CertFile and KeyFile when last read
}

func newClientCert(files config.CertFiles, log *slog.Logger) (*clientCert, error) {
	c := &clientCert{files: files, log: log}
	stamp, err := c.stat()
	if err != nil {
		return nil, fmt.Errorf("tls: upstream_tls client certificate: %w", err)
	}
	if err := c.load(stamp); err != nil {
		return nil, err
	}
	return c, nil
}

// get is tls.Config.GetClientCertificate.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stat()
	if err != nil || !c.changed(stamp) {
		// A file missing for a moment (a swap in progress) is no reason
		// to drop the certificate in use.
		return c.cert, nil
	}
	if err := c.load(stamp); err != nil {
		c.log.Warn("tls: reloading the upstream client certificate failed; the previous one stays in use", "err", err)
	} else {
		c.log.Info("tls: upstream client certificate reloaded", "cert_file", c.files.CertFile)
	}
	return c.cert, nil
}

func (c *clientCert) stat() ([2]os.FileInfo, error) {
	var s [2]os.FileInfo
	for i, f := range []string{c.files.CertFile, c.files.KeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, err
		}
		s[i] = fi
	}
	return s, nil
}

func (c *clientCert) changed(stamp [2]os.FileInfo) bool {
	for i, fi := range stamp {
		old := c.stamp[i]
		if !os.SameFile(old, fi) || !old.ModTime().Equal(fi.ModTime()) || old.Size() != fi.Size() {
			return true
		}
	}
	return false
}

// load reads both files; stamp is recorded even when they do not load, so
// that a broken pair is tried once, not on every handshake.
func (c *clientCert) load(stamp [2]os.FileInfo) error {
	c.stamp = stamp
	cert, err := tls.LoadX509KeyPair(c.files.CertFile, c.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: upstream_tls client certificate %s with key %s: %w", c.files.CertFile, c.files.KeyFile, err)
	}
	c.cert = &cert
	return nil
}
