package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// Relay is what the server hands finished pairs to; *relay.Engine
// implements it. Attach takes ownership of both connections, and the server
// closes them itself only when Attach returns an error.
type Relay interface {
	Attach(relay.Handoff) (id uint64, err error)
}

// ErrServerClosed is returned by Serve once Shutdown has been called.
var ErrServerClosed = errors.New("proxy: server closed")

const (
	// defaultHandshakeTimeout stands in for a route whose HandshakeTimeout
	// is zero. The config package normally fills it in; a handshake with no
	// bound at all would let a silent peer hold a goroutine forever.
	defaultHandshakeTimeout = 10 * time.Second
	// headReaderSize is the buffer used to read a client's request head.
	// Heads longer than this are still read (textproto accumulates lines);
	// the limit on them is MaxHeaderBytes.
	headReaderSize = 4 << 10
)

// Server accepts client connections, performs both WebSocket handshakes and
// hands each finished pair to a Relay. A goroutine runs per connection only
// while it handshakes.
//
// A Server may Serve several listeners at once. Its zero value is not
// usable; create it with NewServer.
type Server struct {
	router *router
	// routes holds what NewServer derived from each route.
	routes map[*config.Route]*routeState
	relay  Relay
	log    *slog.Logger
	// headTimeout bounds reading a client's request head. The route is not
	// known until the head is read, so it is the largest HandshakeTimeout
	// of all routes: no route's clients are cut off sooner than that
	// route allows.
	headTimeout time.Duration

	// ctx is the parent of every upstream handshake; cancel aborts them when
	// Shutdown runs out of time.
	ctx    context.Context
	cancel context.CancelFunc

	shutdownOnce sync.Once
	done         chan struct{} // closed when Shutdown starts

	// accepted counts the connections taken for a handshake.
	accepted atomic.Uint64

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	// handshaking holds the connections of in-flight handshakes (the
	// client's, and the upstream's while its handshake runs), so a
	// Shutdown that runs out of time can close them. A connection leaves
	// the set before it is handed to the relay, which then owns it.
	handshaking map[net.Conn]struct{}
	// inflight counts handshake goroutines. Add is only called under mu
	// while !closing, and Shutdown sets closing before it waits, so no Add
	// can race with Wait.
	inflight sync.WaitGroup
}

// NewServer returns a Server that routes requests among routes and
// attaches finished pairs to r. A nil logger means slog.Default().
//
// Routing picks the most specific match: exact host, then wildcard host
// ("*.example.com", longer suffix first), then host-less routes; within
// that, the longest PathPrefix; ties go to the earlier route. No match is
// answered 404.
//
// Timeouts: the client's request head must arrive within the largest
// HandshakeTimeout of all routes (the route is unknown until the head is
// read, and no route's clients should be cut off sooner than that route
// allows). The upstream dial and handshake are then bounded by the matched
// route's HandshakeTimeout. A zero HandshakeTimeout counts as 10s.
func NewServer(routes []*config.Route, r Relay, logger *slog.Logger) (*Server, error) {
	if len(routes) == 0 {
		return nil, errors.New("proxy: no routes")
	}
	if r == nil {
		return nil, errors.New("proxy: nil relay")
	}
	rt, err := newRouter(routes)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		router:      rt,
		relay:       r,
		log:         logger,
		done:        make(chan struct{}),
		listeners:   make(map[net.Listener]struct{}),
		handshaking: make(map[net.Conn]struct{}),
	}
	s.routes = make(map[*config.Route]*routeState, len(routes))
	for _, route := range routes {
		s.headTimeout = max(s.headTimeout, handshakeTimeout(route))
		s.routes[route] = newRouteState(route)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// routeState is what the server derives from a route once, in NewServer,
// so that its handshakes do not redo it.
type routeState struct {
	// policy is the route's compiled liveness policy.
	policy *relay.Policy
	// upstream is the parsed "ws://" + Upstream.Address; each handshake
	// only adds its request target. When the address does not parse,
	// upstream is nil and upstreamErr fails the route's handshakes (502),
	// as parsing it per handshake did.
	upstream    *url.URL
	upstreamErr error
	// pool picks and dials the route's upstream server (proxy/pool).
	pool *pool.Pool
}

func newRouteState(r *config.Route) *routeState {
	rs := &routeState{policy: routePolicy(r), pool: pool.ForRoute(r, pool.Options{})}
	rs.upstream, rs.upstreamErr = url.ParseRequestURI("ws://" + r.Upstream.Address)
	return rs
}

func handshakeTimeout(r *config.Route) time.Duration {
	if r.HandshakeTimeout > 0 {
		return r.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

// Serve accepts connections on ln until Shutdown is called, then returns
// ErrServerClosed; on any other accept error that is not temporary it
// returns that error. Either way ln is closed on return. lcfg supplies
// MaxHeaderBytes (0 or less means net/http's default, 1 MiB).
func (s *Server) Serve(ln net.Listener, lcfg config.Listener) error {
	defer ln.Close()
	maxHeader := lcfg.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	if !s.trackListener(ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			// Back off on temporary errors (EMFILE, ECONNABORTED) as
			// net/http does: 5ms doubling to 1s, instead of spinning.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept error; retrying", "listener", ln.Addr().String(), "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("proxy: accept on %s: %w", ln.Addr(), err)
		}
		delay = 0
		if !s.trackConn(c) {
			_ = c.Close()
			return ErrServerClosed
		}
		go s.handle(c, maxHeader)
	}
}

// Shutdown stops accepting on every listener and waits for in-flight
// handshakes to finish (hand off or fail), bounded by ctx. When ctx ends
// first, the remaining handshakes are aborted (their upstream dials
// canceled, their client connections closed) and ctx's error is returned.
// Pairs already handed to the relay are the relay's to drain. Shutdown may
// be called more than once and from several goroutines; every call waits.
func (s *Server) Shutdown(ctx context.Context) error {
	// Once: closing listeners and the done channel twice would panic or
	// log spurious errors, yet every caller deserves the wait below.
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		close(s.done)
		for ln := range s.listeners {
			_ = ln.Close()
		}
		s.mu.Unlock()
	})

	idle := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.handshaking {
			_ = c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// trackListener adds (or removes) ln from the set Shutdown closes; adding
// fails once Shutdown has started.
func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.closing {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

// trackConn registers a new handshake; it fails once Shutdown has started.
func (s *Server) trackConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handshaking[c] = struct{}{}
	s.inflight.Add(1)
	return true
}

// trackHandshakeConn adds an upstream connection to the set Shutdown may
// close. Unlike trackConn it succeeds while Shutdown waits: the handshake
// it belongs to is already in flight.
func (s *Server) trackHandshakeConn(c net.Conn) {
	s.mu.Lock()
	s.handshaking[c] = struct{}{}
	s.mu.Unlock()
}

// releaseConn removes c from the set Shutdown may close. It is called
// before the handoff (the relay owns c from then on) and, harmlessly
// again, when the handshake goroutine ends.
func (s *Server) releaseConn(c net.Conn) {
	s.mu.Lock()
	delete(s.handshaking, c)
	s.mu.Unlock()
}

// handle runs one connection's handshake on its own goroutine, which ends
// with the handshake.
func (s *Server) handle(c net.Conn, maxHeader int) {
	defer s.inflight.Done()
	defer s.releaseConn(c)
	s.accepted.Add(1)
	s.handshake(c, maxHeader)
}

// Accepted returns how many client connections the server has taken for
// a handshake, across all its listeners.
func (s *Server) Accepted() uint64 { return s.accepted.Load() }
