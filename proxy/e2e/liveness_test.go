package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/relay"
)

// The liveness tests run wsalive with heartbeats of a few hundred
// milliseconds against peers that stay silent, freeze, or play their own
// pings, and check what each side sees on the wire. Every wait is on a
// signal with a bound; durations are measured, never slept.

// engineTick is the engine's timer resolution (relay's wheelTick): a timed
// duty runs at most one tick after it is due.
const engineTick = 100 * time.Millisecond

// timingSlack is what a measured time may exceed its bound by: scheduling
// under -race on a small machine, never a missed deadline.
const timingSlack = time.Second

// withLiveness returns a fixtureOptions.route that gives a route the
// liveness settings of hcl, a route body (heartbeat blocks, idle_timeout,
// max_lifetime, app_ping ...) parsed by the config package as a file would
// be, so that its defaults and derivations apply.
func withLiveness(t *testing.T, hcl string) func(*config.Route) {
	t.Helper()
	src := "listener {\n  address = \"127.0.0.1:0\"\n}\nroute \"liveness\" {\n  upstream = \"127.0.0.1:1\"\n" + hcl + "\n}\n"
	cfg, err := config.Parse("liveness.hcl", []byte(src))
	if err != nil {
		t.Fatalf("liveness settings:\n%s\n%v", hcl, err)
	}
	want := cfg.Routes[0]
	return func(r *config.Route) {
		r.ClientHeartbeat = want.ClientHeartbeat
		r.UpstreamHeartbeat = want.UpstreamHeartbeat
		r.NATIdleTimeout, r.NATProfile = want.NATIdleTimeout, want.NATProfile
		r.IdleTimeout = want.IdleTimeout
		r.MaxLifetime, r.MaxLifetimeJitter = want.MaxLifetime, want.MaxLifetimeJitter
		r.AppPing = want.AppPing
	}
}

// heartbeatHCL is a heartbeat block toward side.
func heartbeatHCL(side string, interval, timeout time.Duration, maxMissed int) string {
	return fmt.Sprintf("heartbeat %q {\n  interval = %q\n  timeout = %q\n  max_missed = %d\n}\n",
		side, interval, timeout, maxMissed)
}

// bothHeartbeatsHCL is the same heartbeat block toward each side.
func bothHeartbeatsHCL(interval, timeout time.Duration, maxMissed int) string {
	return heartbeatHCL("client", interval, timeout, maxMissed) + heartbeatHCL("upstream", interval, timeout, maxMissed)
}

// isWsalivePayload reports whether a ping or pong payload is wsalive's
// own: its tag and a timestamp.
func isWsalivePayload(p []byte) bool { return liveness.IsOwnPong(p) }

// ---------------------------------------------------------------------
// Raw frame peers

// peerFrame is one frame a framePeer read, payload unmasked.
type peerFrame struct {
	op      ws.OpCode
	fin     bool
	masked  bool
	payload []byte
	mask    [4]byte   // the masking key, when masked
	at      time.Time // when it was read
}

func (f peerFrame) String() string {
	p := string(f.payload)
	if isWsalivePayload(f.payload) {
		p = "<wsalive>"
	} else if len(p) > 40 {
		p = fmt.Sprintf("<%d bytes>", len(p))
	}
	if f.op == ws.OpClose {
		code, reason := ws.ParseCloseFrameData(f.payload)
		p = fmt.Sprintf("%d %q", code, reason)
	}
	return fmt.Sprintf("%s fin=%v masked=%v %s", opName(f.op), f.fin, f.masked, p)
}

func opName(op ws.OpCode) string {
	switch op {
	case ws.OpContinuation:
		return "continuation"
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpClose:
		return "close"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	}
	return fmt.Sprintf("op%d", op)
}

// is reports whether f is an unfragmented op frame with payload p.
func (f peerFrame) is(op ws.OpCode, p string) bool {
	return f.op == op && f.fin && string(f.payload) == p
}

// heartbeat reports whether f is one of wsalive's pings.
func (f peerFrame) heartbeat() bool {
	return f.op == ws.OpPing && isWsalivePayload(f.payload)
}

// framePeer is a hand-driven WebSocket endpoint over a TCP connection: a
// goroutine reads and records every frame it receives, answers pings when
// asked to, and answers a close. It never calls t.Fatal; what goes wrong
// in its goroutine is kept in err.
type framePeer struct {
	name   string // "client" or "upstream", for messages
	conn   net.Conn
	br     *bufio.Reader
	masks  bool // it is a client: what it sends is masked
	answer bool // it answers every ping with a pong

	wmu       sync.Mutex
	closeSent bool

	frames chan peerFrame // every frame read, in order
	mu     sync.Mutex
	all    []peerFrame
	lost   int // frames not delivered on frames (it was full)

	done chan struct{} // closed when reading ended
	err  error         // why reading ended; read it after done
}

func newFramePeer(name string, conn net.Conn, br *bufio.Reader, masks, answer bool) *framePeer {
	p := &framePeer{
		name:   name,
		conn:   conn,
		br:     br,
		masks:  masks,
		answer: answer,
		frames: make(chan peerFrame, 4096),
		done:   make(chan struct{}),
	}
	go p.read()
	return p
}

func (p *framePeer) read() {
	defer close(p.done)
	defer close(p.frames)
	for {
		fr, err := readFrame(p.br)
		if err != nil {
			p.err = err
			return
		}
		f := peerFrame{op: fr.Header.OpCode, fin: fr.Header.Fin, masked: fr.Header.Masked, payload: fr.Payload, mask: fr.Header.Mask, at: time.Now()}
		// Answer first, record second: once a test has seen a ping, its
		// pong is on its way.
		switch f.op {
		case ws.OpPing:
			if p.answer {
				_ = p.send(ws.OpPong, true, f.payload)
			}
		case ws.OpClose:
			p.wmu.Lock()
			if !p.closeSent {
				p.closeSent = true
				_, _ = p.conn.Write(p.frame(ws.OpClose, true, f.payload))
			}
			p.wmu.Unlock()
		}
		p.mu.Lock()
		p.all = append(p.all, f)
		select {
		case p.frames <- f:
		default:
			p.lost++
		}
		p.mu.Unlock()
		if f.op == ws.OpClose && !p.masks {
			// A server closes TCP once the close handshake is done.
			p.err = io.EOF
			_ = p.conn.Close()
			return
		}
	}
}

// frame encodes a frame as this peer sends it.
func (p *framePeer) frame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.NewFrame(op, fin, payload)
	if p.masks {
		f = ws.MaskFrame(f) // copies the payload
	}
	return ws.MustCompileFrame(f)
}

// send writes one frame. Nothing is sent after a close.
func (p *framePeer) send(op ws.OpCode, fin bool, payload []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closeSent {
		return errors.New("close already sent")
	}
	if op == ws.OpClose {
		p.closeSent = true
	}
	_, err := p.conn.Write(p.frame(op, fin, payload))
	return err
}

// sendRaw writes bytes as they are: part of a frame, say. A test that
// sends a frame in parts must stop at the first close it reads: the
// reader's answer to it would land inside the frame.
func (p *framePeer) sendRaw(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.conn.Write(b)
	return err
}

// mustSend is send for the test goroutine.
func (p *framePeer) mustSend(t *testing.T, op ws.OpCode, fin bool, payload string) {
	t.Helper()
	if err := p.send(op, fin, []byte(payload)); err != nil {
		t.Fatalf("%s: send %s %q: %v", p.name, opName(op), payload, err)
	}
}

// next returns the next frame that is not a wsalive heartbeat ping.
func (p *framePeer) next(t *testing.T, what string) peerFrame {
	t.Helper()
	return p.waitFor(t, what, func(f peerFrame) bool { return !f.heartbeat() })
}

// waitFor returns the next frame match accepts, skipping others (they stay
// in the record).
func (p *framePeer) waitFor(t *testing.T, what string, match func(peerFrame) bool) peerFrame {
	t.Helper()
	deadline := time.After(waitBound)
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				t.Fatalf("%s: connection ended (%v) before %s; it read: %v", p.name, p.err, what, p.record())
			}
			if match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: no %s within %v; it read: %v", p.name, what, waitBound, p.record())
		}
	}
}

// expect checks that the next frame that is not a heartbeat ping is an
// unfragmented op frame with payload.
func (p *framePeer) expect(t *testing.T, op ws.OpCode, payload string) peerFrame {
	t.Helper()
	f := p.next(t, fmt.Sprintf("%s %q", opName(op), payload))
	if !f.is(op, payload) {
		t.Fatalf("%s read %v, want %s fin=true %q", p.name, f, opName(op), payload)
	}
	if f.masked != !p.masks {
		t.Errorf("%s read %v: masked=%v, want %v", p.name, f, f.masked, !p.masks)
	}
	return f
}

// record returns a copy of every frame read so far.
func (p *framePeer) record() []peerFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]peerFrame(nil), p.all...)
}

// ended waits for the peer's reading to end and returns every frame it
// read.
func (p *framePeer) ended(t *testing.T) []peerFrame {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitBound):
		t.Fatalf("%s: connection still open %v after its pair ended", p.name, waitBound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost > 0 {
		t.Errorf("%s: %d frames not delivered to the test", p.name, p.lost)
	}
	return append([]peerFrame(nil), p.all...)
}

// closeNormally sends close 1000 from p, waits for the answer and for
// the pair to end, and checks its reason.
func (p *framePeer) closeNormally(t *testing.T, f *fixture, want relay.Reason) relay.PairStats {
	t.Helper()
	p.mustSend(t, ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	p.waitFor(t, "the close answer", func(f peerFrame) bool { return f.op == ws.OpClose })
	st := f.nextClosed(t)
	if st.Reason != want {
		t.Errorf("pair ended with %v, want %v", st.Reason, want)
	}
	p.ended(t)
	return st
}

// closeIn returns the first close frame of frames.
func closeIn(frames []peerFrame) (peerFrame, bool) {
	for _, f := range frames {
		if f.op == ws.OpClose {
			return f, true
		}
	}
	return peerFrame{}, false
}

// closeFrameOf returns the code and reason of a close frame.
func closeFrameOf(f peerFrame) (ws.StatusCode, string) {
	return ws.ParseCloseFrameData(f.payload)
}

// dialPeer connects a raw client to path through the proxy.
func dialPeer(t *testing.T, f *fixture, path string, answer bool) *framePeer {
	t.Helper()
	rc := rawDial(t, f.proxyAddr, path, nil)
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial %s: status %d, want 101", path, rc.resp.StatusCode)
	}
	return clientPeer(t, rc.conn, rc.br, answer)
}

// clientPeer wraps a connection whose handshake is done as a client peer;
// cleanup closes it and waits for its reader.
func clientPeer(t *testing.T, conn net.Conn, br *bufio.Reader, answer bool) *framePeer {
	if err := conn.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	p := newFramePeer("client", conn, br, true, answer)
	t.Cleanup(func() {
		_ = conn.Close()
		<-p.done
	})
	return p
}

// handshakeOn performs a client upgrade for path on a connected conn
// (which may live in another network namespace).
func handshakeOn(t *testing.T, conn net.Conn, host, path string) *bufio.Reader {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(waitBound)); err != nil {
		t.Fatal(err)
	}
	key := newKey()
	if _, err := conn.Write(upgradeRequest(host, path, key)); err != nil {
		t.Fatalf("write upgrade request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response head: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(key); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return br
}

// rawServer is an upstream of hand-driven server peers: it accepts on its
// listener, answers each upgrade with 101, and hands each connection out
// as a framePeer.
type rawServer struct {
	ln     net.Listener
	answer bool
	peers  chan *framePeer
	conns  connSet

	mu       sync.Mutex
	problems []string
}

// connSet holds the connections a test server accepted or dialed and
// counts its goroutines. Cleanup closes the listener and every connection
// first, which ends each goroutine's blocked accept or read, and only then
// waits for the goroutines.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

// track registers c for cleanup; once cleanup has started it closes c
// instead and reports false.
func (cs *connSet) track(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		_ = c.Close()
		return false
	}
	cs.conns = append(cs.conns, c)
	return true
}

// serve accepts on ln, in a goroutine of the set, until ln is closed or
// cleanup has started: it tracks each connection and hands it to handle,
// which reports whether to go on accepting.
func (cs *connSet) serve(ln net.Listener, handle func(c net.Conn) bool) {
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil || !cs.track(c) || !handle(c) {
				return
			}
		}
	}()
}

// shutdown closes ln and every tracked connection, then waits for the
// goroutines; what names the server in the failure.
func (cs *connSet) shutdown(t *testing.T, ln net.Listener, what string) {
	_ = ln.Close()
	cs.mu.Lock()
	cs.closed = true
	for _, c := range cs.conns {
		_ = c.Close()
	}
	cs.mu.Unlock()
	if !waitGroupWithin(&cs.wg, waitBound) {
		t.Errorf("%s goroutines still running %v after cleanup", what, waitBound)
	}
}

// newRawServer serves raw upstream peers on a fresh loopback listener.
func newRawServer(t *testing.T, answer bool) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRaw(t, ln, answer)
}

// serveRaw serves raw upstream peers on ln; cleanup closes ln and every
// connection, and waits for their goroutines.
func serveRaw(t *testing.T, ln net.Listener, answer bool) *rawServer {
	s := &rawServer{ln: ln, answer: answer, peers: make(chan *framePeer, 64)}
	s.conns.serve(ln, func(c net.Conn) bool {
		s.conns.wg.Add(1)
		go s.serveConn(c)
		return true
	})
	t.Cleanup(func() {
		s.conns.shutdown(t, ln, "raw upstream")
		s.mu.Lock()
		for _, p := range s.problems {
			t.Errorf("raw upstream: %s", p)
		}
		s.mu.Unlock()
	})
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

// serveConn hands c out as a peer once its handshake is done, and lives as
// long as the peer reads.
func (s *rawServer) serveConn(c net.Conn) {
	defer s.conns.wg.Done()
	p, err := s.handshake(c)
	if err != nil {
		s.mu.Lock()
		s.problems = append(s.problems, err.Error())
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	select {
	case s.peers <- p:
	default:
		s.mu.Lock()
		s.problems = append(s.problems, "too many upstream connections")
		s.mu.Unlock()
	}
	<-p.done
}

func (s *rawServer) handshake(c net.Conn) (*framePeer, error) {
	if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, fmt.Errorf("read upgrade request: %w", err)
	}
	out := fmt.Appendf(nil, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		acceptFor(req.Header.Get("Sec-WebSocket-Key")))
	if _, err := c.Write(out); err != nil {
		return nil, fmt.Errorf("write 101: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return newFramePeer("upstream", c, br, false, s.answer), nil
}

// next returns the upstream peer of the next pair.
func (s *rawServer) next(t *testing.T) *framePeer {
	t.Helper()
	return recv(t, s.peers, "upstream connection")
}

// rawFixture runs wsalive with the liveness settings hcl in front of raw
// upstream peers, which answer pings if answer, under the prefix "/raw".
func rawFixture(t *testing.T, answer bool, hcl string) (*fixture, *rawServer) {
	t.Helper()
	srv := newRawServer(t, answer)
	f := newFixture(t, fixtureOptions{
		routes: map[string]string{"/raw": srv.addr()},
		route:  withLiveness(t, hcl),
	})
	return f, srv
}

// rawPair dials a raw client through the fixture to the raw server behind
// prefix, and returns both ends.
func rawPair(t *testing.T, f *fixture, s *rawServer, prefix string, clientAnswers bool) (cli, up *framePeer) {
	t.Helper()
	cli = dialPeer(t, f, prefix+"/"+strings.ReplaceAll(t.Name(), "/", "-"), clientAnswers)
	return cli, s.next(t)
}

// ---------------------------------------------------------------------
// coder/websocket peers that report how and when they ended

// endEvent is how and when a peer's connection ended.
type endEvent struct {
	err error
	at  time.Time
}

// endingEcho is an upstream handler that echoes every message, keeping a
// Read pending (so that coder answers pings), until its connection ends;
// it then reports the end on ended. It gives up when the fixture closes.
func endingEcho(ended chan<- endEvent) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r, nil)
		if c == nil {
			return
		}
		defer c.CloseNow()
		f := upstreamOf(r)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			// A peer frozen behind a test relay never ends the read.
			select {
			case <-f.done:
				c.CloseNow()
			case <-ctx.Done():
			}
		}()
		for {
			typ, msg, err := c.Read(ctx)
			if err == nil {
				err = c.Write(ctx, typ, msg)
			}
			if err != nil {
				select {
				case ended <- endEvent{err, time.Now()}:
				case <-f.done:
				}
				return
			}
		}
	}
}

// coderReader keeps a Read pending on c (so that coder answers pings) and
// delivers what it reads; the end comes on ended with its time.
type coderReader struct {
	msgs  chan []byte
	ended chan endEvent
}

func readCoder(t *testing.T, c *websocket.Conn) *coderReader {
	r := &coderReader{msgs: make(chan []byte, 64), ended: make(chan endEvent, 1)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				r.ended <- endEvent{err, time.Now()}
				return
			}
			select {
			case r.msgs <- msg:
			case <-stop:
				return
			}
		}
	}()
	return r
}

// expectGoingAway checks that ev is a close 1001 with reason.
func expectGoingAway(t *testing.T, who string, ev endEvent, reason string) {
	t.Helper()
	if code, got := closeError(ev.err); code != websocket.StatusGoingAway || got != reason {
		t.Errorf("%s saw %v, want close 1001 %q", who, ev.err, reason)
	}
}

// ---------------------------------------------------------------------
// A TCP relay that can freeze

// freezer is a TCP forwarder between a peer and wsalive, or between
// wsalive and the upstream. Freeze stops it forwarding either way while it
// keeps both connections open: the far end looks alive to TCP (its bytes
// are acknowledged) and silent to WebSocket, as behind a NAT that lost the
// mapping or a peer whose process hangs.
type freezer struct {
	ln     net.Listener
	target atomic.Pointer[string]

	mu     sync.RWMutex // held for writing by Freeze, for reading by each forwarded write
	frozen bool

	conns connSet
}

// newFreezer listens on loopback; connections are forwarded to the
// address set with forwardTo (before the first connection arrives).
func newFreezer(t *testing.T) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fr := &freezer{ln: ln}
	fr.conns.serve(ln, fr.forward)
	t.Cleanup(func() { fr.conns.shutdown(t, ln, "freezer") })
	return fr
}

func (fr *freezer) addr() string { return fr.ln.Addr().String() }

func (fr *freezer) forwardTo(addr string) { fr.target.Store(&addr) }

// Freeze stops all forwarding; once it returns, no byte crosses any more.
func (fr *freezer) Freeze() {
	fr.mu.Lock()
	fr.frozen = true
	fr.mu.Unlock()
}

// forward connects an accepted connection a to the target and relays
// both ways; it reports false once cleanup has started.
func (fr *freezer) forward(a net.Conn) bool {
	target := fr.target.Load()
	if target == nil {
		_ = a.Close()
		return true
	}
	b, err := net.DialTimeout("tcp", *target, waitBound)
	if err != nil {
		_ = a.Close()
		return true
	}
	if !fr.conns.track(b) {
		return false
	}
	fr.conns.wg.Add(2)
	go fr.copy(b, a)
	go fr.copy(a, b)
	return true
}

// copy forwards src to dst until src ends. Frozen, it reads and drops:
// the sender is acknowledged and never blocked, and nothing arrives. (A
// write blocked on a full dst would hold up Freeze; the tests' traffic is
// far too small for that.)
func (fr *freezer) copy(dst, src net.Conn) {
	defer fr.conns.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			fr.mu.RLock()
			if !fr.frozen {
				_, _ = dst.Write(buf[:n])
			}
			fr.mu.RUnlock()
		}
		if err != nil {
			fr.mu.RLock()
			if !fr.frozen {
				// Pass the FIN on, as TCP would.
				_ = dst.(*net.TCPConn).CloseWrite()
			}
			fr.mu.RUnlock()
			return
		}
	}
}

// ---------------------------------------------------------------------
// A side that goes silent is declared dead in bounded time.

// TestHeartbeatFrozenPeer freezes a TCP relay on one side of a live pair:
// that side's connection stays open but nothing crosses. wsalive must ping
// it, count max_missed unanswered pings, and close the other side with
// 1001 "<side> heartbeat timeout" within interval + timeout × max_missed,
// and not before the last miss.
func TestHeartbeatFrozenPeer(t *testing.T) {
	const (
		interval = 300 * time.Millisecond
		timeout  = 250 * time.Millisecond
	)
	for _, side := range []string{"client", "upstream"} {
		for _, maxMissed := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/max-missed-%d", side, maxMissed), func(t *testing.T) {
				// The side that stays alive is pinged as often, with
				// more patience (the machine may be busy): it must not
				// be declared dead meanwhile.
				other := map[string]string{"client": "upstream", "upstream": "client"}[side]
				hcl := heartbeatHCL(side, interval, timeout, maxMissed) +
					heartbeatHCL(other, interval, time.Second, 2)
				pol := liveness.Policy{Interval: interval, Timeout: timeout, MaxMissed: maxMissed}
				testFrozen(t, side, withLiveness(t, hcl), pol)
			})
		}
	}
}

// checkDetection checks a detection time against a policy: no later than
// its bound plus slack, and no sooner than the last of its misses could
// be counted.
func checkDetection(t *testing.T, took time.Duration, pol liveness.Policy) {
	t.Helper()
	bound := pol.DetectionBound()
	// The frozen side was last heard from one round trip before the
	// freeze; half a timeout is far more than that round trip.
	earliest := pol.Interval + time.Duration(pol.MaxMissed-1)*pol.Timeout + pol.Timeout/2
	t.Logf("detected after %v (bound %v = %v + %v × %d)", took.Round(time.Millisecond), bound, pol.Interval, pol.Timeout, pol.MaxMissed)
	// Each of the 1 + max_missed deadlines may fire a timer tick late:
	// the slack covers that and the scheduling noise of -race.
	if took > bound+timingSlack {
		t.Errorf("detected after %v, want at most the bound %v + slack %v", took, bound, timingSlack)
	}
	if took < earliest {
		t.Errorf("detected after %v, before the last of %d misses could be counted (%v)", took, pol.MaxMissed, earliest)
	}
}

// testFrozen runs a pair with a freezer between wsalive and side, has the
// pair prove a round trip, freezes, and checks that wsalive detects the
// frozen side in time and closes the other one, which stayed alive.
func testFrozen(t *testing.T, side string, route func(*config.Route), pol liveness.Policy) {
	ended := make(chan endEvent, 1) // the upstream's end
	var f *fixture
	var fr *freezer
	var c *websocket.Conn
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if side == "client" {
		// The client dials the freezer, which forwards to wsalive.
		f = newFixture(t, fixtureOptions{handler: endingEcho(ended), route: route})
		fr = newFreezer(t)
		fr.forwardTo(f.proxyAddr)
		var err error
		c, _, err = websocket.Dial(ctx, "ws://"+fr.addr()+"/frozen-client", nil)
		if err != nil {
			t.Fatalf("dial through the freezer: %v", err)
		}
		t.Cleanup(func() { c.CloseNow() })
	} else {
		// wsalive's route leads to the freezer, which forwards to the
		// upstream.
		fr = newFreezer(t)
		f = newFixture(t, fixtureOptions{
			handler: endingEcho(ended),
			routes:  map[string]string{"/frozen": fr.addr()},
			route:   route,
		})
		fr.forwardTo(f.upstreamAddr)
		c, _ = f.dial(t, "/frozen/upstream", nil)
	}
	rd := readCoder(t, c)
	// A round trip just before the freeze: both sides were heard from then.
	if err := c.Write(ctx, websocket.MessageText, []byte("before the freeze")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := recv(t, rd.msgs, "echo"); string(got) != "before the freeze" {
		t.Fatalf("echo %q", got)
	}
	fr.Freeze()
	frozenAt := time.Now()

	// The frozen side hears nothing any more: the other side, its
	// witness, is the one that sees wsalive's close.
	witness, witnessEnded := "upstream", ended
	if side == "upstream" {
		witness, witnessEnded = "client", rd.ended
	}
	ev := recv(t, witnessEnded, "end of the "+witness+"'s connection")
	expectGoingAway(t, witness, ev, side+" heartbeat timeout")
	checkDetection(t, ev.at.Sub(frozenAt), pol)
	st := f.nextClosed(t)
	want, frozenHB, witnessHB := relay.ReasonClientHeartbeatTimeout, st.ClientHeartbeat, st.UpstreamHeartbeat
	if side == "upstream" {
		want, frozenHB, witnessHB = relay.ReasonUpstreamHeartbeatTimeout, st.UpstreamHeartbeat, st.ClientHeartbeat
	}
	if st.Reason != want {
		t.Errorf("pair ended with %v, want %v", st.Reason, want)
	}
	if frozenHB.Missed != pol.MaxMissed || int(frozenHB.PingsSent) < pol.MaxMissed {
		t.Errorf("%s heartbeat %+v, want %d misses of as many pings at least", side, frozenHB, pol.MaxMissed)
	}
	if witnessHB.Missed != 0 {
		t.Errorf("%s heartbeat %+v, want no miss: the %s was alive", witness, witnessHB, witness)
	}
}

// ---------------------------------------------------------------------
// The pongs wsalive asked for stop at wsalive.

// TestHeartbeatPongsAbsorbed runs a pair of silent raw peers that answer
// every ping, for several heartbeat intervals, and checks every frame each
// of them read: wsalive's pings, tagged, masked toward the upstream only,
// and not one pong, since neither peer ever pinged.
func TestHeartbeatPongsAbsorbed(t *testing.T) {
	const (
		interval = 200 * time.Millisecond
		pings    = 4
	)
	f, srv := rawFixture(t, true, bothHeartbeatsHCL(interval, 2*interval, 2))
	cli, up := rawPair(t, f, srv, "/raw", true)
	start := time.Now()
	for i := range pings {
		cli.waitFor(t, fmt.Sprintf("wsalive ping %d at the client", i+1), peerFrame.heartbeat)
		up.waitFor(t, fmt.Sprintf("wsalive ping %d at the upstream", i+1), peerFrame.heartbeat)
	}
	t.Logf("%d pings each way in %v", pings, time.Since(start).Round(time.Millisecond))
	st := cli.closeNormally(t, f, relay.ReasonClientClosed)
	upFrames := up.ended(t)
	cliFrames := cli.ended(t)

	for _, c := range []struct {
		peer   string
		frames []peerFrame
		masked bool
		hb     liveness.Stats
	}{
		{"client", cliFrames, false, st.ClientHeartbeat},
		{"upstream", upFrames, true, st.UpstreamHeartbeat},
	} {
		t.Run(c.peer, func(t *testing.T) {
			var seen int
			var last time.Duration
			masks := map[[4]byte]int{}
			for _, fr := range c.frames {
				switch fr.op {
				case ws.OpPong:
					t.Errorf("%s read %v: a pong it never asked for (wsalive forwarded one it should have absorbed)", c.peer, fr)
				case ws.OpPing:
					if !fr.heartbeat() {
						t.Errorf("%s read %v, want only wsalive's pings", c.peer, fr)
						continue
					}
					seen++
					if fr.masked != c.masked {
						t.Errorf("%s read a ping masked=%v, want %v", c.peer, fr.masked, c.masked)
					}
					if fr.masked {
						masks[fr.mask]++
					}
					// The payload is the tag and the send time: each ping
					// is later than the one before.
					at := pingTime(fr.payload)
					if at <= last {
						t.Errorf("%s: ping times not increasing: %d after %d", c.peer, at, last)
					}
					last = at
				}
			}
			if seen < pings {
				t.Errorf("%s read %d wsalive pings, want at least %d", c.peer, seen, pings)
			}
			// Each ping toward the upstream has a fresh masking key
			// (RFC 6455 §5.3): with 32 random bits, a repeat among a
			// handful means the key is not fresh.
			if c.masked && len(masks) != seen {
				t.Errorf("%s: %d pings used only %d masking keys: %v", c.peer, seen, len(masks), masks)
			}
			if int(c.hb.PingsSent) != seen {
				t.Errorf("%s heartbeat counted %d pings sent, the peer read %d", c.peer, c.hb.PingsSent, seen)
			}
			// The last pong may be cut off by the close.
			if int(c.hb.PongsReceived) < seen-1 || c.hb.PongsReceived > c.hb.PingsSent {
				t.Errorf("%s heartbeat counted %d pongs for %d pings, want every pong (the last may cross the close)",
					c.peer, c.hb.PongsReceived, c.hb.PingsSent)
			}
			if c.hb.Missed != 0 || c.hb.LastRTT <= 0 || c.hb.SmoothedRTT <= 0 {
				t.Errorf("%s heartbeat %+v, want no miss and a round-trip time", c.peer, c.hb)
			}
		})
	}
}

// ---------------------------------------------------------------------
// Where and when pings go

// pingTime returns the send time a wsalive ping payload carries, on the
// engine's clock.
func pingTime(p []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint64(p[len(liveness.PingTag):]))
}

// TestHeartbeatInterval checks the spacing of wsalive's pings to a silent
// peer that answers each one at once: the next ping goes one interval
// after the pong, whether the timeout is shorter or longer than the
// interval. The gaps are read from the pings' own send times.
func TestHeartbeatInterval(t *testing.T) {
	const interval = 300 * time.Millisecond
	for _, c := range []struct {
		name    string
		timeout time.Duration
	}{
		{"timeout-shorter", 200 * time.Millisecond},
		{"timeout-equal", interval},
		// A timeout longer than the interval is valid configuration
		// (a slow mobile link, a short NAT limit). Pinging only when the
		// timeout has run out would leave the side silent for longer than
		// the interval that was checked against the NAT's idle limit.
		{"timeout-longer", 1200 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			const gaps = 2
			f, srv := rawFixture(t, true, heartbeatHCL("client", interval, c.timeout, 2))
			cli, _ := rawPair(t, f, srv, "/raw", true)
			var sent []time.Duration
			for len(sent) <= gaps {
				fr := cli.waitFor(t, "a wsalive ping", peerFrame.heartbeat)
				sent = append(sent, pingTime(fr.payload))
			}
			st := cli.closeNormally(t, f, relay.ReasonClientClosed)
			var took []string
			for i := 1; i < len(sent); i++ {
				gap := sent[i] - sent[i-1]
				took = append(took, gap.Round(time.Millisecond).String())
				// After the pong (a loopback round trip), one interval,
				// rounded up to the timer's tick; the rest is room for a
				// busy machine.
				if gap < interval || gap > interval+engineTick+500*time.Millisecond {
					t.Errorf("ping %d went %v after the one before, want the interval %v (+ tick %v): the pong came at once",
						i, gap.Round(time.Millisecond), interval, engineTick)
				}
			}
			t.Logf("gaps between pings: %s; heartbeat %+v", strings.Join(took, ", "), st.ClientHeartbeat)
		})
	}
}

// TestHeartbeatBetweenFragments has each peer send a fragmented message
// slowly, a heartbeat interval between its fragments: wsalive's ping to
// the receiving side may go between the fragments (RFC 6455 §5.4 allows
// control frames there) and must not go inside one.
func TestHeartbeatBetweenFragments(t *testing.T) {
	const interval = 200 * time.Millisecond
	f, srv := rawFixture(t, true, bothHeartbeatsHCL(interval, time.Second, 2))
	for _, toward := range []string{"client", "upstream"} {
		t.Run("toward-"+toward, func(t *testing.T) {
			cli, up := rawPair(t, f, srv, "/raw", true)
			sender, receiver := up, cli
			if toward == "upstream" {
				sender, receiver = cli, up
			}
			sender.mustSend(t, ws.OpText, false, "first half, ")
			if fr := receiver.next(t, "the first fragment"); fr.op != ws.OpText || fr.fin || string(fr.payload) != "first half, " {
				t.Fatalf("%s read %v, want the first fragment", toward, fr)
			}
			// The receiver answers; wsalive's ping comes while the
			// message is unfinished.
			receiver.waitFor(t, "a wsalive ping between the fragments", peerFrame.heartbeat)
			sender.mustSend(t, ws.OpContinuation, true, "second half")
			if fr := receiver.next(t, "the last fragment"); fr.op != ws.OpContinuation || !fr.fin || string(fr.payload) != "second half" {
				t.Fatalf("%s read %v, want the last fragment", toward, fr)
			}
			st := cli.closeNormally(t, f, relay.ReasonClientClosed)
			hb := st.ClientHeartbeat
			if toward == "upstream" {
				hb = st.UpstreamHeartbeat
			}
			if hb.PongsReceived == 0 || hb.Missed != 0 {
				t.Errorf("%s heartbeat %+v, want the pong to the ping between fragments", toward, hb)
			}
		})
	}
}

// ---------------------------------------------------------------------
// The peers' own pings and pongs cross untouched.

// TestOwnPingsCross checks, with heartbeats running both ways, that each
// peer's ping reaches the other with its payload and that the answer comes
// back; and that unsolicited pongs, including one that looks like another
// wsalive's, cross too.
func TestOwnPingsCross(t *testing.T) {
	const interval = 200 * time.Millisecond
	f, srv := rawFixture(t, true, bothHeartbeatsHCL(interval, time.Second, 2))

	// pingAcross has from ping to with payload p, and checks that the ping
	// crosses with its payload and that to's answer comes back.
	pingAcross := func(t *testing.T, from, to *framePeer, p string) {
		t.Helper()
		from.mustSend(t, ws.OpPing, true, p)
		to.expect(t, ws.OpPing, p)
		from.expect(t, ws.OpPong, p)
	}

	t.Run("client-pings", func(t *testing.T) {
		cli, up := rawPair(t, f, srv, "/raw", true)
		pingAcross(t, cli, up, "hello")
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})

	t.Run("upstream-pings", func(t *testing.T) {
		cli, up := rawPair(t, f, srv, "/raw", true)
		pingAcross(t, up, cli, "hello")
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})

	t.Run("after-heartbeats", func(t *testing.T) {
		// Once wsalive has pinged both sides, a peer's ping still
		// crosses and its answer is not taken for wsalive's.
		cli, up := rawPair(t, f, srv, "/raw", true)
		cli.waitFor(t, "a wsalive ping at the client", peerFrame.heartbeat)
		up.waitFor(t, "a wsalive ping at the upstream", peerFrame.heartbeat)
		pingAcross(t, cli, up, "still there?")
		pingAcross(t, up, cli, "and you?")
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})

	t.Run("unsolicited-pongs", func(t *testing.T) {
		cli, up := rawPair(t, f, srv, "/raw", true)
		cli.mustSend(t, ws.OpPong, true, "unsolicited")
		up.expect(t, ws.OpPong, "unsolicited")
		// A pong with another wsalive's tag (same shape, other nonce), as
		// when two proxies are chained: not this wsalive's to absorb.
		foreign := append([]byte("wsa"), liveness.PingTag[3:]...)
		for i := 3; i < len(foreign); i++ {
			foreign[i] ^= 0xff
		}
		foreign = binary.BigEndian.AppendUint64(foreign, 12345)
		up.mustSend(t, ws.OpPong, true, string(foreign))
		cli.expect(t, ws.OpPong, string(foreign))
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})
}

// ---------------------------------------------------------------------
// answer_pings

// TestAnswerPings has the upstream (or the client) never answer pings;
// with answer_pings on the other side, wsalive answers that side's pings
// itself, with the same payload, and never forwards them.
func TestAnswerPings(t *testing.T) {
	for _, side := range []string{"client", "upstream"} {
		t.Run(side, func(t *testing.T) {
			other := map[string]string{"client": "upstream", "upstream": "client"}[side]
			// Raw peers on both ends that ignore pings, as legacy peers do.
			f, srv := rawFixture(t, false, fmt.Sprintf("heartbeat %q {\n  answer_pings = true\n}\nheartbeat %q {\n  enabled = false\n}\n", side, other))
			cli, up := rawPair(t, f, srv, "/raw", false)
			pinger, peer := cli, up // pinger is the side whose pings wsalive answers
			if side == "upstream" {
				pinger, peer = up, cli
			}
			pinger.mustSend(t, ws.OpPing, true, "are you there?")
			// Toward the upstream the pong is masked: wsalive is its client.
			pinger.expect(t, ws.OpPong, "are you there?")
			pinger.mustSend(t, ws.OpText, true, "after the ping")
			// The peer's first frame is the text: the ping stopped at
			// wsalive.
			peer.expect(t, ws.OpText, "after the ping")
			// The peer's own pings still reach the pinger.
			peer.mustSend(t, ws.OpPing, true, "from the "+other)
			pinger.expect(t, ws.OpPing, "from the "+other)
			cli.closeNormally(t, f, relay.ReasonClientClosed)
			for _, fr := range peer.ended(t) {
				if fr.op == ws.OpPing {
					t.Errorf("%s read %v; with answer_pings the %s's pings stop at wsalive", other, fr, side)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------
// app_ping

// TestAppPing checks application-level pings: a client text message equal
// to match is answered with reply by wsalive and not forwarded; anything
// else, however close, is forwarded as it came.
func TestAppPing(t *testing.T) {
	const (
		match = `{"type":"ping"}`
		reply = `{"type":"pong"}`
	)
	f, srv := rawFixture(t, true, `app_ping {
  match = "{\"type\":\"ping\"}"
  reply = "{\"type\":\"pong\"}"
}`)

	// checkNoReply ends the pair and checks the client got no reply.
	checkNoReply := func(t *testing.T, cli *framePeer) {
		t.Helper()
		cli.closeNormally(t, f, relay.ReasonClientClosed)
		for _, fr := range cli.ended(t) {
			if fr.op == ws.OpText && string(fr.payload) == reply {
				t.Errorf("client read the app pong, want none: nothing matched")
			}
		}
	}

	t.Run("match", func(t *testing.T) {
		cli, up := rawPair(t, f, srv, "/raw", true)
		cli.mustSend(t, ws.OpText, true, match)
		cli.expect(t, ws.OpText, reply)
		cli.mustSend(t, ws.OpText, true, "marker")
		up.expect(t, ws.OpText, "marker") // the ping was not forwarded
		cli.mustSend(t, ws.OpText, true, match)
		cli.expect(t, ws.OpText, reply) // every ping is answered
		cli.closeNormally(t, f, relay.ReasonClientClosed)
		for _, fr := range up.ended(t) {
			if fr.op == ws.OpText && string(fr.payload) == match {
				t.Errorf("upstream read the app ping, want it answered by wsalive")
			}
		}
	})

	for _, c := range []struct {
		name string
		op   ws.OpCode
		text string
	}{
		{"same-length", ws.OpText, `{"type":"pinG"}`},
		{"longer", ws.OpText, match + " "},
		{"much-longer", ws.OpText, `{"type":"ping","id":12345678901234567890}`},
		{"shorter", ws.OpText, `{"type":"pin"}`},
		{"prefix-of-longer", ws.OpText, match + match},
		{"binary", ws.OpBinary, match},
	} {
		t.Run(c.name, func(t *testing.T) {
			cli, up := rawPair(t, f, srv, "/raw", true)
			cli.mustSend(t, c.op, true, c.text)
			up.expect(t, c.op, c.text)
			checkNoReply(t, cli)
		})
	}

	t.Run("fragmented", func(t *testing.T) {
		// The whole message equals match, but it came in fragments: it is
		// forwarded frame by frame, as it came.
		for _, parts := range [][]string{
			{match, ""},
			{`{"type":`, `"ping"}`},
			{"", match},
		} {
			cli, up := rawPair(t, f, srv, "/raw", true)
			cli.mustSend(t, ws.OpText, false, parts[0])
			cli.mustSend(t, ws.OpContinuation, true, parts[1])
			first := up.next(t, "first fragment")
			if first.op != ws.OpText || first.fin || string(first.payload) != parts[0] {
				t.Errorf("upstream read %v, want text fin=false %q", first, parts[0])
			}
			second := up.next(t, "last fragment")
			if second.op != ws.OpContinuation || !second.fin || string(second.payload) != parts[1] {
				t.Errorf("upstream read %v, want continuation fin=true %q", second, parts[1])
			}
			checkNoReply(t, cli)
		}
	})

	t.Run("reply-waits-for-message-boundary", func(t *testing.T) {
		// The upstream is in the middle of a fragmented message toward
		// the client when the app ping comes: the reply, a data frame,
		// must wait for the message's end (RFC 6455 §5.4).
		cli, up := rawPair(t, f, srv, "/raw", true)
		up.mustSend(t, ws.OpText, false, "part one, ")
		if fr := cli.next(t, "first fragment"); fr.op != ws.OpText || fr.fin {
			t.Fatalf("client read %v, want the first fragment", fr)
		}
		cli.mustSend(t, ws.OpText, true, match)
		cli.mustSend(t, ws.OpText, true, "marker")
		// The marker went through, so wsalive has seen the ping.
		up.expect(t, ws.OpText, "marker")
		up.mustSend(t, ws.OpContinuation, true, "part two")
		if fr := cli.next(t, "last fragment"); fr.op != ws.OpContinuation || !fr.fin || string(fr.payload) != "part two" {
			t.Fatalf("client read %v, want the last fragment before the app pong", fr)
		}
		cli.expect(t, ws.OpText, reply)
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})
}

// ---------------------------------------------------------------------
// idle_timeout

// TestIdleTimeout checks that idle_timeout counts data frames only: pings
// (wsalive's and the peers') do not keep a pair open, data frames either
// way do.
func TestIdleTimeout(t *testing.T) {
	const (
		idle     = 500 * time.Millisecond
		interval = 150 * time.Millisecond
	)
	ended := make(chan endEvent, 1)
	srv := newRawServer(t, true)
	f := newFixture(t, fixtureOptions{
		handler: endingEcho(ended),
		routes:  map[string]string{"/raw": srv.addr()},
		route:   withLiveness(t, fmt.Sprintf("idle_timeout = %q\n", idle)+bothHeartbeatsHCL(interval, time.Second, 2)),
	})

	// checkClosed checks how both peers saw the end and returns the
	// pair's stats.
	checkClosed := func(t *testing.T, rd *coderReader) (relay.PairStats, endEvent) {
		t.Helper()
		cliEnd := recv(t, rd.ended, "end of the client's connection")
		expectGoingAway(t, "client", cliEnd, "idle timeout")
		expectGoingAway(t, "upstream", recv(t, ended, "end of the upstream's connection"), "idle timeout")
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonIdleTimeout {
			t.Errorf("pair ended with %v, want idle_timeout", st.Reason)
		}
		return st, cliEnd
	}

	t.Run("pings-only", func(t *testing.T) {
		c, _ := f.dial(t, "/pings-only", nil)
		rd := readCoder(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		// The client's own pings are not data either.
		for range 3 {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("client ping: %v", err)
			}
		}
		st, _ := checkClosed(t, rd)
		t.Logf("closed after %v", st.Duration.Round(time.Millisecond))
		if st.Duration < idle || st.Duration > idle+engineTick+timingSlack {
			t.Errorf("pair lasted %v, want idle_timeout %v (+ tick %v + slack %v)", st.Duration, idle, engineTick, timingSlack)
		}
		if st.ClientHeartbeat.PongsReceived == 0 || st.UpstreamHeartbeat.PongsReceived == 0 {
			t.Errorf("heartbeats %+v / %+v, want pongs both ways: pings went on and did not count",
				st.ClientHeartbeat, st.UpstreamHeartbeat)
		}
	})

	// Data every 150 ms for over 1.5 idle_timeouts, then silence.
	const (
		gap   = 150 * time.Millisecond
		count = 6
	)

	// paced calls send count times, gap apart, and returns when it began.
	paced := func(send func(i int)) time.Time {
		start := time.Now()
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for i := range count {
			if i > 0 {
				<-tick.C // paces the traffic; nothing waits on it
			}
			send(i)
		}
		return start
	}
	// checkPostponed checks that a pair that carried paced data closed
	// idle_timeout after the last data frame, quiet, which is no less
	// than lowest, and so lasted longer than idle_timeout.
	checkPostponed := func(t *testing.T, st relay.PairStats, quiet, sinceFirst, lowest time.Duration) {
		t.Helper()
		t.Logf("closed %v after the last data frame, %v after the first", quiet.Round(time.Millisecond), sinceFirst.Round(time.Millisecond))
		if quiet < lowest || quiet > idle+engineTick+timingSlack {
			t.Errorf("closed %v after the last data frame, want idle_timeout %v after it", quiet, idle)
		}
		if st.Duration < idle+gap*(count-1) {
			t.Errorf("pair lasted %v: the data frames did not postpone idle_timeout %v", st.Duration, idle)
		}
	}

	t.Run("client-data-postpones", func(t *testing.T) {
		c, _ := f.dial(t, "/client-data", nil)
		rd := readCoder(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		var lastSent time.Time
		start := paced(func(i int) {
			lastSent = time.Now()
			if err := c.Write(ctx, websocket.MessageText, []byte("data")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			recv(t, rd.msgs, "echo")
		})
		st, cliEnd := checkClosed(t, rd)
		checkPostponed(t, st, cliEnd.at.Sub(lastSent), cliEnd.at.Sub(start), idle)
	})

	t.Run("upstream-data-postpones", func(t *testing.T) {
		cli, up := rawPair(t, f, srv, "/raw", true)
		var lastRecv time.Time
		start := paced(func(int) {
			up.mustSend(t, ws.OpBinary, true, "data")
			lastRecv = cli.expect(t, ws.OpBinary, "data").at
		})
		fr := cli.next(t, "the close")
		closedAt := fr.at
		if code, reason := closeFrameOf(fr); fr.op != ws.OpClose || code != ws.StatusGoingAway || reason != "idle timeout" {
			t.Errorf("client read %v, want close 1001 \"idle timeout\"", fr)
		}
		if fr := up.next(t, "the close"); fr.op != ws.OpClose {
			t.Errorf("upstream read %v, want close 1001 \"idle timeout\"", fr)
		} else if code, reason := closeFrameOf(fr); code != ws.StatusGoingAway || reason != "idle timeout" {
			t.Errorf("upstream read close %d %q, want 1001 \"idle timeout\"", code, reason)
		}
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonIdleTimeout {
			t.Errorf("pair ended with %v, want idle_timeout", st.Reason)
		}
		// The last frame left wsalive just before the client read it.
		checkPostponed(t, st, closedAt.Sub(lastRecv), closedAt.Sub(start), idle-engineTick)
	})

	t.Run("long-frame-in-progress", func(t *testing.T) {
		// One data frame whose payload takes two idle timeouts to arrive:
		// bytes of a data frame are crossing the whole time, so the pair
		// is in use and must not be closed as idle.
		const chunks = 20 // × 50 ms = 1 s, two idle timeouts
		cli, up := rawPair(t, f, srv, "/raw", true)
		sendSlowly(t, cli, up, payload(websocket.MessageBinary, chunks*512, 7), "its bytes were still crossing: the pair was not idle")
		f.noPairClosed(t)
		cli.closeNormally(t, f, relay.ReasonClientClosed)
	})
}

// ---------------------------------------------------------------------
// max_lifetime

// TestMaxLifetime opens pairs together and checks that each is closed
// with 1001 "max lifetime" at an age between max_lifetime - jitter and
// max_lifetime (plus a tick), and that the jitter spreads them.
func TestMaxLifetime(t *testing.T) {
	const (
		lifetime      = time.Second
		jitter        = 500 * time.Millisecond
		pairs         = 8
		lifetimeSlack = 300 * time.Millisecond
	)
	ended := make(chan endEvent, pairs)
	f := newFixture(t, fixtureOptions{
		handler: endingEcho(ended),
		route:   withLiveness(t, fmt.Sprintf("max_lifetime = %q\nmax_lifetime_jitter = %q\n", lifetime, jitter)),
	})
	readers := make([]*coderReader, pairs)
	for i := range pairs {
		c, _ := f.dial(t, fmt.Sprintf("/lifetime/%d", i), nil)
		readers[i] = readCoder(t, c)
	}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for i := range pairs {
		expectGoingAway(t, fmt.Sprintf("client %d", i), recv(t, readers[i].ended, "end of a client's connection"), "max lifetime")
		expectGoingAway(t, "upstream", recv(t, ended, "end of an upstream's connection"), "max lifetime")
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonMaxLifetime {
			t.Errorf("pair %d ended with %v, want max_lifetime", st.ID, st.Reason)
		}
		// The duration includes the close handshake, a loopback round
		// trip, and the loop may be late on a busy machine: that is the
		// slack beyond the tick.
		if st.Duration < lifetime-jitter || st.Duration > lifetime+engineTick+lifetimeSlack {
			t.Errorf("pair %d lasted %v, want %v to %v (+ %v slack)", st.ID, st.Duration, lifetime-jitter, lifetime+engineTick, lifetimeSlack)
		}
		lo, hi = min(lo, st.Duration), max(hi, st.Duration)
	}
	t.Logf("%d pairs lasted %v to %v", pairs, lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	if hi-lo < 20*time.Millisecond {
		t.Errorf("%d pairs opened together all lasted %v to %v: no jitter", pairs, lo, hi)
	}
}

// ---------------------------------------------------------------------
// Heartbeats and long frames

// sendSlowly sends msg, a multiple of 512 bytes, from sender to receiver as
// one binary frame: its header at once, then 512 payload bytes every 50 ms.
// Until the last chunk is sent the frame is still arriving, and sender
// must read no close meanwhile; why says why not. Then receiver must read
// the frame whole.
func sendSlowly(t *testing.T, sender, receiver *framePeer, msg []byte, why string) {
	t.Helper()
	frame := sender.frame(ws.OpBinary, true, msg)
	head := len(frame) - len(msg)
	if err := sender.sendRaw(frame[:head]); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := range len(msg) / 512 {
		<-tick.C // paces the bytes
		if fr, ok := closeIn(sender.record()); ok {
			t.Fatalf("%s read %v %v into its frame toward the %s (%d of %d bytes sent), while %s",
				sender.name, fr, time.Since(start).Round(time.Millisecond), receiver.name, i*512, len(msg), why)
		}
		if err := sender.sendRaw(frame[head+i*512 : head+(i+1)*512]); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	fr := receiver.next(t, "the long frame")
	if fr.op != ws.OpBinary || !bytes.Equal(fr.payload, msg) {
		t.Errorf("%s read %v, want the %d-byte binary frame", receiver.name, fr, len(msg))
	}
}

// TestHeartbeatBehindLongFrame has one peer send the other a data frame
// slowly, over several heartbeat bounds, while the receiving peer (which
// answers every ping) sends nothing. wsalive cannot put its ping inside
// that frame, so the ping waits for the frame's end; a ping that has not
// been sent cannot be missed, and the receiving side must not be declared
// dead.
func TestHeartbeatBehindLongFrame(t *testing.T) {
	const (
		interval = 200 * time.Millisecond
		timeout  = 200 * time.Millisecond
		chunks   = 30 // × 50 ms = 1.5 s, almost four detection bounds
	)
	for _, toward := range []string{"client", "upstream"} {
		t.Run("toward-"+toward, func(t *testing.T) {
			f, srv := rawFixture(t, true, heartbeatHCL(toward, interval, timeout, 1))
			cli, up := rawPair(t, f, srv, "/raw", true)
			sender, receiver := up, cli
			if toward == "upstream" {
				sender, receiver = cli, up
			}
			sendSlowly(t, sender, receiver, payload(websocket.MessageBinary, chunks*512, 9), "the "+toward+" was alive and reading")
			// The ping that waited comes right after the frame, and is
			// answered.
			receiver.waitFor(t, "a wsalive ping after the frame", peerFrame.heartbeat)
			if fr, ok := closeIn(sender.record()); ok {
				t.Errorf("%s read %v while the %s was alive and reading", sender.name, fr, toward)
			}
			f.noPairClosed(t)
			cli.closeNormally(t, f, relay.ReasonClientClosed)
		})
	}
}

// ---------------------------------------------------------------------
// Node's ws as a silent peer

// TestNodeSilentPeers runs Node's ws package as a client, then as an
// upstream, that sends nothing at all: its stock ping handling must be
// enough to keep the pair up through several heartbeat intervals, and the
// pair's heartbeat account must show the pongs and their round-trip time.
func TestNodeSilentPeers(t *testing.T) {
	requireNode(t)
	const (
		interval = 250 * time.Millisecond
		pings    = 3
	)
	hcl := bothHeartbeatsHCL(interval, 2*interval, 2)

	t.Run("client", func(t *testing.T) {
		ended := make(chan endEvent, 1)
		f := newFixture(t, fixtureOptions{handler: endingEcho(ended), route: withLiveness(t, hcl)})
		cli := startNode(t, "silent-client.js", "ws://"+f.proxyAddr+"/silent", fmt.Sprint(pings))
		cli.waitLine(t, "OPEN")
		nodePings(t, cli, pings)
		nodeClosed(t, cli, "CLOSED 1000 node-done pongs=0")
		if code, _ := closeError(recv(t, ended, "end of the upstream's connection").err); code != websocket.StatusNormalClosure {
			t.Errorf("upstream did not see the client's close 1000")
		}
		checkNodePair(t, f, "client", pings)
		select {
		case <-cli.exited:
		case <-time.After(waitBound):
			t.Fatalf("node client did not exit")
		}
		if cli.waitErr != nil {
			t.Errorf("node client: %v; stderr:\n%s", cli.waitErr, cli.stderr.String())
		}
	})

	t.Run("upstream", func(t *testing.T) {
		srv := startNode(t, "silent-server.js")
		port := strings.TrimPrefix(srv.waitLine(t, "LISTENING "), "LISTENING ")
		f := newFixture(t, fixtureOptions{
			routes: map[string]string{"/node": "127.0.0.1:" + port},
			route:  withLiveness(t, hcl),
		})
		c, _ := f.dial(t, "/node/silent", nil)
		rd := readCoder(t, c) // answers the client-side pings
		srv.waitLine(t, "CONNECTED")
		nodePings(t, srv, pings)
		if err := c.Close(websocket.StatusNormalClosure, "go-done"); err != nil {
			t.Errorf("close: %v", err)
		}
		nodeClosed(t, srv, "CLOSED 1000 go-done pongs=0")
		checkNodePair(t, f, "upstream", pings)
		select {
		case <-rd.ended:
		case <-time.After(waitBound):
			t.Errorf("client read did not end")
		}
	})
}

// nodePings checks that node printed pings lines "PING <size>", each for
// a ping whose payload is the size of wsalive's.
func nodePings(t *testing.T, node *nodeProc, pings int) {
	t.Helper()
	for i := range pings {
		line := node.waitLine(t, "PING ")
		if line != fmt.Sprintf("PING %d", liveness.PingPayloadSize) {
			t.Errorf("ping %d: node printed %q, want a %d-byte payload", i, line, liveness.PingPayloadSize)
		}
	}
}

// nodeClosed checks the line node printed when its connection closed:
// want says the close it saw and that it got no pong it did not ask for.
func nodeClosed(t *testing.T, node *nodeProc, want string) {
	t.Helper()
	if got := node.waitLine(t, "CLOSED "); got != want {
		t.Errorf("node printed %q, want %s (no pong it did not ask for)", got, want)
	}
}

// checkNodePair checks how a pair whose side was a silent node peer ended:
// closed by the client, node having been alive all along; and the account
// of that side: at least pings pings (the last pong may cross the close),
// no miss, an RTT.
func checkNodePair(t *testing.T, f *fixture, side string, pings int) {
	t.Helper()
	st := f.nextClosed(t)
	if st.Reason != relay.ReasonClientClosed {
		t.Errorf("pair ended with %v, want client_closed: the silent node %s was alive", st.Reason, side)
	}
	hb := st.ClientHeartbeat
	if side == "upstream" {
		hb = st.UpstreamHeartbeat
	}
	t.Logf("heartbeat: %+v", hb)
	if int(hb.PingsSent) < pings || int(hb.PongsReceived) < pings-1 || hb.PongsReceived == 0 {
		t.Errorf("heartbeat %+v, want %d pings sent and their pongs received", hb, pings)
	}
	if hb.Missed != 0 {
		t.Errorf("heartbeat %+v, want no miss", hb)
	}
	if hb.LastRTT <= 0 || hb.SmoothedRTT <= 0 {
		t.Errorf("heartbeat %+v, want a round-trip time", hb)
	}
}
