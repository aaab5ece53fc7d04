package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy"
	"github.com/wsalive/wsalive/proxy/relay"
)

// waitBound is how long a test waits for something that should happen
// promptly. Reaching it means the thing did not happen; it is generous
// because the suite runs with -race on small machines.
const waitBound = 10 * time.Second

// probePath is served by the fixture's own echo handler, whatever handler
// the test installs; the fixture's round trip goes there.
const probePath = "/__probe"

// maxMessage is the read limit the coder peers use: above the largest
// message the suite sends (16 MiB), so that only the relay can refuse one.
const maxMessage = 32 << 20

// fixtureOptions configures a fixture; the zero value is usable.
type fixtureOptions struct {
	// handler serves the upstream's requests (all but the probe). nil
	// answers 404. It finds its fixture with upstreamOf.
	handler http.HandlerFunc
	// readBufferSize is the engine's ReadBufferSize; 0 means 64 KiB.
	readBufferSize int
	// routes adds routes: path prefix -> upstream address (host:port).
	// Everything else goes to the coder upstream.
	routes map[string]string
	// route, when not nil, is applied to every route (the coder
	// upstream's, the probe's and those of routes) before the server is
	// built: it sets liveness policies.
	route func(*config.Route)
}

// closeTimeout bounds every pair's close handshake: shorter than the
// default 5s, so that a test that fails mid-handshake cleans up sooner.
const closeTimeout = 2 * time.Second

// fixture is a running wsalive (proxy.Server + relay.Engine) on loopback in
// front of a coder/websocket upstream. Every pair the engine ends is
// reported on closed.
type fixture struct {
	proxyAddr    string
	listener     net.Listener // the proxy's
	upstreamAddr string
	engine       *relay.Engine
	server       *proxy.Server

	// closed receives the PairStats of every pair that ends. The engine
	// calls OnClose on its loop, which must not block: when the buffer is
	// full the stats are counted in dropped instead, and the test fails.
	closed  chan relay.PairStats
	dropped atomic.Int64

	// done is closed when cleanup starts, so that upstream handlers which
	// wait for the test can give up.
	done chan struct{}

	handlers sync.WaitGroup // upstream handler goroutines
	mu       sync.Mutex
	problems []string // reported by upstream handlers, failed in cleanup
}

type ctxKey int

const (
	fixtureKey ctxKey = iota
	connKey
)

// newFixture starts an upstream, an engine and a proxy server, all on
// 127.0.0.1, and proves the pipe works with one round trip through it
// before returning. Cleanup stops everything, each step bounded.
func newFixture(t *testing.T, opts fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{
		closed: make(chan relay.PairStats, 4096),
		done:   make(chan struct{}),
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The upstream: coder/websocket behind net/http. ConnContext puts the
	// fixture and the raw connection in each request's context, so that
	// handlers can report problems and kill their TCP connection.
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.handlers.Add(1)
		defer f.handlers.Done()
		switch {
		case r.URL.Path == probePath:
			echo(w, r)
		case opts.handler != nil:
			opts.handler(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	up.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		ctx = context.WithValue(ctx, fixtureKey, f)
		return context.WithValue(ctx, connKey, c)
	}
	up.Config.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	up.Start()
	f.upstreamAddr = up.Listener.Addr().String()

	cfg, err := config.Minimal("127.0.0.1:0", f.upstreamAddr)
	if err != nil {
		up.Close()
		t.Fatalf("config: %v", err)
	}
	base := cfg.Routes[0]
	base.CloseTimeout = closeTimeout
	routes := []*config.Route{base}
	for prefix, addr := range opts.routes {
		r := *base
		r.Name = strings.Trim(prefix, "/")
		r.PathPrefix = prefix
		u, err := config.ParseUpstream(addr)
		if err != nil {
			up.Close()
			t.Fatalf("route %s: %v", prefix, err)
		}
		r.SetUpstream(u)
		routes = append(routes, &r)
	}
	if opts.route != nil {
		for _, r := range routes {
			opts.route(r)
		}
	}

	// WSALIVE_TEST_IO_URING=off runs the suite on the engine's fallback
	// path, one system call per read and write: what wsalive does under
	// Docker's default seccomp profile. .ci/run runs both.
	ringOff := os.Getenv("WSALIVE_TEST_IO_URING") == "off"
	// WSALIVE_TEST_DRIVER=conn runs every pair on the net.Conn driver,
	// the one TLS pairs and other systems use.
	f.engine, err = relay.New(relay.Options{
		Loops:           2,
		ReadBufferSize:  opts.readBufferSize,
		OnClose:         f.onClose,
		Logger:          logger,
		DisableIOUring:  ringOff,
		ForceConnDriver: os.Getenv("WSALIVE_TEST_DRIVER") == "conn",
	})
	if err != nil {
		up.Close()
		t.Fatalf("relay.New: %v", err)
	}
	if ringOff && f.engine.Stats().IOUringLoops != 0 {
		t.Fatal("io_uring is in use although WSALIVE_TEST_IO_URING=off")
	}
	f.server, err = proxy.NewServer(routes, f.engine, logger)
	if err != nil {
		up.Close()
		t.Fatalf("proxy.NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		up.Close()
		t.Fatal(err)
	}
	// As wsalive's own listeners: on Linux, its connections are the
	// engine's Sockets from accept on.
	ln = f.engine.Listener(ln)
	f.proxyAddr, f.listener = ln.Addr().String(), ln
	stop := serveProxy(t, f.server, f.engine, ln, cfg.Listeners[0])
	t.Cleanup(func() {
		close(f.done)
		stop()
		up.Close()
		if !waitGroupWithin(&f.handlers, waitBound) {
			t.Errorf("upstream handlers still running %v after the engine closed", waitBound)
		}
		if n := f.dropped.Load(); n > 0 {
			t.Errorf("%d PairStats dropped: the test did not consume them", n)
		}
		f.mu.Lock()
		for _, p := range f.problems {
			t.Errorf("upstream: %s", p)
		}
		f.mu.Unlock()
	})

	// Prove the pipe before the test body runs, and leave the engine with
	// no pair and no pending stats.
	st := f.probe(t)
	if st.Reason != relay.ReasonClientClosed {
		t.Fatalf("probe pair ended with %v, want client_closed", st.Reason)
	}
	if n := f.engine.Stats().Pairs; n != 0 {
		t.Fatalf("after the probe the engine has %d pairs, want 0", n)
	}
	return f
}

func (f *fixture) onClose(st relay.PairStats) {
	// As the binary does: the server gives back the pair's place first,
	// so a test that saw the close may count on it.
	f.server.PairClosed(st)
	select {
	case f.closed <- st:
	default:
		f.dropped.Add(1)
	}
}

// upstreamOf returns the fixture serving r.
func upstreamOf(r *http.Request) *fixture {
	return r.Context().Value(fixtureKey).(*fixture)
}

// rawConnOf returns the TCP connection r came on; closing it kills the
// WebSocket connection without a close frame.
func rawConnOf(r *http.Request) *net.TCPConn {
	return r.Context().Value(connKey).(*net.TCPConn)
}

// reportf records a problem seen by an upstream handler. The test fails in
// cleanup; handlers must not call t.Fatal, and may outlive the test body.
func (f *fixture) reportf(format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// accept upgrades r with coder/websocket and raises the read limit. On
// failure it reports and returns nil (Accept has answered already).
func accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) *websocket.Conn {
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		upstreamOf(r).reportf("%s: accept: %v", r.URL.Path, err)
		return nil
	}
	c.SetReadLimit(maxMessage)
	return c
}

// serveMessages is the loop of every upstream handler that answers
// messages: it accepts the upgrade with opts and hands each message the
// client sends to answer, until the connection ends or answer fails. It
// returns the error that ended the connection, for handlers that report how
// it ended; that is never nil once the upgrade succeeded, so nil means the
// upgrade failed (and accept has reported it already).
func serveMessages(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions,
	answer func(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) error) error {
	c := accept(w, r, opts)
	if c == nil {
		return nil
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if err := answer(ctx, c, typ, msg); err != nil {
			return err
		}
	}
}

// echoMessage is the answer of an echo: the message itself, as it came.
func echoMessage(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) error {
	return c.Write(ctx, typ, msg)
}

// echo is an upstream handler that echoes every message until the
// connection ends.
func echo(w http.ResponseWriter, r *http.Request) {
	echoWith(w, r, nil)
}

// echoWith is echo with the given accept options (compression,
// subprotocols, ping hooks). How the connection ended does not matter to
// its users, so the error is dropped.
func echoWith(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) {
	_ = serveMessages(w, r, opts, echoMessage)
}

// dial connects a coder/websocket client to path through the proxy. The
// connection is closed (without handshake) when the test ends.
func (f *fixture) dial(t *testing.T, path string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+f.proxyAddr+path, opts)
	if err != nil {
		t.Fatalf("dial %s through wsalive: %v", path, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(maxMessage)
	return c, resp
}

// probe makes one round trip through a fresh pair and closes it normally,
// returning the pair's stats.
func (f *fixture) probe(t *testing.T) relay.PairStats {
	t.Helper()
	c, _ := f.dial(t, probePath, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("probe")); err != nil {
		t.Fatalf("probe write: %v", err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("probe read: %v", err)
	}
	if typ != websocket.MessageText || string(got) != "probe" {
		t.Fatalf("probe echo = %v %q, want text %q", typ, got, "probe")
	}
	if err := c.Close(websocket.StatusNormalClosure, "probe done"); err != nil {
		t.Fatalf("probe close: %v", err)
	}
	return f.nextClosed(t)
}

// nextClosed returns the stats of the next pair that ends.
func (f *fixture) nextClosed(t *testing.T) relay.PairStats {
	t.Helper()
	select {
	case st := <-f.closed:
		return st
	case <-time.After(waitBound):
		t.Fatalf("no pair ended within %v", waitBound)
		return relay.PairStats{}
	}
}

// noPairClosed fails if stats for a pair are waiting.
func (f *fixture) noPairClosed(t *testing.T) {
	t.Helper()
	select {
	case st := <-f.closed:
		t.Errorf("unexpected pair ended: %+v", st)
	default:
	}
}

// waitGroupWithin waits for wg, at most d; it reports whether wg finished.
func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// recv waits for a value on ch, failing the test after waitBound.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return recvWithin(t, ch, waitBound, what)
}

// recvWithin is recv with its own bound.
func recvWithin[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		var zero T
		t.Fatalf("no %s within %v", what, d)
		return zero
	}
}

// payload returns size deterministic bytes for a message: random lowercase
// letters for text (valid UTF-8), random bytes for binary. The same arguments
// give the same bytes, so either peer can generate what the other checks.
func payload(typ websocket.MessageType, size int, seed uint64) []byte {
	var s [32]byte
	s[0], s[1], s[2] = byte(seed), byte(seed>>8), byte(typ)
	s[3], s[4], s[5], s[6] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(s).Read(b)
	if typ == websocket.MessageText {
		// Letters 'a' to 'p' from the low four bits of each byte, eight
		// bytes at a time: byte by byte is slow under -race at 16 MiB.
		const low4, a = 0x0f0f0f0f0f0f0f0f, 0x6161616161616161
		i := 0
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])&low4+a)
		}
		for ; i < len(b); i++ {
			b[i] = 'a' + b[i]&0x0f
		}
	}
	return b
}

// sameMessage describes how got differs from the wanted message, or
// returns "" when they match; payloads are never printed whole.
func sameMessage(gotTyp websocket.MessageType, got []byte, wantTyp websocket.MessageType, want []byte) string {
	if gotTyp != wantTyp {
		return fmt.Sprintf("type %v, want %v", gotTyp, wantTyp)
	}
	if bytes.Equal(got, want) {
		return ""
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d of %d", i, len(want))
		}
	}
	return "differs"
}

// sizeName names a message size for a subtest: 65536B, 1MiB.
func sizeName(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dB", n)
}

func typeName(typ websocket.MessageType) string {
	if typ == websocket.MessageText {
		return "text"
	}
	return "binary"
}

// closeError returns the close code and reason err carries, or -1 when it
// carries none.
func closeError(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// serveProxy serves srv on ln and returns the stop its fixture calls first
// in its cleanup: Shutdown and the end of Serve, then the engine's Close,
// each within waitBound, each failure an error of t.
func serveProxy(t *testing.T, srv *proxy.Server, engine *relay.Engine, ln net.Listener, lcfg config.Listener) (stop func()) {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, lcfg) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("proxy Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, proxy.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Shutdown")
		}
		if err := engine.Close(ctx); err != nil {
			t.Errorf("engine Close: %v", err)
		}
	}
}
