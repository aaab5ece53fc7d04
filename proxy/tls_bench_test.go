package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// BenchmarkTLSHandshake is BenchmarkProxiedHandshake with TLS: a full
// TLS 1.3 handshake (ECDSA P-256, no session resumption) on the client
// side, toward the upstream, or both, then the WebSocket handshake to the
// 101. The client's and the upstream's TLS work run in the same process
// and count in ns/op, so the figure is an upper bound of what the proxy
// itself spends; compare with BenchmarkProxiedHandshake/log=WARN for the
// plain path.
func BenchmarkTLSHandshake(b *testing.B) {
	dir := b.TempDir()
	ca := tlstest.NewCA(b, "bench CA")
	leaf := ca.Leaf(b, tlstest.LeafOptions{Names: []string{"localhost", "backend.internal"}})
	certFile, keyFile := leaf.WriteFiles(b, dir, "server")
	caFile := ca.WriteFile(b, dir, "ca.crt")
	clientConf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13}

	for _, tc := range []struct {
		name                string
		listener, upstreamS bool
	}{
		{"client-side", true, false},
		{"upstream-side", false, true},
		{"both", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var upAddr string
			if tc.upstreamS {
				upAddr = startTLSBenchUpstream(b, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
			} else {
				upAddr = startBenchUpstream(b).ln.Addr().String()
			}
			route := testRoute("bench", upAddr, 2*time.Second)
			route.PathPrefix = "/ws"
			if tc.upstreamS {
				route.Upstream.TLS = true
				route.UpstreamTLS = &config.UpstreamTLS{CAFile: caFile, ServerName: "backend.internal"}
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
			srv, err := NewServer([]*config.Route{route}, &closingRelay{}, logger)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := &servedServer{addr: ln.Addr().String(), srv: srv, served: make(chan error, 1)}
			if tc.listener {
				material, err := tlsconf.NewServer(&config.ListenerTLS{
					Certificates: []config.CertFiles{{CertFile: certFile, KeyFile: keyFile}},
					MinVersion:   tls.VersionTLS12,
				}, tlsconf.Options{Logger: logger})
				if err != nil {
					b.Fatal(err)
				}
				ln = tlsconf.NewListener(ln, material)
			}
			go func() { s.served <- srv.Serve(ln, config.Listener{}) }()
			defer s.shutdown(b)

			conf := clientConf
			if !tc.listener {
				conf = nil
			}
			buf := make([]byte, 4096)
			tlsBenchClient(b, s.addr, conf, buf) // warm the pools
			b.ReportAllocs()
			for b.Loop() {
				tlsBenchClient(b, s.addr, conf, buf)
			}
		})
	}
}

// tlsBenchClient is benchClient over TLS with conf (plain when nil).
func tlsBenchClient(b *testing.B, addr string, conf *tls.Config, buf []byte) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := raw
	if conf != nil {
		c = tls.Client(raw, conf)
	}
	defer c.Close()
	if _, err := c.Write(benchRequest); err != nil {
		b.Fatal(err)
	}
	head, ok := readHeadInto(c, buf)
	if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		b.Fatalf("handshake failed: %q", head)
	}
}

// startTLSBenchUpstream is startBenchUpstream behind TLS with conf.
func startTLSBenchUpstream(b *testing.B, conf *tls.Config) string {
	b.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	u := &benchUpstream{ln: tls.NewListener(inner, conf)}
	u.bufs.New = func() any { return new([4096]byte) }
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := u.ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	b.Cleanup(func() {
		_ = u.ln.Close()
		u.wg.Wait()
	})
	return inner.Addr().String()
}
