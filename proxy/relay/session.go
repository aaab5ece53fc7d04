package relay

import (
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Resumable sessions (examples/client/RESUME.md): a pair whose client
// opted in keeps its upstream connection for a window after the client
// vanished, buffers what the upstream sends, and takes a reconnecting
// client back with its token. The front door parses the opt-in and the
// resume request and writes the 101; the engine owns sessions, tokens,
// the welcome, acknowledgements and the replay.

// SessionOptions makes a handed-off pair a session: Handoff.Session.
type SessionOptions struct {
	// Window is how long the upstream waits for its client to come back.
	// 0: the client opted in but the route allows no resume; it gets a
	// welcome with "resume": false and an ordinary pair.
	Window time.Duration
	// Buffer bounds the upstream-to-client bytes kept for replay; 0
	// means DefaultResumeBuffer.
	Buffer int
	// Origin is the client's Origin header ("" when absent); a resume must
	// carry the same.
	Origin string
	// Protocol is the subprotocol the upstream chose ("" for none); a
	// resumed connection is answered with it.
	Protocol string
}

// ResumeRequest is a client's request to resume a session.
type ResumeRequest struct {
	// Token is the wsalive_resume parameter as it came.
	Token string
	// Recv is the wsalive_recv parameter: the helper's down count.
	Recv uint64
	// Route names the route the request matched.
	Route string
	// Origin is the request's Origin header ("" when absent).
	Origin string
}

// Refusal codes (RESUME.md §6), sent as the close code of a refused resume.
const (
	ResumeUnknown      uint16 = 4900
	ResumeOver         uint16 = 4901
	ResumeOverflowed   uint16 = 4902
	ResumeTokenUsed    uint16 = 4903
	ResumeOtherRoute   uint16 = 4904
	ResumeOtherOrigin  uint16 = 4905
	ResumeCannotResume uint16 = 4906
)

// ResumeRefused is the error of a resume the engine cannot honour: the
// front door answers 101 and then closes with Code and Reason.
type ResumeRefused struct {
	Code   uint16
	Reason string
}

func (r *ResumeRefused) Error() string {
	return fmt.Sprintf("relay: resume refused: %d %s", r.Code, r.Reason)
}

// DefaultResumeBuffer is the replay bound of a session whose
// SessionOptions.Buffer is 0.
const DefaultResumeBuffer = 256 << 10

// refusalReason is the close reason of each refusal code (RESUME.md §6).
func refusalReason(code uint16) string {
	switch code {
	case ResumeOver:
		return "resume: session over"
	case ResumeOverflowed:
		return "resume: replay buffer overflowed"
	case ResumeTokenUsed:
		return "resume: token already used"
	case ResumeOtherRoute:
		return "resume: another route"
	case ResumeOtherOrigin:
		return "resume: another origin"
	case ResumeCannotResume:
		return "resume: cannot continue"
	}
	return "resume: unknown session"
}

func refused(code uint16) *ResumeRefused {
	return &ResumeRefused{Code: code, Reason: refusalReason(code)}
}

// Claim is a session taken for one resume attempt: its token is spent,
// and until Attach or Release nobody else can take it.
type Claim struct {
	// Protocol is the subprotocol to answer the 101 with.
	Protocol string
	s        *session
	recv     uint64
	used     atomic.Bool
}

// session is the engine's record of one session: what a resume request
// is checked against, and its pair. Its fields are guarded by the pair's
// lock (cp.mu), token by the session table's.
type session struct {
	cp       *cpair
	st       *sessState
	route    string
	origin   string
	protocol string
	window   int64 // ns
	token    string
	// parked mirrors st.parked for the engine's gauge.
	parked bool
}

// sessionTable finds sessions by token, and remembers spent tokens and
// ended sessions (tombstones) for one window so that a late resume is
// told why (4901-4903) rather than 4900. Tokens are never logged.
type sessionTable struct {
	mu      sync.Mutex
	byToken map[string]*tokenEntry
	tombs   []tomb // in the order they were made
	// maxTombs bounds the tombstones: the oldest go first.
	maxTombs int
	budget   resumeBudget
	live     atomic.Int64
	parked   atomic.Int64
}

// tokenEntry is a live session's token (s set), or a tombstone with the
// refusal code it answers.
type tokenEntry struct {
	s    *session
	code uint16
}

type tomb struct {
	token   string
	expires int64
}

func (t *sessionTable) init(memory int64) {
	t.byToken = make(map[string]*tokenEntry)
	t.budget.limit = memory
	// A tombstone costs about 150 bytes (map entry, token, queue slot):
	// a 256th of the replay budget keeps them well within it.
	t.maxTombs = 1 << 16
	if memory > 0 {
		t.maxTombs = int(max(1024, memory/256))
	}
}

// add registers s under its first token.
func (t *sessionTable) add(s *session) {
	t.mu.Lock()
	t.byToken[s.token] = &tokenEntry{s: s}
	t.mu.Unlock()
	t.live.Add(1)
}

// prune forgets tombstones that are past their window or over the bound.
// t.mu is held.
func (t *sessionTable) prune(now int64) {
	n := 0
	for n < len(t.tombs) && (t.tombs[n].expires <= now || len(t.tombs)-n > t.maxTombs) {
		if e := t.byToken[t.tombs[n].token]; e != nil && e.s == nil {
			delete(t.byToken, t.tombs[n].token)
		}
		n++
	}
	if n > 0 {
		t.tombs = append(t.tombs[:0], t.tombs[n:]...)
	}
}

// bury turns token's entry into a tombstone answering code. t.mu is held.
func (t *sessionTable) bury(token string, code uint16, window, now int64) {
	e := t.byToken[token]
	if e == nil {
		return
	}
	e.s, e.code = nil, code
	t.tombs = append(t.tombs, tomb{token, now + window})
	t.prune(now)
}

// spend takes the session of token and spends the token; otherwise it
// returns the refusal code.
func (t *sessionTable) spend(token string, now int64) (*session, uint16) {
	if len(token) != tokenLen {
		return nil, ResumeUnknown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	e := t.byToken[token]
	switch {
	case e == nil:
		return nil, ResumeUnknown
	case e.s == nil:
		return nil, e.code
	}
	s := e.s
	s.token = ""
	t.bury(token, ResumeTokenUsed, s.window, now)
	return s, 0
}

// setToken gives s its next token.
func (t *sessionTable) setToken(s *session, token string) {
	t.mu.Lock()
	s.token = token
	t.byToken[token] = &tokenEntry{s: s}
	t.mu.Unlock()
}

// ended buries the token of a session that ended, with code.
func (t *sessionTable) ended(s *session, code uint16, now int64) {
	t.mu.Lock()
	if s.token != "" {
		t.bury(s.token, code, s.window, now)
		s.token = ""
	}
	t.mu.Unlock()
	t.live.Add(-1)
}

// randomString returns n bytes from crypto/rand in base64url.
func randomString(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openSession makes the just-started pair p a session (or, for a route
// without resume, sends the welcome that says so). p.mu is held; the
// welcome goes out with the event's effects, before any upstream byte.
func (p *cpair) openSession(o *SessionOptions, route string) {
	if o.Window <= 0 {
		p.fx.send[client].add(noResumeWelcome)
		return
	}
	t := &p.d.env.sessions
	buf := o.Buffer
	if buf <= 0 {
		buf = DefaultResumeBuffer
	}
	s := &session{cp: p, route: route, origin: o.Origin, protocol: o.Protocol, window: int64(o.Window)}
	s.st = newSessState(randomString(18), int64(o.Window), buf, &t.budget)
	s.token = randomString(16)
	t.add(s)
	p.sess = s
	p.pair.startSession(s.st, s.token, &p.fx)
}

// syncSession keeps the engine's gauges in step with the session's state
// after an event. p.mu is held.
func (p *cpair) syncSession() {
	s := p.sess
	if parked := s.st.parked && !p.done; parked != s.parked {
		s.parked = parked
		if parked {
			p.d.env.sessions.parked.Add(1)
		} else {
			p.d.env.sessions.parked.Add(-1)
		}
	}
}

// burySession buries the session of a pair that ended. p.mu is held.
func (p *cpair) burySession() {
	code := ResumeOver
	if lost := p.sess.st.lost; lost != 0 {
		code = lost // why it could not be resumed: overflow, a cut message
	}
	p.d.env.sessions.ended(p.sess, code, p.d.env.clock())
}

// resume claims the session req names, or says which refusal code
// answers it (Engine.Resume).
func (e *env) resume(req ResumeRequest) (*Claim, uint16) {
	s, code := e.sessions.spend(req.Token, e.clock())
	if code != 0 {
		return nil, code
	}
	p := s.cp
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.closed.Load():
		return nil, ResumeOver
	case s.route != req.Route:
		return nil, ResumeOtherRoute
	case s.origin != req.Origin:
		return nil, ResumeOtherOrigin
	}
	if code := p.resumable(s.st); code != 0 {
		return nil, code
	}
	if r := &s.st.replay; r.off || req.Recv > r.sent || req.Recv < r.base {
		return nil, ResumeCannotResume
	}
	s.st.claimed = true
	return &Claim{Protocol: s.protocol, s: s, recv: req.Recv}, 0
}

// Attach gives the claimed session its new client connection, to which
// the 101 has been written; buffered holds bytes the client sent behind
// its request head. The engine owns client from then on. If the session
// went meanwhile (the upstream closed, a drain), the client is sent the
// refusal's close frame and closed, and the error is a *ResumeRefused.
// It returns the pair's id.
func (c *Claim) Attach(conn net.Conn, buffered []byte) (uint64, error) {
	if c.used.Swap(true) {
		conn.Close()
		return 0, fmt.Errorf("relay: claim used twice")
	}
	// The session runs on the net.Conn driver (see NetConn).
	nc, err := NetConn(conn)
	if err != nil {
		conn.Close()
		return 0, err
	}
	conn = nc
	s := c.s
	p := s.cp
	e := p.d.env
	if p.pol.keepaliveWanted(client, conn, false) {
		if err := connKeepalive(conn, &p.pol.side[client].Keepalive); err != nil {
			e.logger.Warn("relay: setting TCP keepalive options", "side", "client", "err", err)
		}
	}
	p.mu.Lock()
	code := ResumeOver
	if !p.done {
		s.st.claimed = false
		code = p.event().takeOver(&p.fx)
		p.apply()
	}
	if code == 0 {
		token := randomString(16)
		code = p.event().resumeClient(token, c.recv, &p.fx)
		if code == 0 {
			p.conn[client] = conn
			e.sessions.setToken(s, token)
		}
		p.apply()
	}
	if code != 0 {
		p.mu.Unlock()
		e.countResume(code)
		go refuseConn(conn, code)
		return 0, refused(code)
	}
	for b := buffered; len(b) > 0 && !p.done; {
		n := min(len(b), e.opts.ReadBufferSize)
		slot := make([]byte, carryRoom+n)
		copy(slot[carryRoom:], b[:n])
		b = b[n:]
		p.event().read(client, slot, n, &p.fx)
		p.apply()
	}
	if !p.done {
		p.kick()
		go p.reader(client, p.cgen)
	}
	p.mu.Unlock()
	e.countResume(0)
	return p.id, nil
}

// refuseConn sends a refused resume's close frame and closes conn.
func refuseConn(conn net.Conn, code uint16) {
	frame := appendControlFrame(nil, ws.OpClose, closePayload(ws.StatusCode(code), refusalReason(code)), false, [4]byte{})
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	conn.Write(frame)
	conn.Close()
}

// Release gives the claim back unused (the 101 could not be written):
// the session waits for its client again. Its token stays spent.
func (c *Claim) Release() {
	if c.used.Swap(true) {
		return
	}
	p := c.s.cp
	p.mu.Lock()
	defer p.mu.Unlock()
	c.s.st.claimed = false
	if !p.done {
		// The window may have passed while the claim held it.
		p.event().timerFired(&p.fx)
		p.apply()
		p.kick()
	}
}
