package relay

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// The close log: every way a pair ends records, per side, the close frame
// that side received and the one it sent, as they crossed the wire.

// wireClose returns the close frame among the bytes sent toward s (none
// for no close), reading whole frames only: a frame cut off by its
// source's end is not on the wire whole. It fails the test on a second
// close.
func (m *machine) wireClose(s side) CloseFrame {
	m.t.Helper()
	var got CloseFrame
	r := bytes.NewReader(m.sent[s])
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			break
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if h.OpCode != ws.OpClose {
			continue
		}
		if !got.None() {
			m.t.Fatalf("toward %v: a second close frame", s)
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		got = CloseFrame{Code: 1005}
		if len(payload) >= 2 {
			code, reason := ws.ParseCloseFrameData(payload)
			got = CloseFrame{Code: uint16(code), Reason: reason}
		}
	}
	return got
}

// sendClose feeds the pair a close frame from side s with body (nil: a
// close frame without a body).
func (m *machine) sendClose(s side, body []byte) {
	if s == client {
		m.read(client, clientFrame(ws.OpClose, true, body))
	} else {
		m.read(upstream, serverFrame(ws.OpClose, true, body))
	}
}

func TestPairCloseLog(t *testing.T) {
	frame := serverFrame(ws.OpBinary, true, make([]byte, 100))
	long := strings.Repeat("x", 200)
	restart := &drainOrder{code: 1012, text: "restart", reason: ReasonDrain}
	cases := []struct {
		name   string
		h      Handoff
		drive  func(m *machine)
		reason Reason
		// What each side received and sent.
		client, upstream CloseHandshake
	}{
		{
			name: "client closes",
			drive: func(m *machine) {
				m.sendClose(client, closeBody(4001, "done"))
				m.sendClose(upstream, closeBody(1000, "bye"))
			},
			reason:   ReasonClientClosed,
			client:   CloseHandshake{Received: CloseFrame{1000, "bye"}, Sent: CloseFrame{4001, "done"}},
			upstream: CloseHandshake{Received: CloseFrame{4001, "done"}, Sent: CloseFrame{1000, "bye"}},
		},
		{
			name: "upstream closes",
			drive: func(m *machine) {
				m.sendClose(upstream, closeBody(1001, "restarting"))
				m.sendClose(client, closeBody(1001, ""))
			},
			reason:   ReasonUpstreamClosed,
			client:   CloseHandshake{Received: CloseFrame{1001, "restarting"}, Sent: CloseFrame{1001, ""}},
			upstream: CloseHandshake{Received: CloseFrame{1001, ""}, Sent: CloseFrame{1001, "restarting"}},
		},
		{
			name: "close frames without a body",
			drive: func(m *machine) {
				m.sendClose(client, nil)
				m.sendClose(upstream, nil)
			},
			reason:   ReasonClientClosed,
			client:   CloseHandshake{Received: CloseFrame{1005, ""}, Sent: CloseFrame{1005, ""}},
			upstream: CloseHandshake{Received: CloseFrame{1005, ""}, Sent: CloseFrame{1005, ""}},
		},
		{
			name: "upstream vanishes before answering",
			drive: func(m *machine) {
				m.sendClose(client, closeBody(1000, "bye"))
				m.event().readEnded(upstream, &m.fx)
				m.apply()
			},
			reason: ReasonClientClosed,
			// wsalive answers in the upstream's place, echoing the code.
			client:   CloseHandshake{Received: CloseFrame{1000, ""}, Sent: CloseFrame{1000, "bye"}},
			upstream: CloseHandshake{Received: CloseFrame{1000, "bye"}},
		},
		{
			name: "client gone",
			drive: func(m *machine) {
				m.event().readEnded(client, &m.fx)
				m.apply()
				m.sendClose(upstream, closeBody(1001, ""))
			},
			reason:   ReasonClientGone,
			upstream: CloseHandshake{Received: CloseFrame{1001, "client gone"}, Sent: CloseFrame{1001, ""}},
		},
		{
			name: "upstream write failed",
			drive: func(m *machine) {
				m.event().writeFailed(upstream, &m.fx)
				m.apply()
				m.sendClose(client, closeBody(1001, ""))
			},
			reason: ReasonUpstreamGone,
			client: CloseHandshake{Received: CloseFrame{1001, "upstream gone"}, Sent: CloseFrame{1001, ""}},
		},
		{
			name: "client heartbeat timeout",
			h:    Handoff{Policy: heartbeatPolicy(client)},
			drive: func(m *machine) {
				for range 3 { // two pings, then dead
					m.advance()
				}
				m.sendClose(upstream, closeBody(1001, ""))
			},
			reason:   ReasonClientHeartbeatTimeout,
			upstream: CloseHandshake{Received: CloseFrame{1001, "client heartbeat timeout"}, Sent: CloseFrame{1001, ""}},
		},
		{
			name: "upstream heartbeat timeout, client silent",
			h:    Handoff{Policy: heartbeatPolicy(upstream)},
			drive: func(m *machine) {
				for range 3 {
					m.advance()
				}
			},
			reason: ReasonUpstreamHeartbeatTimeout,
			client: CloseHandshake{Received: CloseFrame{1001, "upstream heartbeat timeout"}},
		},
		{
			name: "client protocol error",
			drive: func(m *machine) {
				m.read(client, serverFrame(ws.OpText, true, []byte("unmasked")))
				m.sendClose(upstream, closeBody(1001, ""))
				// The offender's input is discarded: its close is not
				// taken as sent.
				m.sendClose(client, closeBody(1002, ""))
			},
			reason:   ReasonClientProtocolError,
			client:   CloseHandshake{Received: CloseFrame{1002, "client frame not masked"}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "client protocol error"}, Sent: CloseFrame{1001, ""}},
		},
		{
			name: "upstream protocol error",
			drive: func(m *machine) {
				m.read(upstream, clientFrame(ws.OpText, true, []byte("masked")))
				// The client's answer is not forwarded: the upstream
				// already has wsalive's 1002.
				m.sendClose(client, closeBody(1001, "ok"))
			},
			reason:   ReasonUpstreamProtocolError,
			client:   CloseHandshake{Received: CloseFrame{1001, "upstream protocol error"}, Sent: CloseFrame{1001, "ok"}},
			upstream: CloseHandshake{Received: CloseFrame{1002, "server frame masked"}},
		},
		{
			name: "client frame too big",
			h:    Handoff{MaxFrameSize: 100},
			drive: func(m *machine) {
				m.read(client, clientFrame(ws.OpBinary, true, make([]byte, 101)))
			},
			reason:   ReasonClientFrameTooBig,
			client:   CloseHandshake{Received: CloseFrame{1009, "frame too big"}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "client protocol error"}},
		},
		{
			name: "upstream frame too big",
			h:    Handoff{MaxFrameSize: 100},
			drive: func(m *machine) {
				m.read(upstream, serverFrame(ws.OpBinary, true, make([]byte, 101)))
				m.sendClose(client, closeBody(1001, ""))
			},
			reason:   ReasonUpstreamFrameTooBig,
			client:   CloseHandshake{Received: CloseFrame{1001, "upstream protocol error"}, Sent: CloseFrame{1001, ""}},
			upstream: CloseHandshake{Received: CloseFrame{1009, "frame too big"}},
		},
		{
			name: "drain",
			drive: func(m *machine) {
				m.event().drainBy(restart, &m.fx)
				m.apply()
				m.sendClose(client, closeBody(1012, ""))
				m.sendClose(upstream, closeBody(1001, ""))
			},
			reason:   ReasonDrain,
			client:   CloseHandshake{Received: CloseFrame{1012, "restart"}, Sent: CloseFrame{1012, ""}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "going away"}, Sent: CloseFrame{1001, ""}},
		},
		{
			name: "drain reason cut to fit a control frame",
			drive: func(m *machine) {
				m.event().drainBy(&drainOrder{code: 1012, text: long, reason: ReasonDrain}, &m.fx)
				m.apply()
			},
			reason:   ReasonDrain,
			client:   CloseHandshake{Received: CloseFrame{1012, long[:maxCloseReason]}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "going away"}},
		},
		{
			name: "idle timeout",
			h:    Handoff{Policy: NewPolicy(PolicyConfig{IdleTimeout: 60e9})},
			drive: func(m *machine) {
				m.advance()
			},
			reason:   ReasonIdleTimeout,
			client:   CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
		},
		{
			name: "close cut off by its frame's source",
			drive: func(m *machine) {
				m.read(upstream, frame[:20])
				m.event().closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", &m.fx)
				m.apply()
				// The close toward the client waits behind a frame the
				// upstream will never finish: it never goes.
				m.event().readEnded(upstream, &m.fx)
				m.apply()
			},
			reason:   ReasonIdleTimeout,
			upstream: CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
		},
		{
			name: "close still waiting at the deadline",
			drive: func(m *machine) {
				m.read(upstream, frame[:20])
				m.event().closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", &m.fx)
				m.apply()
				m.advance() // the rest of the frame never comes
			},
			reason:   ReasonIdleTimeout,
			upstream: CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
		},
		{
			name: "close goes once the frame ends",
			drive: func(m *machine) {
				m.read(upstream, frame[:20])
				m.event().closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", &m.fx)
				m.apply()
				m.read(upstream, frame[20:])
			},
			reason:   ReasonIdleTimeout,
			client:   CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
			upstream: CloseHandshake{Received: CloseFrame{1001, "idle timeout"}},
		},
		{
			name: "cut",
			drive: func(m *machine) {
				m.event().cut(ReasonShutdown, &m.fx)
				m.apply()
			},
			reason: ReasonShutdown,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, c.h)
			c.drive(m)
			if !m.ended {
				m.advance() // the close handshake's deadline
			}
			m.wantEnded(c.reason)
			st := m.p.stats(m.now, [2]string{})
			for _, s := range []side{client, upstream} {
				got, want := st.ClientClose, c.client
				if s == upstream {
					got, want = st.UpstreamClose, c.upstream
				}
				if got != want {
					t.Errorf("%v: got %+v, want %+v", s, got, want)
				}
				if wire := m.wireClose(s); got.Received != wire {
					t.Errorf("%v received %+v on the wire, the log says %+v", s, wire, got.Received)
				}
			}
		})
	}
}

// TestPairOpenHasNoCloseLog: the close log costs an open pair a nil
// pointer, whatever crosses short of a close frame.
func TestPairOpenHasNoCloseLog(t *testing.T) {
	m := newMachine(t, Handoff{Policy: NewPolicy(PolicyConfig{Client: SidePolicy{AnswerPings: true}})})
	m.read(client, clientFrame(ws.OpText, true, []byte("hello")))
	m.read(upstream, serverFrame(ws.OpBinary, true, make([]byte, 300)))
	m.read(client, clientFrame(ws.OpPing, true, []byte("p")))
	m.read(upstream, serverFrame(ws.OpPong, true, []byte("q")))
	if m.p.x != nil {
		t.Fatal("an open pair holds a close log")
	}
	st := m.p.stats(m.now, [2]string{})
	if st.ClientClose != (CloseHandshake{}) || st.UpstreamClose != (CloseHandshake{}) {
		t.Fatalf("close frames reported for an open pair: %+v %+v", st.ClientClose, st.UpstreamClose)
	}
}
