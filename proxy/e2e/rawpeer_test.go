package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Raw peers speak HTTP and WebSocket framing by hand over a net.Conn, for
// the cases a WebSocket library hides: bytes pipelined behind a handshake,
// a connection dropped without a close frame, a non-101 answer read as
// plain HTTP. gobwas/ws is used only to encode and decode frame bytes.

// websocketGUID is the constant of RFC 6455 §1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptFor computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// newKey returns a fresh Sec-WebSocket-Key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// upgradeRequest is a minimal client upgrade request for path.
func upgradeRequest(host, path, key string) []byte {
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, key)
}

// rawClient is a hand-driven client connection.
type rawClient struct {
	conn *net.TCPConn
	br   *bufio.Reader
	resp *http.Response
}

// rawDial connects to the proxy and writes the upgrade request followed,
// in the same write, by extra (frames pipelined behind the head). It reads
// the response head; for a 101 it checks Sec-WebSocket-Accept.
func rawDial(t *testing.T, addr, path string, extra []byte) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		t.Fatal(err)
	}
	key := newKey()
	if _, err := c.Write(append(upgradeRequest(addr, path, key), extra...)); err != nil {
		t.Fatalf("write upgrade request: %v", err)
	}
	rc := &rawClient{conn: c.(*net.TCPConn), br: bufio.NewReader(c)}
	rc.resp, err = http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("read response head: %v", err)
	}
	if rc.resp.StatusCode == http.StatusSwitchingProtocols {
		if got, want := rc.resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(key); got != want {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
	}
	return rc
}

// clientFrame is a masked frame as a client sends it.
func clientFrame(op ws.OpCode, p []byte) []byte {
	f := ws.MaskFrame(ws.NewFrame(op, true, p))
	return ws.MustCompileFrame(f)
}

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(op ws.OpCode, p []byte) []byte {
	return ws.MustCompileFrame(ws.NewFrame(op, true, p))
}

// readFrame reads one frame and unmasks its payload if it was masked.
func readFrame(r io.Reader) (ws.Frame, error) {
	f, err := ws.ReadFrame(r)
	if err != nil {
		return f, err
	}
	if f.Header.Masked {
		ws.Cipher(f.Payload, f.Header.Mask, 0)
	}
	return f, nil
}

// expectFrame reads a frame and checks its opcode, mask bit and payload.
func expectFrame(r io.Reader, op ws.OpCode, masked bool, p []byte) error {
	f, err := readFrame(r)
	if err != nil {
		return fmt.Errorf("read frame: %w", err)
	}
	if f.Header.OpCode != op || f.Header.Masked != masked || !f.Header.Fin || string(f.Payload) != string(p) {
		return fmt.Errorf("frame %v fin=%v masked=%v %q, want %v fin=true masked=%v %q",
			f.Header.OpCode, f.Header.Fin, f.Header.Masked, f.Payload, op, masked, p)
	}
	return nil
}
