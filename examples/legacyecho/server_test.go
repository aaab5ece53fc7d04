package legacyecho

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// testTimeout bounds every wait in these tests; nothing here should come
// close to it on a healthy machine.
const testTimeout = 10 * time.Second

// fixture is a server on 127.0.0.1:0 whose Serve goroutine reports into
// served.
type fixture struct {
	srv    *Server
	url    string
	served chan error
}

// startServer starts a server and proves the pipe works with one round trip
// before the test body runs.
func startServer(t *testing.T, opts Options) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf(
			"listen: %v",
			err,
		)
	}
	f := &fixture{
		srv:    NewWithOptions(nil, opts),
		url:    "ws://" + ln.Addr().String() + "/",
		served: make(chan error, 1),
	}
	go func() { f.served <- f.srv.Serve(ln) }()
	t.Cleanup(func() { f.srv.Close() })

	c := f.dial(t, ws.Dialer{})
	writeMessage(t, c, ws.OpText, []byte("fixture"))
	op, p := readMessage(t, c)
	if op != ws.OpText || string(p) != "fixture" {
		t.Fatalf(
			"fixture round trip: got %v %q",
			op, p,
		)
	}
	c.Close()
	// The server forgets the probe when its read sees the close, on its
	// own goroutine: wait for that, so that tests counting connections
	// count only their own.
	for deadline := time.Now().Add(5 * time.Second); f.srv.Conns() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the fixture's probe connection is still counted: %d", f.srv.Conns())
		}
	}
	return f
}

// clientConn is the client end of a test connection. Reads go through r,
// which holds any bytes the dialer had buffered past the handshake.
type clientConn struct {
	net.Conn
	r  io.Reader
	hs ws.Handshake
}

func (c *clientConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (f *fixture) dial(t *testing.T, d ws.Dialer) *clientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, br, hs, err := d.Dial(ctx, f.url)
	if err != nil {
		t.Fatalf(
			"dial %s: %v",
			f.url, err,
		)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout))
	c := &clientConn{Conn: conn, r: conn, hs: hs}
	if br != nil {
		c.r = br
	}
	return c
}

func writeMessage(t *testing.T, c *clientConn, op ws.OpCode, p []byte) {
	t.Helper()
	if err := wsutil.WriteClientMessage(c.Conn, op, p); err != nil {
		t.Fatalf(
			"write %v message: %v",
			op, err,
		)
	}
}

func writeFrame(t *testing.T, w io.Writer, op ws.OpCode, fin bool, p []byte) {
	t.Helper()
	if err := ws.WriteFrame(w, ws.MaskFrame(ws.NewFrame(op, fin, p))); err != nil {
		t.Fatalf(
			"write %v frame: %v",
			op, err,
		)
	}
}

// readFrame reads one raw frame as the client sees it.
func readFrame(t *testing.T, c *clientConn) (ws.Header, []byte) {
	t.Helper()
	h, err := ws.ReadHeader(c)
	if err != nil {
		t.Fatalf(
			"read header: %v",
			err,
		)
	}
	if h.Masked {
		t.Fatalf(
			"server frame is masked: %+v",
			h,
		)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf(
			"read %d byte payload: %v",
			h.Length, err,
		)
	}
	return h, p
}

// readMessage reads one whole data message; it fails on control frames.
func readMessage(t *testing.T, c *clientConn) (ws.OpCode, []byte) {
	t.Helper()
	h, p := readFrame(t, c)
	if !h.Fin || h.OpCode.IsControl() {
		t.Fatalf(
			"want one final data frame, got %+v",
			h,
		)
	}
	return h.OpCode, p
}

func closeCode(t *testing.T, p []byte) ws.StatusCode {
	t.Helper()
	if len(p) < 2 {
		t.Fatalf(
			"close frame without status code: %q",
			p,
		)
	}
	return ws.StatusCode(binary.BigEndian.Uint16(p))
}

// expectEOF checks that the server closed the TCP connection.
func expectEOF(t *testing.T, c *clientConn) {
	t.Helper()
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 0 {
		t.Fatalf(
			"want EOF, got %d more bytes and %v",
			n, err,
		)
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestEcho(t *testing.T) {
	f := startServer(t, Options{})
	cases := []struct {
		name string
		op   ws.OpCode
		p    []byte
	}{
		{
			name: "text empty",
			op:   ws.OpText,
			p:    []byte{},
		},
		{
			name: "text short",
			op:   ws.OpText,
			p:    []byte("hello, legacy world"),
		},
		{
			name: "binary empty",
			op:   ws.OpBinary,
			p:    []byte{},
		},
		{
			name: "binary 125 bytes",
			op:   ws.OpBinary,
			p:    randomBytes(125),
		},
		{
			name: "binary 64 KiB",
			op:   ws.OpBinary,
			p:    randomBytes(64 << 10),
		},
		{
			name: "binary 1 MiB",
			op:   ws.OpBinary,
			p:    randomBytes(1 << 20),
		},
		{
			name: "binary 16 MiB",
			op:   ws.OpBinary,
			p:    randomBytes(16 << 20),
		},
	}
	c := f.dial(t, ws.Dialer{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The write runs beside the read: a 16 MiB message does not fit
			// in the socket buffers, and the server echoes as it goes.
			werr := make(chan error, 1)
			go func() { werr <- wsutil.WriteClientMessage(c.Conn, tc.op, tc.p) }()
			op, p := readMessage(t, c)
			if err := <-werr; err != nil {
				t.Fatalf(
					"write: %v",
					err,
				)
			}
			if op != tc.op {
				t.Errorf(
					"opcode: got %v, want %v",
					op, tc.op,
				)
			}
			if !bytes.Equal(p, tc.p) {
				t.Errorf(
					"payload differs: got %d bytes, want %d",
					len(p), len(tc.p),
				)
			}
		})
	}
}

func TestFragmentedMessageWithPingBetween(t *testing.T) {
	f := startServer(t, Options{})
	c := f.dial(t, ws.Dialer{})

	// One message in three fragments with a ping between the first two,
	// written in one go as a client may legally do (RFC 6455 §5.4).
	var b bytes.Buffer
	writeFrame(t, &b, ws.OpBinary, false, []byte("abc"))
	writeFrame(t, &b, ws.OpPing, true, []byte("mid"))
	writeFrame(t, &b, ws.OpContinuation, false, []byte("def"))
	writeFrame(t, &b, ws.OpContinuation, true, []byte("ghi"))
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatalf(
			"write: %v",
			err,
		)
	}

	h, p := readFrame(t, c)
	if h.OpCode != ws.OpPong || string(p) != "mid" {
		t.Fatalf(
			"want pong %q first, got %v %q",
			"mid", h.OpCode, p,
		)
	}
	op, p := readMessage(t, c)
	if op != ws.OpBinary || string(p) != "abcdefghi" {
		t.Fatalf(
			"want reassembled binary %q, got %v %q",
			"abcdefghi", op, p,
		)
	}
}

func TestPingAnsweredWithPong(t *testing.T) {
	f := startServer(t, Options{})
	c := f.dial(t, ws.Dialer{})
	cases := []struct {
		name    string
		payload []byte
	}{
		{
			name:    "empty",
			payload: nil,
		},
		{
			name:    "with payload",
			payload: []byte("are you there?"),
		},
		{
			name:    "125 bytes",
			payload: randomBytes(125),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFrame(t, c, ws.OpPing, true, tc.payload)
			h, p := readFrame(t, c)
			if h.OpCode != ws.OpPong || !bytes.Equal(p, tc.payload) {
				t.Fatalf(
					"want pong with the ping's payload, got %v %q",
					h.OpCode, p,
				)
			}
		})
	}
	// The connection still echoes afterwards.
	writeMessage(t, c, ws.OpText, []byte("after"))
	if _, p := readMessage(t, c); string(p) != "after" {
		t.Fatalf(
			"echo after pings: got %q",
			p,
		)
	}
}

func TestCloseEchoed(t *testing.T) {
	f := startServer(t, Options{})
	c := f.dial(t, ws.Dialer{})

	writeFrame(t, c, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	h, p := readFrame(t, c)
	if h.OpCode != ws.OpClose {
		t.Fatalf(
			"want close, got %v",
			h.OpCode,
		)
	}
	if code := closeCode(t, p); code != ws.StatusNormalClosure {
		t.Fatalf(
			"close code: got %d, want %d",
			code, ws.StatusNormalClosure,
		)
	}
	// RFC 6455 §7.1.1: after the close handshake the server closes TCP first.
	expectEOF(t, c)
}

func TestProtocolViolationsClosedWithCode(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		frame []byte
		want  ws.StatusCode
	}{
		{
			name:  "unmasked client frame",
			frame: ws.MustCompileFrame(ws.NewTextFrame([]byte("no mask"))),
			want:  ws.StatusProtocolError,
		},
		{
			name:  "reserved opcode",
			frame: ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpCode(0x3), true, []byte("x")))),
			want:  ws.StatusProtocolError,
		},
		{
			name: "message over the limit",
			opts: Options{
				MaxMessageSize: 1024,
			},
			frame: ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 2048)))),
			want:  ws.StatusMessageTooBig,
		},
		{
			name: "invalid UTF-8 when checked",
			opts: Options{
				CheckUTF8: true,
			},
			frame: ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte{0xff, 0xfe}))),
			want:  ws.StatusInvalidFramePayloadData,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startServer(t, tc.opts)
			c := f.dial(t, ws.Dialer{})
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatalf(
					"write: %v",
					err,
				)
			}
			h, p := readFrame(t, c)
			if h.OpCode != ws.OpClose {
				t.Fatalf(
					"want close, got %v",
					h.OpCode,
				)
			}
			if code := closeCode(t, p); code != tc.want {
				t.Fatalf(
					"close code: got %d, want %d",
					code, tc.want,
				)
			}
			expectEOF(t, c)
		})
	}
}

func TestInvalidUTF8EchoedWhenNotChecked(t *testing.T) {
	f := startServer(t, Options{})
	c := f.dial(t, ws.Dialer{})
	bad := []byte{'a', 0xff, 'b'}
	writeMessage(t, c, ws.OpText, bad)
	if op, p := readMessage(t, c); op != ws.OpText || !bytes.Equal(p, bad) {
		t.Fatalf(
			"got %v %q, want the same bytes back as text",
			op, p,
		)
	}
}

func TestSubprotocol(t *testing.T) {
	f := startServer(t, Options{Subprotocol: "legacy.v1"})
	cases := []struct {
		name    string
		offered []string
		want    string
	}{
		{
			name:    "offered among others",
			offered: []string{"other", "legacy.v1"},
			want:    "legacy.v1",
		},
		{
			name:    "not offered",
			offered: []string{"other"},
			want:    "",
		},
		{
			name:    "none offered",
			offered: nil,
			want:    "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t, ws.Dialer{Protocols: tc.offered})
			if c.hs.Protocol != tc.want {
				t.Fatalf(
					"subprotocol: got %q, want %q",
					c.hs.Protocol, tc.want,
				)
			}
		})
	}
}

func TestCloseEndsEverything(t *testing.T) {
	f := startServer(t, Options{})

	const n = 8
	clients := make([]*clientConn, n)
	for i := range clients {
		clients[i] = f.dial(t, ws.Dialer{})
	}
	// A dial returns after the server wrote its 101, and the server counts
	// a connection from accept on, so all n are counted by now.
	if got := f.srv.Conns(); got != n {
		t.Fatalf(
			"Conns before Close: got %d, want %d",
			got, n,
		)
	}
	// One connection is mid-message, to show a reader blocked inside a
	// payload is released too.
	writeFrame(t, clients[0], ws.OpBinary, false, []byte("partial"))

	if err := f.srv.Close(); err != nil {
		t.Fatalf(
			"Close: %v",
			err,
		)
	}
	select {
	case err := <-f.served:
		if err != nil {
			t.Fatalf(
				"Serve returned %v after Close, want nil",
				err,
			)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after Close")
	}
	if got := f.srv.Conns(); got != 0 {
		t.Fatalf(
			"Conns after Close: got %d, want 0",
			got,
		)
	}
	for i, c := range clients {
		if _, err := io.Copy(io.Discard, c); err != nil && !isConnReset(err) {
			t.Errorf(
				"client %d: want EOF or reset after server Close, got %v",
				i, err,
			)
		}
	}
	waitNoServerGoroutines(t)

	// Close is idempotent, and Serve after Close returns at once.
	if err := f.srv.Close(); err != nil {
		t.Fatalf(
			"second Close: %v",
			err,
		)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Serve(ln); err != nil {
		t.Fatalf(
			"Serve after Close: %v",
			err,
		)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf(
			"Serve after Close left the listener open: %v",
			err,
		)
	}
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// waitNoServerGoroutines waits, with a bound, until no goroutine runs server
// code. Close has already waited for them; this only covers the instant
// between a goroutine's deferred Done and its exit.
func waitNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	buf := make([]byte, 1<<20)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "legacyecho.(*Server)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf(
				"server goroutines left after Close:\n%s",
				stacks,
			)
		}
		runtime.Gosched()
	}
}
