package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/relay"
)

// logBuffer collects log lines, safe for concurrent writers, and mirrors
// them to out when it is set (the test's own log, for failures).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// lines is signalled on every write.
	lines chan struct{}
	out   io.Writer
}

func newLogBuffer() *logBuffer { return &logBuffer{lines: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.lines <- struct{}{}:
	default:
	}
	if l.out != nil {
		l.out.Write(p)
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the log holds a line containing every part.
func (l *logBuffer) waitFor(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.After(waitBound)
	for {
		for line := range strings.SplitSeq(l.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		select {
		case <-l.lines:
		case <-deadline:
			t.Fatalf("no log line with %q in:\n%s", parts, l.String())
		}
	}
}

// startProxyWith is startProxy with server options and a captured log.
func startProxyWith(t *testing.T, routes []*config.Route, lcfg config.Listener, pipe bool, opts ...Option) (*testProxy, *logBuffer) {
	t.Helper()
	fr := newFakeRelay(pipe)
	logs := newLogBuffer()
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewServer(routes, fr, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{servedServer: serveOn(t, srv, lcfg), relay: fr}
	t.Cleanup(func() { p.stop(t) })
	return p, logs
}

func trustLoopback() config.Listener {
	return config.Listener{ListenerFrontDoor: config.ListenerFrontDoor{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}}
}

// TestForwardedHeaders asserts, at the upstream, what each path sends for
// a trusted and an untrusted peer.
func TestForwardedHeaders(t *testing.T) {
	claims := "X-Forwarded-For: 203.0.113.9, 10.1.2.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: front.example\r\nForwarded: for=203.0.113.9;proto=https\r\n"
	cases := []struct {
		name   string
		lcfg   config.Listener
		xff    string
		proto  string
		host   string
		fwdHdr string
	}{
		{name: "untrusted", lcfg: config.Listener{}, xff: "127.0.0.1", proto: "http", host: "app.example:8080", fwdHdr: ""},
		{name: "trusted", lcfg: trustLoopback(), xff: "203.0.113.9, 10.1.2.3, 127.0.0.1", proto: "https", host: "front.example", fwdHdr: "for=203.0.113.9;proto=https"},
		{name: "https-listener", lcfg: config.Listener{ListenerFrontDoor: config.ListenerFrontDoor{ForwardedProto: "https"}}, xff: "127.0.0.1", proto: "https", host: "app.example:8080"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/http", func(t *testing.T) {
			up := startHTTPUpstream(t)
			p, _ := startProxyWith(t, []*config.Route{passRoute(up)}, tc.lcfg, true)
			ex := roundTrip(t, p.addr, "GET /headers HTTP/1.1\r\nHost: app.example:8080\r\n"+claims+"\r\n")
			want := fmt.Sprintf("X-Forwarded-For=%s\nX-Forwarded-Proto=%s\nX-Forwarded-Host=%s\nForwarded=%s\nHost=%s\n",
				tc.xff, tc.proto, tc.host, tc.fwdHdr, up.Listener.Addr())
			if ex.body != want {
				t.Errorf("upstream saw\n%s\nwant\n%s", ex.body, want)
			}
		})
		t.Run(tc.name+"/websocket", func(t *testing.T) {
			up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
			p, _ := startProxyWith(t, []*config.Route{testRoute("ws", up.addr, 2*time.Second)}, tc.lcfg, false)
			ex := roundTrip(t, p.addr, upgradeRequest("/", "app.example:8080", claims))
			if ex.resp.StatusCode != 101 {
				t.Fatalf("status %d", ex.resp.StatusCode)
			}
			req := up.waitRequest(t)
			for k, want := range map[string]string{
				"X-Forwarded-For": tc.xff, "X-Forwarded-Proto": tc.proto, "X-Forwarded-Host": tc.host, "Forwarded": tc.fwdHdr,
			} {
				if got := strings.Join(req.Header.Values(k), "|"); got != want {
					t.Errorf("upstream %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestClientFromChain(t *testing.T) {
	trusted := trustedSet{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct{ chain, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"203.0.113.9, 10.0.0.5", "203.0.113.9"},
		{"198.51.100.1, 203.0.113.9, 10.0.0.5", "203.0.113.9"},
		{"10.0.0.7, 10.0.0.5", "10.0.0.7"},
		{"junk, 203.0.113.9", "203.0.113.9"},
		{"203.0.113.9, junk", "peer"},
		{"[2001:db8::1]:4711", "2001:db8::1"},
	} {
		t.Run(tc.chain, func(t *testing.T) {
			if got := clientFromChain(trusted, tc.chain, "peer"); got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStrictHeads covers issue 12's head defects on the first head and on
// later heads of a plain HTTP connection.
func TestStrictHeads(t *testing.T) {
	up := startHTTPUpstream(t)
	route := passRoute(up)
	route.HandshakeTimeout = 300 * time.Millisecond
	lcfg := config.Listener{ListenerFrontDoor: config.ListenerFrontDoor{MaxHeaderLines: 20}}
	p, logs := startProxyWith(t, []*config.Route{route}, lcfg, true)
	many := strings.Repeat("X-A: 1\r\n", 21)
	cases := []struct {
		name, raw string
		status    int
	}{
		{"space-before-colon", upgradeRequest("/ws", "a", "X-Foo : bar\r\n"), 400},
		{"content-length-space-before-colon", upgradeRequest("/ws", "a", "Content-Length : 5\r\n") + "hello", 400},
		{"tab-before-colon-plain", "GET /hello HTTP/1.1\r\nHost: a\r\nX-Foo\t: bar\r\n\r\n", 400},
		{"non-token-name", "GET /hello HTTP/1.1\r\nHost: a\r\nX(Foo): bar\r\n\r\n", 400},
		{"obs-fold", "GET /hello HTTP/1.1\r\nHost: a\r\nX-Foo: bar\r\n baz\r\n\r\n", 400},
		{"too-many-lines", "GET /hello HTTP/1.1\r\nHost: a\r\n" + many + "\r\n", 431},
		{"at-line-limit", "GET /hello HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 19) + "\r\n", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := roundTrip(t, p.addr, tc.raw)
			if ex.resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%q)", ex.resp.StatusCode, tc.status, ex.body)
			}
		})
	}
	t.Run("too-many-lines-on-later-request", func(t *testing.T) {
		c := dialProxy(t, p.addr)
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n"+many+"\r\n")
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
			t.Fatalf("first: %d", resp.StatusCode)
		}
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 431 {
			t.Fatalf("second: %d, want 431", resp.StatusCode)
		}
	})
	t.Run("space-before-colon-on-later-request", func(t *testing.T) {
		c := dialProxy(t, p.addr)
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nX-Foo : bar\r\n\r\n")
		readResponse(t, br, "GET")
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 400 {
			t.Fatalf("second: %d, want 400", resp.StatusCode)
		}
	})
	t.Run("timed-out-head", func(t *testing.T) {
		c := dialProxy(t, p.addr)
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nX-Fo")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("%v %v, want 408", resp, err)
		}
		line := logs.waitFor(t, "request head timed out", "status=408")
		if strings.Contains(line, "malformed") {
			t.Errorf("logged as malformed: %s", line)
		}
	})
	t.Run("eof-mid-line", func(t *testing.T) {
		c := dialProxy(t, p.addr)
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nX-Fo")
		c.(*net.TCPConn).CloseWrite()
		expectClosed(t, c, c)
		logs.waitFor(t, "client closed mid-head")
	})
	t.Run("silent-connection-closed-without-answer", func(t *testing.T) {
		c := dialProxy(t, p.addr)
		n, _ := io.Copy(io.Discard, c)
		if n != 0 {
			t.Errorf("got %d bytes, want a silent close", n)
		}
	})
}

func TestOrigins(t *testing.T) {
	up := startHTTPUpstream(t)
	mk := func(name, prefix string, require bool, origins ...string) *config.Route {
		r := passRoute(up)
		r.Name, r.PathPrefix, r.RequireOrigin = name, prefix, require
		for _, o := range origins {
			parsed, err := config.ParseOrigin(o, true)
			if err != nil {
				t.Fatal(err)
			}
			r.AllowedOrigins = append(r.AllowedOrigins, parsed)
		}
		return r
	}
	routes := []*config.Route{
		mk("list", "/ws", false, "https://app.example.com", "https://*.example.com:8443"),
		mk("required", "/hello", true),
	}
	p, logs := startProxyWith(t, routes, config.Listener{}, true)
	cases := []struct {
		name, raw string
		status    int
	}{
		{"ws-exact", upgradeRequest("/ws", "a", "Origin: https://app.example.com\r\n"), 101},
		{"ws-explicit-default-port", upgradeRequest("/ws", "a", "Origin: https://app.example.com:443\r\n"), 101},
		{"ws-wildcard", upgradeRequest("/ws", "a", "Origin: https://a.b.example.com:8443\r\n"), 101},
		{"ws-wildcard-wrong-port", upgradeRequest("/ws", "a", "Origin: https://a.example.com\r\n"), 403},
		{"ws-wildcard-not-apex", upgradeRequest("/ws", "a", "Origin: https://example.com:8443\r\n"), 403},
		{"ws-wrong-scheme", upgradeRequest("/ws", "a", "Origin: http://app.example.com\r\n"), 403},
		{"ws-evil", upgradeRequest("/ws", "a", "Origin: https://evil.example\r\n"), 403},
		{"ws-suffix-trick", upgradeRequest("/ws", "a", "Origin: https://app.example.com.evil.example\r\n"), 403},
		{"ws-null", upgradeRequest("/ws", "a", "Origin: null\r\n"), 403},
		{"ws-no-origin", upgradeRequest("/ws", "a", ""), 101},
		{"http-evil", "GET /ws HTTP/1.1\r\nHost: a\r\nOrigin: https://evil.example\r\n\r\n", 403},
		{"http-allowed", "GET /ws HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example.com\r\n\r\n", http.StatusTeapot},
		{"required-missing", "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", 403},
		{"required-present", "GET /hello HTTP/1.1\r\nHost: a\r\nOrigin: https://any.example\r\n\r\n", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := roundTrip(t, p.addr, tc.raw)
			if ex.resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%q)", ex.resp.StatusCode, tc.status, ex.body)
			}
		})
	}
	logs.waitFor(t, "request refused", "status=403", "route=list", "client=127.0.0.1", "origin not allowed")
}

// TestPairLimits checks max_pairs and max_pairs_per_client_ip: 503 with
// Retry-After at the handshake, and the place given back when the relay
// reports the pair closed. The per-client count uses the forwarded
// address from a trusted peer.
func TestPairLimits(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	route := testRoute("ws", up.addr, 2*time.Second)
	route.MaxPairs = 3
	route.MaxPairsPerClientIP = 2
	p, logs := startProxyWith(t, []*config.Route{route}, trustLoopback(), false)
	from := func(ip string) string { return upgradeRequest("/", "a", "X-Forwarded-For: "+ip+"\r\n") }
	var handoffs []relay.Handoff
	expect := func(raw string, status int) {
		t.Helper()
		ex := roundTrip(t, p.addr, raw)
		if ex.resp.StatusCode != status {
			t.Fatalf("status %d, want %d (%q)", ex.resp.StatusCode, status, ex.body)
		}
		if status == 503 {
			mustHeader(t, ex.resp.Header, "Retry-After", "5")
			return
		}
		handoffs = append(handoffs, p.relay.waitHandoff(t))
	}
	expect(from("198.51.100.1"), 101)
	expect(from("198.51.100.1"), 101)
	expect(from("198.51.100.1"), 503) // per client
	logs.waitFor(t, "status=503", "client=198.51.100.1", "too many pairs from this client address")
	expect(from("198.51.100.2"), 101)
	expect(from("198.51.100.3"), 503) // per route
	logs.waitFor(t, "status=503", "route at its max_pairs")

	// The relay reports the first pair closed: its place is free again.
	h := handoffs[0]
	p.srv.PairClosed(relay.PairStats{Route: h.Route, ClientAddr: h.Client.RemoteAddr().String()})
	if n, _ := p.srv.pairs.count("ws", "198.51.100.1"); n != 2 {
		t.Fatalf("after PairClosed: %d pairs counted, want 2", n)
	}
	expect(from("198.51.100.1"), 101)
	if n, ip := p.srv.pairs.count("ws", "198.51.100.1"); n != 3 || ip != 2 {
		t.Errorf("counted %d pairs, %d from the client; want 3 and 2", n, ip)
	}
}

func TestMaxConnections(t *testing.T) {
	up := startHTTPUpstream(t)
	lcfg := config.Listener{ListenerFrontDoor: config.ListenerFrontDoor{MaxConnections: 2}}
	p, _ := startProxyWith(t, []*config.Route{passRoute(up)}, lcfg, true)
	// Two keep-alive connections hold both places.
	var held []net.Conn
	for range 2 {
		c := dialProxy(t, p.addr)
		br := bufio.NewReader(c)
		io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		held = append(held, c)
	}
	ex := roundTrip(t, p.addr, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
	if ex.resp.StatusCode != 503 {
		t.Fatalf("third connection: %d, want 503", ex.resp.StatusCode)
	}
	// Closing one gives its place back, once net/http has seen the close.
	held[0].Close()
	deadline := time.Now().Add(waitBound)
	for {
		ex := roundTrip(t, p.addr, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
		if ex.resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("place not given back after the connection closed")
		}
		// Polls a real socket close, which has no signal to wait on.
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandshakeLimits(t *testing.T) {
	up := startHTTPUpstream(t)
	p, logs := startProxyWith(t, []*config.Route{passRoute(up)}, config.Listener{}, true,
		WithLimits(config.Limits{MaxHandshakes: 10, MaxHandshakesPerClientIP: 3}))
	// Three silent connections from 127.0.0.1 fill its share.
	for range 3 {
		c := dialProxy(t, p.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
	}
	deadline := time.Now().Add(waitBound)
	for p.srv.handshakes.inHandshake() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the silent connections were not counted")
		}
		time.Sleep(time.Millisecond)
	}
	ex := roundTrip(t, p.addr, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
	if ex.resp.StatusCode != 503 {
		t.Fatalf("fourth connection: %d, want 503", ex.resp.StatusCode)
	}
	logs.waitFor(t, "too many connections in handshake from this address")
	// Another address is still served.
	c, err := net.Dial("tcp", strings.Replace(p.addr, "127.0.0.1", "127.0.0.2", 1))
	if err != nil {
		t.Skipf("127.0.0.2 not reachable: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitBound))
	io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := readResponse(t, bufio.NewReader(c), "GET"); resp.StatusCode != 200 {
		t.Fatalf("other address: %d", resp.StatusCode)
	}
}

// recordingMetrics records what the server reports.
type recordingMetrics struct {
	mu         sync.Mutex
	handshakes map[string][]string // route -> results
	requests   map[string][]int    // route -> codes
}

func newRecordingMetrics() *recordingMetrics {
	return &recordingMetrics{handshakes: map[string][]string{}, requests: map[string][]int{}}
}

func (m *recordingMetrics) Route(name string) metrics.Route { return &recordingRoute{m: m, name: name} }
func (m *recordingMetrics) ConfigReload(bool)               {}
func (m *recordingMetrics) Draining(bool)                   {}

func (m *recordingMetrics) snapshot() (map[string][]string, map[string][]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, rq := map[string][]string{}, map[string][]int{}
	for k, v := range m.handshakes {
		hs[k] = append([]string(nil), v...)
	}
	for k, v := range m.requests {
		rq[k] = append([]int(nil), v...)
	}
	return hs, rq
}

type recordingRoute struct {
	metrics.Route
	m    *recordingMetrics
	name string
}

func (r *recordingRoute) Handshake(result string, took time.Duration) {
	r.m.mu.Lock()
	r.m.handshakes[r.name] = append(r.m.handshakes[r.name], result)
	r.m.mu.Unlock()
}

func (r *recordingRoute) HTTPRequest(code int) {
	r.m.mu.Lock()
	r.m.requests[r.name] = append(r.m.requests[r.name], code)
	r.m.mu.Unlock()
}

func TestMetrics(t *testing.T) {
	up := startHTTPUpstream(t)
	route := passRoute(up)
	route.PathPrefix = "/"
	route.Host = "a"
	m := newRecordingMetrics()
	p, _ := startProxyWith(t, []*config.Route{route}, config.Listener{}, true, WithMetrics(m))
	for _, raw := range []string{
		upgradeRequest("/ws", "a", ""),
		upgradeRequest("/ws?refuse=1", "a", ""),
		upgradeRequest("/ws", "unrouted", ""),
		"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /nothing-here HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: unrouted\r\n\r\n",
	} {
		ex := roundTrip(t, p.addr, raw)
		ex.conn.Close()
	}
	p.stop(t)
	hs, rq := m.snapshot()
	// A handshake is counted once its 101 or error answer is out, so the
	// client may already be on its next request: compare as sets.
	slices.Sort(hs["app"])
	slices.Sort(rq["app"])
	if got := fmt.Sprint(hs["app"]); got != "[403 ok]" {
		t.Errorf("app handshakes %s, want [403 ok]", got)
	}
	if got := fmt.Sprint(hs[metrics.UnknownRoute]); got != "[404]" {
		t.Errorf("unrouted handshakes %s, want [404]", got)
	}
	if got := fmt.Sprint(rq["app"]); got != "[200 404]" {
		t.Errorf("app requests %s, want [200 404]", got)
	}
}

// TestSetRoutes swaps the route table: new handshakes and requests use the
// new routes, a handshake in flight finishes with the route it started
// with.
func TestSetRoutes(t *testing.T) {
	release := make(chan struct{})
	slow := startRawUpstream(t, func(c net.Conn, req *http.Request) {
		<-release
		io.WriteString(c, switching(req, ""))
	})
	up := startHTTPUpstream(t)
	old := testRoute("old", slow.addr, waitBound)
	p, _ := startProxyWith(t, []*config.Route{old}, config.Listener{}, false)

	// A handshake in flight on the old table.
	c := dialProxy(t, p.addr)
	io.WriteString(c, upgradeRequest("/", "a", ""))
	slow.waitRequest(t)

	fresh := passRoute(up)
	fresh.Name = "new"
	fresh.MaxPairs = 1
	if err := p.srv.SetRoutes([]*config.Route{fresh}); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.SetRoutes(nil); err == nil {
		t.Error("SetRoutes(nil) succeeded")
	}
	ex := roundTrip(t, p.addr, "GET /hello?n=new HTTP/1.1\r\nHost: a\r\n\r\n")
	if ex.body != "hello new" {
		t.Errorf("after SetRoutes: %d %q", ex.resp.StatusCode, ex.body)
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("in-flight handshake: %v %v", resp, err)
	}
	if h := p.relay.waitHandoff(t); h.Route != "old" {
		t.Errorf("in-flight handshake handed off on route %q, want old", h.Route)
	}
	// The new route's limits apply to new handshakes.
	ex = roundTrip(t, p.addr, upgradeRequest("/ws", "a", ""))
	if ex.resp.StatusCode != 101 {
		t.Fatalf("new route handshake: %d", ex.resp.StatusCode)
	}
	if h := p.relay.waitHandoff(t); h.Route != "new" {
		t.Errorf("handoff on route %q, want new", h.Route)
	}
	if ex := roundTrip(t, p.addr, upgradeRequest("/ws", "a", "")); ex.resp.StatusCode != 503 {
		t.Errorf("beyond the new route's max_pairs: %d, want 503", ex.resp.StatusCode)
	}
}

func TestRefusalLogRateLimit(t *testing.T) {
	var r refusalLog
	t0 := time.Unix(1000, 0)
	for i := range refusalBurst {
		if ok, _ := r.allow(t0.Add(time.Duration(i) * time.Millisecond)); !ok {
			t.Fatalf("line %d refused within the burst", i)
		}
	}
	for i := range 7 {
		if ok, _ := r.allow(t0.Add(500 * time.Millisecond)); ok {
			t.Fatalf("line %d beyond the burst allowed", refusalBurst+i)
		}
	}
	ok, suppressed := r.allow(t0.Add(time.Second))
	if !ok || suppressed != 7 {
		t.Fatalf("next window: allowed %v, suppressed %d; want true, 7", ok, suppressed)
	}
	if _, suppressed := r.allow(t0.Add(2 * time.Second)); suppressed != 0 {
		t.Errorf("suppressed count reported twice: %d", suppressed)
	}
}

// TestShutdownWithKeepAlive: an idle keep-alive connection does not hold
// Shutdown up (it is closed at once), a request in flight is answered.
func TestShutdownWithKeepAlive(t *testing.T) {
	up := startHTTPUpstream(t)
	p, _ := startProxyWith(t, []*config.Route{passRoute(up)}, config.Listener{}, true)
	idle := dialProxy(t, p.addr)
	ibr := bufio.NewReader(idle)
	io.WriteString(idle, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := readResponse(t, ibr, "GET"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	// An SSE stream in flight: its first event has arrived.
	busy := dialProxy(t, p.addr)
	bbr := bufio.NewReader(busy)
	io.WriteString(busy, "GET /sse HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bbr, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := bufio.NewReader(resp.Body)
	if line, _ := events.ReadString('\n'); line != "data: event 0\n" {
		t.Fatalf("first event %q", line)
	}

	done := make(chan error, 1)
	go func() { done <- p.srv.Shutdown(context.Background()) }()
	expectClosed(t, idle, ibr) // the idle connection goes at once
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a response in flight", err)
	default:
	}
	// Let the stream finish: Shutdown then returns.
	for range 3 {
		select {
		case up.sse <- struct{}{}:
		case <-time.After(waitBound):
			t.Fatal("upstream handler gone")
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(waitBound):
		t.Fatal("Shutdown did not return after the last response")
	}
}
