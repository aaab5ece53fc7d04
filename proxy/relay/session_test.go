package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// resumeRecorder is a Metrics that keeps the resume results.
type resumeRecorder struct {
	metrics.Nop
	mu      sync.Mutex
	results []string
}

func (r *resumeRecorder) Resume(result string) {
	r.mu.Lock()
	r.results = append(r.results, result)
	r.mu.Unlock()
}

// Resumable sessions through the engine, on real loopback sockets: the
// test plays the front door (it calls Resume and Attach as it would after
// writing the 101), the helper and the upstream.

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

func readWelcome(t *testing.T, c net.Conn) welcome {
	t.Helper()
	f := readFrame(t, c)
	var w welcome
	if f.Header.OpCode != ws.OpText || json.Unmarshal(f.Payload, &w) != nil || w.Wsalive != "welcome" {
		t.Fatalf("first frame %v %q is not a welcome", f.Header.OpCode, f.Payload)
	}
	return w
}

// waitFor polls cond until it holds, within a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sessionHandoff(window time.Duration, buffer int) Handoff {
	return Handoff{Route: "chat", Session: &SessionOptions{Window: window, Buffer: buffer, Origin: "https://app.example", Protocol: "chat.v1"}}
}

// resumeWith resumes as the front door would and returns the new client
// end, or the refusal.
func resumeWith(t *testing.T, e *Engine, req ResumeRequest) (net.Conn, error) {
	t.Helper()
	c, err := e.Resume(req)
	if err != nil {
		return nil, err
	}
	if c.Protocol != "chat.v1" {
		t.Fatalf("claim protocol %q", c.Protocol)
	}
	cli, proxyCli := tcpPair(t)
	t.Cleanup(func() { cli.Close() })
	if _, err := c.Attach(proxyCli, nil); err != nil {
		return cli, err
	}
	return cli, nil
}

func wantRefused(t *testing.T, err error, code uint16) {
	t.Helper()
	var r *ResumeRefused
	if !errors.As(err, &r) || r.Code != code || r.Reason != refusalReason(code) {
		t.Fatalf("resume answered %v, want refusal %d", err, code)
	}
}

func req(token string, recv uint64) ResumeRequest {
	return ResumeRequest{Token: token, Recv: recv, Route: "chat", Origin: "https://app.example"}
}

func textFrom(t *testing.T, c net.Conn) string {
	t.Helper()
	f := readFrame(t, c)
	if f.Header.OpCode != ws.OpText {
		t.Fatalf("got %v %q, want a text message", f.Header.OpCode, f.Payload)
	}
	return string(f.Payload)
}

func parked(e *Engine, n int64) func() bool {
	return func() bool { return e.Stats().ParkedSessions == n }
}

// TestResumeReplaysGap: a client that vanishes and resumes gets the
// upstream's messages of the gap exactly once and in order, then live
// traffic; the upstream sees no close and no new connection.
func TestResumeReplaysGap(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 1<<20))
	w := readWelcome(t, tp.cli)
	if !w.Resume || w.Resumed || len(w.Token) != tokenLen || len(w.Control) != prefixLen || w.WindowMs != 30000 || w.Recv != 0 {
		t.Fatalf("welcome %+v", w)
	}
	tp.ups.Write(serverFrame(ws.OpText, true, []byte("m1")))
	if got := textFrom(t, tp.cli); got != "m1" {
		t.Fatalf("got %q", got)
	}
	c1 := clientFrame(ws.OpText, true, []byte("c1"))
	tp.cli.Write(c1)
	readExactly(t, tp.ups, len(c1))

	tp.cli.Close()
	waitFor(t, "the session to park", parked(e, 1))
	for i := 2; i <= 4; i++ {
		tp.ups.Write(serverFrame(ws.OpText, true, []byte("m"+strconv.Itoa(i))))
	}
	waitFor(t, "the replay buffer", func() bool { return e.Stats().ReplayBytes == 4*4 })

	cli, err := resumeWith(t, e, req(w.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	w2 := readWelcome(t, cli)
	if !w2.Resumed || w2.Recv != 1 || w2.Token == w.Token || w2.Control != w.Control {
		t.Fatalf("resumed welcome %+v after %+v", w2, w)
	}
	for i := 2; i <= 4; i++ {
		if got := textFrom(t, cli); got != "m"+strconv.Itoa(i) {
			t.Fatalf("replayed %q, want m%d", got, i)
		}
	}
	tp.ups.Write(serverFrame(ws.OpText, true, []byte("m5")))
	if got := textFrom(t, cli); got != "m5" {
		t.Fatalf("live %q", got)
	}
	c2 := clientFrame(ws.OpText, true, []byte("c2"))
	cli.Write(c2)
	if got := readExactly(t, tp.ups, len(c2)); !bytes.Equal(got, c2) {
		t.Fatalf("the upstream got %x, want the client's next message and nothing before it", got)
	}
	// The helper acknowledges everything: the buffer empties.
	cli.Write(clientFrame(ws.OpText, true, []byte(w.Control+"a5")))
	waitFor(t, "the replay bytes to go", func() bool { return e.Stats().ReplayBytes == 0 })

	_, err = resumeWith(t, e, req(w.Token, 0))
	wantRefused(t, err, ResumeTokenUsed)

	cli.Write(clientFrame(ws.OpClose, true, closeBody(ws.StatusNormalClosure, "")))
	expectClose(t, tp.ups, ws.StatusNormalClosure, "")
	tp.ups.Write(serverFrame(ws.OpClose, true, closeBody(ws.StatusNormalClosure, "")))
	st := waitClosed(t, closed)
	if st.Reason != ReasonClientClosed {
		t.Fatalf("reason %v", st.Reason)
	}
	waitFor(t, "the session gauges to clear", sessionGaugesClear(e))
	_, err = resumeWith(t, e, req(w2.Token, 0))
	wantRefused(t, err, ResumeOver)
}

// TestResumeTakeover: a resume while the old connection is still attached
// closes the old one without a close frame and continues on the new.
func TestResumeTakeover(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 1<<20))
	w := readWelcome(t, tp.cli)
	tp.ups.Write(serverFrame(ws.OpText, true, []byte("m1")))
	textFrom(t, tp.cli)

	cli, err := resumeWith(t, e, req(w.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	tp.cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	if f, err := ws.ReadFrame(tp.cli); err == nil {
		t.Fatalf("the old connection got a %v frame, want its end without a close", f.Header.OpCode)
	}
	if w2 := readWelcome(t, cli); !w2.Resumed || w2.Recv != 0 {
		t.Fatalf("welcome %+v", w2)
	}
	if got := textFrom(t, cli); got != "m1" {
		t.Fatalf("replayed %q, want m1 (never acknowledged)", got)
	}
	c := clientFrame(ws.OpBinary, true, []byte("after"))
	cli.Write(c)
	if got := readExactly(t, tp.ups, len(c)); !bytes.Equal(got, c) {
		t.Fatalf("upstream got %x", got)
	}
	if e.Stats().Pairs != 1 {
		t.Fatal("a takeover made a new pair")
	}
}

// TestResumeRefusals: every refusal code of RESUME.md §6, each sent
// before any data.
func TestResumeRefusals(t *testing.T) {
	rec := &resumeRecorder{}
	e, closed := newTestEngine(t, Options{Loops: 1, Metrics: rec})
	defer func() {
		want := "refused_4900 refused_4900 refused_4904 refused_4903 refused_4905 refused_4906 refused_4902 refused_4901"
		if got := strings.Join(rec.results, " "); got != want {
			t.Errorf("metrics counted %s, want %s", got, want)
		}
	}()
	_, err := resumeWith(t, e, req("short", 0))
	wantRefused(t, err, ResumeUnknown)
	_, err = resumeWith(t, e, req(randomString(16), 0))
	wantRefused(t, err, ResumeUnknown)

	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 100))
	w := readWelcome(t, tp.cli)
	other := req(w.Token, 0)
	other.Route = "other"
	_, err = resumeWith(t, e, other)
	wantRefused(t, err, ResumeOtherRoute)
	_, err = resumeWith(t, e, req(w.Token, 0))
	wantRefused(t, err, ResumeTokenUsed)

	// Each refusal spends the token: take a fresh session per case.
	fresh := func(buffer int) (*testPair, welcome) {
		tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, buffer))
		return tp, readWelcome(t, tp.cli)
	}
	_, w = fresh(100)
	o := req(w.Token, 0)
	o.Origin = ""
	_, err = resumeWith(t, e, o)
	wantRefused(t, err, ResumeOtherOrigin)

	_, w = fresh(100)
	_, err = resumeWith(t, e, req(w.Token, 1))
	wantRefused(t, err, ResumeCannotResume)

	tp, w = fresh(100)
	tp.ups.Write(serverFrame(ws.OpBinary, true, make([]byte, 200)))
	readFrame(t, tp.cli) // still delivered: only the resumability is lost
	_, err = resumeWith(t, e, req(w.Token, 0))
	wantRefused(t, err, ResumeOverflowed)

	// After the window: the session is over.
	tp = attachPair(t, e, closed, sessionHandoff(50*time.Millisecond, 100))
	w = readWelcome(t, tp.cli)
	tp.cli.Close()
	expectClose(t, tp.ups, ws.StatusGoingAway, "client gone")
	tp.ups.Write(serverFrame(ws.OpClose, true, closeBody(ws.StatusGoingAway, "")))
	for st := waitClosed(t, closed); st.Reason != ReasonClientGone; st = waitClosed(t, closed) {
	}
	_, err = resumeWith(t, e, req(w.Token, 0))
	wantRefused(t, err, ResumeOver)
}

// TestResumeAttachAfterEnd: a claim whose session ended before Attach
// sends the client the refusal's close frame.
func TestResumeAttachAfterEnd(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 1<<10))
	w := readWelcome(t, tp.cli)
	tp.cli.Close()
	waitFor(t, "the session to park", parked(e, 1))
	c, err := e.Resume(req(w.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	tp.ups.Close()
	waitClosed(t, closed)
	cli, proxyCli := tcpPair(t)
	defer cli.Close()
	_, err = c.Attach(proxyCli, nil)
	wantRefused(t, err, ResumeOver)
	expectClose(t, cli, ws.StatusCode(ResumeOver), refusalReason(ResumeOver))
}

// TestResumeDrainEndsParked: a drain ends a parked session at once, with
// 1001 toward the upstream, whatever its window.
func TestResumeDrainEndsParked(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(time.Hour, 1<<10))
	readWelcome(t, tp.cli)
	tp.ups.Write(serverFrame(ws.OpText, true, []byte("kept")))
	tp.cli.Close()
	waitFor(t, "the session to park", parked(e, 1))
	ch := startDrain(e, context.Background(), 1012, "restart", time.Hour)
	expectClose(t, tp.ups, ws.StatusGoingAway, "")
	tp.ups.Write(serverFrame(ws.OpClose, true, closeBody(ws.StatusGoingAway, "")))
	if r := waitDrain(t, ch); r.err != nil || r.rep.Drained != 1 {
		t.Fatalf("drain %+v", r)
	}
	if st := waitClosed(t, closed); st.Reason != ReasonDrain {
		t.Fatalf("reason %v", st.Reason)
	}
	waitFor(t, "the session gauges to clear", sessionGaugesClear(e))
}

// sessionGaugesClear says whether e counts no session and no replay
// byte. The gauges are brought down on the driver's goroutine after the
// pair's account is reported, so they may trail waitClosed briefly.
func sessionGaugesClear(e *Engine) func() bool {
	return func() bool {
		s := e.Stats()
		return s.Sessions == 0 && s.ParkedSessions == 0 && s.ReplayBytes == 0
	}
}

// TestSessionWithoutResume: a client that opted in on a route without
// resume gets the welcome that says so, and an ordinary pair.
func TestSessionWithoutResume(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{Session: &SessionOptions{}, UpstreamBuffered: serverFrame(ws.OpText, true, []byte("early"))})
	if f := readFrame(t, tp.cli); string(f.Payload) != `{"wsalive":"welcome","v":1,"resume":false}` {
		t.Fatalf("welcome %q", f.Payload)
	}
	if got := textFrom(t, tp.cli); got != "early" {
		t.Fatalf("got %q", got)
	}
	tp.cli.Close()
	expectClose(t, tp.ups, ws.StatusGoingAway, "client gone")
}

// TestResumeBufferedBytes: bytes the client sent behind its resume
// request reach the upstream, after the resume, counted.
func TestResumeBufferedBytes(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 1<<10))
	w := readWelcome(t, tp.cli)
	tp.cli.Close()
	waitFor(t, "the session to park", parked(e, 1))
	c, err := e.Resume(req(w.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	cli, proxyCli := tcpPair(t)
	defer cli.Close()
	early := clientFrame(ws.OpText, true, []byte("resent"))
	if _, err := c.Attach(proxyCli, early); err != nil {
		t.Fatal(err)
	}
	if w2 := readWelcome(t, cli); w2.Recv != 0 {
		t.Fatalf("welcome %+v", w2)
	}
	if got := readExactly(t, tp.ups, len(early)); !bytes.Equal(got, early) {
		t.Fatalf("upstream got %x", got)
	}
	c.Release() // after Attach: does nothing
	waitFor(t, "the up count", func() bool {
		p := c.s.cp
		p.mu.Lock()
		defer p.mu.Unlock()
		return c.s.st.up == 1
	})
}

// TestResumeTakeoverStuckWrite: the old client stopped reading, so a
// write toward it is stuck and the upstream is held back; a takeover
// abandons that write, and the new connection gets every message once,
// in order.
func TestResumeTakeoverStuckWrite(t *testing.T) {
	const n = 20000
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, sessionHandoff(30*time.Second, 32<<20))
	w := readWelcome(t, tp.cli)
	go func() {
		for i := 1; i <= n; i++ {
			p := make([]byte, 1<<10)
			copy(p, strconv.Itoa(i)+";")
			if _, err := tp.ups.Write(serverFrame(ws.OpBinary, true, p)); err != nil {
				return
			}
		}
	}()
	// The old client reads nothing: wait until wsalive holds bytes it
	// cannot write.
	last := int64(-1)
	waitFor(t, "a write stuck toward the old client", func() bool {
		s := e.Stats()
		stuck := s.BufferedBytes > 0 && s.ReplayBytes == last
		last = s.ReplayBytes
		if stuck {
			time.Sleep(50 * time.Millisecond)
			stuck = e.Stats().ReplayBytes == last
		}
		return stuck
	})
	t.Logf("stuck with %d bytes buffered for replay", last)
	cli, err := resumeWith(t, e, req(w.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	readWelcome(t, cli)
	for i := 1; i <= n; i++ {
		f := readFrame(t, cli)
		want := strconv.Itoa(i) + ";"
		if f.Header.OpCode != ws.OpBinary || !bytes.HasPrefix(f.Payload, []byte(want)) {
			t.Fatalf("message %d: %v %q", i, f.Header.OpCode, f.Payload[:min(len(f.Payload), 12)])
		}
	}
}
