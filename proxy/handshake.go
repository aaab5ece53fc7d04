package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/relay"
)

// headReader is what a request head is parsed from: a buffered reader over
// a byte limit over the connection. Both are pooled together; they are only
// needed for the head, and the reader's bytes beyond it are copied out.
type headReader struct {
	lr  io.LimitedReader
	br  *bufio.Reader
	rec recorder
}

var headReaders = sync.Pool{New: func() any {
	h := new(headReader)
	h.br = bufio.NewReaderSize(&h.lr, headReaderSize)
	return h
}}

func getHeadReader(c net.Conn, limit int) *headReader {
	h := headReaders.Get().(*headReader)
	h.rec = recorder{r: c, buf: headBufs.Get()}
	h.lr = io.LimitedReader{R: &h.rec, N: int64(limit)}
	h.br.Reset(&h.lr)
	return h
}

func putHeadReader(h *headReader) {
	headBufs.Put(h.rec.buf)
	h.rec = recorder{} // drop the connection so the pool does not pin it
	h.lr.R = nil
	h.br.Reset(&h.lr)
	headReaders.Put(h)
}

// head returns the recorded bytes of the request head just parsed.
func (h *headReader) head() []byte {
	return h.rec.buf.B[:len(h.rec.buf.B)-h.br.Buffered()]
}

// beyondHead returns a copy of the bytes read beyond the head (a frame
// pipelined behind the request; they belong to the relay), nil if none.
func (h *headReader) beyondHead() []byte {
	n := h.br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := h.br.Peek(n)
	return append([]byte(nil), b...)
}

// handshakeLog writes one handshake's or request's log lines, each led
// by the client's address (the forwarded one from a trusted proxy) and,
// once the request is routed, the route's name: what
// logger.With("client", …).With("route", …) would add, but lazily. With
// clones the handler and formats its attributes on every handshake even
// when nothing is logged; here that work is only done for lines the
// logger is enabled for.
type handshakeLog struct {
	logger *slog.Logger
	client string
	route  *config.Route // nil until routed
}

func (l *handshakeLog) enabled(level slog.Level) bool {
	return l.logger.Enabled(context.Background(), level)
}

// write writes a line at level with the leading attributes, then attrs. As
// in slog.Logger's own methods, the line's source is write's caller.
func (l *handshakeLog) write(level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip Callers and write
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	r.AddAttrs(slog.String("client", l.client))
	if l.route != nil {
		r.AddAttrs(slog.String("route", l.route.Name))
	}
	r.AddAttrs(attrs...)
	_ = l.logger.Handler().Handle(ctx, r)
}

// firstRequest reads the first request head of client connection c and
// classifies it: a WebSocket upgrade (or a request for a route that does
// not pass plain HTTP) takes the WebSocket path on this goroutine; a plain
// HTTP request hands the connection, with the bytes read so far replayed,
// to the listener's HTTP server. Every path either hands c on or closes it.
func (s *Server) firstRequest(c net.Conn, ls *listenerState, slot *connSlot, p peer, tk *gateTicket) {
	start := time.Now()
	t := s.table.Load()
	// A value, copied into the upgrade: a pointer stored there would
	// escape with the upgrade's other pointers (the connection), and
	// cost an allocation per handshake.
	hlog := handshakeLog{logger: s.log, client: p.ip}
	log := &hlog

	// 1. The head, bounded in time, size and lines.
	hr := getHeadReader(c, ls.maxHeader)
	req, rej, err := readHead(c, hr, start.Add(t.headTimeout))
	got := len(hr.rec.buf.B)
	s.handshakes.release(p.ip)
	if err != nil {
		putHeadReader(hr)
		s.headCutShort(log, c, err, got)
		slot.release()
		return
	}
	if rej == nil {
		rej = checkHeadLines(hr.head(), ls.maxLines)
	}
	if rej != nil {
		putHeadReader(hr)
		s.rejectClient(&upgrade{c: c, log: *log, slot: slot, start: start}, s.unknown, rej, time.Now().Add(t.headTimeout))
		return
	}
	fwd := forwardingFor(ls.trusted, ls.proto, p, req.Header, req.Host)
	log.client = fwd.clientIP

	// 2. Classify. Plain HTTP goes to the HTTP server (which answers 404
	// when no route matches); upgrades, and the 426 of routes that do not
	// pass plain HTTP, stay on the WebSocket path.
	if !isWebSocketUpgrade(req.Header) {
		if route := t.router.match(req.Host, req.URL.Path); route == nil || route.HTTP != config.HTTPReject {
			prefix := append([]byte(nil), hr.rec.buf.B...)
			putHeadReader(hr)
			// The HTTP server owns c from here and bounds its heads
			// itself; it is no longer a handshake Shutdown waits for.
			s.releaseConn(c)
			// It lives on beyond the relay's event loops.
			nc, err := relay.NetConn(c)
			if err != nil {
				_ = c.Close()
				slot.release()
				return
			}
			fc := &frontConn{Conn: nc, prefix: prefix, peer: p, slot: slot}
			if err := nc.SetReadDeadline(time.Time{}); err != nil || !ls.feed.push(fc) {
				_ = fc.Close()
			}
			return
		}
	}
	buffered := hr.beyondHead()
	putHeadReader(hr)
	s.serveUpgrade(&upgrade{c: c, req: req, buffered: buffered, t: t, fwd: fwd, slot: slot, start: start, log: *log, ticket: tk})
}

// upgrade is one request on the WebSocket path.
type upgrade struct {
	c   net.Conn
	req *http.Request
	// buffered holds the bytes the client sent behind the request head.
	buffered []byte
	t        *routeTable
	fwd      forwarding
	slot     *connSlot
	start    time.Time
	log      handshakeLog
	// ticket counts the handshake at the accept gate; nil for an
	// upgrade on a plain HTTP connection.
	ticket *gateTicket
}

// serveUpgrade performs both handshakes for u and hands the pair to the
// relay. Every path either hands both connections off or closes both.
func (s *Server) serveUpgrade(u *upgrade) {
	c, req, log := u.c, u.req, &u.log
	headDeadline := time.Now().Add(u.t.headTimeout)

	// 3. Route, then validate against the WebSocket rules, the route's
	// origins and its limits.
	if rej := checkHead(req); rej != nil {
		s.rejectClient(u, s.unknown, rej, headDeadline)
		return
	}
	resume, rej := resumeRequest(req) // resume.go
	if rej != nil {
		s.rejectClient(u, s.unknown, rej, headDeadline)
		return
	}
	route := u.t.router.match(req.Host, req.URL.Path)
	if route == nil {
		s.rejectClient(u, s.unknown, reject(http.StatusNotFound, "no route for this host and path"), headDeadline)
		return
	}
	log.route = route
	rs := u.t.states[route]
	timeout := handshakeTimeout(route)
	up, rej := checkUpgrade(req)
	if rej != nil {
		s.rejectClient(u, rs.metrics, rej, time.Now().Add(timeout))
		return
	}
	// up's buffers are reused by later handshakes; nothing refers to
	// them once this one has ended.
	defer putClientUpgrade(up)
	if rej := rs.origins.check(req.Header); rej != nil {
		s.rejectClient(u, rs.metrics, rej, time.Now().Add(timeout))
		return
	}
	if resume.mode == resumeTarget {
		s.resumeSession(u, route, rs, up, resume)
		return
	}
	if reason := s.pairs.reserve(route, u.fwd.clientIP); reason != "" {
		s.rejectClient(u, rs.metrics, busy(reason), time.Now().Add(timeout))
		return
	}
	attached := false
	defer func() {
		if !attached {
			s.pairs.unreserve(route.Name, u.fwd.clientIP)
		}
	}()

	// 4. The upstream handshake, bounded by the route's timeout. The
	// client's read deadline keeps running meanwhile, which is harmless:
	// nothing reads from the client until the relay clears it.
	session := sessionFor(resume, route, req)
	dropExtensionsForSession(resume, route, up)
	ctx, cancel := context.WithTimeout(relay.NearConn(s.ctx, c), timeout)
	if rs.local {
		u.ticket.count() // see acceptGate
	}
	uc, uerr := s.dialUpstream(ctx, route, rs, req, up, &u.fwd)
	u.ticket.end()
	cancel()
	if uerr != nil {
		s.upstreamFailed(u, rs, uerr, time.Now().Add(timeout))
		return
	}
	// The pool counts the pair from its dial; once attached, the engine's
	// close report releases it (Server.PairClosed), and before that, this.
	handedOff := false
	defer func() {
		if !handedOff {
			rs.pool.Release(uc.poolRemote)
		}
	}()

	// 5. Only now, after the upstream's valid 101, does the client get one.
	if err := writeSwitching(c, up.key, uc.hs, uc.header, time.Now().Add(timeout)); err != nil {
		log.write(slog.LevelInfo, "handshake failed: writing 101 to client",
			slog.String("upstream", uc.conn.RemoteAddr().String()), slog.Any("err", err))
		rs.metrics.Handshake(statusResult(statusClientClosed), time.Since(u.start))
		_ = c.Close()
		_ = uc.conn.Close()
		u.slot.release()
		return
	}

	// 6. Handoff. The relay runs without deadlines; it has its own timers.
	errC := c.SetDeadline(time.Time{})
	errU := uc.conn.SetDeadline(time.Time{})
	s.releaseConn(c)
	if err := errors.Join(errC, errU, s.ctx.Err()); err != nil {
		// A Shutdown that ran out of time closed c or canceled s.ctx.
		log.write(slog.LevelInfo, "handshake aborted before handoff",
			slog.String("upstream", uc.conn.RemoteAddr().String()), slog.Any("err", err))
		rs.metrics.Handshake(statusResult(http.StatusServiceUnavailable), time.Since(u.start))
		_ = c.Close()
		_ = uc.conn.Close()
		u.slot.release()
		return
	}
	h := relay.Handoff{
		Client:           c,
		ClientBuffered:   u.buffered,
		Upstream:         uc.conn,
		UpstreamBuffered: uc.buffered,
		Route:            route.Name,
		MaxFrameSize:     route.MaxFrameSize,
		CloseTimeout:     route.CloseTimeout,
		Policy:           rs.policy,
		Session:          session,
		// The listener's keepalive was inherited: the relay need not set it.
		ClientKeepaliveSet: s.clientKeepaliveSet(route),
	}
	if session != nil {
		session.Protocol = uc.hs.Protocol
	}
	for _, e := range uc.hs.Extensions {
		h.Extensions = append(h.Extensions, string(e.Name))
	}
	// Read before the relay owns the connection (and may close it); only
	// formatted when a line is written.
	upstreamAddr := uc.conn.RemoteAddr()
	// Recorded before Attach: the engine may end the pair (and report
	// it) before Attach returns.
	clientAddr := addrPortOf(c)
	clientAddr = netip.AddrPortFrom(clientAddr.Addr().Unmap(), clientAddr.Port())
	s.pairs.attach(route.Name, clientAddr, u.fwd.clientIP, u.slot)
	attached = true
	id, err := s.relay.Attach(h)
	handedOff = err == nil
	if err != nil {
		log.write(slog.LevelWarn, "relay refused pair",
			slog.String("upstream", upstreamAddr.String()), slog.Any("err", err))
		rs.metrics.Handshake(statusResult(http.StatusServiceUnavailable), time.Since(u.start))
		s.pairs.closed(route.Name, clientAddr, 0)
		_ = c.Close()
		_ = uc.conn.Close()
		return
	}
	if session != nil && session.Window > 0 {
		s.pairs.identify(route.Name, clientAddr, id) // a session may resume
	}
	took := time.Since(u.start)
	rs.metrics.Handshake("ok", took)
	if log.enabled(slog.LevelInfo) {
		log.write(slog.LevelInfo, "pair attached",
			slog.Uint64("pair", id),
			slog.String("upstream", upstreamAddr.String()),
			slog.String("protocol", uc.hs.Protocol),
			slog.Any("extensions", h.Extensions),
			// A string, as every duration of the log is (JSON included).
			slog.String("handshake", took.Round(time.Microsecond).String()),
		)
	}
}

// readHead reads and parses the client's request head through hr before
// deadline. It returns a rejection for a head that is too large or
// malformed, or an error when the head was cut short: the client left,
// went silent past the deadline, or reset the connection.
func readHead(c net.Conn, hr *headReader, deadline time.Time) (*http.Request, *rejection, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, nil, err
	}
	malformed, err := hr.readHeadLines()
	if err == nil && !malformed {
		// The common head is parsed from the recorded bytes; any other
		// goes to http.ReadRequest, which decides whether it is valid.
		head := hr.head()
		if req, ok := parseHead(head); ok {
			return req, nil, nil
		}
		req, rerr := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head), len(head)))
		if rerr == nil {
			return req, nil, nil
		}
		return nil, reject(http.StatusBadRequest, "malformed HTTP request"), nil
	}
	// The connection's own error decides first: a timeout or EOF may
	// leave a partial line that reads as malformed.
	if cerr := hr.rec.err; cerr != nil {
		if errors.Is(cerr, io.EOF) {
			return nil, nil, io.ErrUnexpectedEOF
		}
		return nil, nil, cerr
	}
	if tlsHandshakeFailed(c) {
		// Nothing can be answered in plain text (see client_tls.go).
		if err == nil {
			err = errors.New("TLS handshake failed")
		}
		return nil, nil, err
	}
	if hr.lr.N <= 0 {
		return nil, &rejection{
			status: http.StatusRequestHeaderFieldsTooLarge,
			msg:    "request head too large",
		}, nil
	}
	return nil, reject(http.StatusBadRequest, "malformed HTTP request"), nil
}

// headCutShort deals with a head that did not arrive whole (got bytes of
// it did). A timed-out head that had begun is answered 408 and logged as a
// timeout; a connection that sent nothing before the deadline (a browser's
// pre-connect, a balancer's probe) is closed silently; one that closed
// mid-head is logged as such, with nobody left to answer.
func (s *Server) headCutShort(log *handshakeLog, c net.Conn, err error, got int) {
	switch {
	case isTimeout(err) && got > 0:
		s.refused(log, http.StatusRequestTimeout, "request head timed out", slog.Int("head_bytes", got))
		if writeRejection(c, reject(http.StatusRequestTimeout, "request head timed out"), time.Now().Add(lingerTimeout)) == nil {
			closeLingering(c)
			return
		}
	case isTimeout(err):
		log.write(slog.LevelDebug, "no request before the head timeout")
	case errors.Is(err, io.ErrUnexpectedEOF) && got > 0:
		log.write(slog.LevelInfo, "client closed mid-head", slog.Int("head_bytes", got))
	default:
		log.write(slog.LevelDebug, "reading request head", slog.Any("err", err))
	}
	_ = c.Close()
}

// rejectClient answers a handshake the proxy refuses on its own, then
// closes the connection.
func (s *Server) rejectClient(u *upgrade, m metrics.Route, rej *rejection, deadline time.Time) {
	s.refused(&u.log, rej.status, rej.msg)
	m.Handshake(statusResult(rej.status), time.Since(u.start))
	defer u.slot.release()
	if err := writeRejection(u.c, rej, deadline); err != nil {
		u.log.write(slog.LevelDebug, "writing rejection", slog.Any("err", err))
		_ = u.c.Close()
		return
	}
	closeLingering(u.c)
}

// statusResult is a status as a handshake metric's result. A handshake
// that ends without an answer is counted as what ended it: 499 when the
// client went away before its 101, 503 when the server gave up on it.
func statusResult(status int) string { return strconv.Itoa(status) }

// upstreamFailed tells the client about a failed upstream handshake: the
// upstream's own answer as it came, or 502/503/504, then closes the
// connection: nothing that follows on it is read as a request.
func (s *Server) upstreamFailed(u *upgrade, rs *routeState, uerr *upstreamError, deadline time.Time) {
	defer u.slot.release()
	var err error
	if uerr.resp != nil {
		s.refused(&u.log, uerr.resp.status, "upstream refused the upgrade", slog.String("upstream", uerr.serverOr(rs.route.Upstream.Address)))
		rs.metrics.Handshake(statusResult(uerr.resp.status), time.Since(u.start))
		err = writeUpstreamResponse(u.c, uerr.resp, deadline)
	} else {
		s.refused(&u.log, uerr.status, upstreamMessage(uerr.status), slog.String("upstream", uerr.serverOr(rs.route.Upstream.Address)), slog.Any("err", uerr.err))
		rs.metrics.Handshake(statusResult(uerr.status), time.Since(u.start))
		err = writeRejection(u.c, &rejection{status: uerr.status, msg: upstreamMessage(uerr.status)}, deadline)
	}
	if err != nil {
		_ = u.c.Close()
		return
	}
	closeLingering(u.c)
}

// upstreamMessage is the body for an upstream failure; the details stay in
// the log, not in front of the client.
func upstreamMessage(status int) string {
	switch status {
	case http.StatusGatewayTimeout:
		return "upstream did not complete the WebSocket handshake in time"
	case http.StatusServiceUnavailable:
		return "server shutting down"
	default:
		return "upstream WebSocket handshake failed"
	}
}
