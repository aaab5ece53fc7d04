package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// headReaders pools the readers request heads are parsed from; a reader
// is only needed for the head, its bytes beyond the head are copied out.
var headReaders sync.Pool

func getHeadReader(r io.Reader) *bufio.Reader {
	if br, ok := headReaders.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, headReaderSize)
}

func putHeadReader(br *bufio.Reader) {
	br.Reset(nil) // drop the connection so the pool does not pin it
	headReaders.Put(br)
}

// handshake performs both handshakes for client connection c and hands the
// pair to the relay. Every path either hands both connections off or
// closes both.
func (s *Server) handshake(c net.Conn, maxHeader int) {
	start := time.Now()
	clientAddr := c.RemoteAddr().String()
	log := s.log.With("client", clientAddr)

	// 1. The head, bounded in time and size.
	req, buffered, rej, err := s.readHead(c, maxHeader, start.Add(s.headTimeout))
	if err != nil {
		// EOF before a complete head, a head timeout, a reset: the client
		// is gone or too slow, and there is nobody to answer.
		log.Debug("handshake failed: reading request head", "err", err)
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
	log = log.With("route", route.Name)
	timeout := handshakeTimeout(route)
	up, rej := checkUpgrade(req)
	if rej != nil {
		s.rejectClient(log, c, rej, time.Now().Add(timeout))
		return
	}

	// 3. The upstream handshake, bounded by the route's timeout. The
	// client's read deadline keeps running meanwhile, which is harmless:
	// nothing reads from the client until the relay clears it.
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	uc, uerr := dialUpstream(ctx, route, req, up, clientIP(c))
	cancel()
	if uerr != nil {
		s.upstreamFailed(log, c, route, uerr, time.Now().Add(timeout))
		return
	}
	upstreamAddr := uc.conn.RemoteAddr().String()

	// 4. Only now, after the upstream's valid 101, does the client get one.
	if err := writeSwitching(c, up.key, uc.hs, uc.header, time.Now().Add(timeout)); err != nil {
		log.Info("handshake failed: writing 101 to client", "upstream", upstreamAddr, "err", err)
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
		log.Info("handshake aborted before handoff", "upstream", upstreamAddr, "err", err)
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
		Policy:           s.policies[route],
	}
	for _, e := range uc.hs.Extensions {
		h.Extensions = append(h.Extensions, string(e.Name))
	}
	id, err := s.relay.Attach(h)
	if err != nil {
		log.Warn("relay refused pair", "upstream", upstreamAddr, "err", err)
		_ = c.Close()
		_ = uc.conn.Close()
		return
	}
	log.Info("pair attached",
		"id", id,
		"upstream", upstreamAddr,
		"protocol", uc.hs.Protocol,
		"extensions", h.Extensions,
		"handshake", time.Since(start),
	)
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
	lr := &io.LimitedReader{R: c, N: int64(maxHeader)}
	br := getHeadReader(lr)
	defer putHeadReader(br)

	req, err := http.ReadRequest(br)
	if err != nil {
		switch {
		case lr.N <= 0:
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
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		buffered = append([]byte(nil), b...)
	}
	return req, buffered, nil, nil
}

// rejectClient answers a request the proxy refuses on its own, then closes
// the connection. Client mistakes log at debug: they are the client's
// business and can be many.
func (s *Server) rejectClient(log *slog.Logger, c net.Conn, rej *rejection, deadline time.Time) {
	log.Debug("handshake rejected", "status", rej.status, "reason", rej.msg)
	if err := writeRejection(c, rej, deadline); err != nil {
		log.Debug("writing rejection", "err", err)
		_ = c.Close()
		return
	}
	closeLingering(c)
}

// upstreamFailed tells the client about a failed upstream handshake: the
// upstream's own answer as it came, or 502/503/504. Logged at info: unlike
// client mistakes, these say something about the upstream.
func (s *Server) upstreamFailed(log *slog.Logger, c net.Conn, route *config.Route, uerr *upstreamError, deadline time.Time) {
	var err error
	if uerr.resp != nil {
		log.Info("handshake failed: upstream refused the upgrade",
			"upstream", route.Upstream.Address, "status", uerr.resp.status)
		err = writeUpstreamResponse(c, uerr.resp, deadline)
	} else {
		log.Info("handshake failed: upstream",
			"upstream", route.Upstream.Address, "status", uerr.status, "err", uerr.err)
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
	addr := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
