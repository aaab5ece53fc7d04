package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/relay"
)

// Relay is what the server hands finished pairs to; *relay.Engine
// implements it. Attach takes ownership of both connections, and the server
// closes them itself only when Attach returns an error.
type Relay interface {
	Attach(relay.Handoff) (id uint64, err error)
}

// socketRelay is a Relay that also dials the sockets it will relay:
// *relay.Engine, whose Sockets wait in its event loops during the
// handshake and are taken by Attach as they are (relay.Socket says why).
// Its Listener, which accepts Sockets, is its owner's to use.
type socketRelay interface {
	DialFunc(relay.DialFunc) relay.DialFunc
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

// Server accepts client connections, classifies each one's first request,
// passes plain HTTP to the route's upstream and performs both WebSocket
// handshakes for upgrades, handing each finished pair to a Relay. A
// goroutine runs per connection only while it handshakes (and, for plain
// HTTP connections, inside net/http while they live).
//
// A Server may Serve several listeners at once. Its zero value is not
// usable; create it with NewServer.
type Server struct {
	// table is the route table; SetRoutes swaps it.
	table   atomic.Pointer[routeTable]
	relay   Relay
	log     *slog.Logger
	metrics metrics.Metrics
	// unknown is the metrics handle of requests no route matched.
	unknown metrics.Route
	limits  config.Limits

	handshakes *handshakeLimit
	// gate keeps the accept loops from running ahead of the handshakes
	// (limits.go).
	gate  *acceptGate
	pairs *pairCounter
	// lnKeepalive is the TCP keepalive every listener given to Serve
	// carries, set when it was opened (WithListenerKeepalive); its
	// accepted sockets inherit it. lnKeepaliveSet is false when nothing
	// is known about the listeners.
	lnKeepalive    liveness.TCPKeepalive
	lnKeepaliveSet bool
	refusals       refusalLog
	// acceptErrors rate-limits the accept loop's log lines.
	acceptErrors acceptErrorLog

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
	listeners map[net.Listener]*listenerState
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
// attaches finished pairs to r. A nil logger means slog.Default(); opts
// add metrics and limits.
//
// Routing picks the most specific match: exact host, then wildcard host
// ("*.example.com", longer suffix first), then host-less routes; within
// that, the longest PathPrefix; ties go to the earlier route. No match is
// answered 404.
//
// Timeouts: a request head must arrive within the largest
// HandshakeTimeout of all routes (the route is unknown until the head is
// read, and no route's clients should be cut off sooner than that route
// allows). The upstream dial and handshake are then bounded by the matched
// route's HandshakeTimeout. A zero HandshakeTimeout counts as 10s.
//
// The owner must pass every pair the relay ends to PairClosed, or pair
// and connection limits will count pairs that are gone.
func NewServer(routes []*config.Route, r Relay, logger *slog.Logger, opts ...Option) (*Server, error) {
	if r == nil {
		return nil, errors.New("proxy: nil relay")
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		relay:       r,
		log:         logger,
		metrics:     metrics.Nop{},
		limits:      config.Limits{MaxHandshakes: config.DefaultMaxHandshakes, MaxHandshakesPerClientIP: config.DefaultMaxHandshakesPerClientIP},
		pairs:       newPairCounter(),
		gate:        newAcceptGate(acceptGateMax * runtime.GOMAXPROCS(0)),
		done:        make(chan struct{}),
		listeners:   make(map[net.Listener]*listenerState),
		handshaking: make(map[net.Conn]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.unknown = s.metrics.Route(metrics.UnknownRoute)
	s.handshakes = newHandshakeLimit(s.limits)
	t, err := s.newRouteTable(routes)
	if err != nil {
		return nil, err
	}
	s.table.Store(t)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// WithListenerKeepalive tells the server that every listener it will
// Serve was opened with k set on it (by relay.ListenControl(k), before it
// listened), so that the client sockets it accepts carry k already. The
// relay then skips setting a route's client keepalive on them when it is
// k (relay.Handoff.ClientKeepaliveSet): 5 setsockopt calls per handshake.
// Routes with another keepalive (after a reload, say) are set per socket
// as before. See ListenerKeepalive for the k to open listeners with.
func WithListenerKeepalive(k liveness.TCPKeepalive) Option {
	return func(s *Server) {
		s.lnKeepalive, s.lnKeepaliveSet = k, true
	}
}

// ListenerKeepalive returns the client-side TCP keepalive all of routes
// share, the one to open listeners with (WithListenerKeepalive); ok is
// false when they differ or set none. Routes are not bound to listeners:
// any route may be reached through any listener.
func ListenerKeepalive(routes []*config.Route) (k liveness.TCPKeepalive, ok bool) {
	for i, r := range routes {
		if i > 0 && r.ClientHeartbeat.TCP != k {
			return liveness.TCPKeepalive{}, false
		}
		k = r.ClientHeartbeat.TCP
	}
	return k, k != (liveness.TCPKeepalive{})
}

// clientKeepaliveSet says whether a client socket accepted by one of the
// server's listeners already carries route's client keepalive.
func (s *Server) clientKeepaliveSet(route *config.Route) bool {
	return s.lnKeepaliveSet && route.ClientHeartbeat.TCP == s.lnKeepalive
}

func handshakeTimeout(r *config.Route) time.Duration {
	if r.HandshakeTimeout > 0 {
		return r.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

// Serve accepts connections on ln until Shutdown is called, then returns
// ErrServerClosed; on any other accept error that is not temporary it
// returns that error. Either way ln is closed on return. lcfg supplies the
// listener's settings: MaxHeaderBytes (0 or less means net/http's default,
// 1 MiB), trusted proxies, the connection bound and HTTP keep-alive.
func (s *Server) Serve(ln net.Listener, lcfg config.Listener) error {
	defer ln.Close()
	ls := s.newListenerState(ln, lcfg)
	if !s.trackListener(ln, ls) {
		return ErrServerClosed
	}
	defer s.untrackListener(ln)
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		_ = ls.http.Serve(ls.feed)
	}()
	defer func() {
		// The HTTP server stops taking connections with the listener.
		// Those it has are Shutdown's to wait for or, on an accept error
		// other than Shutdown's, end here.
		_ = ls.feed.Close()
		if !s.isClosing() {
			_ = ls.http.Close()
		}
		<-httpDone
	}()

	var delay time.Duration
	gate := s.gate.waiter()
	for {
		// Handshakes accepted and ready to run are all the CPUs can
		// take: the rest wait in the kernel's queue (acceptGate).
		if !gate.wait(s.done) {
			return ErrServerClosed
		}
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			// Back off on temporary errors (EMFILE, ECONNABORTED) as
			// net/http does: 5ms doubling to 1s, instead of spinning, and
			// say so once per burst rather than once per retry.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.acceptErrors.failed(s.log, ln.Addr(), err, delay)
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
		if delay != 0 {
			s.acceptErrors.recovered(s.log, ln.Addr())
			delay = 0
		}
		slot, ok := ls.conns.acquire()
		if !ok {
			s.refuseAtAccept(c, "listener at its max_connections")
			continue
		}
		p := peerOf(c)
		if reason := s.handshakes.acquire(p.ip); reason != "" {
			slot.release()
			s.refuseAtAccept(c, reason)
			continue
		}
		if !s.trackConn(c) {
			s.handshakes.release(p.ip)
			slot.release()
			_ = c.Close()
			return ErrServerClosed
		}
		go s.handle(c, ls, slot, p, s.gate.ticket())
	}
}

// refuseAtAccept answers a connection a bound refused before anything was
// read from it: a 503 written into the fresh socket's send buffer (it
// never blocks), then close. Logged at info, rate-limited, and counted as
// a handshake of no route (its request was never read) with result 503.
func (s *Server) refuseAtAccept(c net.Conn, reason string) {
	log := &handshakeLog{logger: s.log, client: peerOf(c).ip}
	s.refused(log, http.StatusServiceUnavailable, reason)
	s.unknown.Handshake(statusResult(http.StatusServiceUnavailable), 0)
	_ = writeRejection(c, busy(reason), time.Now().Add(10*time.Millisecond))
	// Closing with the client's request unread would send RST, which can
	// destroy the 503 before the client reads it. What has already
	// arrived is read away first, waiting at most a millisecond: the
	// accept loop must not linger for a client it is refusing.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		if c.SetReadDeadline(time.Now().Add(time.Millisecond)) == nil {
			_, _ = io.CopyN(io.Discard, c, lingerBytes)
		}
	}
	_ = c.Close()
}

// Shutdown stops accepting on every listener and waits for in-flight
// handshakes to finish (hand off or fail) and for plain HTTP requests in
// flight to be answered (idle keep-alive connections close at once),
// bounded by ctx. When ctx ends first, the remaining handshakes are
// aborted (their upstream dials canceled, their client connections
// closed), the remaining HTTP connections are closed, and ctx's error is
// returned. Pairs already handed to the relay are the relay's to drain.
// Shutdown may be called more than once and from several goroutines;
// every call waits.
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
	s.mu.Lock()
	var servers []*http.Server
	for _, ls := range s.listeners {
		servers = append(servers, ls.http)
	}
	s.mu.Unlock()

	idle := make(chan struct{})
	go func() {
		s.inflight.Wait()
		var wg sync.WaitGroup
		for _, hs := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = hs.Shutdown(ctx)
			}()
		}
		wg.Wait()
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
		for _, hs := range servers {
			_ = hs.Close()
		}
		return ctx.Err()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// trackListener adds ln to the set Shutdown closes; it fails once
// Shutdown has started.
func (s *Server) trackListener(ln net.Listener, ls *listenerState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[ln] = ls
	return true
}

// untrackListener removes ln from that set. Once Shutdown has started the
// entry stays, so that Shutdown still finds the listener's HTTP server.
func (s *Server) untrackListener(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		delete(s.listeners, ln)
	}
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

// handle runs one connection's first request on its own goroutine, which
// ends with the handshake or with the handoff to the HTTP server.
func (s *Server) handle(c net.Conn, ls *listenerState, slot *connSlot, p peer, t *gateTicket) {
	defer s.inflight.Done()
	defer s.releaseConn(c)
	defer t.end()
	s.accepted.Add(1)
	s.firstRequest(c, ls, slot, p, t)
}

// Accepted returns how many client connections the server has taken for
// a handshake, across all its listeners.
func (s *Server) Accepted() uint64 { return s.accepted.Load() }
