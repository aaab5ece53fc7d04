package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/relay"
)

// Frames each side sends in the same write as its handshake.
var (
	pipelinedFromClient = [][]byte{[]byte("client text behind the request"), []byte("client binary \x00\xff")}
	pipelinedFromUp     = [][]byte{[]byte("upstream text behind the 101"), []byte("upstream binary \x00\xff")}
)

// rawUpstream accepts one connection on ln and plays a hand-written
// upstream: it answers the upgrade with its 101 and two frames in one
// write, checks the client's pipelined frames arrive (still masked), then
// answers the client's close.
func rawUpstream(ln net.Listener) error {
	c, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	out := fmt.Appendf(nil, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		acceptFor(req.Header.Get("Sec-WebSocket-Key")))
	out = append(out, serverFrame(ws.OpText, pipelinedFromUp[0])...)
	out = append(out, serverFrame(ws.OpBinary, pipelinedFromUp[1])...)
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("write 101 and frames: %w", err)
	}
	if err := expectFrame(br, ws.OpText, true, pipelinedFromClient[0]); err != nil {
		return fmt.Errorf("client's first frame: %w", err)
	}
	if err := expectFrame(br, ws.OpBinary, true, pipelinedFromClient[1]); err != nil {
		return fmt.Errorf("client's second frame: %w", err)
	}
	closing := ws.NewCloseFrameBody(ws.StatusNormalClosure, "done")
	if err := expectFrame(br, ws.OpClose, true, closing); err != nil {
		return fmt.Errorf("client's close: %w", err)
	}
	if _, err := c.Write(serverFrame(ws.OpClose, closing)); err != nil {
		return fmt.Errorf("answer close: %w", err)
	}
	return nil
}

// TestPipelinedBytes has both peers send frames in the same write as their
// handshake: the bytes each handshake reader buffered beyond the HTTP head
// must be relayed first, not dropped.
func TestPipelinedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		result <- rawUpstream(ln)
	}()
	t.Cleanup(func() {
		_ = ln.Close() // ends a pending Accept; the rest is bounded by deadlines
		<-exited
	})
	f := newFixture(t, fixtureOptions{routes: map[string]string{"/raw": ln.Addr().String()}})

	var frames []byte
	frames = append(frames, clientFrame(ws.OpText, pipelinedFromClient[0])...)
	frames = append(frames, clientFrame(ws.OpBinary, pipelinedFromClient[1])...)
	rc := rawDial(t, f.proxyAddr, "/raw/pipelined", frames)
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", rc.resp.StatusCode)
	}
	if err := expectFrame(rc.br, ws.OpText, false, pipelinedFromUp[0]); err != nil {
		t.Errorf("upstream's first frame: %v", err)
	}
	if err := expectFrame(rc.br, ws.OpBinary, false, pipelinedFromUp[1]); err != nil {
		t.Errorf("upstream's second frame: %v", err)
	}

	closing := ws.NewCloseFrameBody(ws.StatusNormalClosure, "done")
	if _, err := rc.conn.Write(clientFrame(ws.OpClose, closing)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	if err := expectFrame(rc.br, ws.OpClose, false, closing); err != nil {
		t.Errorf("close answer: %v", err)
	}
	if err := recv(t, result, "raw upstream result"); err != nil {
		t.Errorf("raw upstream: %v", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
		t.Errorf("pair ended with %v, want client_closed", st.Reason)
	}
}
