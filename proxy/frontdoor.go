package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// Option configures a Server beyond its routes, relay and logger.
type Option func(*Server)

// WithMetrics makes the server report handshakes and plain HTTP requests
// to m; without it (or with nil) nothing is reported.
func WithMetrics(m metrics.Metrics) Option {
	return func(s *Server) {
		if m != nil {
			s.metrics = m
		}
	}
}

// WithLimits sets the process-wide bounds on connections in handshake;
// without it the defaults of package config apply.
func WithLimits(l config.Limits) Option {
	return func(s *Server) { s.limits = l }
}

// routeTable is everything derived from one set of routes: the router and
// each route's state. It is swapped whole by SetRoutes; a handshake or
// request loads it once and keeps using what it loaded.
type routeTable struct {
	router *router
	states map[*config.Route]*routeState
	// headTimeout bounds reading a request head: the largest
	// HandshakeTimeout of all routes (the route is not known until the
	// head is read, and no route's clients should be cut off sooner than
	// that route allows).
	headTimeout time.Duration
}

func (s *Server) newRouteTable(routes []*config.Route) (*routeTable, error) {
	if len(routes) == 0 {
		return nil, errors.New("proxy: no routes")
	}
	rt, err := newRouter(routes)
	if err != nil {
		return nil, err
	}
	t := &routeTable{router: rt, states: make(map[*config.Route]*routeState, len(routes))}
	for _, route := range routes {
		t.headTimeout = max(t.headTimeout, handshakeTimeout(route))
		rs, err := s.newRouteState(route)
		if err != nil {
			return nil, err
		}
		t.states[route] = rs
	}
	return t, nil
}

// SetRoutes replaces the route table for every handshake and request that
// starts afterwards. Handshakes in flight, requests being proxied and live
// pairs keep the routes, policies and limits they started with. Pair
// counts are kept by route name, so a route that keeps its name keeps
// counting its live pairs against its (new) limits. The new routes are
// checked first; on error nothing changes. What a listener fixed when it
// started serving stays: the head timeout of its plain HTTP connections
// (ReadHeaderTimeout) is the largest handshake_timeout of the routes at
// that moment.
func (s *Server) SetRoutes(routes []*config.Route) error {
	t, err := s.newRouteTable(routes)
	if err != nil {
		return err
	}
	t.adoptPools(s.table.Load())
	old := s.table.Swap(t)
	// Idle upstream connections of the old table's routes are closed;
	// those in use finish their request and are closed by their idle
	// timeout.
	for _, rs := range old.states {
		rs.transport.CloseIdleConnections()
	}
	return nil
}

// adoptPools carries what old's pools learned (live pairs, passive
// health, resolved addresses) into t's pools, route by route name, so
// that a reload does not reset balance "least_pairs" or bring a failing
// server back early (see pool.Adopt). Health is kept only when the
// route's upstream_tls settings are unchanged.
func (t *routeTable) adoptPools(old *routeTable) {
	if old == nil {
		return
	}
	byName := make(map[string]*routeState, len(old.states))
	for route, rs := range old.states {
		byName[route.Name] = rs
	}
	for route, rs := range t.states {
		if was, ok := byName[route.Name]; ok {
			rs.pool.Adopt(was.pool, reflect.DeepEqual(route.UpstreamTLS, was.route.UpstreamTLS))
		}
	}
}

// routeState is what the server derives from a route once, when the
// route table is built, so that its handshakes and requests do not redo it.
type routeState struct {
	route *config.Route
	// policy is the route's compiled liveness policy.
	policy *relay.Policy
	// upstream is the parsed "ws://" + Upstream.Address; each handshake
	// only adds its request target. When the address does not parse,
	// upstream is nil and upstreamErr fails the route's handshakes (502),
	// as parsing it per handshake did.
	upstream    *url.URL
	upstreamErr error
	// local: every server of the route is on loopback, so the upstream
	// phase of a handshake is counted at the accept gate (acceptGate).
	local bool
	// pool picks and dials the route's upstream servers (proxy/pool), with
	// the TLS handshake for wss:// as part of the dial.
	pool *pool.Pool
	// upstreamTLS is the client TLS configuration for a wss:// upstream,
	// nil for ws:// (see upstream_tls.go); plain HTTP requests of the
	// route use it too.
	upstreamTLS *tls.Config
	// upstreamShake is the TLS handshake over a connection to one of
	// the route's servers (nil for ws://).
	upstreamShake func(context.Context, net.Conn, config.UpstreamServer) (net.Conn, error)
	origins       originPolicy
	metrics       metrics.Route
	// proxy passes plain HTTP requests to the upstream through transport,
	// the route's pool of upstream connections.
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	// httpURLs holds the base URL of each of the pool's servers for plain
	// HTTP requests, by address; read-only once built, so that a request
	// does not build its own.
	httpURLs map[string]*url.URL
}

func (s *Server) newRouteState(r *config.Route) (*routeState, error) {
	rs := &routeState{
		route:   r,
		policy:  routePolicy(r),
		origins: originPolicy{allowed: r.AllowedOrigins, require: r.RequireOrigin},
		metrics: s.metrics.Route(r.Name),
	}
	rs.upstream, rs.upstreamErr = url.ParseRequestURI("ws://" + r.Upstream.Address)
	var err error
	if rs.upstreamTLS, err = upstreamTLSConfig(r, s.log); err != nil {
		return nil, err
	}
	// DialTCP with a netip.AddrPort would skip parsing the address again,
	// but it binds the socket to the zero address before connecting: an
	// extra system call, and an ephemeral port taken for every
	// destination instead of per destination.
	o := pool.Options{Dial: upstreamNetDialer.DialContext}
	if sr, ok := s.relay.(socketRelay); ok && rs.upstreamTLS == nil {
		o.Dial = pool.DialFunc(sr.DialFunc(relay.DialFunc(o.Dial)))
	}
	if rs.upstreamTLS != nil {
		rs.upstreamShake = upstreamTLSHandshake(rs.upstreamTLS)
		o.Handshake = rs.upstreamShake
	}
	rs.pool = pool.ForRoute(r, o)
	rs.httpURLs = map[string]*url.URL{}
	rs.local = true
	for _, st := range rs.pool.States() {
		rs.httpURLs[st.Address] = &url.URL{Scheme: rs.httpScheme(), Host: st.Address}
		rs.local = rs.local && onLoopback(st.Address)
	}
	s.newRouteProxy(rs)
	return rs, nil
}

// httpUpstream returns the base URL a plain HTTP request of the route
// with balance key key goes to: the server the pool's balance picks for
// the request (so that a client's polling requests land where its
// WebSocket does under balance "hash"), its ws:// turned into http://,
// wss:// into https://.
func (rs *routeState) httpUpstream(key string) (*url.URL, error) {
	if rs.upstreamErr != nil {
		return nil, rs.upstreamErr
	}
	return rs.serverURL(rs.pool.Pick(key).Address), nil
}

// serverURL returns the base URL of the pool's server at address, made
// once per route table (see httpURLs).
func (rs *routeState) serverURL(address string) *url.URL {
	if u, ok := rs.httpURLs[address]; ok {
		return u
	}
	return &url.URL{Scheme: rs.httpScheme(), Host: address}
}

func (rs *routeState) httpScheme() string {
	if rs.upstreamTLS != nil {
		return "https"
	}
	return "http"
}

// listenerState is what Serve keeps per listener: its settings, its count
// of connections, and the net/http server its plain HTTP connections are
// handed to.
type listenerState struct {
	s         *Server
	addr      net.Addr
	maxHeader int
	maxLines  int
	trusted   trustedSet
	// proto is the scheme X-Forwarded-Proto names for clients of this
	// listener: "http", or "https" on a TLS listener.
	proto string
	// protoHeader is []string{proto}, the header value its plain HTTP
	// requests share.
	protoHeader []string
	conns       connLimit
	// http serves the plain HTTP connections; feed is its listener.
	http *http.Server
	feed *connFeed
}

func (s *Server) newListenerState(ln net.Listener, lcfg config.Listener) *listenerState {
	ls := &listenerState{
		s:         s,
		addr:      ln.Addr(),
		maxHeader: lcfg.MaxHeaderBytes,
		maxLines:  lcfg.MaxHeaderLines,
		trusted:   trustedSet(lcfg.TrustedProxies),
		proto:     lcfg.ForwardedProto,
	}
	if ls.maxHeader <= 0 {
		ls.maxHeader = http.DefaultMaxHeaderBytes
	}
	if ls.maxLines <= 0 {
		ls.maxLines = config.DefaultMaxHeaderLines
	}
	if ls.proto == "" {
		ls.proto = "http"
	}
	ls.protoHeader = []string{ls.proto}
	ls.conns.max = int64(lcfg.MaxConnections)
	idle := lcfg.HTTPIdleTimeout
	if idle <= 0 {
		idle = config.DefaultHTTPIdleTimeout
	}
	ls.feed = newConnFeed(ln.Addr())
	ls.http = s.newHTTPServer(ls, idle)
	return ls
}

// onLoopback reports whether address (host:port) names this machine's
// loopback: an address in 127.0.0.0/8 or ::1, or "localhost", which
// RFC 6761 reserves for it.
func onLoopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
