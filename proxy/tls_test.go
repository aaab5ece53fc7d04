package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// These tests take TLS through a real Server up to the handoff: a TLS
// client through a TLS listener, and the server's own TLS client toward a
// wss:// upstream. The fake relay pipes the pair with io.Copy, which works
// on *tls.Conn; the real engine's turn is in proxy/e2e.

// tlsProxy is a Server behind a TLS listener (when tlsSrv is not nil) or a
// plain one, with a piping fake relay and a searchable log.
type tlsProxy struct {
	*servedServer
	relay *fakeRelay
	log   *logBuffer
	once  sync.Once
}

// stop shuts the server down once; tests call it before reading the log,
// cleanup calls it again.
func (p *tlsProxy) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		p.shutdown(t)
		p.relay.closeAll()
	})
}

func startTLSProxy(t *testing.T, routes []*config.Route, tlsSrv *tlsconf.Server) *tlsProxy {
	t.Helper()
	logs := &logBuffer{out: t.Output()}
	fr := newFakeRelay(true)
	srv, err := NewServer(routes, fr, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{
		servedServer: &servedServer{addr: ln.Addr().String(), srv: srv, served: make(chan error, 1)},
		relay:        fr,
		log:          logs,
	}
	lcfg := config.Listener{MaxHeaderBytes: 16 << 10}
	if tlsSrv != nil {
		lcfg.TLS = &config.ListenerTLS{} // only IsTLS is read from it
		ln = tlsconf.NewListener(ln, tlsSrv)
	}
	go func() { p.served <- srv.Serve(ln, lcfg) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// startTLSUpstream is startRawUpstream behind TLS with conf.
func startTLSUpstream(t *testing.T, conf *tls.Config, answer answerFunc) *rawUpstream {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRawUpstream(t, tls.NewListener(inner, conf), inner.Addr().String(), true, answer)
}

// echoAfter101 answers a correct 101, then echoes what the proxy relays.
func echoAfter101(c net.Conn, req *http.Request) {
	if _, err := io.WriteString(c, switching(req, "")); err != nil {
		return
	}
	_, _ = io.Copy(c, c)
}

// wssRoute is a catch-all route to a wss:// upstream at addr.
func wssRoute(addr string, t *config.UpstreamTLS) *config.Route {
	r := testRoute("wss", addr, waitBound)
	r.Upstream.Raw, r.Upstream.TLS = "wss://"+addr, true
	r.UpstreamTLS = t
	return r
}

// upgradeOver writes an upgrade request on c and reads the answer.
func upgradeOver(t *testing.T, c net.Conn) (*http.Response, *bufio.Reader) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitBound))
	if _, err := io.WriteString(c, upgradeRequest("/ws", "example.com", "")); err != nil {
		t.Fatalf("writing the upgrade request: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, br
}

// relayedEcho checks that bytes written on c come back through the pair.
func relayedEcho(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("relayed %q, want %q", got, msg)
	}
}

// testMaterial is a CA and a server certificate for localhost and
// backend.internal, as files.
type testMaterial struct {
	dir    string
	ca     *tlstest.CA
	caFile string
	server *tlstest.Leaf
}

func newTestMaterial(t *testing.T) *testMaterial {
	t.Helper()
	m := &testMaterial{dir: t.TempDir(), ca: tlstest.NewCA(t, "proxy tests CA")}
	m.caFile = m.ca.WriteFile(t, m.dir, "ca.crt")
	m.server = m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost", "backend.internal", "127.0.0.1"}})
	return m
}

// listenerTLS returns a tlsconf.Server for a TLS listener serving
// m.server, with client certificates from clientCAFile when not empty.
func (m *testMaterial) listenerTLS(t *testing.T, clientCAFile string) *tlsconf.Server {
	t.Helper()
	c, k := m.server.WriteFiles(t, m.dir, "listener")
	s, err := tlsconf.NewServer(&config.ListenerTLS{
		Certificates: []config.CertFiles{{CertFile: c, KeyFile: k}},
		MinVersion:   tls.VersionTLS12,
		ClientCAFile: clientCAFile,
	}, tlsconf.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTLSListener(t *testing.T) {
	m := newTestMaterial(t)
	up := startRawUpstream(t, echoAfter101)
	p := startTLSProxy(t, []*config.Route{testRoute("plain-upstream", up.addr, waitBound)}, m.listenerTLS(t, ""))

	t.Run("TLS client reaches the 101", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitBound}, "tcp", p.addr,
			&tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("TLS handshake with wsalive: %v", err)
		}
		defer c.Close()
		if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("ALPN %q, want http/1.1", got)
		}
		resp, br := upgradeOver(t, c)
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %d, want 101", resp.StatusCode)
		}
		mustHeader(t, resp.Header, "Sec-WebSocket-Accept", sampleAccept)
		h := p.relay.waitHandoff(t)
		if _, ok := h.Client.(*tls.Conn); !ok {
			t.Errorf("handoff client is %T, want *tls.Conn", h.Client)
		}
		if _, ok := h.Upstream.(*net.TCPConn); !ok {
			t.Errorf("handoff upstream is %T, want *net.TCPConn for a ws:// upstream", h.Upstream)
		}
		relayedEcho(t, c, br, "over TLS to a plain upstream")
	})

	t.Run("plain HTTP on the TLS port gets 400", func(t *testing.T) {
		ex := roundTrip(t, p.addr, upgradeRequest("/ws", "example.com", ""))
		if ex.resp.StatusCode != http.StatusBadRequest || !strings.Contains(ex.body, "TLS") {
			t.Errorf("answer %d %q, want 400 about TLS", ex.resp.StatusCode, ex.body)
		}
		expectClosed(t, ex.conn, ex.br)
		// Logged before the connection closed, at debug: the client's
		// mistake, not the upstream's.
		if logs := p.log.String(); !strings.Contains(logs, `msg="reading request head"`) ||
			!strings.Contains(logs, "plain HTTP request on a TLS port") {
			t.Errorf("log lacks the plain HTTP request:\n%s", logs)
		}
	})
}

func TestTLSListenerClientCertificates(t *testing.T) {
	m := newTestMaterial(t)
	clients := tlstest.NewCA(t, "clients CA")
	clientCAFile := clients.WriteFile(t, m.dir, "clients.crt")
	up := startRawUpstream(t, echoAfter101)
	p := startTLSProxy(t, []*config.Route{testRoute("mtls", up.addr, waitBound)}, m.listenerTLS(t, clientCAFile))
	member := clients.Leaf(t, tlstest.LeafOptions{Names: []string{"alice"}, Client: true})

	t.Run("accepted", func(t *testing.T) {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost",
			Certificates: []tls.Certificate{member.TLS}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, br := upgradeOver(t, c)
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %d, want 101", resp.StatusCode)
		}
		p.relay.waitHandoff(t)
		relayedEcho(t, c, br, "mutual")
	})
	t.Run("refused without a certificate", func(t *testing.T) {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost"})
		if err == nil {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitBound))
			_, _ = io.WriteString(c, upgradeRequest("/ws", "example.com", ""))
			// TLS 1.3: the refusal arrives as an alert on the first read.
			if _, err = c.Read(make([]byte, 1)); err == nil {
				t.Fatal("a client without a certificate got an answer")
			}
		}
		if !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("client error %v, want the server's certificate-required alert", err)
		}
		select {
		case h := <-p.relay.handoffs:
			t.Errorf("a pair was handed off: %s", describe(h))
		default:
		}
	})
}

func TestWSSUpstream(t *testing.T) {
	m := newTestMaterial(t)
	good := &tls.Config{Certificates: []tls.Certificate{m.server.TLS}}
	expired := &tls.Config{Certificates: []tls.Certificate{m.ca.Leaf(t, tlstest.LeafOptions{
		Names:     []string{"backend.internal"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
	}).TLS}}
	trusting := &config.UpstreamTLS{CAFile: m.caFile, ServerName: "backend.internal"}

	t.Run("reaches the 101 and relays", func(t *testing.T) {
		up := startTLSUpstream(t, good, echoAfter101)
		route := wssRoute(up.addr, trusting)
		route.UpstreamTLS.ClientCert = nil
		p := startTLSProxy(t, []*config.Route{route}, nil)
		ex := roundTrip(t, p.addr, upgradeRequest("/ws", "example.com", ""))
		if ex.resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %d %q, want 101", ex.resp.StatusCode, ex.body)
		}
		req := up.waitRequest(t)
		mustHeader(t, req.Header, "X-Forwarded-For", "127.0.0.1")
		h := p.relay.waitHandoff(t)
		tc, ok := h.Upstream.(*tls.Conn)
		if !ok {
			t.Fatalf("handoff upstream is %T, want *tls.Conn", h.Upstream)
		}
		if st := tc.ConnectionState(); st.ServerName != "backend.internal" || st.NegotiatedProtocol != "" && st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("upstream TLS: server name %q, ALPN %q", st.ServerName, st.NegotiatedProtocol)
		}
		relayedEcho(t, ex.conn, ex.br, "through wss")
	})

	t.Run("TLS on both sides", func(t *testing.T) {
		up := startTLSUpstream(t, good, echoAfter101)
		p := startTLSProxy(t, []*config.Route{wssRoute(up.addr, trusting)}, m.listenerTLS(t, ""))
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, br := upgradeOver(t, c)
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %d, want 101", resp.StatusCode)
		}
		p.relay.waitHandoff(t)
		relayedEcho(t, c, br, "TLS both ways")
	})

	for _, tc := range []struct {
		name     string
		server   *tls.Config // nil: a plain ws:// upstream
		client   config.UpstreamTLS
		status   int
		inLog    string
		noAnswer bool // the upstream accepts TCP and never speaks
	}{
		{name: "unknown authority", server: good, client: config.UpstreamTLS{ServerName: "backend.internal"},
			status: http.StatusBadGateway, inLog: "unknown authority"},
		{name: "name mismatch", server: good, client: config.UpstreamTLS{CAFile: m.caFile, ServerName: "other.internal"},
			status: http.StatusBadGateway, inLog: "name mismatch"},
		{name: "expired", server: expired, client: *trusting, status: http.StatusBadGateway, inLog: "expired"},
		{name: "upstream is not TLS", client: *trusting, status: http.StatusBadGateway, inLog: "not TLS"},
		{name: "TLS handshake times out", client: *trusting, status: http.StatusGatewayTimeout, noAnswer: true,
			inLog: "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addr string
			switch {
			case tc.noAnswer:
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close() // accepted by the kernel, never answered
				addr = ln.Addr().String()
			case tc.server == nil:
				addr = startPlainHTTPServer(t)
			default:
				addr = startTLSUpstream(t, tc.server, echoAfter101).addr
			}
			client := tc.client
			route := wssRoute(addr, &client)
			// Short only where the timeout is the point: a TLS handshake
			// under -race on a loaded machine can take most of a second.
			route.HandshakeTimeout = waitBound
			if tc.noAnswer {
				route.HandshakeTimeout = 500 * time.Millisecond
			}
			p := startTLSProxy(t, []*config.Route{route}, nil)
			ex := roundTrip(t, p.addr, upgradeRequest("/ws", "example.com", ""))
			if ex.resp.StatusCode != tc.status {
				t.Errorf("answer %d %q, want %d", ex.resp.StatusCode, ex.body, tc.status)
			}
			expectClosed(t, ex.conn, ex.br)
			// The client's answer says nothing of the cause; the log does.
			if strings.Contains(ex.body, tc.inLog) {
				t.Errorf("the answer's body %q tells the client the cause", ex.body)
			}
			p.stop(t) // every log line is written by now
			if logs := p.log.String(); !strings.Contains(logs, `msg="request refused"`) || !strings.Contains(logs, tc.inLog) {
				t.Errorf("log lacks a failed upstream handshake with %q:\n%s", tc.inLog, logs)
			}
			if n := len(p.relay.handoffs); n != 0 {
				t.Errorf("%d pairs handed off, want 0", n)
			}
		})
	}
}

func TestWSSUpstreamSettings(t *testing.T) {
	m := newTestMaterial(t)
	// The scheme decides whether TLS is spoken, whatever settings a route
	// carries: -upstream may replace a file's upstream with the other
	// scheme.
	t.Run("wss without settings verifies against the system roots", func(t *testing.T) {
		up := startTLSUpstream(t, &tls.Config{Certificates: []tls.Certificate{m.server.TLS}}, echoAfter101)
		p := startTLSProxy(t, []*config.Route{wssRoute(up.addr, nil)}, nil)
		ex := roundTrip(t, p.addr, upgradeRequest("/ws", "example.com", ""))
		if ex.resp.StatusCode != http.StatusBadGateway {
			t.Errorf("answer %d, want 502: the test CA is not among the system roots", ex.resp.StatusCode)
		}
		expectClosed(t, ex.conn, ex.br)
		p.stop(t)
		if logs := p.log.String(); !strings.Contains(logs, "unknown authority") {
			t.Errorf("log lacks unknown authority:\n%s", logs)
		}
	})
	t.Run("ws with leftover settings stays plain", func(t *testing.T) {
		up := startRawUpstream(t, echoAfter101)
		route := testRoute("ws", up.addr, waitBound)
		route.UpstreamTLS = &config.UpstreamTLS{CAFile: m.caFile, ServerName: "backend.internal"}
		p := startTLSProxy(t, []*config.Route{route}, nil)
		ex := roundTrip(t, p.addr, upgradeRequest("/ws", "example.com", ""))
		if ex.resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %d %q, want 101 over plain TCP", ex.resp.StatusCode, ex.body)
		}
		if h := p.relay.waitHandoff(t); h.Upstream == nil {
			t.Fatal("no upstream in the handoff")
		} else if _, ok := h.Upstream.(*net.TCPConn); !ok {
			t.Errorf("handoff upstream is %T, want *net.TCPConn", h.Upstream)
		}
	})
	t.Run("insecure_skip_verify is logged at start", func(t *testing.T) {
		logs := &logBuffer{out: t.Output()}
		_, err := NewServer([]*config.Route{wssRoute("127.0.0.1:1", &config.UpstreamTLS{InsecureSkipVerify: true})},
			newFakeRelay(false), slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "insecure_skip_verify") {
			t.Errorf("no warning about insecure_skip_verify:\n%s", logs)
		}
	})
	t.Run("a missing ca_file stops the start", func(t *testing.T) {
		missing := filepath.Join(m.dir, "missing.crt")
		_, err := NewServer([]*config.Route{wssRoute("127.0.0.1:1", &config.UpstreamTLS{CAFile: missing})},
			newFakeRelay(false), testLogger(t))
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), `route "wss"`) {
			t.Errorf("NewServer error %v, want one naming the route and %s", err, missing)
		}
	})
}

// startPlainHTTPServer stands for a ws:// upstream configured as wss://:
// it answers whatever arrives (a ClientHello here) with an HTTP 400, as
// an HTTP server does with bytes it cannot parse.
func startPlainHTTPServer(t *testing.T) string {
	t.Helper()
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
				if _, err := c.Read(make([]byte, 4096)); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}
