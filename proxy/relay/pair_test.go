package relay

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/metrics"
)

// The pair state machine without sockets: events in, effects out, on a
// fake clock (machine.now). Each test plays a driver that carries out the
// effects by hand.

// machine drives one pair the way a driver would.
type machine struct {
	t   *testing.T
	p   *pair
	fx  effects
	now int64
	// armed is the timer the pair asked for last, 0 for none.
	armed int64
	// sent holds everything sent toward each side, in order.
	sent [2][]byte
	// busy is what the fake driver still holds toward each side.
	busy  [2]bool
	ended bool
	// detached counts the client connections a session let go.
	detached int
}

func newMachine(t *testing.T, h Handoff) *machine {
	t.Helper()
	m := &machine{t: t, now: int64(time.Hour)}
	m.fx.rng = rand.NewChaCha8([32]byte{7})
	m.p = newPair(1, &h, &routeInfo{name: "test", metrics: metrics.Nop{}.Route("test")})
	m.event().start(&m.fx)
	m.apply()
	m.event().timerFired(&m.fx)
	m.apply()
	return m
}

func (m *machine) event() *pair {
	m.fx.now = m.now
	return m.p
}

// apply does what a driver does with the effects: it keeps what is sent,
// the timer asked for, and whether the pair ended.
func (m *machine) apply() {
	fx := &m.fx
	if fx.detach {
		m.detached++
	}
	for to := client; to <= upstream; to++ {
		if fx.gone[to] {
			m.busy[to] = false
		}
		if b := m.p.outgoing(to, fx); b != nil {
			for _, seg := range b.segs {
				m.sent[to] = append(m.sent[to], seg...)
			}
		}
	}
	fx.ctl = fx.ctl[:0]
	if fx.arm != 0 {
		m.armed = fx.arm
	}
	if !fx.done && m.p.closing {
		m.p.settle(m.busy, fx)
	}
	if fx.done {
		if m.ended {
			m.t.Fatal("the pair ended twice")
		}
		m.ended = true
		m.armed = 0
	}
	fx.reset()
}

// read hands the pair bytes read from side s.
func (m *machine) read(s side, b []byte) {
	slot := make([]byte, carryRoom+len(b))
	copy(slot[carryRoom:], b)
	m.event().read(s, slot, len(b), &m.fx)
	m.apply()
}

// advance moves the clock to the armed timer and fires it.
func (m *machine) advance() {
	m.t.Helper()
	if m.armed == 0 {
		m.t.Fatal("no timer armed")
	}
	m.now = max(m.now, m.armed)
	m.event().timerFired(&m.fx)
	m.apply()
}

// frames parses what was sent toward s and forgets it.
func (m *machine) frames(s side) []ws.Frame {
	m.t.Helper()
	var out []ws.Frame
	r := bytes.NewReader(m.sent[s])
	for r.Len() > 0 {
		f, err := ws.ReadFrame(r)
		if err != nil {
			m.t.Fatalf("toward %v: %v", s, err)
		}
		if f.Header.Masked != (s == upstream) {
			m.t.Fatalf("frame toward %v masked=%v", s, f.Header.Masked)
		}
		if f.Header.Masked {
			f = ws.UnmaskFrameInPlace(f)
		}
		out = append(out, f)
	}
	m.sent[s] = nil
	return out
}

// wantClose checks that the only frame sent toward s is a close with
// code and reason.
func (m *machine) wantClose(s side, code ws.StatusCode, reason string) {
	m.t.Helper()
	fs := m.frames(s)
	if len(fs) != 1 || fs[0].Header.OpCode != ws.OpClose {
		m.t.Fatalf("toward %v: %d frames %v, want one close", s, len(fs), ops(fs))
	}
	c, r := ws.ParseCloseFrameData(fs[0].Payload)
	if c != code || r != reason {
		m.t.Fatalf("toward %v: close %d %q, want %d %q", s, c, r, code, reason)
	}
}

func (m *machine) wantEnded(r Reason) {
	m.t.Helper()
	if !m.ended || !m.p.done {
		m.t.Fatalf("pair still open (reason so far %v), want ended with %v", m.p.reason, r)
	}
	if m.p.reason != r {
		m.t.Fatalf("ended with %v, want %v", m.p.reason, r)
	}
}

func ops(fs []ws.Frame) []ws.OpCode {
	var o []ws.OpCode
	for _, f := range fs {
		o = append(o, f.Header.OpCode)
	}
	return o
}

func closeBody(code ws.StatusCode, reason string) []byte {
	return ws.NewCloseFrameBody(code, reason)
}

func TestPairRelaysFramesVerbatim(t *testing.T) {
	m := newMachine(t, Handoff{})
	in := append(clientFrame(ws.OpText, true, []byte("hello")), clientFrame(ws.OpBinary, true, make([]byte, 300))...)
	m.read(client, in[:7]) // a header and a bit, then the rest
	m.read(client, in[7:])
	if !bytes.Equal(m.sent[upstream], in) {
		t.Fatal("the upstream did not get the client's bytes as they came")
	}
	if st := m.p.stats(m.now, [2]string{}); st.FramesFromClient != 2 || st.BytesToUpstream != uint64(len(in)) {
		t.Fatalf("stats %+v", st)
	}
}

// TestPairCloseHandshake: every orderly way the close handshake runs.
func TestPairCloseHandshake(t *testing.T) {
	for _, starter := range []side{client, upstream} {
		t.Run(starter.String()+" starts", func(t *testing.T) {
			m := newMachine(t, Handoff{})
			other := starter.other()
			frame := func(s side, op ws.OpCode, p []byte) []byte {
				if s == client {
					return clientFrame(op, true, p)
				}
				return serverFrame(op, true, p)
			}
			m.read(starter, frame(starter, ws.OpClose, closeBody(4001, "done")))
			m.wantClose(other, 4001, "done")
			if !m.p.closing || m.armed != m.now+int64(5*time.Second) {
				t.Fatalf("closing=%v, timer at %d: the close handshake is not bounded", m.p.closing, m.armed)
			}
			m.read(other, frame(other, ws.OpClose, closeBody(4001, "done")))
			m.wantClose(starter, 4001, "done")
			m.wantEnded(closedBy(starter))
		})
	}
	t.Run("the answer waits for the driver's writes", func(t *testing.T) {
		m := newMachine(t, Handoff{})
		m.busy[client] = true
		m.read(client, clientFrame(ws.OpClose, true, closeBody(1000, "")))
		m.read(upstream, serverFrame(ws.OpClose, true, closeBody(1000, "")))
		if m.ended {
			t.Fatal("ended while bytes toward the client are still held")
		}
		m.busy[client] = false
		m.event().settle(m.busy, &m.fx)
		m.apply()
		m.wantEnded(ReasonClientClosed)
	})
	t.Run("deadline", func(t *testing.T) {
		m := newMachine(t, Handoff{CloseTimeout: 2 * time.Second})
		m.read(client, clientFrame(ws.OpClose, true, closeBody(1000, "")))
		start := m.now
		m.advance()
		if m.now-start != int64(2*time.Second) {
			t.Fatalf("timer fired after %v", time.Duration(m.now-start))
		}
		m.wantEnded(ReasonClientClosed)
	})
	t.Run("side gone after its close", func(t *testing.T) {
		m := newMachine(t, Handoff{})
		m.read(client, clientFrame(ws.OpClose, true, closeBody(1000, "")))
		m.event().readEnded(upstream, &m.fx) // never answered
		m.apply()
		m.frames(upstream)
		// wsalive answers in the upstream's place, echoing the code.
		m.wantClose(client, 1000, "")
		m.wantEnded(ReasonClientClosed)
	})
}

// TestPairSideGone: a connection that ends without a close frame, on a
// read or a write.
func TestPairSideGone(t *testing.T) {
	for _, gone := range []side{client, upstream} {
		for _, how := range []string{"read", "write"} {
			t.Run(gone.String()+" "+how, func(t *testing.T) {
				m := newMachine(t, Handoff{})
				m.busy[gone] = true
				if how == "read" {
					m.event().readEnded(gone, &m.fx)
				} else {
					m.event().writeFailed(gone, &m.fx)
				}
				m.apply()
				if m.busy[gone] {
					t.Fatal("what waits toward the gone side was not dropped")
				}
				m.wantClose(gone.other(), ws.StatusGoingAway, gone.String()+" gone")
				if len(m.sent[gone]) != 0 {
					t.Fatal("bytes sent toward a gone side")
				}
				if m.ended {
					t.Fatal("ended before the other side answered")
				}
				other := gone.other()
				if other == client {
					m.read(client, clientFrame(ws.OpClose, true, closeBody(1001, "")))
				} else {
					m.read(upstream, serverFrame(ws.OpClose, true, closeBody(1001, "")))
				}
				m.wantEnded(goneReason(gone))
			})
		}
	}
}

// TestPairViolations: each rule broken ends the pair with the right code
// toward the offender and 1001 toward the other side.
func TestPairViolations(t *testing.T) {
	cases := []struct {
		name  string
		from  side
		frame []byte
		max   int64
		v     violation
	}{
		{"unmasked client frame", client, serverFrame(ws.OpText, true, []byte("x")), 0, errUnmaskedClient},
		{"masked server frame", upstream, clientFrame(ws.OpText, true, []byte("x")), 0, errMaskedServer},
		{"reserved opcode", client, wireFrame(true, 0, 3, keyIf(true), nil), 0, errReservedOpcode},
		{"reserved bits", upstream, wireFrame(true, rsv1, ws.OpText, nil, []byte("x")), 0, errReservedBits},
		{"fragmented control", client, clientFrame(ws.OpPing, false, nil), 0, errFragmentedControl},
		{"control too long", upstream, serverFrame(ws.OpPing, true, make([]byte, 126)), 0, errControlTooLong},
		{"continuation without message", client, clientFrame(ws.OpContinuation, true, []byte("x")), 0, errNoMessage},
		{"message inside a message", upstream, append(serverFrame(ws.OpText, false, []byte("a")), serverFrame(ws.OpText, true, []byte("b"))...), 0, errUnfinished},
		{"frame too big", client, clientFrame(ws.OpBinary, true, make([]byte, 101)), 100, errFrameTooBig},
		{"close with 1 byte", upstream, serverFrame(ws.OpClose, true, []byte{3}), 0, errCloseLength},
		{"invalid close code", client, clientFrame(ws.OpClose, true, closeBody(1005, "")), 0, errCloseCode},
		{"close reason not UTF-8", upstream, serverFrame(ws.OpClose, true, append(closeBody(1000, ""), 0xff)), 0, errCloseReason},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, Handoff{MaxFrameSize: c.max})
			m.read(c.from, c.frame)
			fs := m.frames(c.from)
			if len(fs) != 1 || fs[0].Header.OpCode != ws.OpClose {
				t.Fatalf("offender got %v, want one close", ops(fs))
			}
			if code, reason := ws.ParseCloseFrameData(fs[0].Payload); code != c.v.code || reason != c.v.reason {
				t.Fatalf("offender got %d %q, want %d %q", code, reason, c.v.code, c.v.reason)
			}
			other := m.frames(c.from.other())
			if n := len(other); n == 0 || other[n-1].Header.OpCode != ws.OpClose {
				t.Fatalf("other side got %v, want a close last", ops(other))
			}
			if code, reason := ws.ParseCloseFrameData(other[len(other)-1].Payload); code != ws.StatusGoingAway || reason != c.from.String()+" protocol error" {
				t.Fatalf("other side got %d %q", code, reason)
			}
			if want := violationReason(c.from, c.v); m.p.reason != want {
				t.Fatalf("reason %v, want %v", m.p.reason, want)
			}
			m.advance() // nobody answers: the deadline ends it
			m.wantEnded(violationReason(c.from, c.v))
		})
	}
}

func heartbeatPolicy(s side) *Policy {
	hb := liveness.Policy{Interval: 10 * time.Second, Timeout: 3 * time.Second, MaxMissed: 2}
	var c PolicyConfig
	if s == client {
		c.Client.Heartbeat = hb
	} else {
		c.Upstream.Heartbeat = hb
	}
	return NewPolicy(c)
}

// TestPairHeartbeat: a silent side is pinged after the interval, each
// unanswered ping is a miss, max_missed misses end the pair; a pong
// answering our ping is absorbed.
func TestPairHeartbeat(t *testing.T) {
	for _, s := range []side{client, upstream} {
		t.Run(s.String()+" dead", func(t *testing.T) {
			m := newMachine(t, Handoff{Policy: heartbeatPolicy(s)})
			start := m.now
			for i := range 2 {
				m.advance()
				fs := m.frames(s)
				if len(fs) != 1 || fs[0].Header.OpCode != ws.OpPing || !liveness.IsOwnPong(fs[0].Payload) {
					t.Fatalf("ping %d: toward %v got %v", i, s, ops(fs))
				}
			}
			if got := time.Duration(m.now - start); got != 13*time.Second {
				t.Fatalf("second ping after %v, want 13s (interval, then at once after a miss)", got)
			}
			m.advance()
			m.wantClose(s.other(), ws.StatusGoingAway, s.String()+" heartbeat timeout")
			if !m.p.side[s].dead || m.ended {
				t.Fatal("the dead side is not marked gone, or the other side was not given its close handshake")
			}
			m.advance() // the other side does not answer either
			m.wantEnded(heartbeatReason(s))
			if st := m.p.hb[s].Stats(); st.PingsSent != 2 || st.Missed != 2 {
				t.Fatalf("heartbeat stats %+v", st)
			}
		})
		t.Run(s.String()+" answers", func(t *testing.T) {
			m := newMachine(t, Handoff{Policy: heartbeatPolicy(s)})
			m.advance()
			ping := m.frames(s)[0]
			pong := serverFrame(ws.OpPong, true, ping.Payload)
			if s == client {
				pong = clientFrame(ws.OpPong, true, ping.Payload)
			}
			m.now += int64(time.Second)
			m.read(s, pong)
			if len(m.sent[s.other()]) != 0 {
				t.Fatal("our pong was forwarded")
			}
			if st := m.p.hb[s].Stats(); st.PongsReceived != 1 || st.LastRTT != time.Second {
				t.Fatalf("heartbeat stats %+v", st)
			}
			m.advance()
			if m.ended || len(m.frames(s)) != 1 {
				t.Fatal("no second ping after the interval, or the pair ended")
			}
		})
	}
}

// TestPairInjectionBetweenFragments: a ping toward the client may go
// between the fragments of a message, never inside a frame.
func TestPairInjectionBetweenFragments(t *testing.T) {
	m := newMachine(t, Handoff{Policy: heartbeatPolicy(client)})
	first := serverFrame(ws.OpText, false, []byte("frag1"))
	m.read(upstream, first)
	m.advance() // ping due: the client is at a frame boundary
	fs := m.frames(client)
	if len(fs) != 2 || fs[0].Header.OpCode != ws.OpText || fs[1].Header.OpCode != ws.OpPing {
		t.Fatalf("toward the client: %v, want the fragment then a ping", ops(fs))
	}

	m2 := newMachine(t, Handoff{Policy: heartbeatPolicy(client)})
	frame := serverFrame(ws.OpBinary, true, make([]byte, 100))
	m2.read(upstream, frame[:20]) // inside the frame
	m2.advance()
	if !bytes.Equal(m2.sent[client], frame[:20]) {
		t.Fatalf("something was injected inside a frame")
	}
	if m2.p.hb[client].Waiting() {
		t.Fatal("a ping's timeout started although the ping could not go")
	}
	if m2.armed-m2.now != int64(wheelTick) {
		t.Fatalf("next look in %v, want one tick", time.Duration(m2.armed-m2.now))
	}
	m2.read(upstream, frame[20:])
	m2.advance()
	got := m2.sent[client]
	if !bytes.HasPrefix(got, frame) {
		t.Fatal("the frame was not relayed whole")
	}
	m2.sent[client] = got[len(frame):]
	if fs := m2.frames(client); len(fs) != 1 || fs[0].Header.OpCode != ws.OpPing {
		t.Fatalf("after the frame: %v, want a ping", ops(fs))
	}
}

// TestPairCloseWaitsForFrameEnd: a close toward a side goes after the
// frame in flight toward it; if that frame's source vanishes, the side is
// aborted rather than sent a frame that can never come.
func TestPairCloseWaitsForFrameEnd(t *testing.T) {
	frame := serverFrame(ws.OpBinary, true, make([]byte, 100))
	m := newMachine(t, Handoff{})
	m.read(upstream, frame[:20])
	m.sent[client] = nil
	m.event().closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", &m.fx)
	m.apply()
	if len(m.sent[client]) != 0 {
		t.Fatal("a close went inside a frame")
	}
	m.wantClose(upstream, ws.StatusGoingAway, "idle timeout")
	m.read(upstream, frame[20:])
	if !bytes.HasPrefix(m.sent[client], frame[20:]) {
		t.Fatal("the rest of the frame did not go first")
	}
	m.sent[client] = m.sent[client][len(frame)-20:]
	m.wantClose(client, ws.StatusGoingAway, "idle timeout")

	m = newMachine(t, Handoff{})
	m.read(upstream, frame[:20])
	m.event().closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", &m.fx)
	m.apply()
	m.event().readEnded(upstream, &m.fx)
	m.apply()
	if !m.p.side[client].abort {
		t.Fatal("the client waits for a close that can never go")
	}
	m.wantEnded(ReasonIdleTimeout)
}

// TestPairHeldAnswers: pongs wsalive answers for a blocked sink wait
// (only the latest) until the driver says the sink took everything.
func TestPairHeldAnswers(t *testing.T) {
	m := newMachine(t, Handoff{Policy: NewPolicy(PolicyConfig{Client: SidePolicy{AnswerPings: true}})})
	m.p.writeBlocked(client)
	m.read(client, append(clientFrame(ws.OpPing, true, []byte("1")), clientFrame(ws.OpPing, true, []byte("2"))...))
	if len(m.sent[client]) != 0 {
		t.Fatal("answered toward a blocked sink")
	}
	m.event().writeDone(client, &m.fx)
	m.apply()
	fs := m.frames(client)
	if len(fs) != 1 || fs[0].Header.OpCode != ws.OpPong || string(fs[0].Payload) != "2" {
		t.Fatalf("after the sink freed: %v, want one pong for the latest ping", ops(fs))
	}
}

// TestPairLimits: idle_timeout and max_lifetime close both sides with
// 1001.
func TestPairLimits(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		m := newMachine(t, Handoff{Policy: NewPolicy(PolicyConfig{IdleTimeout: time.Minute})})
		m.now += int64(30 * time.Second)
		m.read(client, clientFrame(ws.OpText, true, []byte("x")))
		m.sent[upstream] = nil
		m.advance() // the first deadline, before the data: not idle yet
		if m.p.closing {
			t.Fatal("closed although data passed 30 s ago")
		}
		m.advance()
		m.wantClose(client, ws.StatusGoingAway, "idle timeout")
		m.wantClose(upstream, ws.StatusGoingAway, "idle timeout")
		if m.p.reason != ReasonIdleTimeout {
			t.Fatalf("reason %v", m.p.reason)
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		m := newMachine(t, Handoff{Policy: NewPolicy(PolicyConfig{MaxLifetime: time.Hour})})
		start := m.now
		m.advance()
		if m.now-start != int64(time.Hour) {
			t.Fatalf("closed after %v", time.Duration(m.now-start))
		}
		m.wantClose(client, ws.StatusGoingAway, "max lifetime")
		m.wantClose(upstream, ws.StatusGoingAway, "max lifetime")
		m.advance()
		m.wantEnded(ReasonMaxLifetime)
	})
}

// TestPairDrain: a drain closes the pair at its moment within the window,
// the client with the drain's code, the upstream with 1001; the pairs
// that end otherwise meanwhile are counted apart.
func TestPairDrain(t *testing.T) {
	t.Run("window", func(t *testing.T) {
		o := &drainOrder{code: 1012, text: "restart", reason: ReasonDrain, window: 10 * time.Second}
		start := int64(time.Hour)
		var moments []int64
		for i := range 20 {
			m := newMachine(t, Handoff{})
			m.fx.rng = rand.NewChaCha8([32]byte{byte(i)})
			m.event().drainBy(o, &m.fx)
			m.apply()
			if len(m.sent[client]) != 0 {
				t.Fatal("closed before its moment")
			}
			m.advance()
			if m.now < start || m.now >= start+int64(o.window) {
				t.Fatalf("moment %v outside the window", time.Duration(m.now-start))
			}
			moments = append(moments, m.now)
			m.wantClose(client, 1012, "restart")
			m.wantClose(upstream, ws.StatusGoingAway, "going away")
			m.read(client, clientFrame(ws.OpClose, true, closeBody(1012, "")))
			m.read(upstream, serverFrame(ws.OpClose, true, closeBody(1001, "")))
			m.wantEnded(ReasonDrain)
			m.p.countDrain(false)
		}
		if o.drained.Load() != 20 || o.ended.Load() != 0 {
			t.Fatalf("drained %d, ended %d", o.drained.Load(), o.ended.Load())
		}
		spread := false
		for _, at := range moments[1:] {
			spread = spread || at != moments[0]
		}
		if !spread {
			t.Fatal("every pair got the same moment")
		}
	})
	t.Run("at once", func(t *testing.T) {
		o := &drainOrder{code: 1001, text: "going away", reason: ReasonShutdown}
		m := newMachine(t, Handoff{})
		m.event().drainBy(o, &m.fx)
		m.apply()
		m.wantClose(client, 1001, "going away")
		m.wantClose(upstream, 1001, "going away")
	})
	t.Run("ended meanwhile", func(t *testing.T) {
		o := &drainOrder{code: 1012, text: "restart", reason: ReasonDrain, window: time.Minute}
		m := newMachine(t, Handoff{})
		m.event().drainBy(o, &m.fx)
		m.apply()
		m.event().readEnded(client, &m.fx)
		m.apply()
		m.advance()
		m.wantEnded(ReasonClientGone)
		m.p.countDrain(false)
		if o.ended.Load() != 1 || o.drained.Load() != 0 {
			t.Fatalf("drained %d, ended %d", o.drained.Load(), o.ended.Load())
		}
	})
	t.Run("cut", func(t *testing.T) {
		o := &drainOrder{code: 1012, text: "restart", reason: ReasonDrain, window: time.Minute}
		m := newMachine(t, Handoff{})
		m.event().drainBy(o, &m.fx)
		m.apply()
		m.p.countDrain(true)
		m.event().cut(o.reason, &m.fx)
		m.apply()
		m.wantEnded(ReasonDrain)
		if o.cut.Load() != 1 {
			t.Fatalf("cut %d", o.cut.Load())
		}
	})
}

// TestPairAppPing: a client text message matching the application ping
// is answered by wsalive and not forwarded.
func TestPairAppPing(t *testing.T) {
	h := Handoff{Policy: NewPolicy(PolicyConfig{AppPingMatch: `{"type":"ping"}`, AppPingReply: `{"type":"pong"}`})}
	m := newMachine(t, h)
	m.read(client, clientFrame(ws.OpText, true, []byte(`{"type":"ping"}`)))
	if len(m.sent[upstream]) != 0 {
		t.Fatal("the app ping was forwarded")
	}
	fs := m.frames(client)
	if len(fs) != 1 || string(fs[0].Payload) != `{"type":"pong"}` {
		t.Fatalf("client got %v", ops(fs))
	}
}
