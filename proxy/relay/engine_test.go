package relay

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/liveness"
)

// testPair is an attached pair with the two peers the test plays: cli
// talks to the engine's client side, ups is the upstream's end.
type testPair struct {
	cli, ups net.Conn
	closed   chan PairStats
	engine   *Engine
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

func newTestEngine(t *testing.T, opts Options) (*Engine, chan PairStats) {
	t.Helper()
	closed := make(chan PairStats, 100)
	opts.OnClose = func(s PairStats) { closed <- s }
	// WSALIVE_TEST_IO_URING=off runs these tests on the fallback path
	// (.ci/run does, as Docker's default seccomp profile forces it).
	opts.DisableIOUring = os.Getenv("WSALIVE_TEST_IO_URING") == "off"
	// WSALIVE_TEST_DRIVER=conn runs them on the net.Conn driver, for
	// plain TCP pairs too.
	opts.ForceConnDriver = opts.ForceConnDriver || os.Getenv("WSALIVE_TEST_DRIVER") == "conn"
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if opts.DisableIOUring && e.Stats().IOUringLoops != 0 {
		t.Fatal("io_uring is in use although the test turned it off")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return e, closed
}

func attachPair(t *testing.T, e *Engine, closed chan PairStats, h Handoff) *testPair {
	t.Helper()
	cli, proxyCli := tcpPair(t)
	proxyUps, ups := tcpPair(t)
	h.Client, h.Upstream = proxyCli, proxyUps
	if h.CloseTimeout == 0 {
		h.CloseTimeout = 2 * time.Second
	}
	if _, err := e.Attach(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); ups.Close() })
	return &testPair{cli: cli, ups: ups, closed: closed, engine: e}
}

func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrame(f)
	var b bytes.Buffer
	ws.WriteFrame(&b, f)
	return b.Bytes()
}

func serverFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var b bytes.Buffer
	ws.WriteFrame(&b, ws.NewFrame(op, fin, payload))
	return b.Bytes()
}

// readFrame reads one frame within a bound and unmasks it.
func readFrame(t *testing.T, c net.Conn) ws.Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(c)
	if err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	if f.Header.Masked {
		f = ws.UnmaskFrameInPlace(f)
	}
	return f
}

func readExactly(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func waitClosed(t *testing.T, ch chan PairStats) PairStats {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("pair did not close")
	}
	return PairStats{}
}

func expectClose(t *testing.T, c net.Conn, code ws.StatusCode, reason string) {
	t.Helper()
	f := readFrame(t, c)
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("got opcode %v, want close", f.Header.OpCode)
	}
	gotCode, gotReason := ws.ParseCloseFrameData(f.Payload)
	if gotCode != code || (reason != "" && gotReason != reason) {
		t.Fatalf("close %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
}

func TestRelayBytesVerbatim(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{})
	msg := clientFrame(ws.OpText, true, []byte("hello upstream"))
	tp.cli.Write(msg)
	if got := readExactly(t, tp.ups, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("upstream got %x, want %x (masked bytes unchanged)", got, msg)
	}
	back := serverFrame(ws.OpBinary, true, []byte{1, 2, 3})
	tp.ups.Write(back)
	if got := readExactly(t, tp.cli, len(back)); !bytes.Equal(got, back) {
		t.Fatalf("client got %x, want %x", got, back)
	}
}

func TestInitialBytesRelayedFirst(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	first := clientFrame(ws.OpText, true, []byte("pipelined"))
	down := serverFrame(ws.OpText, true, []byte("early"))
	tp := attachPair(t, e, closed, Handoff{ClientBuffered: first[:5], UpstreamBuffered: down})
	tp.cli.Write(first[5:])
	if got := readExactly(t, tp.ups, len(first)); !bytes.Equal(got, first) {
		t.Fatalf("upstream got %x, want %x", got, first)
	}
	if got := readExactly(t, tp.cli, len(down)); !bytes.Equal(got, down) {
		t.Fatalf("client got %x", got)
	}
}

func TestCloseTravelsBothWays(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{})
	tp.cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(4001, "bye now")))
	expectClose(t, tp.ups, 4001, "bye now")
	tp.ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(4001, "bye now")))
	expectClose(t, tp.cli, 4001, "bye now")
	st := waitClosed(t, tp.closed)
	if st.Reason != ReasonClientClosed {
		t.Fatalf("reason %v", st.Reason)
	}
	// Both sockets are closed by the engine.
	tp.cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tp.cli.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read after close: %v, want EOF", err)
	}
}

func TestUpstreamGone(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{})
	tp.ups.Close()
	expectClose(t, tp.cli, ws.StatusGoingAway, "upstream gone")
	tp.cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "")))
	st := waitClosed(t, tp.closed)
	if st.Reason != ReasonUpstreamGone {
		t.Fatalf("reason %v", st.Reason)
	}
}

func TestUnmaskedClientFrame(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{})
	tp.cli.Write(serverFrame(ws.OpText, true, []byte("not masked")))
	expectClose(t, tp.cli, ws.StatusProtocolError, "client frame not masked")
	expectClose(t, tp.ups, ws.StatusGoingAway, "client protocol error")
	st := waitClosed(t, tp.closed)
	if st.Reason != ReasonClientProtocolError {
		t.Fatalf("reason %v", st.Reason)
	}
}

func TestBackpressureBoundsMemory(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1, ReadBufferSize: 16 << 10})
	tp := attachPair(t, e, closed, Handoff{})
	// The upstream never reads; the client writes until its own socket
	// blocks. The engine must not buffer more than one read's worth.
	frame := clientFrame(ws.OpBinary, true, make([]byte, 1<<20))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tp.cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for {
			if _, err := tp.cli.Write(frame); err != nil {
				return
			}
		}
	}()
	<-done
	b := e.Stats().BufferedBytes
	t.Logf("engine holds %d bytes for the blocked pair", b)
	if b > 16<<10+carryRoom {
		t.Fatalf("engine holds %d bytes for a blocked pair, want <= %d", b, 16<<10+carryRoom)
	}
	if b == 0 {
		t.Fatal("engine holds nothing: the sink never blocked, so the test proved nothing")
	}
}

// TestPausedSourceIsAlive: when the upstream stops reading, wsalive stops
// reading the client (backpressure), so the client's pongs wait unread in
// the socket. The client must not be declared dead for that.
func TestPausedSourceIsAlive(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1, ReadBufferSize: 16 << 10})
	pol := NewPolicy(PolicyConfig{
		Client: SidePolicy{Heartbeat: liveness.Policy{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, MaxMissed: 1}},
	})
	tp := attachPair(t, e, closed, Handoff{Policy: pol})

	// Fill every buffer between the client and the upstream, which never
	// reads, until the client's writes block.
	frame := clientFrame(ws.OpBinary, true, make([]byte, 256<<10))
	tp.cli.SetWriteDeadline(time.Now().Add(time.Second))
	for {
		if _, err := tp.cli.Write(frame); err != nil {
			break
		}
	}
	select {
	case st := <-closed:
		t.Fatalf("pair ended with %v while the client was writing", st.Reason)
	default:
	}
	if e.Stats().BufferedBytes == 0 {
		t.Fatal("the sink never blocked")
	}
	// Now answer any ping from the client for several detection bounds;
	// a pong lands behind data wsalive cannot read yet. (Bytes waiting
	// from the client already prove it alive, so wsalive need not ping.)
	tp.cli.SetWriteDeadline(time.Time{})
	deadline := time.Now().Add(1500 * time.Millisecond)
	pings := 0
	for time.Now().Before(deadline) {
		tp.cli.SetReadDeadline(deadline)
		f, err := ws.ReadFrame(tp.cli)
		if err != nil {
			break
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			pings++
			// The write may block: the client's send buffer is full.
			go tp.cli.Write(clientFrame(ws.OpPong, true, f.Payload))
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			t.Fatalf("client was sent close %d %q while alive", code, reason)
		}
	}
	t.Logf("client was pinged %d times while its pongs and data waited unread", pings)
	select {
	case st := <-closed:
		t.Fatalf("pair ended with %v while both peers were alive", st.Reason)
	default:
	}
}
