package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/wsalive/wsalive/config"
)

// NewClient returns the configuration for the TLS handshake with a
// wss:// upstream: its certificate must chain to the CAs of CAFile (the
// system's roots when empty) and cover ServerName, which is also sent as
// SNI; the client certificate, when configured, is presented to an
// upstream that asks for one. Only http/1.1 is offered by ALPN, so that an
// upstream that also speaks HTTP/2 answers the upgrade. Files are read
// here, and the error names the file at fault; the client certificate is
// read again when its files change (see clientCert), the CA file is not.
// logger (nil: slog.Default()) hears about client certificate reloads.
func NewClient(t *config.UpstreamTLS, logger *slog.Logger) (*tls.Config, error) {
	if t == nil {
		return nil, errors.New("tls: no upstream TLS settings")
	}
	conf := &tls.Config{
		ServerName: t.ServerName,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{ALPN},
		// Verification is off only where the configuration says so; the
		// caller logs that at start.
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: upstream_tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls: upstream_tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.ClientCert != nil {
		if logger == nil {
			logger = slog.Default()
		}
		c, err := newClientCert(*t.ClientCert, logger)
		if err != nil {
			return nil, err
		}
		conf.GetClientCertificate = c.get
	}
	return conf, nil
}

// Reasons a TLS handshake with an upstream fails, as Classify names them.
const (
	ReasonUnknownAuthority = "unknown authority"
	ReasonNameMismatch     = "name mismatch"
	ReasonExpired          = "expired"
	ReasonNotYetValid      = "not yet valid"
	ReasonBadCertificate   = "invalid certificate"
	ReasonNotTLS           = "not TLS"
	ReasonRefused          = "refused by upstream"
	ReasonOther            = "handshake failed"
)

// Classify names why a client-side TLS handshake failed, in words an
// operator can act on: the upstream's certificate is signed by an unknown
// authority (ca_file), does not cover the name (server_name), has expired
// or is not valid yet (the upstream's renewal, or a clock), is otherwise
// unusable; the upstream does not speak TLS at all (a ws:// port); or the
// upstream refused the handshake with an alert (a client certificate it
// wanted, say). Timeouts are not classified here: the caller tells them
// apart as it does for plain connections.
func Classify(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		return ReasonUnknownAuthority
	case errors.As(err, &hostname):
		return ReasonNameMismatch
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			if invalid.Cert != nil && time.Now().Before(invalid.Cert.NotBefore) {
				return ReasonNotYetValid
			}
			return ReasonExpired
		}
		return ReasonBadCertificate
	case errors.As(err, &record):
		return ReasonNotTLS
	case errors.As(err, &op) && op.Op == "remote error":
		return ReasonRefused
	}
	return ReasonOther
}

// HandshakeError is a failed TLS handshake with an upstream, with the
// reason Classify gave it leading its message.
type HandshakeError struct {
	Reason string
	Err    error
}

// NewHandshakeError classifies err.
func NewHandshakeError(err error) *HandshakeError {
	return &HandshakeError{Reason: Classify(err), Err: err}
}

func (e *HandshakeError) Error() string {
	return "TLS handshake with the upstream failed: " + e.Reason + ": " + e.Err.Error()
}

func (e *HandshakeError) Unwrap() error { return e.Err }
