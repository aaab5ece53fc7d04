package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// The integration tests of resumable sessions (examples/client/RESUME.md):
// the real relay engine behind the server, a legacy upstream that knows
// nothing of sessions (gorilla/websocket), and a client that speaks the
// protocol by hand (resumeClient below), so that the wire format is
// checked here independently of the JS helper.

// resumeBound bounds every wait of these tests: generous, as they run
// with -race next to other work.
const resumeBound = 20 * time.Second

// legacyUpstream is a WebSocket server that knows nothing of sessions:
// it records each connection's request and messages, and sends what the
// test tells it to. Connections are found by their "id" query parameter.
type legacyUpstream struct {
	addr    string
	accepts atomic.Int64

	mu    sync.Mutex
	conns map[string]*upConn
	added chan struct{}
}

// upConn is one upstream connection.
type upConn struct {
	uri    string
	header http.Header
	c      *websocket.Conn
	wmu    sync.Mutex

	mu  sync.Mutex
	got []string
	// closeCode is the close code the upstream received, -1 while open, 0
	// when the connection ended without one.
	closeCode int
	ended     chan struct{}
}

func startLegacyUpstream(t *testing.T) *legacyUpstream {
	t.Helper()
	u := &legacyUpstream{conns: map[string]*upConn{}, added: make(chan struct{}, 1)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		u.accepts.Add(1)
		uc := &upConn{uri: r.RequestURI, header: r.Header.Clone(), c: c, closeCode: -1, ended: make(chan struct{})}
		u.mu.Lock()
		u.conns[r.URL.Query().Get("id")] = uc
		u.mu.Unlock()
		select {
		case u.added <- struct{}{}:
		default:
		}
		defer close(uc.ended)
		defer c.Close()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				code := 0
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
				}
				uc.mu.Lock()
				uc.closeCode = code
				uc.mu.Unlock()
				return
			}
			uc.mu.Lock()
			uc.got = append(uc.got, string(msg))
			uc.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	u.addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// conn waits for the connection of id.
func (u *legacyUpstream) conn(t *testing.T, id string) *upConn {
	t.Helper()
	deadline := time.Now().Add(resumeBound)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		c := u.conns[id]
		u.mu.Unlock()
		if c != nil {
			return c
		}
		select {
		case <-u.added:
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("upstream has no connection %q", id)
	return nil
}

func (c *upConn) send(msg string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.c.WriteMessage(websocket.TextMessage, []byte(msg))
}

func (c *upConn) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func (c *upConn) closed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// resumeRig is a server with the real engine in front of a legacy
// upstream.
type resumeRig struct {
	addr     string
	engine   *relay.Engine
	server   *Server
	upstream *legacyUpstream
	closed   atomic.Int64 // pairs the engine ended
	// logs holds everything the server and engine logged, info and up.
	logs *logBuffer
}

// startResumeRig serves routes (each to the legacy upstream; route
// edits them further) with the real engine.
func startResumeRig(t *testing.T, routes []*config.Route) *resumeRig {
	t.Helper()
	rig := &resumeRig{upstream: startLegacyUpstream(t), logs: newLogBuffer()}
	// Info lines go to a buffer only (a thousand pairs attached would
	// bury a failure's lines); warnings and errors to the test's output.
	logger := slog.New(teeHandler{
		slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
	})
	for _, r := range routes {
		r.Upstream = config.Upstream{Raw: "ws://" + rig.upstream.addr, Address: rig.upstream.addr}
		r.HandshakeTimeout = resumeBound
		if r.CloseTimeout == 0 {
			r.CloseTimeout = 2 * time.Second
		}
		if r.MaxFrameSize == 0 {
			r.MaxFrameSize = 1 << 20
		}
	}
	var srv atomic.Pointer[Server]
	eng, err := relay.New(relay.Options{
		Loops: 2,
		OnClose: func(st relay.PairStats) {
			srv.Load().PairClosed(st)
			rig.closed.Add(1)
		},
		ResumeMemory: 64 << 20,
		Logger:       logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(routes, eng, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv.Store(s)
	// A connection bound, so that the listener counts its connections:
	// a session's pair must hold one slot through its resumes.
	served := serveOn(t, s, config.Listener{ListenerFrontDoor: config.ListenerFrontDoor{MaxConnections: 100_000}})
	rig.addr, rig.engine, rig.server = served.addr, eng, s
	t.Cleanup(func() {
		served.shutdown(t)
		ctx, cancel := context.WithTimeout(context.Background(), resumeBound)
		defer cancel()
		if err := eng.Close(ctx); err != nil {
			t.Errorf("engine Close: %v", err)
		}
	})
	return rig
}

// teeHandler sends each record to both handlers, each at its own level.
type teeHandler [2]slog.Handler

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h[0].Enabled(ctx, l) || h[1].Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, x := range h {
		if x.Enabled(ctx, r.Level) {
			_ = x.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (h teeHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return teeHandler{h[0].WithAttrs(a), h[1].WithAttrs(a)}
}

func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h[0].WithGroup(g), h[1].WithGroup(g)}
}

// liveConns returns the client connections the server's listeners
// count (handshakes, plain HTTP and pairs, parked sessions included).
func (rig *resumeRig) liveConns() int64 {
	rig.server.mu.Lock()
	defer rig.server.mu.Unlock()
	var n int64
	for _, ls := range rig.server.listeners {
		n += ls.conns.live.Load()
	}
	return n
}

// resumeRoute is a route at prefix with a resume block.
func resumeRoute(name, prefix string, window time.Duration, buffer int) *config.Route {
	r := &config.Route{Name: name, PathPrefix: prefix}
	if window > 0 {
		r.Resume = &config.Resume{Window: window, Buffer: buffer}
	}
	return r
}

// waitFor polls cond until it holds, failing the test after resumeBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(resumeBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// welcome is RESUME.md §2's first message.
type welcome struct {
	Wsalive  string `json:"wsalive"`
	V        int    `json:"v"`
	Resume   bool   `json:"resume"`
	Resumed  bool   `json:"resumed"`
	Token    string `json:"token"`
	Control  string `json:"control"`
	WindowMs int64  `json:"window_ms"`
	Recv     uint64 `json:"recv"`
}

// resumeClient is a client of RESUME.md written by hand: it opts in,
// keeps its token, counts what it delivered, keeps what it sent until
// wsalive acknowledges it, and resumes. Not safe for concurrent use.
type resumeClient struct {
	url    string // ws://host/path?query without wsalive_* parameters
	origin string

	c        *websocket.Conn
	welcome  welcome
	token    string
	control  string
	down     uint64   // messages delivered (the down count)
	sent     []string // every message sent, message n at sent[n-1]
	acked    uint64   // the up count wsalive acknowledged
	got      []string
	welcomes int
}

func newResumeClient(addr, path, origin string) *resumeClient {
	return &resumeClient{url: "ws://" + addr + path, origin: origin}
}

// dialRaw dials the client's URL with extra query parameters and returns
// the connection and the handshake response.
func (rc *resumeClient) dialRaw(params string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	u := rc.url
	if params != "" {
		if strings.Contains(u, "?") {
			u += "&" + params
		} else {
			u += "?" + params
		}
	}
	h := http.Header{}
	if rc.origin != "" {
		h.Set("Origin", rc.origin)
	}
	d := websocket.Dialer{HandshakeTimeout: resumeBound, Subprotocols: protocols, EnableCompression: true}
	return d.Dial(u, h)
}

// start opts in and reads the welcome.
func (rc *resumeClient) start() error {
	c, _, err := rc.dialRaw("wsalive_resume=new")
	if err != nil {
		return err
	}
	return rc.greet(c, false)
}

// resume comes back with the last token and the down count. A refusal
// is returned as the *websocket.CloseError it was.
func (rc *resumeClient) resume(protocols ...string) error {
	c, _, err := rc.dialRaw(fmt.Sprintf("wsalive_resume=%s&wsalive_recv=%d", rc.token, rc.down), protocols...)
	if err != nil {
		return err
	}
	return rc.greet(c, true)
}

// greet reads the welcome of c and, on a resumed one, resends what
// wsalive had not handed to the upstream.
func (rc *resumeClient) greet(c *websocket.Conn, resumed bool) error {
	_ = c.SetReadDeadline(time.Now().Add(resumeBound))
	typ, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return err
	}
	var w welcome
	if typ != websocket.TextMessage || json.Unmarshal(msg, &w) != nil || w.Wsalive != "welcome" || w.V != 1 {
		c.Close()
		return fmt.Errorf("first message %q is not a welcome", msg)
	}
	if w.Resumed != resumed {
		c.Close()
		return fmt.Errorf("welcome resumed=%t, want %t", w.Resumed, resumed)
	}
	rc.c, rc.welcome, rc.welcomes = c, w, rc.welcomes+1
	if !w.Resume {
		return nil
	}
	rc.token = w.Token
	if rc.control == "" {
		rc.control = w.Control
	} else if w.Control != rc.control {
		return fmt.Errorf("control prefix changed from %q to %q", rc.control, w.Control)
	}
	if resumed {
		if w.Recv > uint64(len(rc.sent)) {
			return fmt.Errorf("welcome recv %d, but only %d messages were sent", w.Recv, len(rc.sent))
		}
		rc.acked = max(rc.acked, w.Recv)
		for _, m := range rc.sent[w.Recv:] {
			if err := rc.c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				return err
			}
		}
	}
	return nil
}

// send sends an application message.
func (rc *resumeClient) send(msg string) error {
	rc.sent = append(rc.sent, msg)
	return rc.c.WriteMessage(websocket.TextMessage, []byte(msg))
}

// read returns the next application message, consuming control
// messages, and acknowledges every 32nd.
func (rc *resumeClient) read() (string, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(resumeBound))
	for {
		typ, msg, err := rc.c.ReadMessage()
		if err != nil {
			return "", err
		}
		if rc.control != "" && typ == websocket.TextMessage && strings.HasPrefix(string(msg), rc.control) {
			cmd := string(msg[len(rc.control):])
			if n, ok := strings.CutPrefix(cmd, "a"); ok {
				v, err := strconv.ParseUint(n, 10, 64)
				if err != nil {
					return "", fmt.Errorf("bad ack %q", cmd)
				}
				rc.acked = max(rc.acked, v)
			}
			continue
		}
		rc.down++
		rc.got = append(rc.got, string(msg))
		if rc.down%32 == 0 && rc.control != "" {
			if err := rc.ack(); err != nil {
				return "", err
			}
		}
		return string(msg), nil
	}
}

// ack sends the down count.
func (rc *resumeClient) ack() error {
	return rc.c.WriteMessage(websocket.TextMessage, []byte(rc.control+"a"+strconv.FormatUint(rc.down, 10)))
}

// cut drops the client's TCP connection with a reset: no close frame,
// what a network switch looks like once the old path is gone.
func (rc *resumeClient) cut() {
	if tc, ok := rc.c.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = rc.c.NetConn().Close()
}

// refusalCode dials with params and returns the close code the resume was
// refused with, failing if anything but 101 and a close frame came.
func refusalCode(t *testing.T, rc *resumeClient, params string, protocols ...string) int {
	t.Helper()
	c, resp, err := rc.dialRaw(params, protocols...)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(resumeBound))
	typ, msg, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got message %d %q, err %v; want a close frame before any data", typ, msg, err)
	}
	return ce.Code
}

// TestResumeOptIn: the opt-in never reaches the upstream (target and
// extensions), the welcome comes first, and the pair relays.
func TestResumeOptIn(t *testing.T) {
	rig := startResumeRig(t, []*config.Route{
		resumeRoute("chat", "/chat", 30*time.Second, 4<<10),
		resumeRoute("plain", "/plain", 0, 0),
	})
	t.Run("resume route", func(t *testing.T) {
		rc := newResumeClient(rig.addr, "/chat?room=1&id=a&x=%2F", "")
		if err := rc.start(); err != nil {
			t.Fatal(err)
		}
		defer rc.c.Close()
		w := rc.welcome
		if !w.Resume || len(w.Token) != 22 || len(w.Control) != 24 || w.WindowMs != 30000 || w.Recv != 0 {
			t.Errorf("welcome %+v", w)
		}
		if rc.c.Subprotocol() != "" {
			t.Errorf("subprotocol %q", rc.c.Subprotocol())
		}
		up := rig.upstream.conn(t, "a")
		if up.uri != "/chat?room=1&id=a&x=%2F" {
			t.Errorf("upstream saw target %q, want the client's without wsalive_*", up.uri)
		}
		if ext := up.header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Errorf("upstream was offered extensions %q on a resume route", ext)
		}
		if err := up.send("down"); err != nil {
			t.Fatal(err)
		}
		if m, err := rc.read(); err != nil || m != "down" {
			t.Fatalf("read %q %v", m, err)
		}
		if err := rc.send("up"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the upstream to get the message", func() bool { return len(up.received()) == 1 })
		if got := up.received(); got[0] != "up" {
			t.Errorf("upstream got %q", got)
		}
	})
	t.Run("route without resume", func(t *testing.T) {
		rc := newResumeClient(rig.addr, "/plain?id=b", "")
		if err := rc.start(); err != nil {
			t.Fatal(err)
		}
		defer rc.c.Close()
		if w := rc.welcome; w.Resume || w.Token != "" || w.Control != "" {
			t.Errorf("welcome %+v, want resume false and no token", w)
		}
		up := rig.upstream.conn(t, "b")
		if up.uri != "/plain?id=b" {
			t.Errorf("upstream saw target %q", up.uri)
		}
		if err := up.send("hello"); err != nil {
			t.Fatal(err)
		}
		if m, err := rc.read(); err != nil || m != "hello" {
			t.Fatalf("read %q %v", m, err)
		}
	})
	t.Run("resume parameters of a plain client stripped", func(t *testing.T) {
		// A client that sends wsalive_recv alone is an ordinary client.
		rc := newResumeClient(rig.addr, "/plain?id=c&wsalive_recv=3", "")
		c, _, err := rc.dialRaw("")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		up := rig.upstream.conn(t, "c")
		if up.uri != "/plain?id=c" {
			t.Errorf("upstream saw target %q", up.uri)
		}
		if err := up.send("first"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(resumeBound))
		if _, m, err := c.ReadMessage(); err != nil || string(m) != "first" {
			t.Fatalf("first message %q %v, want the upstream's (no welcome)", m, err)
		}
	})
}

// TestResumeAfterCut: a client cut off resumes; the upstream's messages
// of the gap arrive once and in order, the client's unhandled ones are
// resent and arrive once, and the upstream saw one connection throughout.
func TestResumeAfterCut(t *testing.T) {
	rig := startResumeRig(t, []*config.Route{resumeRoute("chat", "/chat", 30*time.Second, 64<<10)})
	rc := newResumeClient(rig.addr, "/chat?id=s", "https://app.example")
	if err := rc.start(); err != nil {
		t.Fatal(err)
	}
	up := rig.upstream.conn(t, "s")
	next := 1
	sendDown := func(n int) {
		t.Helper()
		for range n {
			if err := up.send("d" + strconv.Itoa(next)); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	readDown := func(n int) {
		t.Helper()
		for range n {
			if _, err := rc.read(); err != nil {
				t.Fatal(err)
			}
		}
	}
	upNext := 1
	sendUp := func(n int) {
		t.Helper()
		for range n {
			if err := rc.send("u" + strconv.Itoa(upNext)); err != nil {
				t.Fatal(err)
			}
			upNext++
		}
	}

	for round := range 3 {
		sendDown(40) // more than one acknowledgement's worth
		readDown(40)
		sendUp(40)
		waitFor(t, "the upstream to get the client's messages", func() bool { return len(up.received()) == upNext-1 })
		// Unacknowledged messages on both sides at the cut: the last few
		// of the client's may not have been handed yet.
		sendUp(5)
		rc.cut()
		waitFor(t, "the session to park", func() bool { return rig.engine.Stats().ParkedSessions == 1 })
		sendDown(25) // during the gap
		token := rc.token
		if err := rc.resume(); err != nil {
			t.Fatalf("round %d: resume: %v", round, err)
		}
		if rc.token == token || len(rc.token) != 22 {
			t.Errorf("round %d: token not renewed", round)
		}
		sendDown(5) // live
		readDown(30)
		sendUp(3)
		// One pair, one listener slot: the resumed connection's took the
		// place of the cut one's.
		if n, _ := rig.server.pairs.count("chat", "127.0.0.1"); n != 1 {
			t.Errorf("round %d: the route counts %d pairs, want 1", round, n)
		}
		if n := rig.liveConns(); n != 1 {
			t.Errorf("round %d: the listener counts %d connections, want 1", round, n)
		}
	}
	waitFor(t, "every client message at the upstream", func() bool { return len(up.received()) == upNext-1 })
	for i, m := range up.received() {
		if want := "u" + strconv.Itoa(i+1); m != want {
			t.Fatalf("upstream message %d is %q, want %q (got %q)", i+1, m, want, up.received())
		}
	}
	if len(rc.got) != next-1 {
		t.Fatalf("client delivered %d messages, upstream sent %d", len(rc.got), next-1)
	}
	for i, m := range rc.got {
		if want := "d" + strconv.Itoa(i+1); m != want {
			t.Fatalf("client message %d is %q, want %q", i+1, m, want)
		}
	}
	if n := rig.upstream.accepts.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections, want 1", n)
	}
	if code := up.closed(); code != -1 {
		t.Errorf("upstream connection ended (%d) during the session", code)
	}
	// A close frame from the client ends the session as without one.
	if err := rc.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.ended:
	case <-time.After(resumeBound):
		t.Fatal("upstream connection still open after the client's close")
	}
	if code := up.closed(); code != 1000 {
		t.Errorf("upstream got close %d, want the client's 1000", code)
	}
	waitFor(t, "the session's memory, pair and slot to be given back", func() bool {
		st := rig.engine.Stats()
		n, _ := rig.server.pairs.count("chat", "127.0.0.1")
		return st.Sessions == 0 && st.ReplayBytes == 0 && st.Pairs == 0 && n == 0 && rig.liveConns() == 0
	})
}

// TestResumeRefusals: each resume that cannot be honoured is answered 101
// and its close code, before any data.
func TestResumeRefusals(t *testing.T) {
	const origin = "https://app.example"
	routes := []*config.Route{
		resumeRoute("chat", "/chat", 30*time.Second, 64<<10),
		resumeRoute("other", "/other", 30*time.Second, 64<<10),
		resumeRoute("short", "/short", 300*time.Millisecond, 64<<10),
		resumeRoute("small", "/small", 30*time.Second, 1<<10),
		resumeRoute("strict", "/strict", 30*time.Second, 64<<10),
	}
	strictOrigin, err := config.ParseOrigin(origin, false)
	if err != nil {
		t.Fatal(err)
	}
	routes[4].AllowedOrigins = []config.Origin{strictOrigin}
	rig := startResumeRig(t, routes)

	// session starts a session on path and cuts it, waiting until it is
	// parked; id names its upstream connection.
	session := func(t *testing.T, path, id string) (*resumeClient, *upConn) {
		t.Helper()
		before := rig.engine.Stats().ParkedSessions
		rc := newResumeClient(rig.addr, path+"?id="+id, origin)
		if err := rc.start(); err != nil {
			t.Fatal(err)
		}
		up := rig.upstream.conn(t, id)
		if err := up.send("secret of " + id); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.read(); err != nil {
			t.Fatal(err)
		}
		rc.cut()
		waitFor(t, "the session to park", func() bool { return rig.engine.Stats().ParkedSessions > before })
		return rc, up
	}
	var tokens []string // every token used, none of which may be logged
	resumeParams := func(rc *resumeClient) string {
		tokens = append(tokens, rc.token)
		return fmt.Sprintf("wsalive_resume=%s&wsalive_recv=%d", rc.token, rc.down)
	}
	defer func() {
		logs := rig.logs.String()
		if !strings.Contains(logs, `msg="resume refused"`) || !strings.Contains(logs, "code=4903") {
			t.Errorf("no refusal logged with its code:\n%s", logs)
		}
		for _, tok := range tokens {
			if strings.Contains(logs, tok) {
				t.Errorf("token %s is in the log", tok)
			}
		}
		if strings.Contains(logs, "wsalive_resume") || strings.Contains(logs, "wsalive_recv") {
			t.Errorf("a resume parameter is in the log:\n%s", logs)
		}
	}()
	check := func(t *testing.T, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("close code %d, want %d", got, want)
		}
	}

	t.Run("unknown token", func(t *testing.T) {
		rc := newResumeClient(rig.addr, "/chat?id=u", origin)
		check(t, refusalCode(t, rc, "wsalive_resume=AAAAAAAAAAAAAAAAAAAAAA&wsalive_recv=0"), 4900)
		check(t, refusalCode(t, rc, "wsalive_resume=short&wsalive_recv=0"), 4900)
	})
	t.Run("malformed recv", func(t *testing.T) {
		rc := newResumeClient(rig.addr, "/chat?id=m", origin)
		check(t, refusalCode(t, rc, "wsalive_resume=AAAAAAAAAAAAAAAAAAAAAA&wsalive_recv=x"), 4906)
		check(t, refusalCode(t, rc, "wsalive_resume=AAAAAAAAAAAAAAAAAAAAAA"), 4906)
	})
	t.Run("other route", func(t *testing.T) {
		rc, _ := session(t, "/chat", "r1")
		other := newResumeClient(rig.addr, "/other?id=r1b", origin)
		check(t, refusalCode(t, other, resumeParams(rc)), 4904)
		// The token is spent: the rightful client is told so.
		check(t, refusalCode(t, rc, resumeParams(rc)), 4903)
	})
	t.Run("other origin", func(t *testing.T) {
		rc, _ := session(t, "/chat", "o1")
		thief := newResumeClient(rig.addr, "/chat?id=o1b", "https://evil.example")
		check(t, refusalCode(t, thief, resumeParams(rc)), 4905)
		absent := newResumeClient(rig.addr, "/chat?id=o1c", "")
		check(t, refusalCode(t, absent, resumeParams(rc)), 4903)
	})
	t.Run("origin the route forbids", func(t *testing.T) {
		rc, up := session(t, "/strict", "f1")
		thief := newResumeClient(rig.addr, "/strict?id=f1b", "https://evil.example")
		_, resp, err := thief.dialRaw(resumeParams(rc))
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("got %v %v, want 403", resp, err)
		}
		// Refused at the door: the token was not spent.
		if err := rc.resume(); err != nil {
			t.Fatalf("rightful resume after a 403: %v", err)
		}
		defer rc.c.Close()
		if err := up.send("after"); err != nil {
			t.Fatal(err)
		}
		if m, err := rc.read(); err != nil || m != "after" {
			t.Fatalf("read %q %v", m, err)
		}
	})
	t.Run("reused token", func(t *testing.T) {
		rc, _ := session(t, "/chat", "t1")
		old := resumeParams(rc)
		if err := rc.resume(); err != nil {
			t.Fatal(err)
		}
		defer rc.c.Close()
		check(t, refusalCode(t, newResumeClient(rig.addr, "/chat?id=t1b", origin), old), 4903)
	})
	t.Run("recv beyond what was sent", func(t *testing.T) {
		rc, _ := session(t, "/chat", "b1")
		check(t, refusalCode(t, rc, fmt.Sprintf("wsalive_resume=%s&wsalive_recv=%d", rc.token, rc.down+5)), 4906)
	})
	t.Run("window over", func(t *testing.T) {
		rc, up := session(t, "/short", "w1")
		select {
		case <-up.ended:
		case <-time.After(resumeBound):
			t.Fatal("upstream still open after the window")
		}
		if code := up.closed(); code != 1001 {
			t.Errorf("upstream got close %d at the window's end, want 1001", code)
		}
		check(t, refusalCode(t, rc, resumeParams(rc)), 4901)
	})
	t.Run("buffer overflowed", func(t *testing.T) {
		rc, up := session(t, "/small", "o2")
		sessions := rig.engine.Stats().Sessions
		if err := up.send(strings.Repeat("x", 2<<10)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up.ended:
		case <-time.After(resumeBound):
			t.Fatal("upstream still open after the buffer overflowed")
		}
		if code := up.closed(); code != 1001 {
			t.Errorf("upstream got close %d, want 1001", code)
		}
		// Until the pair has ended, a resume is refused as the end of a
		// closing pair (4901); once it has, by its cause.
		waitFor(t, "the session to end", func() bool { return rig.engine.Stats().Sessions < sessions })
		check(t, refusalCode(t, rc, resumeParams(rc)), 4902)
	})
	t.Run("refusals hold no slot", func(t *testing.T) {
		// Sessions still parked or resumed above hold one slot each;
		// every refused connection gave its own back.
		waitFor(t, "refused connections to give their slots back", func() bool {
			return rig.liveConns() == rig.engine.Stats().Sessions
		})
	})
	t.Run("protocol not offered again", func(t *testing.T) {
		// The legacy upstream chooses no subprotocol; the session's
		// protocol is "" and any offer is answered without one.
		rc, _ := session(t, "/chat", "p1")
		if err := rc.resume("v1.chat"); err != nil {
			t.Fatalf("resume offering an unused protocol: %v", err)
		}
		defer rc.c.Close()
		if rc.c.Subprotocol() != "" {
			t.Errorf("subprotocol %q, want none", rc.c.Subprotocol())
		}
	})
}

// TestResumePlainClientUnchanged: a client that does not opt in sees the
// upstream's bytes exactly as they were sent, and the upstream the
// client's request and frames exactly, on a resume route too.
func TestResumePlainClientUnchanged(t *testing.T) {
	// The upstream's frames after its 101: a text, a fragmented binary, a
	// ping; the client's masked frames are relayed as they came.
	downFrames := []byte("\x81\x05hello\x02\x03abc\x80\x02de\x89\x01p")
	upFrames := []byte("\x81\x85\x01\x02\x03\x04" + string(mask([]byte("howdy"), [4]byte{1, 2, 3, 4})))
	gotUp := make(chan []byte, 1)
	upstream := startRawUpstream(t, func(c net.Conn, req *http.Request) {
		_, _ = io.WriteString(c, switching(req, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
		_, _ = c.Write(downFrames)
		b := make([]byte, len(upFrames))
		_ = c.SetReadDeadline(time.Now().Add(resumeBound))
		_, err := io.ReadFull(c, b)
		if err != nil {
			b = nil
		}
		gotUp <- b
	})
	route := resumeRoute("chat", "", 30*time.Second, 64<<10)
	route.Upstream = config.Upstream{Raw: "ws://" + upstream.addr, Address: upstream.addr}
	route.HandshakeTimeout, route.CloseTimeout, route.MaxFrameSize = resumeBound, time.Second, 1<<20
	eng, err := relay.New(relay.Options{Loops: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), resumeBound)
		defer cancel()
		_ = eng.Close(ctx)
	})
	srv, err := NewServer([]*config.Route{route}, eng, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	served := serveOn(t, srv, config.Listener{})
	t.Cleanup(func() { served.shutdown(t) })

	c := dialProxy(t, served.addr)
	_ = c.SetDeadline(time.Now().Add(resumeBound))
	target := "/chat?room=1&wsalive_resumes=no"
	if _, err := io.WriteString(c, upgradeRequest(target, "example.com",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")); err != nil {
		t.Fatal(err)
	}
	req := upstream.waitRequest(t)
	if req.RequestURI != target {
		t.Errorf("upstream target %q, want %q", req.RequestURI, target)
	}
	// The offer is passed on as parsed (gobwas writes it without the
	// space), as for every client: what it says is the client's.
	if ext := strings.ReplaceAll(req.Header.Get("Sec-WebSocket-Extensions"), " ", ""); ext != "permessage-deflate;client_max_window_bits" {
		t.Errorf("upstream offered %q, want the client's extensions", ext)
	}
	head := make([]byte, 0, 512)
	buf := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("reading 101: %v", err)
		}
		head = append(head, buf[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") || !strings.Contains(string(head), "permessage-deflate") {
		t.Errorf("101 %q", head)
	}
	got := make([]byte, len(downFrames))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(downFrames) {
		t.Errorf("client got %q, want the upstream's bytes %q", got, downFrames)
	}
	if _, err := c.Write(upFrames); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-gotUp:
		if string(b) != string(upFrames) {
			t.Errorf("upstream got %q, want %q", b, upFrames)
		}
	case <-time.After(resumeBound):
		t.Fatal("upstream got nothing")
	}
}

func mask(p []byte, key [4]byte) []byte {
	out := make([]byte, len(p))
	for i := range p {
		out[i] = p[i] ^ key[i%4]
	}
	return out
}

// TestResumeThousand: 1,000 resumable clients are cut at once and resume
// at once: every one gets its gap exactly once, every message sent
// before the cut reaches the upstream once, and when they are gone the
// sessions' memory is back to zero.
func TestResumeThousand(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	rig := startResumeRig(t, []*config.Route{resumeRoute("chat", "/chat", time.Minute, 16<<10)})
	clients := make([]*resumeClient, n)
	ups := make([]*upConn, n)
	// each runs f for every client on up to 50 goroutines (under the
	// default 64 handshakes per client address) and fails on the first
	// error.
	each := func(what string, f func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 50)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%s: client %d: %w", what, i, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	id := func(i int) string { return "c" + strconv.Itoa(i) }
	each("start", func(i int) error {
		clients[i] = newResumeClient(rig.addr, "/chat?id="+id(i), "")
		return clients[i].start()
	})
	for i := range n {
		ups[i] = rig.upstream.conn(t, id(i))
	}
	each("before the cut", func(i int) error {
		rc, up := clients[i], ups[i]
		if err := up.send("a"); err != nil {
			return err
		}
		if m, err := rc.read(); err != nil || m != "a" {
			return fmt.Errorf("read %q %v", m, err)
		}
		return rc.send("x")
	})
	for _, rc := range clients {
		rc.cut()
	}
	waitFor(t, "every session to park", func() bool { return rig.engine.Stats().ParkedSessions == int64(n) })
	each("during the gap", func(i int) error { return ups[i].send("b") })
	if st := rig.engine.Stats(); st.ReplayBytes == 0 {
		t.Errorf("no replay bytes held during the gap: %+v", st)
	}
	each("resume", func(i int) error {
		rc := clients[i]
		if err := rc.resume(); err != nil {
			return err
		}
		if m, err := rc.read(); err != nil || m != "b" {
			return fmt.Errorf("replay %q %v", m, err)
		}
		if err := ups[i].send("c"); err != nil {
			return err
		}
		if m, err := rc.read(); err != nil || m != "c" {
			return fmt.Errorf("live %q %v", m, err)
		}
		return rc.send("y")
	})
	waitFor(t, "every client message at the upstream", func() bool {
		for _, up := range ups {
			if len(up.received()) < 2 {
				return false
			}
		}
		return true
	})
	for i, up := range ups {
		if got := up.received(); len(got) != 2 || got[0] != "x" || got[1] != "y" {
			t.Fatalf("upstream %d got %q, want [x y]", i, got)
		}
	}
	if a := rig.upstream.accepts.Load(); a != int64(n) {
		t.Errorf("upstream accepted %d connections, want %d", a, n)
	}
	each("close", func(i int) error {
		return clients[i].c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	})
	idle := func() (string, bool) {
		st := rig.engine.Stats()
		pairs, _ := rig.server.pairs.count("chat", "127.0.0.1")
		conns := rig.liveConns()
		return fmt.Sprintf("%+v, route pairs %d, listener connections %d", st, pairs, conns),
			st.Pairs == 0 && st.Sessions == 0 && st.ParkedSessions == 0 && st.ReplayBytes == 0 && pairs == 0 && conns == 0
	}
	deadline := time.Now().Add(resumeBound)
	for {
		state, ok := idle()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back to idle: %s", state)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, rc := range clients {
		rc.c.Close()
	}
}
