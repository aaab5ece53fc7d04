package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/config"
)

const (
	// maxUpstreamBody bounds the body of a non-101 upstream answer that is
	// copied back to the client.
	maxUpstreamBody = 1 << 20
	// maxUpstreamHandshake bounds everything read from the upstream during
	// the handshake (response head, error body, and what the reader buffered
	// behind them). The upstream is configured, not trusted blindly: without
	// a bound, an endless header line would grow memory until the deadline.
	maxUpstreamHandshake = 2*maxUpstreamBody + 64<<10
)

// errUpstreamTooLarge is returned when the upstream's handshake answer
// exceeds maxUpstreamHandshake.
var errUpstreamTooLarge = errors.New("upstream handshake answer too large")

// errUpstreamBodyTooLarge is returned when a non-101 answer's body exceeds
// maxUpstreamBody.
var errUpstreamBodyTooLarge = errors.New("upstream error body too large")

// upstreamResponse is a non-101 upstream answer, read in full so it can be
// copied back to the client.
type upstreamResponse struct {
	status int
	reason string
	header http.Header
	body   []byte
}

// upstreamConn is the result of a successful upstream handshake.
type upstreamConn struct {
	conn net.Conn // the raw *net.TCPConn, or a *tls.Conn for wss://
	// buffered holds bytes the upstream sent behind its 101.
	buffered []byte
	hs       ws.Handshake
	// header holds the upstream's other 101 headers (Set-Cookie, …), minus
	// hop-by-hop ones; nil when there are none.
	header http.Header
	// poolRemote is conn's remote address, which the route's pool counts
	// the pair under until it is released.
	poolRemote string
}

// upstreamError is a failed upstream handshake, with what to tell the
// client: either resp (the upstream's own non-101 answer, copied back) or
// status (502, 503, 504).
type upstreamError struct {
	status int
	resp   *upstreamResponse
	err    error
	// server is the address of the server that answered or failed, as
	// configured; "" when no server was reached (err names those tried).
	server string
}

// serverOr returns the server that answered or failed, or fallback.
func (e *upstreamError) serverOr(fallback string) string {
	if e.server != "" {
		return e.server
	}
	return fallback
}

func (e *upstreamError) Error() string {
	if e.resp != nil {
		return fmt.Sprintf("upstream answered %d", e.resp.status)
	}
	return e.err.Error()
}

func (e *upstreamError) Unwrap() error { return e.err }

// offeredExtensions is what the upstream is offered of the client's
// extensions. A route with app_ping does not pass permessage-deflate on:
// browsers compress every message once it is negotiated, and wsalive can
// only recognise an application ping it can read, so such a route's
// messages flow uncompressed end to end.
func offeredExtensions(route *config.Route, offered []httphead.Option) []httphead.Option {
	if route.AppPing == nil {
		return offered
	}
	kept := make([]httphead.Option, 0, len(offered))
	for _, o := range offered {
		if string(o.Name) != "permessage-deflate" {
			kept = append(kept, o)
		}
	}
	return kept
}

// upstreamNetDialer dials the routes' upstream sockets. Go's default TCP
// keepalive (15 s) is off: it costs four setsockopt calls per connection,
// and the relay sets the route's own keepalive (config.TCPKeepalive, on by
// default) on both sockets of every pair it takes, overwriting them. A
// connection that never becomes a pair is bounded by the handshake
// timeout instead.
var upstreamNetDialer = net.Dialer{KeepAlive: -1}

// upstreamDialer is the per-handshake state of an upstream handshake: a
// ws.Dialer whose callbacks are bound to it, and what they collect. It is
// pooled so that the callbacks are bound once, not made anew (with the
// variables they capture) on every handshake.
type upstreamDialer struct {
	d    ws.Dialer
	conn limitedConn
	// fwdHeader is d.Header: the request headers forwarded upstream.
	fwdHeader upstreamHeader
	// header collects the 101's other headers; nil until there is one.
	header     http.Header
	errResp    *upstreamResponse
	errRespErr error
}

var upstreamDialers = sync.Pool{New: func() any {
	u := new(upstreamDialer)
	u.d.OnHeader = u.onHeader
	u.d.OnStatusError = u.onStatusError
	return u
}}

// onHeader sees every 101 header gobwas does not check itself; the
// arguments are only valid during the call, hence the copies. gobwas does
// not validate names, and a name with a bare CR in it would be written to
// the client as is: such lines are dropped. (Header.Write already
// neutralizes CR and LF in values.)
func (u *upstreamDialer) onHeader(k, v []byte) error {
	if name := string(k); isToken(name) {
		if u.header == nil {
			u.header = http.Header{}
		}
		u.header.Add(name, string(v))
	}
	return nil
}

// onStatusError gets the whole non-101 answer, status line first, and runs
// before Upgrade returns, so the body read is bounded by the same deadline
// as the rest of the handshake.
func (u *upstreamDialer) onStatusError(_ int, _ []byte, r io.Reader) {
	u.errResp, u.errRespErr = readUpstreamResponse(r)
}

// release returns u to the pool without what it referred to.
func (u *upstreamDialer) release() {
	u.d.Protocols, u.d.Extensions, u.d.Header = nil, nil, nil
	u.conn = limitedConn{}
	u.fwdHeader = upstreamHeader{}
	u.header, u.errResp, u.errRespErr = nil, nil, nil
	upstreamDialers.Put(u)
}

// dialUpstream dials the route's upstream and performs the client side of
// the WebSocket handshake on behalf of the client, bounded by ctx.
//
// It does what ws.Dialer.Dial would, minus what that costs per call: the
// upstream URL is parsed once per route, and the handshake is bounded by a
// deadline on the connection rather than by a goroutine that watches ctx.
// Shutdown aborts it by closing the connection, as it does the client's.
// req's header is consumed: it is edited into the upstream request's.
func (s *Server) dialUpstream(ctx context.Context, route *config.Route, rs *routeState, req *http.Request, up *clientUpgrade, fwd *forwarding) (upstreamConn, *upstreamError) {
	if rs.upstreamErr != nil {
		return upstreamConn{}, &upstreamError{status: http.StatusBadGateway, err: rs.upstreamErr}
	}
	// The Dialer only reads the URL's host and RequestURI(). Without an
	// upstream path the target is the client's own, unchanged
	// (upstreamTarget(u, …) is u.RequestURI() then), so the client's
	// parsed URL serves; req is not used for anything else afterwards.
	// Otherwise the mapped target is parsed, whose RequestURI() gives it
	// back as it is.
	u := req.URL
	if route.Upstream.Path != "" {
		var err error
		u, err = url.ParseRequestURI(upstreamTarget(req.URL, route.PathPrefix, route.Upstream.Path))
		if err != nil {
			return upstreamConn{}, &upstreamError{status: http.StatusBadGateway, err: err}
		}
	}
	// The pool fails over among the route's servers while connecting
	// (TCP, and for wss:// the TLS handshake); once connected, whatever
	// the server answers is the answer.
	conn, picked, err := rs.pool.Dial(ctx, rs.pool.Key(req, fwd.clientIP))
	if err != nil {
		return upstreamConn{}, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}
	// What parsing "ws://" + address + target gave: the target starts
	// with "/", so the server's address is the URL's whole authority.
	u.Scheme, u.Host = rs.upstream.Scheme, picked.Server.Address
	uc, uerr := s.upgradeUpstream(ctx, conn, u, route, req, up, fwd)
	if uerr != nil {
		if uerr.resp == nil && !errors.Is(uerr.err, context.Canceled) {
			rs.pool.Failed(picked.Server.Address, uerr.err) // no answer: the server's fault
		}
		rs.pool.Release(picked.Remote)
		_ = conn.Close()
		uerr.server = picked.Server.Address
	}
	uc.poolRemote = picked.Remote
	return uc, uerr
}

// upgradeUpstream performs the WebSocket handshake on conn, the upstream
// connection just dialed.
func (s *Server) upgradeUpstream(ctx context.Context, conn net.Conn, u *url.URL, route *config.Route, req *http.Request, up *clientUpgrade, fwd *forwarding) (upstreamConn, *upstreamError) {
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return upstreamConn{}, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}
	// Registered like the client's connection, conn is closed by a
	// Shutdown that runs out of time. If that already happened, ctx is
	// canceled: Shutdown cancels before it closes.
	s.trackHandshakeConn(conn)
	defer s.releaseConn(conn)
	if err := ctx.Err(); err != nil {
		return upstreamConn{}, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}

	ud := upstreamDialers.Get().(*upstreamDialer)
	defer ud.release()
	ud.d.Protocols = up.protocols
	ud.d.Extensions = offeredExtensions(route, up.extensions)
	ud.fwdHeader.h = forwardHeader(req, fwd)
	ud.d.Header = &ud.fwdHeader
	ud.conn = limitedConn{Conn: conn, left: maxUpstreamHandshake}

	br, hs, err := ud.d.Upgrade(&ud.conn, u)
	if err != nil {
		// What ended the handshake is reported as ctx's error, as
		// ws.Dialer.Dial did: Shutdown closes conn after canceling ctx, and
		// conn's deadline is ctx's, which may pass a moment before ctx's
		// own timer fires.
		if cerr := ctx.Err(); cerr != nil && (isTimeout(err) || errors.Is(err, net.ErrClosed)) {
			err = cerr
		} else if isTimeout(err) {
			err = context.DeadlineExceeded
		}
		var se ws.StatusError
		if errors.As(err, &se) {
			switch {
			case ud.errRespErr == nil && ud.errResp != nil:
				return upstreamConn{}, &upstreamError{resp: ud.errResp, err: err}
			case ud.errRespErr != nil:
				err = fmt.Errorf("upstream answered %d: reading it: %w", int(se), ud.errRespErr)
			}
		}
		return upstreamConn{}, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}

	uc := upstreamConn{conn: conn, hs: hs, header: ud.header}
	if br != nil {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			uc.buffered = append([]byte(nil), b...)
		}
		ws.PutReader(br)
	}
	// A 101 carries no body; a length or coding here would describe the
	// upstream's connection, not anything the client should see.
	removeHopByHop(uc.header)
	uc.header.Del("Content-Length")
	return uc, nil
}

// upstreamErrorStatus maps a failed dial or handshake to the status the
// client gets: 504 for anything that ran out of time, 503 when the server
// gave up on the handshake while shutting down, and 502 for the rest
// (refused, unreachable, DNS, an invalid 101, a malformed answer).
func upstreamErrorStatus(err error) int {
	switch {
	case isTimeout(err):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadGateway
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readUpstreamResponse reads a complete non-101 answer: head and a body of
// at most maxUpstreamBody bytes.
func readUpstreamResponse(r io.Reader) (*upstreamResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(r), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// An interim answer (100 Continue, 103 Early Hints) is not a final
	// answer to an upgrade; relaying it with Connection: close would leave
	// the client waiting.
	if resp.StatusCode < 200 {
		return nil, fmt.Errorf("upstream answered interim status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxUpstreamBody {
		return nil, errUpstreamBodyTooLarge
	}
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	return &upstreamResponse{
		status: resp.StatusCode,
		reason: reason,
		header: resp.Header,
		body:   body,
	}, nil
}

// forwardHeader builds the extra request headers for the upstream: the
// client's end-to-end headers (cookies, authorization, origin, custom ones)
// plus X-Forwarded-For/-Proto/-Host as fwd says (forwarded.go). What the
// Dialer writes itself and what is hop-by-hop is left out.
//
// It edits req.Header in place and returns it: the client's header is not
// needed afterwards, and a copy would be the largest allocation of the
// handshake after the request itself.
func forwardHeader(req *http.Request, fwd *forwarding) http.Header {
	h := req.Header
	removeHopByHop(h)
	for _, name := range dialerWritten {
		h.Del(name)
	}
	fwd.apply(h)
	return h
}

// upstreamTarget returns the request target (escaped path and query) to ask
// the upstream for.
//
// With no upstream path the client's path goes unchanged, byte for byte.
// With one, the route's prefix is cut from the request path and the
// upstream path put in front, as nginx's proxy_pass with a URI does:
// prefix "/api/" and upstream path "/v2/" map "/api/x" to "/v2/x". Unlike
// nginx, the seam never doubles a slash: prefix "/api" and upstream path
// "/" map "/api/x" to "/x", not "//x". The query is always kept.
//
// The prefix is matched against the decoded path (that is what routing
// saw); the escaped form of the rest is kept when the client's escaped path
// starts with the escaped prefix, so percent-encodings such as %2F survive.
// upstreamPath is taken as a decoded path, like url.URL.Path.
func upstreamTarget(u *url.URL, prefix, upstreamPath string) string {
	path := u.EscapedPath()
	if upstreamPath != "" {
		var rest string
		if ep := (&url.URL{Path: prefix}).EscapedPath(); strings.HasPrefix(path, ep) {
			rest = path[len(ep):]
		} else {
			rest = (&url.URL{Path: strings.TrimPrefix(u.Path, prefix)}).EscapedPath()
		}
		front := (&url.URL{Path: upstreamPath}).EscapedPath()
		if strings.HasSuffix(front, "/") && strings.HasPrefix(rest, "/") {
			rest = rest[1:]
		}
		path = front + rest
	}
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		path += "?" + u.RawQuery
	}
	return path
}

// limitedConn fails reads once the upstream has sent more than left bytes.
// It wraps the upstream only during the handshake; the raw connection is
// what the relay gets.
type limitedConn struct {
	net.Conn
	left int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errUpstreamTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// upstreamHeader writes the forwarded header into the upstream request,
// as ws.HandshakeHeaderHTTP does, but without allocating: that one wraps
// the writer in a counter that escapes on every handshake; this one is
// part of the pooled upstreamDialer, counter included.
type upstreamHeader struct {
	h http.Header
	w countingWriter
}

func (u *upstreamHeader) WriteTo(w io.Writer) (int64, error) {
	u.w = countingWriter{w: w}
	err := u.h.Write(&u.w)
	n := u.w.n
	u.w = countingWriter{}
	return n, err
}

// countingWriter counts what is written through it. It is an
// io.StringWriter, so that http.Header.Write does not wrap it again.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) WriteString(s string) (int, error) {
	n, err := io.WriteString(c.w, s)
	c.n += int64(n)
	return n, err
}
