package relay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/liveness"
)

// The session state machine on a fake clock: welcome, counts, acks, the
// replay buffer, parking and resuming (RESUME.md).

const (
	testPrefix = "Qm9vc3Rlci1jb250cm9sLTEy"
	testToken  = "x3Jq0bTg7WcKpZ5r1mVh9A"
)

// newSessionMachine returns a machine whose pair is a session with a 30 s
// window and a replay bound of limit bytes; the welcome is checked and
// forgotten.
func newSessionMachine(t *testing.T, h Handoff, limit int) (*machine, *sessState) {
	t.Helper()
	m := newMachine(t, h)
	ses := newSessState(testPrefix, int64(30*time.Second), limit, &resumeBudget{})
	m.event().startSession(ses, testToken, &m.fx)
	m.apply()
	fs := m.frames(client)
	if len(fs) != 1 || fs[0].Header.OpCode != ws.OpText {
		t.Fatalf("first frames toward the client: %v, want the welcome", ops(fs))
	}
	want := `{"wsalive":"welcome","v":1,"resume":true,"resumed":false,"token":"` + testToken +
		`","control":"` + testPrefix + `","window_ms":30000,"recv":0}`
	if string(fs[0].Payload) != want {
		t.Fatalf("welcome\n%s\nwant\n%s", fs[0].Payload, want)
	}
	return m, ses
}

func ctlMsg(cmd string) []byte { return clientFrame(ws.OpText, true, []byte(testPrefix+cmd)) }

// payloads returns the payloads of fs.
func payloads(fs []ws.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Payload))
	}
	return out
}

// TestSessionWelcomeJSON: the welcome is the exact JSON of RESUME.md §2,
// valid for a JSON parser.
func TestSessionWelcomeJSON(t *testing.T) {
	b := appendWelcome(nil, true, testToken, []byte(testPrefix), 30000, 41)
	var w struct {
		Wsalive  string `json:"wsalive"`
		V        int    `json:"v"`
		Resume   bool   `json:"resume"`
		Resumed  bool   `json:"resumed"`
		Token    string `json:"token"`
		Control  string `json:"control"`
		WindowMs int64  `json:"window_ms"`
		Recv     uint64 `json:"recv"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	if w.Wsalive != "welcome" || w.V != 1 || !w.Resume || !w.Resumed || w.Token != testToken ||
		w.Control != testPrefix || w.WindowMs != 30000 || w.Recv != 41 {
		t.Fatalf("%+v", w)
	}
	if got := randomString(16); len(got) != tokenLen {
		t.Fatalf("token %q is %d characters, want %d", got, len(got), tokenLen)
	}
	if got := randomString(18); len(got) != prefixLen {
		t.Fatalf("prefix %q is %d characters, want %d", got, len(got), prefixLen)
	}
}

// TestSessionCountsAndAcks: complete client messages are counted once
// (fragments, pings and control messages are not), control messages are
// consumed, and wsalive acknowledges every 32 messages.
func TestSessionCountsAndAcks(t *testing.T) {
	m, ses := newSessionMachine(t, Handoff{}, 1<<20)
	m.read(client, clientFrame(ws.OpText, false, []byte("frag")))
	m.read(client, clientFrame(ws.OpPing, true, []byte("p")))
	m.read(client, clientFrame(ws.OpContinuation, true, []byte("ment")))
	if ses.up != 1 {
		t.Fatalf("up count %d after one fragmented message, want 1", ses.up)
	}
	m.sent[upstream] = nil
	m.read(client, ctlMsg("a0"))
	m.read(client, ctlMsg("zfuture"))
	if len(m.sent[upstream]) != 0 || ses.up != 1 {
		t.Fatalf("control messages reached the upstream (%d bytes) or were counted (%d)", len(m.sent[upstream]), ses.up)
	}
	// A text message of a control message's length but another prefix
	// is an ordinary message.
	other := clientFrame(ws.OpText, true, []byte("Xm9vc3Rlci1jb250cm9sLTEya0"))
	m.read(client, other)
	if !bytes.Equal(m.sent[upstream], other) || ses.up != 2 {
		t.Fatal("an ordinary message collected whole was not forwarded as it came")
	}
	for i := 0; i < 29; i++ {
		m.read(client, clientFrame(ws.OpBinary, true, []byte{byte(i)}))
	}
	if fs := m.frames(client); len(fs) != 0 {
		t.Fatalf("acked before 32 messages: %v", payloads(fs))
	}
	m.read(client, clientFrame(ws.OpBinary, true, []byte{1}))
	fs := m.frames(client)
	if len(fs) != 1 || string(fs[0].Payload) != testPrefix+"a32" {
		t.Fatalf("after 32 messages the client got %q, want the ack a32", payloads(fs))
	}
}

// TestSessionAckWithPing: with messages unacknowledged, each ping toward
// the client carries an ack.
func TestSessionAckWithPing(t *testing.T) {
	pol := NewPolicy(PolicyConfig{Client: SidePolicy{Heartbeat: liveness.Policy{
		Interval: time.Second, Timeout: time.Second, MaxMissed: 3}}})
	m, _ := newSessionMachine(t, Handoff{Policy: pol}, 1<<20)
	m.read(client, clientFrame(ws.OpText, true, []byte("one")))
	m.read(client, clientFrame(ws.OpText, true, []byte("two")))
	m.now += int64(time.Second)
	m.advance()
	fs := m.frames(client)
	if len(fs) != 2 || fs[0].Header.OpCode != ws.OpPing || string(fs[1].Payload) != testPrefix+"a2" {
		t.Fatalf("toward the client: %v %q, want a ping and the ack a2", ops(fs), payloads(fs))
	}
	// Nothing new: the next ping goes alone.
	m.read(client, clientFrame(ws.OpPong, true, fs[0].Payload))
	m.now += int64(2 * time.Second)
	m.advance()
	if fs := m.frames(client); len(fs) != 1 || fs[0].Header.OpCode != ws.OpPing {
		t.Fatalf("toward the client: %v, want one ping", ops(fs))
	}
}

// TestSessionClientAckTrims: the replay buffer holds the upstream's
// unacknowledged messages as they came, an ack drops them, and an ack
// beyond what was sent is a protocol error.
func TestSessionClientAckTrims(t *testing.T) {
	m, ses := newSessionMachine(t, Handoff{}, 1<<20)
	var wire []byte
	for i := 1; i <= 3; i++ {
		wire = append(wire, serverFrame(ws.OpText, true, []byte("msg"+strconv.Itoa(i)))...)
	}
	ping := serverFrame(ws.OpPing, true, []byte("up"))
	in := append(append(wire[:6:6], ping...), wire[6:]...) // a ping between messages
	m.read(upstream, in[:len(ping)+7])                     // a header cut in two
	m.read(upstream, in[len(ping)+7:])
	if got := ses.replay.bytes(); !bytes.Equal(got, wire) || ses.replay.sent != 3 {
		t.Fatalf("replay holds %q (%d messages), want the three data frames", got, ses.replay.sent)
	}
	m.read(client, ctlMsg("a2"))
	if got := ses.replay.bytes(); !bytes.Equal(got, serverFrame(ws.OpText, true, []byte("msg3"))) {
		t.Fatalf("after a2 the replay holds %q", got)
	}
	m.read(client, ctlMsg("a1")) // lower than seen: ignored
	m.read(client, ctlMsg("a3"))
	if ses.replay.chunks != nil || ses.replay.budget.used.Load() != 0 {
		t.Fatal("an acknowledged buffer kept its memory")
	}
	m.sent[client] = nil
	m.read(client, ctlMsg("a4"))
	m.wantClose(client, ws.StatusProtocolError, errBadAck.reason)
}

// TestSessionParkAndResume: a client lost without a close frame parks the
// session: its socket goes, the upstream sees nothing, its pings are
// answered, its messages kept; a resume gets the welcome and exactly the
// messages after its count, then live traffic.
func TestSessionParkAndResume(t *testing.T) {
	m, ses := newSessionMachine(t, Handoff{}, 1<<20)
	m.read(upstream, serverFrame(ws.OpText, true, []byte("m1")))
	m.read(client, clientFrame(ws.OpText, true, []byte("c1")))
	m.sent = [2][]byte{}
	m.event().readEnded(client, &m.fx)
	m.apply()
	if !ses.parked || m.detached != 1 || len(m.sent[upstream]) != 0 || m.p.closing {
		t.Fatalf("parked=%v detached=%d upstream got %d bytes closing=%v", ses.parked, m.detached, len(m.sent[upstream]), m.p.closing)
	}
	m.read(upstream, serverFrame(ws.OpText, true, []byte("m2")))
	m.read(upstream, serverFrame(ws.OpPing, true, []byte("hb")))
	if fs := m.frames(upstream); len(fs) != 1 || fs[0].Header.OpCode != ws.OpPong || string(fs[0].Payload) != "hb" {
		t.Fatalf("the upstream's ping got %v, want a pong from wsalive", ops(fs))
	}
	m.read(upstream, serverFrame(ws.OpText, false, []byte("m3a"))) // a message in progress
	if len(m.sent[client]) != 0 {
		t.Fatal("bytes went toward a parked client")
	}
	if code := m.event().resumeClient("newtoken", 1, &m.fx); code != 0 {
		t.Fatalf("resume refused with %d", code)
	}
	m.apply()
	fs := m.frames(client)
	if len(fs) != 3 || !bytes.Contains(fs[0].Payload, []byte(`"resumed":true,"token":"newtoken"`)) ||
		!bytes.Contains(fs[0].Payload, []byte(`"recv":1}`)) {
		t.Fatalf("after the resume: %q", payloads(fs))
	}
	if string(fs[1].Payload) != "m2" || string(fs[2].Payload) != "m3a" || fs[2].Header.Fin {
		t.Fatalf("replayed %q, want m2 and the start of m3", payloads(fs[1:]))
	}
	m.read(upstream, serverFrame(ws.OpContinuation, true, []byte("m3b")))
	m.read(client, clientFrame(ws.OpText, true, []byte("c2")))
	if fs := m.frames(client); len(fs) != 1 || string(fs[0].Payload) != "m3b" {
		t.Fatalf("live: %q", payloads(fs))
	}
	if fs := m.frames(upstream); len(fs) != 1 || string(fs[0].Payload) != "c2" || ses.up != 2 {
		t.Fatalf("live toward the upstream: %q, up count %d", payloads(fs), ses.up)
	}
}

// TestSessionWindowEnds: a parked session whose client does not come back
// ends at the window with 1001 "client gone" toward the upstream.
func TestSessionWindowEnds(t *testing.T) {
	pol := NewPolicy(PolicyConfig{Client: SidePolicy{Heartbeat: liveness.Policy{
		Interval: time.Second, Timeout: time.Second, MaxMissed: 1}}})
	m, ses := newSessionMachine(t, Handoff{Policy: pol}, 1<<20)
	// The client stops answering: its heartbeat timeout parks it.
	for i := 0; i < 10 && !ses.parked; i++ {
		m.now += int64(time.Second)
		m.advance()
	}
	if !ses.parked || m.detached != 1 {
		t.Fatal("a client heartbeat timeout did not park the session")
	}
	m.sent = [2][]byte{}
	parkedAt := m.now
	m.advance()
	if m.now < parkedAt+int64(30*time.Second) {
		t.Fatalf("woke at %v, before the window", time.Duration(m.now-parkedAt))
	}
	m.wantClose(upstream, ws.StatusGoingAway, "client gone")
	m.read(upstream, serverFrame(ws.OpClose, true, closeBody(ws.StatusGoingAway, "")))
	m.wantEnded(ReasonClientHeartbeatTimeout)
}

// TestSessionMidMessageCut: a client that breaks off inside a message
// ends the session at once; the upstream gets 1001 "client gone".
func TestSessionMidMessageCut(t *testing.T) {
	m, ses := newSessionMachine(t, Handoff{}, 1<<20)
	m.read(client, clientFrame(ws.OpText, false, []byte("half")))
	m.sent[upstream] = nil
	m.event().readEnded(client, &m.fx)
	m.apply()
	if ses.parked || ses.lost != ResumeCannotResume {
		t.Fatalf("parked=%v lost=%d", ses.parked, ses.lost)
	}
	m.wantClose(upstream, ws.StatusGoingAway, "client gone")
}

// TestSessionOverflow: connected, an overflow costs the session its
// resumability and nothing else; parked, it ends the session.
func TestSessionOverflow(t *testing.T) {
	big := serverFrame(ws.OpBinary, true, make([]byte, 200))
	m, ses := newSessionMachine(t, Handoff{}, 300)
	m.read(upstream, big)
	m.read(upstream, big)
	if ses.lost != ResumeOverflowed || ses.replay.chunks != nil || m.p.closing {
		t.Fatalf("lost=%d closing=%v", ses.lost, m.p.closing)
	}
	m.read(upstream, big)
	if fs := m.frames(client); len(fs) != 3 {
		t.Fatalf("the connected client got %d frames, want 3", len(fs))
	}
	// Messages are still counted: the client may acknowledge them.
	m.read(client, ctlMsg("a3"))
	if m.p.closing {
		t.Fatal("an acknowledgement of messages sent after the overflow was refused")
	}
	m.event().readEnded(client, &m.fx) // no longer resumable: ends as without sessions
	m.apply()
	m.wantClose(upstream, ws.StatusGoingAway, "client gone")

	m, ses = newSessionMachine(t, Handoff{}, 300)
	m.event().readEnded(client, &m.fx)
	m.apply()
	m.read(upstream, big)
	m.read(upstream, big)
	if ses.parked || ses.lost != ResumeOverflowed {
		t.Fatalf("parked=%v lost=%d", ses.parked, ses.lost)
	}
	m.wantClose(upstream, ws.StatusGoingAway, "client gone")
}

// TestSessionUpstreamClosesWhileParked: wsalive answers the close and the
// session ends.
func TestSessionUpstreamClosesWhileParked(t *testing.T) {
	m, ses := newSessionMachine(t, Handoff{}, 1<<20)
	m.event().readEnded(client, &m.fx)
	m.apply()
	m.read(upstream, serverFrame(ws.OpClose, true, closeBody(4000, "bye")))
	m.wantClose(upstream, 4000, "")
	m.event().readEnded(upstream, &m.fx)
	m.apply()
	m.wantEnded(ReasonUpstreamClosed)
	if code := m.p.resumable(ses); code != ResumeOver {
		t.Fatalf("resumable says %d, want %d", code, ResumeOver)
	}
}

// TestReplayBufferChunks: across chunk boundaries, cut reads and
// acknowledgements, the buffer holds exactly the unacknowledged messages'
// frames, and its budget matches what it holds.
func TestReplayBufferChunks(t *testing.T) {
	budget := &resumeBudget{}
	r := replayBuffer{limit: 1 << 20, budget: budget}
	var msgs [][]byte
	rng := uint32(1)
	next := func(n uint32) int { rng = rng*1664525 + 1013904223; return int(rng>>8) % int(n) }
	acked := 0
	for i := 0; i < 400; i++ {
		f := serverFrame(ws.OpBinary, true, bytes.Repeat([]byte{byte(i)}, next(3000)))
		msgs = append(msgs, f)
		for len(f) > 0 {
			k := min(len(f), 1+next(700))
			if !r.tap(f[:k]) {
				t.Fatal("overflow under the limit")
			}
			f = f[k:]
		}
		if next(4) == 0 {
			acked += next(uint32(len(msgs)-acked) + 1)
			if !r.trim(uint64(acked)) {
				t.Fatalf("trim %d refused with %d sent", acked, r.sent)
			}
		}
		if want := bytes.Join(msgs[acked:], nil); !bytes.Equal(r.bytes(), want) {
			t.Fatalf("after message %d (acked %d): buffer differs", i+1, acked)
		}
		if budget.used.Load() != int64(r.held()) || r.held() != len(bytes.Join(msgs[acked:], nil)) {
			t.Fatalf("budget %d, held %d", budget.used.Load(), r.held())
		}
	}
	r.trim(uint64(len(msgs)))
	if r.chunks != nil || budget.used.Load() != 0 {
		t.Fatal("everything acknowledged, memory still held")
	}
}
