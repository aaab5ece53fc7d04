package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/pool"
)

// Plain HTTP pass-through.
//
// A connection whose first request is not a WebSocket upgrade (and whose
// route passes plain HTTP) is handed, with the bytes already read from it
// replayed in front, to a net/http.Server per listener. From then on the
// standard library does HTTP: keep-alive, chunked and Content-Length
// bodies streamed both ways, 100-continue, HEAD, HTTP/1.0, the head limits
// (ReadHeaderTimeout is the largest handshake_timeout, MaxHeaderBytes the
// listener's) and the idle limit between requests. Each request is routed
// on its own and passed to its route's upstream by an
// httputil.ReverseProxy with a pooled http.Transport. A WebSocket upgrade
// arriving on such a connection is hijacked from net/http and takes the
// same path as one that came first.

// connFeed is the net.Listener the HTTP server accepts from: Serve pushes
// the connections it classified as plain HTTP into it.
type connFeed struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnFeed(addr net.Addr) *connFeed {
	return &connFeed{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (f *connFeed) Accept() (net.Conn, error) {
	select {
	case c := <-f.ch:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}

func (f *connFeed) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

func (f *connFeed) Addr() net.Addr { return f.addr }

// push hands c to the HTTP server; false once the server has stopped.
func (f *connFeed) push(c net.Conn) bool {
	select {
	case f.ch <- c:
		return true
	case <-f.done:
		return false
	}
}

// frontConn is a client connection handed to the HTTP server: it replays
// the bytes read while classifying it, then reads the connection; closing
// it gives back its listener slot.
type frontConn struct {
	net.Conn // the accepted connection
	prefix   []byte
	peer     peer
	mu       sync.Mutex
	slot     *connSlot
	// req and sw belong to the request being served. net/http serves a
	// connection's requests one after another on one goroutine (the
	// handler of the next starts only when the last has returned), so one
	// of each per connection serves them all, found again through the
	// connection's context: no context value, request copy, or writer
	// allocated per request.
	req reqInfo
	sw  statusWriter
	// xff is []string{peer.ip}, the X-Forwarded-For of every request of
	// the connection when the peer is not trusted (see applyShared).
	xff []string
}

func (c *frontConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *frontConn) Close() error {
	err := c.Conn.Close()
	c.takeSlot().release()
	return err
}

// takeSlot hands the listener slot to a new owner (the pair an upgrade
// becomes); the frontConn no longer gives it back.
func (c *frontConn) takeSlot() *connSlot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slot
	c.slot = nil
	return s
}

type frontConnKey struct{}

// reqInfo is what a proxied request's Rewrite, transport and
// ErrorHandler need. It lives in the request's frontConn (see there) and
// is found from the request with requestInfo.
type reqInfo struct {
	fwd forwarding
	rs  *routeState
	log handshakeLog
	// protoHeader is []string{the listener's scheme}, shared by its
	// requests' X-Forwarded-Proto (see applyShared).
	protoHeader []string
	// key is the pool's balance key for the request (see pool.Key), for
	// a retry on another server.
	key string
	// upstream is the server the request goes to; shared by the route's
	// requests, never modified.
	upstream *url.URL
	// connectTimeout bounds connecting to upstream (see RoundTrip).
	connectTimeout time.Duration
}

// requestInfo returns the state of r, a request being proxied (or its
// outgoing clone, which shares its context).
func requestInfo(r *http.Request) *reqInfo {
	return &r.Context().Value(frontConnKey{}).(*frontConn).req
}

func (s *Server) newHTTPServer(ls *listenerState, idle time.Duration) *http.Server {
	return &http.Server{
		Handler:           ls,
		ReadHeaderTimeout: s.table.Load().headTimeout,
		IdleTimeout:       idle,
		// net/http allows 4 KiB beyond MaxHeaderBytes; the first head,
		// read by the proxy itself, was held to the exact bound.
		MaxHeaderBytes: ls.maxHeader,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, frontConnKey{}, c)
		},
	}
}

// ServeHTTP handles one request of a plain HTTP connection.
func (ls *listenerState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := ls.s
	start := time.Now()
	fc, _ := r.Context().Value(frontConnKey{}).(*frontConn)
	if fc == nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	t := s.table.Load()
	fc.req = reqInfo{
		fwd:         forwardingFor(ls.trusted, ls.proto, fc.peer, r.Header, r.Host),
		log:         handshakeLog{logger: s.log},
		protoHeader: ls.protoHeader,
	}
	info := &fc.req
	fwd, log := info.fwd, &info.log
	log.client = fwd.clientIP
	if countHeaderLines(r.Header) > ls.maxLines {
		s.httpRefused(w, log, s.unknown, reject(http.StatusRequestHeaderFieldsTooLarge, "too many header lines"))
		return
	}
	if isWebSocketUpgrade(r.Header) {
		s.upgradeHijacked(w, r, ls, t, fwd, log, start)
		return
	}
	route := t.router.match(r.Host, r.URL.Path)
	if route == nil {
		s.httpRefused(w, log, s.unknown, reject(http.StatusNotFound, "no route for this host and path"))
		return
	}
	log.route = route
	rs := t.states[route]
	if route.HTTP == config.HTTPReject {
		_, rej := checkUpgrade(r) // a plain request: always the 405 or 426
		s.httpRefused(w, log, rs.metrics, rej)
		return
	}
	if rej := rs.origins.check(r.Header); rej != nil {
		s.httpRefused(w, log, rs.metrics, rej)
		return
	}
	if max := route.MaxBodySize; max > 0 {
		if r.ContentLength > max {
			s.httpRefused(w, log, rs.metrics, reject(http.StatusRequestEntityTooLarge, "request body larger than max_body_size"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	info.rs = rs
	info.key = rs.pool.Key(r, fwd.clientIP)
	up, err := rs.httpUpstream(info.key)
	if err != nil {
		s.httpRefused(w, log, rs.metrics, reject(http.StatusBadGateway, "upstream address is invalid"))
		return
	}
	info.upstream = up
	// Another protocol's upgrade (h2c, TLS/1.0) is not granted: without
	// Upgrade the request is plain HTTP to the reverse proxy too, which
	// then never switches protocols or tunnels (RFC 9110 §7.8 lets a
	// server ignore Upgrade).
	r.Header.Del("Upgrade")
	fc.sw = statusWriter{ResponseWriter: w}
	rs.proxy.ServeHTTP(&fc.sw, r)
	rs.metrics.HTTPRequest(fc.sw.code())
	fc.sw = statusWriter{} // not w's holder once w is done
}

// httpRefused answers a plain HTTP request the proxy refuses on its own.
func (s *Server) httpRefused(w http.ResponseWriter, log *handshakeLog, m interface{ HTTPRequest(int) }, rej *rejection) {
	s.refused(log, rej.status, rej.msg)
	for k, v := range rej.header {
		w.Header()[k] = v
	}
	if rej.header.Get("Upgrade") != "" {
		w.Header().Set("Connection", "Upgrade")
	}
	http.Error(w, rej.msg, rej.status)
	m.HTTPRequest(rej.status)
}

// newRouteProxy builds the route's reverse proxy and its pool of upstream
// connections.
func (s *Server) newRouteProxy(rs *routeState) {
	route := rs.route
	rs.transport = &http.Transport{
		// Never the environment's HTTP_PROXY: the upstream is configured.
		Proxy:       nil,
		DialContext: rs.dialHTTP,
		// Keep-alive toward the upstream, one pool per route. Idle
		// connections are kept up to the concurrency actually seen, so
		// that each request finds one instead of dialing: the pool is
		// only as large as the most requests in flight at once, and
		// IdleConnTimeout reaps what a burst left behind. A bound of 256
		// made 512 busy clients redial about one request in thirteen
		// (bench/notes.md).
		MaxIdleConnsPerHost:   maxIdleUpstreamConns,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bytes pass as they came: no Accept-Encoding added, no body
		// decompressed on the way.
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	if rs.upstreamShake != nil {
		// A wss:// upstream's plain HTTP goes over TLS with the same
		// verification as its WebSocket handshakes, done in dialHTTP so
		// that a failed TLS handshake fails over like a failed connect.
		rs.transport.DialTLSContext = rs.dialHTTP
	}
	rs.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			info := requestInfo(pr.In)
			pr.Out.URL.Scheme, pr.Out.URL.Host = info.upstream.Scheme, info.upstream.Host
			if route.Upstream.Path != "" {
				if u, err := url.ParseRequestURI(upstreamTarget(pr.In.URL, route.PathPrefix, route.Upstream.Path)); err == nil {
					pr.Out.URL.Path, pr.Out.URL.RawPath, pr.Out.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
				}
			}
			pr.Out.URL.RawQuery = stripResumeParams(pr.Out.URL.RawQuery) // resume.go
			// Host is the upstream's, as on the WebSocket path; the
			// client's goes in X-Forwarded-Host.
			pr.Out.Host = ""
			fc := pr.In.Context().Value(frontConnKey{}).(*frontConn)
			if fc.xff == nil {
				fc.xff = []string{fc.peer.ip}
			}
			info.fwd.applyShared(pr.Out.Header, fc.xff, info.protoHeader)
			if v := pr.In.Header.Values("Forwarded"); info.fwd.trusted && len(v) > 0 {
				pr.Out.Header["Forwarded"] = v
			}
		},
		Transport: &routeTransport{rs: rs},
		// 0 flushes when the response is done, except where streaming
		// matters: ReverseProxy flushes every write of a text/event-stream
		// response and of one without Content-Length (long polling,
		// chunked streams) at once.
		FlushInterval: 0,
		ModifyResponse: func(resp *http.Response) error {
			// The request carried no Upgrade, so a 101 is a broken or
			// hostile upstream; nothing is tunneled (ReverseProxy would
			// refuse too: the protocols do not match).
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return errors.New("upstream switched protocols on a plain request")
			}
			return nil
		},
		// Without a pool ReverseProxy allocates (and the GC clears) a
		// 32 KiB copy buffer for every response.
		BufferPool:   copyBuffers{},
		ErrorHandler: s.proxyError,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// maxIdleUpstreamConns bounds a route's idle upstream connections per
// server; a descriptor and about 10 KiB of buffers each while idle.
const maxIdleUpstreamConns = 4096

// proxyError answers a request the upstream could not serve: 413 for a
// body over max_body_size, 504 when the dial or the upstream ran out of
// time, 502 for the rest, as on the WebSocket path.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	info := requestInfo(r)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody is left to answer.
		info.log.write(slog.LevelDebug, "client left during proxied request", slog.Any("err", err))
		if sw, ok := w.(*statusWriter); ok {
			sw.status = statusClientClosed // counted, never sent
		}
		return
	}
	status := http.StatusBadGateway
	msg := "upstream request failed"
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, "request body larger than max_body_size"
	case isTimeout(err):
		status, msg = http.StatusGatewayTimeout, "upstream did not answer in time"
	}
	s.refused(&info.log, status, msg, slog.String("upstream", info.upstream.Host), slog.String("err", err.Error()))
	http.Error(w, msg, status)
}

// routeTransport is a route's RoundTripper: its pooled http.Transport,
// plus what the pool needs. A connect that fails (refused, unreachable,
// timed out, or a failed TLS handshake toward a wss:// upstream) counts
// against the server's passive health, as a WebSocket dial does, and the
// request moves on to the next server of the pool while that is safe: no
// byte of its body has been read, which a failed connect guarantees
// unless the body was already being sent (it never is before a
// connection exists), and the client is still there. All tries share the
// route's handshake_timeout, each connect getting a fair share of what
// is left, as the pool's own Dial does. Any failure after the
// connection was made, and any answer, is final: the request may have
// reached the server.
type routeTransport struct{ rs *routeState }

func (t *routeTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	rs := t.rs
	info := requestInfo(out)
	servers := len(rs.httpURLs)
	var body *heldBody
	if servers > 1 && out.Body != nil && out.Body != http.NoBody {
		// The Transport closes a request's body when it fails; held, the
		// body survives a failed connect for the next try.
		body = &heldBody{rc: out.Body, hold: true}
		out.Body = body
	}
	budget := handshakeTimeout(rs.route)
	deadline := time.Now().Add(budget)
	info.connectTimeout = pool.AttemptTimeout(budget, servers)
	var tried []string
	req := out
	for {
		resp, err := rs.transport.RoundTrip(req)
		if err == nil || !isConnectError(err) || req.Context().Err() != nil {
			// Answered, failed after connecting, or abandoned by a client
			// that left (not the server's failure).
			body.release(false)
			return resp, err
		}
		rs.pool.Failed(req.URL.Host, err)
		tried = append(tried, req.URL.Host)
		left := time.Until(deadline)
		next, ok := config.UpstreamServer{}, false
		if servers > len(tried) && left > 0 && !body.wasRead() {
			next, ok = rs.pool.PickOther(info.key, tried...)
		}
		if !ok {
			body.release(false)
			return nil, err
		}
		body.release(true)
		info.log.write(slog.LevelDebug, "plain HTTP request tried on another server", slog.String("method", out.Method),
			slog.String("failed", req.URL.Host), slog.String("upstream", next.Address), slog.String("err", err.Error()))
		info.upstream = rs.serverURL(next.Address)
		info.connectTimeout = pool.AttemptTimeout(left, servers-len(tried))
		req = out.Clone(out.Context())
		req.URL.Host = info.upstream.Host
	}
}

// dialHTTP connects the route's Transport to the server at addr: TCP, and
// TLS for a wss:// upstream, within the connect share RoundTrip gave the
// request. Its failures are connectErrors.
func (rs *routeState) dialHTTP(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := handshakeTimeout(rs.route)
	if fc, ok := ctx.Value(frontConnKey{}).(*frontConn); ok && fc.req.connectTimeout > 0 {
		timeout = fc.req.connectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := httpUpstreamDialer.DialContext(ctx, network, addr)
	if err == nil && rs.upstreamShake != nil {
		var tc net.Conn
		if tc, err = rs.upstreamShake(ctx, conn, config.UpstreamServer{Upstream: config.Upstream{Address: addr}}); err != nil {
			_ = conn.Close()
		}
		conn = tc
	}
	if err != nil {
		return nil, &connectError{err: err}
	}
	return conn, nil
}

// httpUpstreamDialer connects plain HTTP's pooled upstream connections.
// Unlike a pair's, they sit idle between requests, so TCP keepalive finds
// a server that vanished while they did.
var httpUpstreamDialer = &net.Dialer{KeepAlive: 30 * time.Second}

// connectError is a failure to connect to an upstream server: nothing of
// the request was sent.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func isConnectError(err error) bool {
	var ce *connectError
	return errors.As(err, &ce)
}

// heldBody is a request body whose Close is held back during a first
// try, so that a retry can send it; it notes whether any of it was read.
type heldBody struct {
	rc io.ReadCloser

	mu     sync.Mutex
	hold   bool // Close is held back (the first try)
	read   bool // some of it was read: it cannot be sent again
	closed bool // rc was closed
	wanted bool // Close was called while held
}

func (b *heldBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return b.rc.Read(p)
}

func (b *heldBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold && !b.read {
		b.wanted = true
		return nil
	}
	return b.closeLocked()
}

func (b *heldBody) closeLocked() error {
	if b.closed {
		return nil
	}
	b.closed = true
	return b.rc.Close()
}

func (b *heldBody) wasRead() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// release ends the first try: Close is no longer held back. With retry
// the body goes on to the second try, whose Transport closes it;
// otherwise a Close that was held back is done now.
func (b *heldBody) release(retry bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold = false
	if retry {
		b.wanted = false
		return
	}
	if b.wanted {
		_ = b.closeLocked()
	}
}

// copyBuffers lends ReverseProxy its response copy buffers.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// statusClientClosed counts a request whose client left before it was
// answered, as nginx logs it.
const statusClientClosed = 499

// statusWriter notes the status a handler answered, for metrics. Unwrap
// lets http.ResponseController (and so ReverseProxy's flushes) reach the
// connection's writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// upgradeHijacked takes a WebSocket upgrade that arrived on a plain HTTP
// connection away from net/http and runs the WebSocket path on it, with
// whatever net/http had already read beyond the request (its buffered
// bytes, then any replayed bytes it had not read yet) as the client's
// buffered bytes.
func (s *Server) upgradeHijacked(w http.ResponseWriter, r *http.Request, ls *listenerState, t *routeTable, fwd forwarding, log *handshakeLog, start time.Time) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.httpRefused(w, log, s.unknown, reject(http.StatusInternalServerError, fmt.Sprintf("cannot take over the connection: %v", err)))
		return
	}
	fc := conn.(*frontConn)
	var buffered []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		buffered = append(buffered, b...)
	}
	buffered = append(buffered, fc.prefix...)
	fc.prefix = nil
	slot := fc.takeSlot()
	c := fc.Conn
	if !s.trackConn(c) {
		_ = writeRejection(c, busy("server shutting down"), time.Now().Add(lingerTimeout))
		_ = c.Close()
		slot.release()
		return
	}
	defer s.inflight.Done()
	defer s.releaseConn(c)
	s.serveUpgrade(&upgrade{
		c: c, req: r, buffered: buffered, t: t, fwd: fwd, slot: slot, start: start, log: *log,
	})
}
