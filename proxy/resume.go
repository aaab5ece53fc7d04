package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// This file is the front door of resumable sessions
// (examples/client/RESUME.md): it reads a client's opt-in or resume
// request from the query, hides it from the upstream and the logs, makes
// an opted-in pair a session, and answers a resume itself, without
// dialing the upstream. The sessions themselves (tokens, the welcome,
// acknowledgements, the replay) are the relay's.

// The query parameters of the protocol. wsalive removes both from every
// request target before the upstream sees it, on every route.
const (
	paramResume = "wsalive_resume"
	paramRecv   = "wsalive_recv"
	// resumeNew is the wsalive_resume value that opts a client in.
	resumeNew = "new"
)

// resumeMode is what a request asked of sessions.
type resumeMode uint8

const (
	resumeNone   resumeMode = iota // an ordinary client
	resumeOptIn                    // wsalive_resume=new: start a session
	resumeTarget                   // wsalive_resume=<token>: resume one
)

// resumeParams is what a request's wsalive_* parameters said.
type resumeParams struct {
	mode  resumeMode
	token string
	// recv is the helper's down count; recvOK is false when it was
	// missing or not a decimal number.
	recv   uint64
	recvOK bool
}

// takeResumeParams removes every wsalive_resume and wsalive_recv
// parameter from rawQuery and returns the rest, and what they said. The
// other parameters are kept byte for byte, in their order: the upstream
// must see exactly what it would have seen without wsalive. A query
// without "wsalive_" is returned as is at the cost of one search.
//
// Two wsalive_resume parameters are refused (400): no helper sends them,
// and choosing one would be a guess about which the client meant.
func takeResumeParams(rawQuery string) (rest string, p resumeParams, rej *rejection) {
	if !strings.Contains(rawQuery, "wsalive_") {
		return rawQuery, p, nil
	}
	var kept strings.Builder
	var recv string
	seenResume, recvs := false, 0
	for part := range strings.SplitSeq(rawQuery, "&") {
		name, value, _ := strings.Cut(part, "=")
		switch name {
		case paramResume:
			if seenResume {
				return "", resumeParams{}, reject(http.StatusBadRequest, "wsalive_resume given twice")
			}
			seenResume = true
			if value == resumeNew {
				p.mode = resumeOptIn
			} else {
				p.mode, p.token = resumeTarget, value
			}
			continue
		case paramRecv:
			recv = value
			recvs++
			continue
		}
		if kept.Len() > 0 {
			kept.WriteByte('&')
		}
		kept.WriteString(part)
	}
	// A second wsalive_recv makes the count ambiguous: malformed.
	if p.mode == resumeTarget && recvs == 1 {
		p.recv, p.recvOK = parseCount(recv)
	}
	return kept.String(), p, nil
}

// resumeRequest takes the wsalive_* parameters out of req's target, so
// that neither the upstream nor a log line ever sees them, and returns
// what they asked.
func resumeRequest(req *http.Request) (resumeParams, *rejection) {
	rest, p, rej := takeResumeParams(req.URL.RawQuery)
	if rej == nil {
		req.URL.RawQuery = rest
	}
	return p, rej
}

// parseCount parses a decimal count: digits only, no sign, no leading
// zero but for "0" itself, at most 2^64-1. Anything else is malformed.
func parseCount(s string) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// stripResumeParams is takeResumeParams for a target whose parameters are
// only to be hidden (plain HTTP pass-through): duplicates are dropped too.
func stripResumeParams(rawQuery string) string {
	if !strings.Contains(rawQuery, "wsalive_") {
		return rawQuery
	}
	var kept []string
	for part := range strings.SplitSeq(rawQuery, "&") {
		if name, _, _ := strings.Cut(part, "="); name == paramResume || name == paramRecv {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// sessionFor returns the Handoff.Session of an opted-in client of route,
// nil for any other. A route without a resume block gets a session with
// window 0: the helper is told, in the welcome, that it cannot resume.
// Its Protocol is filled in once the upstream has chosen one.
func sessionFor(p resumeParams, route *config.Route, req *http.Request) *relay.SessionOptions {
	if p.mode != resumeOptIn {
		return nil
	}
	o := &relay.SessionOptions{Origin: req.Header.Get("Origin")}
	if r := route.Resume; r != nil {
		o.Window, o.Buffer = r.Window, r.Buffer
	}
	return o
}

// dropExtensionsForSession removes the client's offered extensions from
// an opted-in request of a resume route: a compression context cannot
// move from one client connection to the next, so a session runs
// uncompressed.
func dropExtensionsForSession(p resumeParams, route *config.Route, up *clientUpgrade) {
	if p.mode == resumeOptIn && route.Resume != nil {
		clear(up.extensions)
		up.extensions = up.extensions[:0]
	}
}

// Resumer is what the server needs of the relay to resume sessions;
// *relay.Engine implements it. A Relay without it refuses every resume
// as an unknown session (4900).
type Resumer interface {
	Resume(relay.ResumeRequest) (*relay.Claim, error)
}

// resumeSession answers a resume request: route and origin were checked
// as for any upgrade. Nothing is dialed: the relay's session is claimed,
// the 101 written by wsalive itself with the session's subprotocol, and
// the client connection attached to the session. A resume that cannot be
// honoured is answered 101 and a close frame with its refusal code
// (RESUME.md §6), which the helper understands where a browser would
// hide an HTTP status. Every path hands u.c on or closes it, and gives
// back u.slot unless the session took it over.
func (s *Server) resumeSession(u *upgrade, route *config.Route, rs *routeState, up *clientUpgrade, p resumeParams) {
	deadline := time.Now().Add(handshakeTimeout(route))
	if !p.recvOK {
		s.refuseResume(u, rs, up, &relay.ResumeRefused{Code: relay.ResumeCannotResume, Reason: "resume: cannot continue"}, deadline)
		return
	}
	res, ok := s.relay.(Resumer)
	if !ok {
		s.refuseResume(u, rs, up, &relay.ResumeRefused{Code: relay.ResumeUnknown, Reason: "resume: unknown session"}, deadline)
		return
	}
	claim, err := res.Resume(relay.ResumeRequest{
		Token:  p.token,
		Recv:   p.recv,
		Route:  route.Name,
		Origin: u.req.Header.Get("Origin"),
	})
	if err != nil {
		var refused *relay.ResumeRefused
		if !errors.As(err, &refused) {
			refused = &relay.ResumeRefused{Code: relay.ResumeUnknown, Reason: "resume: unknown session"}
		}
		s.refuseResume(u, rs, up, refused, deadline)
		return
	}
	// The session answers with the subprotocol the upstream chose; a
	// client that does not offer it again could not speak it.
	if claim.Protocol != "" && !offers(up.protocols, claim.Protocol) {
		claim.Release()
		s.refuseResume(u, rs, up, &relay.ResumeRefused{Code: relay.ResumeCannotResume, Reason: "resume: cannot continue"}, deadline)
		return
	}
	c, log := u.c, &u.log
	if err := writeSwitching(c, up.key, ws.Handshake{Protocol: claim.Protocol}, nil, deadline); err != nil {
		claim.Release()
		log.write(slog.LevelInfo, "resume failed: writing 101 to client", slog.Any("err", err))
		rs.metrics.Handshake(statusResult(statusClientClosed), time.Since(u.start))
		_ = c.Close()
		u.slot.release()
		return
	}
	s.releaseConn(c)
	if err := errors.Join(c.SetDeadline(time.Time{}), s.ctx.Err()); err != nil {
		claim.Release()
		log.write(slog.LevelInfo, "resume aborted before handoff", slog.Any("err", err))
		rs.metrics.Handshake(statusResult(http.StatusServiceUnavailable), time.Since(u.start))
		_ = c.Close()
		u.slot.release()
		return
	}
	// The session keeps the pair's place against max_pairs, taken when it
	// started; the new connection's listener slot stands in for the old
	// one's, which is given back (pairs.resumed).
	id, err := claim.Attach(c, u.buffered)
	if err != nil {
		// The engine owns c and has closed it, after the refusal's close
		// frame when the session went meanwhile (the upstream closed, a
		// drain).
		u.slot.release()
		var refused *relay.ResumeRefused
		if errors.As(err, &refused) {
			s.resumeRefused(u, rs, refused)
			return
		}
		log.write(slog.LevelWarn, "relay refused resumed connection", slog.Any("err", err))
		rs.metrics.Handshake(statusResult(http.StatusServiceUnavailable), time.Since(u.start))
		return
	}
	s.pairs.resumed(id, u.slot)
	took := time.Since(u.start)
	rs.metrics.Handshake(resultResumed, took)
	if log.enabled(slog.LevelInfo) {
		log.write(slog.LevelInfo, "session resumed",
			slog.Uint64("pair", id),
			slog.String("protocol", claim.Protocol),
			slog.String("handshake", took.Round(time.Microsecond).String()),
		)
	}
}

// resultResumed is the handshake metric's result for a resume honoured.
// A refused one is counted under its close code ("4901", ...), next to
// the HTTP statuses of other refusals.
const resultResumed = "resumed"

// refuseResume answers a resume that cannot be honoured: 101, then a
// close frame with the refusal's code and reason, then the connection is
// closed. The 101 names the subprotocol the client offered first, if any,
// so that a strict client library accepts the answer and reads the close.
func (s *Server) refuseResume(u *upgrade, rs *routeState, up *clientUpgrade, r *relay.ResumeRefused, deadline time.Time) {
	defer u.slot.release()
	s.resumeRefused(u, rs, r)
	var hs ws.Handshake
	if len(up.protocols) > 0 {
		hs.Protocol = up.protocols[0]
	}
	if err := writeSwitching(u.c, up.key, hs, nil, deadline); err != nil {
		_ = u.c.Close()
		return
	}
	frame := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(r.Code), r.Reason))
	if err := ws.WriteFrame(u.c, frame); err != nil {
		_ = u.c.Close()
		return
	}
	closeLingering(u.c)
}

// resumeRefused logs and counts a refused resume. The token is never
// logged: the code says what was wrong with it. Lines share the budget of
// the other refusals (refusal.go), so that a client guessing tokens
// cannot flood the log.
func (s *Server) resumeRefused(u *upgrade, rs *routeState, r *relay.ResumeRefused) {
	rs.metrics.Handshake(strconv.Itoa(int(r.Code)), time.Since(u.start))
	if !u.log.enabled(slog.LevelInfo) {
		return
	}
	ok, suppressed := s.refusals.allow(time.Now())
	if suppressed > 0 {
		s.log.Info("refusal lines suppressed", "count", suppressed, "window", "1s")
	}
	if ok {
		u.log.write(slog.LevelInfo, "resume refused", slog.Int("code", int(r.Code)), slog.String("reason", r.Reason))
	}
}

// offers reports whether the client offered protocol.
func offers(protocols []string, protocol string) bool {
	for _, p := range protocols {
		if p == protocol {
			return true
		}
	}
	return false
}
