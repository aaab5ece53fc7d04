// Package legacyecho is a deliberately "legacy" WebSocket echo server: the
// kind of backend wsalive is put in front of.
//
// It behaves the way many real backends do, on purpose:
//
//   - it never sends a ping, so without wsalive a dead peer or an idle-timing
//     intermediary goes unnoticed;
//   - it runs one goroutine per connection;
//   - it echoes every text or binary message back whole, with the same
//     opcode (a fragmented message is reassembled and echoed as one frame);
//   - it answers pings with pongs and a close with a close, as RFC 6455
//     requires (gobwas/ws wsutil's default control handling does that);
//   - on Close it drops its sockets without a close frame, as a crashing or
//     restarting process would, which is the "EOF without close" case the
//     proxy has to turn into a proper close toward the client.
//
// It is used by the proxy's end-to-end tests and by the benchmarks in bench/,
// and can be run by hand with cmd/legacy-echo.
package legacyecho

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Defaults for the zero values of Options.
const (
	// DefaultMaxMessageSize is generous on purpose: the proxy's tests send
	// 16 MiB messages through it, and legacy servers rarely set a limit at
	// all. It still bounds what one connection can make the server hold.
	DefaultMaxMessageSize = 64 << 20

	// DefaultHandshakeTimeout bounds reading the upgrade request, so that a
	// client that connects and says nothing does not pin a goroutine forever.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options tune a Server. The zero value is a working configuration.
type Options struct {
	// Subprotocol, when not empty, is accepted if the client offers it in
	// Sec-WebSocket-Protocol. Other offers are ignored, so a client offering
	// only other subprotocols gets a handshake without one (RFC 6455 §4.2.2).
	Subprotocol string

	// MaxMessageSize bounds one reassembled message. A bigger one ends the
	// connection with 1009 (message too big). Zero means
	// DefaultMaxMessageSize; negative means no limit.
	MaxMessageSize int64

	// HandshakeTimeout bounds the upgrade. Zero means
	// DefaultHandshakeTimeout; negative means none.
	HandshakeTimeout time.Duration

	// CheckUTF8 makes the server fail a text message that is not valid
	// UTF-8 with 1007, as RFC 6455 §8.1 asks. It is off by default because
	// many legacy servers do not check, and an echo that returns exactly
	// what it received lets tests see that the proxy changed nothing.
	CheckUTF8 bool
}

// Server is a legacy WebSocket echo server. Create it with New or
// NewWithOptions, run it with Serve, stop it with Close.
type Server struct {
	log      *slog.Logger
	opts     Options
	upgrader ws.Upgrader

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}

	// wg counts Serve loops and connection goroutines. Add is only called
	// under mu while closed is false, so Close's Wait never races with it.
	wg sync.WaitGroup

	// closeOnce makes Close idempotent: listeners and connections are closed
	// once, and every later call only waits and returns the same result.
	closeOnce sync.Once
	closeErr  error
}

// New returns a Server with default Options. A nil logger discards logs.
func New(logger *slog.Logger) *Server {
	return NewWithOptions(logger, Options{})
}

// NewWithOptions returns a Server configured by opts. A nil logger discards
// logs.
func NewWithOptions(logger *slog.Logger, opts Options) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	s := &Server{
		log:       logger,
		opts:      opts,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	if p := opts.Subprotocol; p != "" {
		s.upgrader.Protocol = func(offered []byte) bool {
			return string(offered) == p
		}
	}
	return s
}

// Serve accepts connections on ln and serves each on its own goroutine until
// Close is called, then returns nil. Any other accept failure that is not
// transient is returned. Serve closes ln when it returns. It may be called for
// several listeners at once; called after Close it closes ln and returns nil.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	s.log.Info("legacy echo listening", "addr", ln.Addr().String())
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if !isTransientAcceptError(err) {
				return err
			}
			// Back off like net/http does: running out of descriptors is
			// exactly what happens under a large connection test, and
			// spinning on Accept would only burn the CPU being measured.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

// isTransientAcceptError reports errors after which Accept can succeed
// again: a full descriptor table, or a connection reset before it was
// accepted.
func isTransientAcceptError(err error) bool {
	for _, errno := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Close stops every Serve loop, closes every connection without a close
// frame, and waits until all goroutines of the server have ended. It is
// safe to call more than once and from several goroutines; every call waits.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for ln := range s.listeners {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && s.closeErr == nil {
				s.closeErr = err
			}
		}
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return s.closeErr
}

// Conns returns the number of connections currently open, including those
// still in the handshake.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers c and counts its goroutine, unless the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// serveConn is the goroutine of one connection: handshake, then echo until
// the peer leaves or the server closes.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer s.untrack(c)

	log := s.log.With("remote", c.RemoteAddr().String())
	if t := s.opts.HandshakeTimeout; t > 0 {
		c.SetDeadline(time.Now().Add(t))
	}
	hs, err := s.upgrader.Upgrade(c)
	if err != nil {
		log.Debug("handshake failed", "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	log.Debug("connection upgraded", "subprotocol", hs.Protocol)

	err = s.echo(c)
	log.Debug("connection ended", "err", err)
}
