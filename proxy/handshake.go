package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// headReader is what a request head is parsed from: a buffered reader over
// a byte limit over the connection. Both are pooled together; they are only
// needed for the head, and the reader's bytes beyond it are copied out.
type headReader struct {
	lr io.LimitedReader
	br *bufio.Reader
}

var headReaders = sync.Pool{New: func() any {
	h := new(headReader)
	h.br = bufio.NewReaderSize(&h.lr, headReaderSize)
	return h
}}

func getHeadReader(c net.Conn, limit int) *headReader {
	h := headReaders.Get().(*headReader)
	h.lr = io.LimitedReader{R: c, N: int64(limit)}
	h.br.Reset(&h.lr)
	return h
}

func putHeadReader(h *headReader) {
	h.lr.R = nil // drop the connection so the pool does not pin it
	h.br.Reset(&h.lr)
	headReaders.Put(h)
}

// handshakeLog writes one handshake's log lines, each led by the client's
// address and, once the request is routed, the route's name: what
// logger.With("client", …).With("route", …) would add, but lazily. With
// clones the handler and formats its attributes, and the address is a new
// string, on every handshake even when nothing is logged; here that work is
// only done for lines the logger is enabled for.
type handshakeLog struct {
	logger *slog.Logger
	client net.Conn
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
	r.AddAttrs(slog.String("client", l.client.RemoteAddr().String()))
	if l.route != nil {
		r.AddAttrs(slog.String("route", l.route.Name))
	}
	r.AddAttrs(attrs...)
	_ = l.logger.Handler().Handle(ctx, r)
}

// handshake performs both handshakes for client connection c and hands the
// pair to the relay. Every path either hands both connections off or
// closes both.
func (s *Server) handshake(c net.Conn, maxHeader int) {
	start := time.Now()
	log := &handshakeLog{logger: s.log, client: c}

	// 1. The head, bounded in time and size.
	req, buffered, rej, err := s.readHead(c, maxHeader, start.Add(s.headTimeout))
	if err != nil {
		// EOF before a complete head, a head timeout, a reset: the client
		// is gone or too slow, and there is nobody to answer.
		log.write(slog.LevelDebug, "handshake failed: reading request head", slog.Any("err", err))
		_ = c.Close()
		return
	}
	if rej != nil {
		s.rejectClient(log, c, rej, time.Now().Add(s.headTimeout))
		return
	}

	// 2. Route, then validate against the WebSocket rules.
	if rej = checkHead(req); rej != nil {
		s.rejectClient(log, c, rej, time.Now().Add(s.headTimeout))
		return
	}
	route := s.router.match(req.Host, req.URL.Path)
	if route == nil {
		s.rejectClient(log, c, reject(http.StatusNotFound, "no route for this host and path"), time.Now().Add(s.headTimeout))
		return
	}
	log.route = route
	rs := s.routes[route]
	timeout := handshakeTimeout(route)
	up, rej := checkUpgrade(req)
	if rej != nil {
		s.rejectClient(log, c, rej, time.Now().Add(timeout))
		return
	}
	// up's buffers are reused by later handshakes; nothing refers to
	// them once this one has ended.
	defer putClientUpgrade(up)

	// 3. The upstream handshake, bounded by the route's timeout. The
	// client's read deadline keeps running meanwhile, which is harmless:
	// nothing reads from the client until the relay clears it.
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	uc, uerr := s.dialUpstream(ctx, route, rs, req, up, clientIP(c))
	cancel()
	if uerr != nil {
		s.upstreamFailed(log, c, route, uerr, time.Now().Add(timeout))
		return
	}
	// The pool counts the pair from its dial; once attached, the engine's
	// close report releases it (Server.PairClosed), and before that, this.
	attached := false
	defer func() {
		if !attached {
			rs.pool.Release(uc.poolRemote)
		}
	}()

	// 4. Only now, after the upstream's valid 101, does the client get one.
	if err := writeSwitching(c, up.key, uc.hs, uc.header, time.Now().Add(timeout)); err != nil {
		log.write(slog.LevelInfo, "handshake failed: writing 101 to client",
			slog.String("upstream", uc.conn.RemoteAddr().String()), slog.Any("err", err))
		_ = c.Close()
		_ = uc.conn.Close()
		return
	}

	// 5. Handoff. The relay runs without deadlines; it has its own timers.
	errC := c.SetDeadline(time.Time{})
	errU := uc.conn.SetDeadline(time.Time{})
	s.releaseConn(c)
	if err := errors.Join(errC, errU, s.ctx.Err()); err != nil {
		// A Shutdown that ran out of time closed c or canceled s.ctx.
		log.write(slog.LevelInfo, "handshake aborted before handoff",
			slog.String("upstream", uc.conn.RemoteAddr().String()), slog.Any("err", err))
		_ = c.Close()
		_ = uc.conn.Close()
		return
	}
	h := relay.Handoff{
		Client:           c,
		ClientBuffered:   buffered,
		Upstream:         uc.conn,
		UpstreamBuffered: uc.buffered,
		Route:            route.Name,
		MaxFrameSize:     route.MaxFrameSize,
		CloseTimeout:     route.CloseTimeout,
		Policy:           rs.policy,
	}
	for _, e := range uc.hs.Extensions {
		h.Extensions = append(h.Extensions, string(e.Name))
	}
	// Read before the relay owns the connection (and may close it); only
	// formatted when a line is written.
	upstreamAddr := uc.conn.RemoteAddr()
	id, err := s.relay.Attach(h)
	attached = err == nil
	if err != nil {
		log.write(slog.LevelWarn, "relay refused pair",
			slog.String("upstream", upstreamAddr.String()), slog.Any("err", err))
		_ = c.Close()
		_ = uc.conn.Close()
		return
	}
	if log.enabled(slog.LevelInfo) {
		log.write(slog.LevelInfo, "pair attached",
			slog.Uint64("id", id),
			slog.String("upstream", upstreamAddr.String()),
			slog.String("protocol", uc.hs.Protocol),
			slog.Any("extensions", h.Extensions),
			slog.Duration("handshake", time.Since(start)),
		)
	}
}

// readHead reads and parses the client's request head, at most maxHeader
// bytes, before deadline. It returns the bytes the reader had buffered
// beyond the head (a frame pipelined behind the request; they belong to the
// relay), or a rejection for a head that is too large or malformed, or an
// error when the client left or was too slow (nothing to answer then).
func (s *Server) readHead(c net.Conn, maxHeader int, deadline time.Time) (*http.Request, []byte, *rejection, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, nil, nil, err
	}
	hr := getHeadReader(c, maxHeader)
	defer putHeadReader(hr)

	req, err := http.ReadRequest(hr.br)
	if err != nil {
		switch {
		case hr.lr.N <= 0:
			return nil, nil, &rejection{
				status: http.StatusRequestHeaderFieldsTooLarge,
				msg:    "request head too large",
			}, nil
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err), errors.Is(err, net.ErrClosed):
			return nil, nil, nil, err
		default:
			var ne *net.OpError
			if errors.As(err, &ne) {
				return nil, nil, nil, err // reset and the like
			}
			return nil, nil, reject(http.StatusBadRequest, "malformed HTTP request"), nil
		}
	}
	var buffered []byte
	if n := hr.br.Buffered(); n > 0 {
		b, _ := hr.br.Peek(n)
		buffered = append([]byte(nil), b...)
	}
	return req, buffered, nil, nil
}

// rejectClient answers a request the proxy refuses on its own, then closes
// the connection. Client mistakes log at debug: they are the client's
// business and can be many.
func (s *Server) rejectClient(log *handshakeLog, c net.Conn, rej *rejection, deadline time.Time) {
	log.write(slog.LevelDebug, "handshake rejected", slog.Int("status", rej.status), slog.String("reason", rej.msg))
	if err := writeRejection(c, rej, deadline); err != nil {
		log.write(slog.LevelDebug, "writing rejection", slog.Any("err", err))
		_ = c.Close()
		return
	}
	closeLingering(c)
}

// upstreamFailed tells the client about a failed upstream handshake: the
// upstream's own answer as it came, or 502/503/504. Logged at info: unlike
// client mistakes, these say something about the upstream.
func (s *Server) upstreamFailed(log *handshakeLog, c net.Conn, route *config.Route, uerr *upstreamError, deadline time.Time) {
	var err error
	if uerr.resp != nil {
		log.write(slog.LevelInfo, "handshake failed: upstream refused the upgrade",
			slog.String("upstream", uerr.serverOr(route.Upstream.Address)), slog.Int("status", uerr.resp.status))
		err = writeUpstreamResponse(c, uerr.resp, deadline)
	} else {
		log.write(slog.LevelInfo, "handshake failed: upstream",
			slog.String("upstream", uerr.serverOr(route.Upstream.Address)), slog.Int("status", uerr.status), slog.Any("err", uerr.err))
		err = writeRejection(c, &rejection{status: uerr.status, msg: upstreamMessage(uerr.status)}, deadline)
	}
	if err != nil {
		_ = c.Close()
		return
	}
	closeLingering(c)
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

// clientIP is the client's address without port, for X-Forwarded-For.
func clientIP(c net.Conn) string {
	// The IP (and zone) of a TCP address directly: what splitting its
	// String() gives, minus the port's formatting and the joined string.
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && len(a.IP) > 0 {
		if a.Zone != "" {
			return a.IP.String() + "%" + a.Zone
		}
		return a.IP.String()
	}
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
