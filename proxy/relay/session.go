package relay

import (
	"errors"
	"fmt"
	"net"
	"time"
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
	// Buffer bounds the upstream-to-client bytes kept for replay.
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

// Claim is a session taken for one resume attempt: its token is spent,
// and until Attach or Release nobody else can take it.
type Claim struct {
	// Protocol is the subprotocol to answer the 101 with.
	Protocol string
	s        *session
}

// session is the engine's record of one session. Its fields belong to
// the resume implementation.
type session struct{}

var errResumeNotBuilt = errors.New("relay: resumable sessions are not built yet")

// Resume claims the session that req names. The returned error is a
// *ResumeRefused when the session cannot be resumed.
func (e *Engine) Resume(req ResumeRequest) (*Claim, error) {
	return nil, &ResumeRefused{Code: ResumeUnknown, Reason: "resume: unknown session"}
}

// Attach gives the claimed session its new client connection, to which
// the 101 has been written; buffered holds bytes the client sent behind
// its request head. The engine owns client from then on.
func (c *Claim) Attach(client net.Conn, buffered []byte) (uint64, error) {
	_ = client.Close()
	return 0, errResumeNotBuilt
}

// Release gives the claim back unused (the 101 could not be written):
// the session waits for its client again. Its token stays spent.
func (c *Claim) Release() {}
