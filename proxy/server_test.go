package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// TestClientRejections covers requests the proxy refuses before it dials
// anything: each gets a complete small response and no pair is attached.
func TestClientRejections(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	route := testRoute("ws", up.addr, 2*time.Second)
	route.Host = "ws.example.com"
	route.PathPrefix = "/ws"
	// A WebSocket-only route: plain requests are refused, not passed on.
	route.HTTP = config.HTTPReject
	p := startProxy(t, []*config.Route{route}, config.Listener{}, false)

	valid := func(extra string) string { return upgradeRequest("/ws", "ws.example.com", extra) }
	cases := []struct {
		name     string
		raw      string
		status   int
		header   map[string]string
		bodyHas  string
		connHas  []string
		noHeader string
	}{
		{
			name:    "method-post",
			raw:     strings.Replace(valid(""), "GET", "POST", 1),
			status:  http.StatusMethodNotAllowed,
			header:  map[string]string{"Allow": "GET"},
			bodyHas: "GET",
		},
		{
			name:    "bad-key",
			raw:     strings.Replace(valid(""), sampleKey, "c2hvcnQ=", 1),
			status:  http.StatusBadRequest,
			bodyHas: "Sec-WebSocket-Key",
		},
		{
			name:    "missing-key",
			raw:     strings.Replace(valid(""), "Sec-WebSocket-Key: "+sampleKey+"\r\n", "", 1),
			status:  http.StatusBadRequest,
			bodyHas: "Sec-WebSocket-Key",
		},
		{
			name:    "wrong-version",
			raw:     strings.Replace(valid(""), "Version: 13", "Version: 8", 1),
			status:  http.StatusUpgradeRequired,
			header:  map[string]string{"Sec-WebSocket-Version": "13"},
			bodyHas: "Sec-WebSocket-Version",
		},
		{
			name:    "not-an-upgrade",
			raw:     "GET /ws HTTP/1.1\r\nHost: ws.example.com\r\n\r\n",
			status:  http.StatusUpgradeRequired,
			header:  map[string]string{"Upgrade": "websocket"},
			bodyHas: "WebSocket upgrade",
			connHas: []string{"upgrade", "close"},
		},
		{
			name:    "upgrade-without-connection-token",
			raw:     strings.Replace(valid(""), "Connection: Upgrade", "Connection: keep-alive", 1),
			status:  http.StatusUpgradeRequired,
			header:  map[string]string{"Upgrade": "websocket"},
			bodyHas: "WebSocket upgrade",
		},
		{
			name:    "no-route-host",
			raw:     upgradeRequest("/ws", "other.example.com", ""),
			status:  http.StatusNotFound,
			bodyHas: "no route",
		},
		{
			name:    "no-route-path",
			raw:     upgradeRequest("/elsewhere", "ws.example.com", ""),
			status:  http.StatusNotFound,
			bodyHas: "no route",
		},
		{
			name:    "http-1.0",
			raw:     strings.Replace(valid(""), "HTTP/1.1", "HTTP/1.0", 1),
			status:  http.StatusHTTPVersionNotSupported,
			bodyHas: "HTTP/1.1",
		},
		{
			name:    "missing-host",
			raw:     strings.Replace(valid(""), "Host: ws.example.com\r\n", "", 1),
			status:  http.StatusBadRequest,
			bodyHas: "Host",
		},
		{
			name:    "with-body",
			raw:     valid("Content-Length: 5\r\n") + "hello",
			status:  http.StatusBadRequest,
			bodyHas: "body",
		},
		{
			name:    "malformed-request-line",
			raw:     "GARBAGE\r\n\r\n",
			status:  http.StatusBadRequest,
			bodyHas: "malformed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := roundTrip(t, p.addr, tc.raw)
			if ex.resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", ex.resp.StatusCode, tc.status, ex.body)
			}
			for k, v := range tc.header {
				mustHeader(t, ex.resp.Header, k, v)
			}
			mustHeader(t, ex.resp.Header, "Content-Type", "text/plain; charset=utf-8")
			conn := strings.ToLower(ex.rawHeader("Connection"))
			for _, want := range append([]string{"close"}, tc.connHas...) {
				if !strings.Contains(conn, want) {
					t.Errorf("Connection %q lacks %q", conn, want)
				}
			}
			if !strings.Contains(ex.body, tc.bodyHas) {
				t.Errorf("body %q lacks %q", ex.body, tc.bodyHas)
			}
			expectClosed(t, ex.conn, ex.br)
		})
	}
	if n := p.handoffCount(t); n != 0 {
		t.Errorf("%d handoffs, want 0", n)
	}
	select {
	case <-up.reqs:
		t.Error("a rejected request reached the upstream")
	default:
	}
}

func TestOversizedHead(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	p := startProxy(t, []*config.Route{testRoute("ws", up.addr, 2*time.Second)}, config.Listener{MaxHeaderBytes: 1024}, false)

	t.Run("over-limit", func(t *testing.T) {
		raw := upgradeRequest("/", "x", "X-Big: "+strings.Repeat("a", 4096)+"\r\n")
		ex := roundTrip(t, p.addr, raw)
		if ex.resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431 (body %q)", ex.resp.StatusCode, ex.body)
		}
		if got := ex.rawHeader("Connection"); got != "close" {
			t.Errorf("Connection %q, want close", got)
		}
		expectClosed(t, ex.conn, ex.br)
	})
	t.Run("under-limit", func(t *testing.T) {
		raw := upgradeRequest("/", "x", "X-Big: "+strings.Repeat("a", 500)+"\r\n")
		if ex := roundTrip(t, p.addr, raw); ex.resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", ex.resp.StatusCode)
		}
	})
	if n := p.handoffCount(t); n != 1 {
		t.Errorf("%d handoffs, want 1", n)
	}
}

func TestSlowHeadIsCutOff(t *testing.T) {
	const timeout = 200 * time.Millisecond
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	p := startProxy(t, []*config.Route{testRoute("ws", up.addr, timeout)}, config.Listener{}, false)

	// The clock starts before the dial, so the proxy's deadline (set after
	// its accept) cannot pass before timeout has on this clock.
	start := time.Now()
	c := dialProxy(t, p.addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, c)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("closed after %v, before the %v deadline", elapsed, timeout)
	}
	if n := p.handoffCount(t); n != 0 {
		t.Errorf("%d handoffs, want 0", n)
	}
}

// TestUpstreamFailures covers upstreams that do not give a valid 101: the
// client gets 502, 504 or the upstream's own answer, and nothing is relayed.
func TestUpstreamFailures(t *testing.T) {
	silent := startRawUpstream(t, func(net.Conn, *http.Request) {})
	badAccept := startRawUpstream(t, answerWith(func(*http.Request) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + sampleAccept + "\r\n\r\n"
	}))
	badProtocol := startRawUpstream(t, answerWith(func(req *http.Request) string {
		return switching(req, "Sec-WebSocket-Protocol: never-offered\r\n")
	}))
	forbidden := startRawUpstream(t, answerWith(func(*http.Request) string {
		return "HTTP/1.1 403 Go Away\r\nX-Reason: banned\r\nContent-Type: text/plain\r\n" +
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 11\r\n\r\nnot for you"
	}))
	chunked := startRawUpstream(t, answerWith(func(*http.Request) string {
		return "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nlogin\r\n6\r\n first\r\n0\r\n\r\n"
	}))
	interim := startRawUpstream(t, answerWith(func(*http.Request) string {
		return "HTTP/1.1 100 Continue\r\n\r\n"
	}))
	hugeBody := startRawUpstream(t, answerWith(func(*http.Request) string {
		return "HTTP/1.1 500 Oops\r\nContent-Length: 2000000\r\n\r\n" + strings.Repeat("x", 2000000)
	}))
	smuggle := startRawUpstream(t, answerWith(func(*http.Request) string {
		// An upstream that answers 200 and then a frame-looking payload:
		// the payload must reach the client only as this body, never as
		// tunneled bytes.
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x81\x05hello"
	}))

	cases := []struct {
		name    string
		addr    string
		timeout time.Duration
		status  int
		header  map[string]string
		body    string // exact body; "" means only check status
	}{
		{name: "refused", addr: closedAddr(t), timeout: 2 * time.Second, status: http.StatusBadGateway},
		{name: "silent-upstream", addr: silent.addr, timeout: 300 * time.Millisecond, status: http.StatusGatewayTimeout},
		{name: "bad-accept", addr: badAccept.addr, timeout: 2 * time.Second, status: http.StatusBadGateway},
		{name: "unexpected-subprotocol", addr: badProtocol.addr, timeout: 2 * time.Second, status: http.StatusBadGateway},
		{name: "interim-status", addr: interim.addr, timeout: 2 * time.Second, status: http.StatusBadGateway},
		{name: "error-body-too-large", addr: hugeBody.addr, timeout: 2 * time.Second, status: http.StatusBadGateway},
		{
			name:    "forbidden-forwarded",
			addr:    forbidden.addr,
			timeout: 2 * time.Second,
			status:  http.StatusForbidden,
			header:  map[string]string{"X-Reason": "banned", "Content-Type": "text/plain", "X-Hop": ""},
			body:    "not for you",
		},
		{
			name:    "chunked-error-forwarded",
			addr:    chunked.addr,
			timeout: 2 * time.Second,
			status:  http.StatusUnauthorized,
			header:  map[string]string{"WWW-Authenticate": "Bearer", "Content-Length": "11", "Transfer-Encoding": ""},
			body:    "login first",
		},
		{
			name:    "ok-is-not-an-upgrade",
			addr:    smuggle.addr,
			timeout: 2 * time.Second,
			status:  http.StatusOK,
			body:    "ok",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, []*config.Route{testRoute(tc.name, tc.addr, tc.timeout)}, config.Listener{}, true)
			ex := roundTrip(t, p.addr, upgradeRequest("/", "x", "Sec-WebSocket-Protocol: chat\r\n"))
			if ex.resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", ex.resp.StatusCode, tc.status, ex.body)
			}
			for k, v := range tc.header {
				mustHeader(t, ex.resp.Header, k, v)
			}
			if got := ex.rawHeader("Connection"); got != "close" {
				t.Errorf("Connection %q, want close", got)
			}
			if tc.body != "" && ex.body != tc.body {
				t.Errorf("body %q, want %q", ex.body, tc.body)
			}
			if ex.resp.StatusCode == http.StatusForbidden && ex.resp.Status != "403 Go Away" {
				t.Errorf("status line %q, want the upstream's reason kept", ex.resp.Status)
			}
			expectClosed(t, ex.conn, ex.br)
			if n := p.handoffCount(t); n != 0 {
				t.Errorf("%d handoffs, want 0", n)
			}
		})
	}
}

// TestClientGoneMidHandshake: a client that leaves while the upstream
// handshake runs must not leave the upstream connection or the goroutine
// behind.
func TestClientGoneMidHandshake(t *testing.T) {
	up := startRawUpstream(t, func(net.Conn, *http.Request) {})
	p := startProxy(t, []*config.Route{testRoute("ws", up.addr, 300*time.Millisecond)}, config.Listener{}, false)

	c := dialProxy(t, p.addr)
	if _, err := io.WriteString(c, upgradeRequest("/", "x", "")); err != nil {
		t.Fatal(err)
	}
	up.waitRequest(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.closed:
	case <-time.After(waitBound):
		t.Fatal("upstream connection was not closed")
	}
	// Shutdown returns only when every handshake goroutine has ended.
	if n := p.handoffCount(t); n != 0 {
		t.Errorf("%d handoffs, want 0", n)
	}
}

// TestHeaderForwarding checks what reaches the upstream and what comes
// back: end-to-end headers pass, hop-by-hop ones do not, X-Forwarded-* are
// added, the path is mapped, and the upstream's Set-Cookie and chosen
// subprotocol reach the client with an accept computed for its own key.
func TestHeaderForwarding(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string {
		return switching(req, "Sec-WebSocket-Protocol: chat\r\nSet-Cookie: session=abc; HttpOnly\r\nX-Upstream: yes\r\n")
	}))
	route := testRoute("api", up.addr, 2*time.Second)
	route.PathPrefix = "/api"
	route.Upstream.Path = "/v2"
	p := startProxy(t, []*config.Route{route}, config.Listener{}, false)

	extra := "Cookie: a=1; b=2\r\n" +
		"Authorization: Bearer tok\r\n" +
		"Origin: https://app.example.com\r\n" +
		"User-Agent: test-agent/1\r\n" +
		"X-Foo: bar\r\n" +
		"X-Hop: 1\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"TE: trailers\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n"
	raw := strings.Replace(upgradeRequest("/api/room/1?user=7", "chat.example.com:8443", extra),
		"Connection: Upgrade", "Connection: Upgrade, X-Hop", 1)
	ex := roundTrip(t, p.addr, raw)
	resp := ex.resp
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}

	t.Run("client-response", func(t *testing.T) {
		mustHeader(t, resp.Header, "Sec-WebSocket-Accept", sampleAccept)
		mustHeader(t, resp.Header, "Sec-WebSocket-Protocol", "chat")
		mustHeader(t, resp.Header, "Set-Cookie", "session=abc; HttpOnly")
		mustHeader(t, resp.Header, "X-Upstream", "yes")
		mustHeader(t, resp.Header, "Upgrade", "websocket")
		mustHeader(t, resp.Header, "Connection", "Upgrade")
	})

	req := up.waitRequest(t)
	t.Run("upstream-request", func(t *testing.T) {
		if got := req.URL.RequestURI(); got != "/v2/room/1?user=7" {
			t.Errorf("upstream request target %q, want /v2/room/1?user=7", got)
		}
		if req.Host != up.addr {
			t.Errorf("upstream Host %q, want %q", req.Host, up.addr)
		}
		for k, want := range map[string]string{
			"Cookie":        "a=1; b=2",
			"Authorization": "Bearer tok",
			"Origin":        "https://app.example.com",
			"User-Agent":    "test-agent/1",
			"X-Foo":         "bar",
			// The peer is no trusted proxy: its claim is replaced.
			"X-Forwarded-For":        "127.0.0.1",
			"X-Forwarded-Proto":      "http",
			"X-Forwarded-Host":       "chat.example.com:8443",
			"Sec-WebSocket-Protocol": "chat, superchat",
			"Sec-WebSocket-Version":  "13",
			"Upgrade":                "websocket",
			"Connection":             "Upgrade",
		} {
			if got := strings.Join(req.Header.Values(k), "|"); got != want {
				t.Errorf("upstream %s = %q, want %q", k, got, want)
			}
		}
		for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Te"} {
			if v, ok := req.Header[k]; ok {
				t.Errorf("hop-by-hop %s = %q reached the upstream", k, v)
			}
		}
		if got := req.Header.Get("Sec-WebSocket-Key"); got == sampleKey || !validKey(got) {
			t.Errorf("upstream Sec-WebSocket-Key %q: want the proxy's own valid nonce", got)
		}
	})

	h := p.relay.waitHandoff(t)
	t.Run("handoff", func(t *testing.T) {
		if h.Route != "api" || h.MaxFrameSize != route.MaxFrameSize || h.CloseTimeout != route.CloseTimeout {
			t.Errorf("handoff %+v does not carry the route's settings", h)
		}
		if len(h.ClientBuffered) != 0 || len(h.UpstreamBuffered) != 0 {
			t.Errorf("unexpected buffered bytes: %s", describe(h))
		}
		if _, ok := h.Client.(*net.TCPConn); !ok {
			t.Errorf("Client is %T, want *net.TCPConn", h.Client)
		}
		if _, ok := h.Upstream.(*net.TCPConn); !ok {
			t.Errorf("Upstream is %T, want *net.TCPConn", h.Upstream)
		}
	})
}

// TestPipelinedBytes: bytes that arrive in the same segment as either
// handshake are the first bytes of the relay, not lost in a reader.
func TestPipelinedBytes(t *testing.T) {
	serverFrame := compile(t, ws.NewTextFrame([]byte("hello from upstream")))
	clientFrame := compile(t, ws.MaskFrameInPlace(ws.NewTextFrame([]byte("hello from client"))))

	up := startRawUpstream(t, answerWith(func(req *http.Request) string {
		return switching(req, "") + string(serverFrame)
	}))
	p := startProxy(t, []*config.Route{testRoute("ws", up.addr, 2*time.Second)}, config.Listener{}, false)

	c := dialProxy(t, p.addr)
	// One write: the request head and a masked frame behind it.
	if _, err := io.WriteString(c, upgradeRequest("/", "x", "")+string(clientFrame)); err != nil {
		t.Fatal(err)
	}
	h := p.relay.waitHandoff(t)
	if !bytes.Equal(h.ClientBuffered, clientFrame) {
		t.Errorf("ClientBuffered = %q, want the client frame %q", h.ClientBuffered, clientFrame)
	}
	if !bytes.Equal(h.UpstreamBuffered, serverFrame) {
		t.Errorf("UpstreamBuffered = %q, want the upstream frame %q", h.UpstreamBuffered, serverFrame)
	}
}

func compile(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	b, err := ws.CompileFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// failingRelay refuses every pair.
type failingRelay struct{}

func (failingRelay) Attach(relay.Handoff) (uint64, error) { return 0, errors.New("relay full") }

// TestAttachFailureClosesBoth: a pair the relay refuses is closed on both
// sides rather than leaked.
func TestAttachFailureClosesBoth(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	srv, err := NewServer([]*config.Route{testRoute("ws", up.addr, 2*time.Second)}, failingRelay{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := serveOn(t, srv, config.Listener{})
	defer s.shutdown(t)

	ex := roundTrip(t, s.addr, upgradeRequest("/", "x", ""))
	if ex.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", ex.resp.StatusCode)
	}
	expectClosed(t, ex.conn, ex.br)
	select {
	case <-up.closed:
	case <-time.After(waitBound):
		t.Fatal("upstream connection not closed")
	}
}

func TestShutdown(t *testing.T) {
	t.Run("waits-for-handshake", func(t *testing.T) {
		release := make(chan struct{})
		up := startRawUpstream(t, func(c net.Conn, req *http.Request) {
			<-release
			_, _ = io.WriteString(c, switching(req, ""))
		})
		p := startProxy(t, []*config.Route{testRoute("ws", up.addr, waitBound)}, config.Listener{}, false)
		c := dialProxy(t, p.addr)
		if _, err := io.WriteString(c, upgradeRequest("/", "x", "")); err != nil {
			t.Fatal(err)
		}
		up.waitRequest(t)

		done := make(chan error, 1)
		go func() { done <- p.srv.Shutdown(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v while a handshake was in flight", err)
		case <-p.served:
			// Serve returns at once: accepting stopped.
		case <-time.After(waitBound):
			t.Fatal("Serve did not return after Shutdown")
		}
		close(release)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(waitBound):
			t.Fatal("Shutdown did not return after the handshake finished")
		}
		p.relay.waitHandoff(t)
		if _, err := net.DialTimeout("tcp", p.addr, waitBound); err == nil {
			t.Error("listener still accepting after Shutdown")
		}
		p.served <- ErrServerClosed // for the cleanup's check
	})

	t.Run("deadline-aborts-handshake", func(t *testing.T) {
		up := startRawUpstream(t, func(net.Conn, *http.Request) {})
		p := startProxy(t, []*config.Route{testRoute("ws", up.addr, time.Minute)}, config.Listener{}, false)
		c := dialProxy(t, p.addr)
		if _, err := io.WriteString(c, upgradeRequest("/", "x", "")); err != nil {
			t.Fatal(err)
		}
		up.waitRequest(t)

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := p.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
		}
		expectClosed(t, c, c)
		select {
		case <-up.closed:
		case <-time.After(waitBound):
			t.Fatal("upstream connection not closed after the abort")
		}
		// Now nothing is in flight: a second call returns nil.
		if err := p.srv.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
	})

	t.Run("before-serve", func(t *testing.T) {
		srv, err := NewServer([]*config.Route{testRoute("ws", "127.0.0.1:1", time.Second)}, newFakeRelay(false), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(ln, config.Listener{}); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
		}
		if _, err := ln.Accept(); err == nil {
			t.Error("Serve did not close the listener")
		}
	})
}

// flakyListener fails its first accepts with a temporary error.
type flakyListener struct {
	net.Listener
	mu       sync.Mutex
	failures int
}

type tempErr struct{}

func (tempErr) Error() string   { return "temporary accept failure" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.failures > 0 {
		l.failures--
		l.mu.Unlock()
		return nil, tempErr{}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	fr := newFakeRelay(false)
	srv, err := NewServer([]*config.Route{testRoute("ws", up.addr, 2*time.Second)}, fr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&flakyListener{Listener: ln, failures: 3}, config.Listener{}) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
		fr.closeAll()
	}()

	if ex := roundTrip(t, ln.Addr().String(), upgradeRequest("/", "x", "")); ex.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", ex.resp.StatusCode)
	}
	fr.waitHandoff(t)
}
