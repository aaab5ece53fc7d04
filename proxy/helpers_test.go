package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// waitBound is how long a test waits for something that should happen
// promptly; reaching it means the thing did not happen.
const waitBound = 5 * time.Second

// A sample key and its accept value from RFC 6455 §1.3.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// fakeRelay records handoffs. With pipe set it also relays bytes with two
// io.Copy goroutines, buffered bytes first: enough for end-to-end tests,
// and exactly what the real engine exists to avoid.
type fakeRelay struct {
	pipe     bool
	handoffs chan relay.Handoff

	nextID atomic.Uint64
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFakeRelay(pipe bool) *fakeRelay {
	return &fakeRelay{pipe: pipe, handoffs: make(chan relay.Handoff, 64)}
}

func (f *fakeRelay) Attach(h relay.Handoff) (uint64, error) {
	f.mu.Lock()
	f.conns = append(f.conns, h.Client, h.Upstream)
	f.mu.Unlock()
	if f.pipe {
		f.wg.Add(2)
		go f.copy(h.Upstream, h.Client, h.ClientBuffered)
		go f.copy(h.Client, h.Upstream, h.UpstreamBuffered)
	}
	select {
	case f.handoffs <- h:
	default:
		return 0, errors.New("fakeRelay: too many handoffs")
	}
	return f.nextID.Add(1), nil
}

func (f *fakeRelay) copy(dst, src net.Conn, first []byte) {
	defer f.wg.Done()
	if _, err := dst.Write(first); err == nil {
		_, _ = io.Copy(dst, src)
	}
	_ = dst.Close()
	_ = src.Close()
}

func (f *fakeRelay) closeAll() {
	f.mu.Lock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// waitHandoff returns the next handoff, failing the test after waitBound.
func (f *fakeRelay) waitHandoff(t *testing.T) relay.Handoff {
	t.Helper()
	select {
	case h := <-f.handoffs:
		return h
	case <-time.After(waitBound):
		t.Fatal("no handoff")
		return relay.Handoff{}
	}
}

// testProxy is a Server serving on 127.0.0.1:0.
type testProxy struct {
	*servedServer
	relay *fakeRelay
	once  sync.Once
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startProxy(t *testing.T, routes []*config.Route, lcfg config.Listener, pipe bool) *testProxy {
	t.Helper()
	fr := newFakeRelay(pipe)
	srv, err := NewServer(routes, fr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{servedServer: serveOn(t, srv, lcfg), relay: fr}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// servedServer is a Server serving on a fresh 127.0.0.1 listener.
type servedServer struct {
	addr   string
	srv    *Server
	served chan error // what Serve returned
}

func serveOn(tb testing.TB, srv *Server, lcfg config.Listener) *servedServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &servedServer{addr: ln.Addr().String(), srv: srv, served: make(chan error, 1)}
	go func() { s.served <- srv.Serve(ln, lcfg) }()
	return s
}

// shutdown shuts the server down, which waits for every in-flight
// handshake, and checks that Serve returned as it should.
func (s *servedServer) shutdown(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		tb.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-s.served:
		if !errors.Is(err, ErrServerClosed) {
			tb.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(waitBound):
		tb.Error("Serve did not return after Shutdown")
	}
}

// stop shuts the server down, so afterwards the relay has seen every
// handoff there will be.
func (p *testProxy) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		p.shutdown(t)
		p.relay.closeAll()
	})
}

// handoffCount stops the proxy and returns how many pairs were handed off.
func (p *testProxy) handoffCount(t *testing.T) int {
	t.Helper()
	p.stop(t)
	return len(p.relay.handoffs)
}

// dialProxy connects to the proxy; the connection is closed at cleanup.
func dialProxy(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange is one request written to the proxy and the response read back.
type exchange struct {
	resp *http.Response
	body string
	// head is the response head as it came on the wire: http.ReadResponse
	// swallows "Connection: close" into resp.Close.
	head string
	conn net.Conn
	// br holds whatever followed the response.
	br *bufio.Reader
}

// roundTrip writes raw to the proxy and reads one response with its body.
func roundTrip(t *testing.T, addr, raw string) *exchange {
	t.Helper()
	c := dialProxy(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &wire))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	head, _, _ := strings.Cut(wire.String(), "\r\n\r\n")
	return &exchange{resp: resp, body: string(body), head: head, conn: c, br: br}
}

// rawHeader returns the values of header key in the raw response head,
// joined by ", ".
func (e *exchange) rawHeader(key string) string {
	var vals []string
	for _, line := range strings.Split(e.head, "\r\n")[1:] {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, key) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return strings.Join(vals, ", ")
}

// expectClosed fails unless the peer closes c (EOF or reset) within
// waitBound, then closes c as a well-behaved client does. Bytes still
// arriving before the close are skipped.
func expectClosed(t *testing.T, c net.Conn, r io.Reader) {
	t.Helper()
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(waitBound)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed by the proxy")
	}
}

// upgradeRequest is a valid client upgrade request for path and host, with
// extra header lines (each ending in \r\n) added.
func upgradeRequest(path, host, extra string) string {
	return "GET " + path + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + sampleKey + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		extra +
		"\r\n"
}

// rawUpstream is an upstream test server that reads one request head per
// connection, records it, and lets the test's answer func write whatever it
// likes (a correct 101, a bad one, an error, nothing). It then keeps the
// connection open until the proxy closes it, and reports that on closed.
type rawUpstream struct {
	addr   string
	reqs   chan *http.Request
	closed chan struct{}

	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

type answerFunc func(c net.Conn, req *http.Request)

func startRawUpstream(t *testing.T, answer answerFunc) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRawUpstream(t, ln, ln.Addr().String(), false, answer)
}

// serveRawUpstream serves ln as a rawUpstream reached at addr. bounded
// gives every connection a waitBound deadline (for a TLS listener, whose
// handshake runs inside the first read).
func serveRawUpstream(t *testing.T, ln net.Listener, addr string, bounded bool, answer answerFunc) *rawUpstream {
	t.Helper()
	u := &rawUpstream{
		addr:   addr,
		reqs:   make(chan *http.Request, 16),
		closed: make(chan struct{}, 16),
		ln:     ln,
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if bounded {
				_ = c.SetDeadline(time.Now().Add(waitBound))
			}
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go u.serve(c, answer)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			_ = c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) serve(c net.Conn, answer answerFunc) {
	defer u.wg.Done()
	defer func() { u.closed <- struct{}{} }()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	u.reqs <- req
	answer(c, req)
	// Wait for the proxy (or the relay) to close its side.
	_, _ = io.Copy(io.Discard, br)
}

func (u *rawUpstream) waitRequest(t *testing.T) *http.Request {
	t.Helper()
	select {
	case r := <-u.reqs:
		return r
	case <-time.After(waitBound):
		t.Fatal("upstream got no request")
		return nil
	}
}

// switching returns a correct 101 answer to req with extra header lines.
func switching(req *http.Request, extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
		extra +
		"\r\n"
}

// answerWith writes a fixed-format answer built from req.
func answerWith(build func(req *http.Request) string) answerFunc {
	return func(c net.Conn, req *http.Request) {
		_, _ = io.WriteString(c, build(req))
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// testRoute is a catch-all route to addr.
func testRoute(name, addr string, timeout time.Duration) *config.Route {
	return &config.Route{
		Name:             name,
		Upstream:         config.Upstream{Raw: "ws://" + addr, Address: addr},
		HandshakeTimeout: timeout,
		CloseTimeout:     time.Second,
		MaxFrameSize:     1 << 20,
	}
}

func mustHeader(t *testing.T, h http.Header, key, want string) {
	t.Helper()
	if got := h.Get(key); got != want {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func describe(h relay.Handoff) string {
	return fmt.Sprintf("route=%s client=%d bytes upstream=%d bytes", h.Route, len(h.ClientBuffered), len(h.UpstreamBuffered))
}
