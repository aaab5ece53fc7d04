package wsload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// BenchTLSConfig returns the client TLS configuration wsload uses for
// wss:// targets: it trusts the PEM certificates in caFile (the benchmark's
// self-signed certificate) instead of the system's roots, requires TLS 1.3
// and offers X25519 alone. Go's default would offer the hybrid
// X25519MLKEM768 first, which a Go server picks and an OpenSSL 3.0 server
// (nginx) cannot, so the two targets would do different key exchanges;
// with X25519 alone both do the same work. No session cache: every
// connection is a full handshake.
func BenchTLSConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	return &tls.Config{
		RootCAs:          roots,
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}, nil
}
