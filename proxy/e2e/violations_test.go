package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/relay"
)

// expectClose reads frames until a close frame and checks its code; data
// frames before it are allowed (they were relayed before the violation).
func expectClose(r *bufio.Reader, masked bool, code ws.StatusCode) error {
	for {
		f, err := readFrame(r)
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		if f.Header.Masked != masked {
			return fmt.Errorf("close frame masked=%v, want %v", f.Header.Masked, masked)
		}
		got, reason := ws.ParseCloseFrameData(f.Payload)
		if got != code {
			return fmt.Errorf("close %d %q, want %d", got, reason, code)
		}
		return nil
	}
}

// TestFragmentsWithControlFrames sends a message in three fragments with a
// ping between them, as RFC 6455 §5.4 allows: the upstream must get the
// whole message and answer the ping, and the echo must come back whole.
func TestFragmentsWithControlFrames(t *testing.T) {
	upSawPing := make(chan string, 1)
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		echoWith(w, r, &websocket.AcceptOptions{
			OnPingReceived: func(_ context.Context, p []byte) bool {
				upSawPing <- string(p)
				return true
			},
		})
	}})
	rc := rawDial(t, f.proxyAddr, "/fragments", nil)
	if rc.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", rc.resp.StatusCode)
	}
	var out []byte
	out = append(out, ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpText, false, []byte("frag-one "))))...)
	out = append(out, clientFrame(ws.OpPing, []byte("between fragments"))...)
	out = append(out, ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpContinuation, false, []byte("frag-two "))))...)
	out = append(out, ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte("frag-three"))))...)
	if _, err := rc.conn.Write(out); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := expectFrame(rc.br, ws.OpPong, false, []byte("between fragments")); err != nil {
		t.Errorf("pong: %v", err)
	}
	if err := expectFrame(rc.br, ws.OpText, false, []byte("frag-one frag-two frag-three")); err != nil {
		t.Errorf("echo: %v", err)
	}
	if got := recv(t, upSawPing, "ping at the upstream"); got != "between fragments" {
		t.Errorf("upstream saw ping %q", got)
	}
	closing := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
	if _, err := rc.conn.Write(clientFrame(ws.OpClose, closing)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	if err := expectClose(rc.br, false, ws.StatusNormalClosure); err != nil {
		t.Errorf("close answer: %v", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
		t.Errorf("pair ended with %v, want client_closed", st.Reason)
	}
}

// TestClientProtocolViolations has a hand-driven client break RFC 6455:
// it gets a close with the right code, the upstream gets 1001, and the pair
// ends with the matching reason.
func TestClientProtocolViolations(t *testing.T) {
	ended := make(chan error, 1)
	f := newFixture(t, fixtureOptions{handler: watchEcho(ended, nil)})

	// tooBig is the header of a frame one byte over the default
	// max_frame_size (16 MiB); its payload never needs to be sent.
	tooBig := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(tooBig[2:10], 16<<20+1)

	cases := []struct {
		name   string
		frame  []byte
		code   ws.StatusCode
		reason relay.Reason
	}{
		{"unmasked-frame", serverFrame(ws.OpText, []byte("not masked")), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"control-frame-over-125", clientFrame(ws.OpPing, make([]byte, 126)), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"fragmented-control-frame", ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpPing, false, []byte("x")))), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"reserved-bits", func() []byte {
			f := ws.MaskFrame(ws.NewTextFrame([]byte("rsv1 without deflate")))
			f.Header.Rsv = ws.Rsv(true, false, false)
			return ws.MustCompileFrame(f)
		}(), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"reserved-opcode", clientFrame(ws.OpCode(0x3), []byte("x")), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"continuation-without-message", clientFrame(ws.OpContinuation, []byte("x")), ws.StatusProtocolError, relay.ReasonClientProtocolError},
		{"frame-over-max-frame-size", tooBig, ws.StatusMessageTooBig, relay.ReasonClientFrameTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, f.proxyAddr, "/violate", nil)
			if rc.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", rc.resp.StatusCode)
			}
			// A good frame first: it is relayed, and proves the pair works.
			if _, err := rc.conn.Write(clientFrame(ws.OpText, []byte("good"))); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := expectFrame(rc.br, ws.OpText, false, []byte("good")); err != nil {
				t.Fatalf("echo: %v", err)
			}
			if _, err := rc.conn.Write(tc.frame); err != nil {
				t.Fatalf("write bad frame: %v", err)
			}
			if err := expectClose(rc.br, false, tc.code); err != nil {
				t.Errorf("client: %v", err)
			}
			// Answer the close, as a client should; the engine then ends
			// the pair without waiting for its close timeout.
			_, _ = rc.conn.Write(clientFrame(ws.OpClose, ws.NewCloseFrameBody(tc.code, "")))
			err := recv(t, ended, "end of the upstream's connection")
			if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
				t.Errorf("upstream saw %v, want close 1001", err)
			}
			if st := f.nextClosed(t); st.Reason != tc.reason {
				t.Errorf("pair ended with %v, want %v", st.Reason, tc.reason)
			}
		})
	}
}

// startRawUpstream serves hand-driven upstream connections on 127.0.0.1:
// each one is answered 101 and handed to handle; handle's result goes to
// the returned channel. Cleanup closes the listener and waits.
func startRawUpstream(t *testing.T, handle func(c net.Conn, br *bufio.Reader) error) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 16)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			results <- func() error {
				defer c.Close()
				if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
					return err
				}
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return fmt.Errorf("read request: %w", err)
				}
				if _, err := fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
					acceptFor(req.Header.Get("Sec-WebSocket-Key"))); err != nil {
					return err
				}
				return handle(c, br)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-exited
	})
	return ln.Addr().String(), results
}

// TestUpstreamProtocolViolation has a hand-driven upstream send a masked
// frame: it gets 1002, the client gets 1001, and the pair ends with
// upstream_protocol_error.
func TestUpstreamProtocolViolation(t *testing.T) {
	addr, results := startRawUpstream(t, func(c net.Conn, br *bufio.Reader) error {
		if _, err := c.Write(clientFrame(ws.OpText, []byte("masked from a server"))); err != nil {
			return err
		}
		if err := expectClose(br, true, ws.StatusProtocolError); err != nil {
			return err
		}
		_, err := c.Write(serverFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusProtocolError, "")))
		return err
	})
	f := newFixture(t, fixtureOptions{routes: map[string]string{"/raw": addr}})
	c, _ := f.dial(t, "/raw/violate", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	_, _, err := c.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Errorf("client saw %v, want close 1001", err)
	}
	if err := recv(t, results, "raw upstream result"); err != nil {
		t.Errorf("raw upstream: %v", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamProtocolError {
		t.Errorf("pair ended with %v, want upstream_protocol_error", st.Reason)
	}
}
