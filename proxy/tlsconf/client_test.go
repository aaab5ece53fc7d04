package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// upstream is a TLS server on 127.0.0.1 standing in for a wss:// backend:
// it completes handshakes with conf and echoes. A nil conf makes it a
// plain TCP server that answers with an HTTP error, as a ws:// port does.
// It prefers h2 over http/1.1 by ALPN, as many HTTPS servers do, so that a
// client offering h2 would get it.
func upstream(t *testing.T, conf *tls.Config) string {
	t.Helper()
	if conf != nil {
		conf = conf.Clone()
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(waitBound))
				if conf == nil {
					_, _ = c.Read(make([]byte, 1024))
					_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
					return
				}
				tc := tls.Server(c, conf)
				if tc.Handshake() != nil {
					return
				}
				_, _ = io.Copy(tc, tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// handshake dials addr and runs the client side with conf.
func handshake(t *testing.T, addr string, conf *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	c := tls.Client(raw, conf)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	return c, c.HandshakeContext(ctx)
}

func TestClassify(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "upstream CA")
	other := tlstest.NewCA(t, "other CA")
	caFile := ca.WriteFile(t, dir, "ca.crt")
	serverConf := func(o tlstest.LeafOptions) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, o).TLS}}
	}
	backend := tlstest.LeafOptions{Names: []string{"backend.internal"}}
	expired := backend
	expired.NotBefore, expired.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	future := backend
	future.NotBefore, future.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
	mtls := serverConf(backend)
	mtls.ClientAuth = tls.RequireAndVerifyClientCert
	mtls.ClientCAs = ca.Pool()
	// TLS 1.2, where the server's refusal of a missing client certificate
	// ends the handshake itself; with 1.3 it only shows on the first read.
	mtls.MaxVersion = tls.VersionTLS12

	for _, tc := range []struct {
		name   string
		server *tls.Config // nil: a plain HTTP server
		client config.UpstreamTLS
		want   string // Classify's reason; "" for success
	}{
		{"trusted", serverConf(backend), config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}, ""},
		{"unknown authority", serverConf(backend), config.UpstreamTLS{ServerName: "backend.internal"}, ReasonUnknownAuthority},
		{"name mismatch", serverConf(backend), config.UpstreamTLS{CAFile: caFile, ServerName: "other.internal"}, ReasonNameMismatch},
		{"expired", serverConf(expired), config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}, ReasonExpired},
		{"not yet valid", serverConf(future), config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}, ReasonNotYetValid},
		{"not TLS", nil, config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}, ReasonNotTLS},
		{"client certificate required", mtls, config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}, ReasonRefused},
		{"insecure_skip_verify accepts a stranger", &tls.Config{Certificates: []tls.Certificate{other.Leaf(t, backend).TLS}},
			config.UpstreamTLS{ServerName: "backend.internal", InsecureSkipVerify: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := NewClient(&tc.client, quietLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			c, err := handshake(t, upstream(t, tc.server), conf)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if got := c.ConnectionState().NegotiatedProtocol; got != ALPN {
					t.Errorf("negotiated %q, want %q", got, ALPN)
				}
				echo(t, c, "upstream")
				return
			}
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if got := Classify(err); got != tc.want {
				t.Errorf("Classify(%v) = %q, want %q", err, got, tc.want)
			}
			herr := NewHandshakeError(err)
			if !strings.Contains(herr.Error(), tc.want) || !errors.Is(herr, err) {
				t.Errorf("HandshakeError %q does not lead with %q or does not wrap the cause", herr, tc.want)
			}
		})
	}
}

func TestClientCertificateToUpstream(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "upstream CA")
	clients := tlstest.NewCA(t, "wsalive clients CA")
	presented := make(chan string, 8)
	server := &tls.Config{
		Certificates: []tls.Certificate{ca.Leaf(t, tlstest.LeafOptions{Names: []string{"backend.internal"}}).TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients.Pool(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			presented <- cs.PeerCertificates[0].Subject.CommonName
			return nil
		},
	}
	addr := upstream(t, server)
	first := clients.Leaf(t, tlstest.LeafOptions{Names: []string{"wsalive-1"}, Client: true})
	certFile, keyFile := first.WriteFiles(t, dir, "client")
	conf, err := NewClient(&config.UpstreamTLS{
		CAFile:     ca.WriteFile(t, dir, "ca.crt"),
		ServerName: "backend.internal",
		ClientCert: &config.CertFiles{CertFile: certFile, KeyFile: keyFile},
	}, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// The server verifies the certificate before it answers: a round trip
	// proves it was accepted, under TLS 1.3 too.
	expectPresented := func(t *testing.T, want string) {
		t.Helper()
		c, err := handshake(t, addr, conf)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		echo(t, c, "mutual")
		select {
		case got := <-presented:
			if got != want {
				t.Errorf("the upstream saw client certificate %q, want %q", got, want)
			}
		case <-time.After(waitBound):
			t.Fatal("the upstream saw no client certificate")
		}
	}

	t.Run("presented", func(t *testing.T) { expectPresented(t, "wsalive-1") })
	t.Run("renewed on disk", func(t *testing.T) {
		second := clients.Leaf(t, tlstest.LeafOptions{Names: []string{"wsalive-2"}, Client: true})
		replaceFile(t, keyFile, second.KeyPEM)
		replaceFile(t, certFile, second.CertPEM)
		expectPresented(t, "wsalive-2")
	})
	t.Run("a broken renewal keeps the previous one", func(t *testing.T) {
		replaceFile(t, certFile, []byte("not a certificate"))
		expectPresented(t, "wsalive-2")
	})
}

func TestNewClientErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name string
		cfg  config.UpstreamTLS
		want []string
	}{
		{"missing ca_file", config.UpstreamTLS{CAFile: missing}, []string{"ca_file", missing}},
		{"ca_file without a certificate", config.UpstreamTLS{CAFile: notPEM}, []string{"ca_file", notPEM, "no PEM certificate"}},
		{"missing client certificate", config.UpstreamTLS{ClientCert: &config.CertFiles{CertFile: missing, KeyFile: missing}},
			[]string{"client certificate", missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(&tc.cfg, quietLogger(t))
			if err == nil {
				t.Fatal("NewClient succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
