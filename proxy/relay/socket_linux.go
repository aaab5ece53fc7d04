package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is a TCP connection whose descriptor the epoll driver owns from
// accept or connect on. While its handshake runs it is an ordinary
// net.Conn, but it waits for readiness in one of the driver's event loops
// (registered in the loop's epoll set on its first EAGAIN), not in the Go
// runtime's poller. Attach then takes the descriptor as it is.
//
// Why: the net package cannot give a descriptor away. A *net.TCPConn
// costs, per socket of a pair, the runtime's epoll registration and its
// removal, a dup for the relay and a close of the original, and the
// getsockname (and getpeername) net does for addresses nobody reads: ten
// or more system calls per proxied handshake on top of the ones that move
// the handshake's bytes, and a third of a handshake's CPU on a loaded
// proxy. A Socket costs its accept4 (or socket and connect), its reads
// and writes, and one epoll_ctl in the loop that relays the pair.
//
// A Socket serves any use of a net.Conn (the plain HTTP pass-through, a
// pair on the net.Conn driver), waiting through its loop as long as it
// lives; only its descriptor's owner changes at Attach.
type Socket struct {
	// mu guards fd against Close and take: I/O holds it shared around
	// each system call, so the descriptor number cannot be closed (and
	// reused by the kernel) under a read or write.
	mu sync.RWMutex
	fd int // -1 once closed or taken
	// set is where the socket waits once registered (an event loop's
	// epoll set), and where Attach sends its pair.
	set waitSet
	// near: the engine has several loops, so a dial for the same pair
	// should wait in this one too (NearConn).
	near       bool
	registered bool // in set; guarded by mu
	regOnce    sync.Once
	regErr     error // guarded by mu

	laddr  atomic.Pointer[net.TCPAddr]
	raddr  *net.TCPAddr
	rd, wr readiness
}

// waitSet is where Sockets wait for readiness: an event loop's epoll
// set, which passes each edge of a watched descriptor to its Socket
// (Socket.edge) until unwatch.
type waitSet interface {
	// watch adds fd, s's descriptor, to the set.
	watch(fd int, s *Socket) error
	// unwatch stops passing fd's edges to s; the descriptor leaves the
	// set when it is closed.
	unwatch(fd int, s *Socket)
	// forget takes fd out of the set now (its descriptor lives on).
	forget(fd int) error
}

// errLoopGone: the loop a Socket waits in has exited (the engine
// drained or closed).
var errLoopGone = errors.New("relay: engine closed while the socket waited")

// readiness is one direction's wait: the loop sends a token for every
// edge it sees, deadlines and Close send one to make a waiter look again.
type readiness struct {
	mu       sync.Mutex    // one Read (or Write) at a time, as net's FD does
	ch       chan struct{} // buffered 1: an edge since the last wait
	deadline atomic.Int64  // UnixNano; 0: none
	timer    *time.Timer   // reused across waits; only the holder of mu touches it
}

// poke makes a waiter (now or the next) look again.
func (r *readiness) poke() {
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func newSocket(fd int, set waitSet, near bool, raddr *net.TCPAddr) *Socket {
	s := &Socket{fd: fd, set: set, near: near, raddr: raddr}
	s.rd.ch = make(chan struct{}, 1)
	s.wr.ch = make(chan struct{}, 1)
	return s
}

// errTimeout reports an expired deadline as net does: errors.Is
// os.ErrDeadlineExceeded, and a net.Error whose Timeout is true.
var errTimeout = os.ErrDeadlineExceeded

func (s *Socket) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	var src net.Addr
	if a := s.laddr.Load(); a != nil {
		src = a
	}
	return &net.OpError{Op: op, Net: "tcp", Source: src, Addr: s.raddr, Err: err}
}

// awaitEdge blocks until the loop reports an edge for r, r's deadline passes,
// or the socket is closed (the caller finds out by its next try).
func (s *Socket) awaitEdge(r *readiness) error {
	if err := s.register(); err != nil {
		return err
	}
	for {
		d := r.deadline.Load()
		if d == 0 {
			<-r.ch
			return nil
		}
		left := time.Duration(d - time.Now().UnixNano())
		if left <= 0 {
			return errTimeout
		}
		if r.timer == nil {
			r.timer = time.NewTimer(left)
		} else {
			r.timer.Reset(left)
		}
		select {
		case <-r.ch:
			r.timer.Stop()
			return nil
		case <-r.timer.C:
			// Look at the deadline again: it may have moved.
		}
	}
}

// register puts the socket in its loop's epoll set, once. Edge-triggered
// registration reports the socket's current state, so an edge that came
// before it is not lost.
func (s *Socket) register() error {
	s.regOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fd < 0 {
			s.regErr = net.ErrClosed
			return
		}
		s.regErr = s.set.watch(s.fd, s)
		s.registered = s.regErr == nil
	})
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.regErr
}

// expired reports whether r's deadline has passed.
func expired(r *readiness) bool {
	d := r.deadline.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// Read implements net.Conn.
func (s *Socket) Read(p []byte) (int, error) {
	var n int
	var err error
	if werr := s.retry(&s.rd, func(fd int) bool {
		if len(p) == 0 {
			return true
		}
		n, err = sysRead(fd, p)
		for err == unix.EINTR {
			n, err = sysRead(fd, p)
		}
		return err != unix.EAGAIN
	}); werr != nil {
		return 0, s.opError("read", werr)
	}
	switch {
	case err != nil:
		return 0, s.opError("read", os.NewSyscallError("read", err))
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write implements net.Conn: it writes all of p or returns an error.
func (s *Socket) Write(p []byte) (int, error) {
	done := 0
	var err error
	if werr := s.retry(&s.wr, func(fd int) bool {
		for done < len(p) {
			n, e := sysWrite(fd, p[done:])
			if n > 0 {
				done += n
			}
			switch {
			case e == unix.EAGAIN:
				return false
			case e != nil && e != unix.EINTR:
				err = e
				return true
			}
		}
		return true
	}); werr != nil {
		return done, s.opError("write", werr)
	}
	if err != nil {
		return done, s.opError("write", os.NewSyscallError("write", err))
	}
	return done, nil
}

// retry calls f with the descriptor, one direction at a time, until f
// says it is done, waiting for the loop's next edge whenever it is not:
// the wait of Read, Write and the RawConn's. It fails when r's deadline
// has passed or the socket is closed.
func (s *Socket) retry(r *readiness, f func(fd int) bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if expired(r) {
			return errTimeout
		}
		s.mu.RLock()
		if s.fd < 0 {
			s.mu.RUnlock()
			return net.ErrClosed
		}
		done := f(s.fd)
		s.mu.RUnlock()
		if done {
			return nil
		}
		if err := s.awaitEdge(r); err != nil {
			return err
		}
	}
}

// Close implements net.Conn. After Attach took the descriptor, Close does
// nothing and says net.ErrClosed.
func (s *Socket) Close() error {
	fd, _ := s.disown()
	if fd < 0 {
		return s.opError("close", net.ErrClosed)
	}
	err := sysClose(fd)
	return s.opError("close", os.NewSyscallError("close", err))
}

// disown ends the Socket's hold on its descriptor and returns it, with
// the set that has it (nil: none). Waiters wake and find the socket
// closed.
func (s *Socket) disown() (int, waitSet) {
	s.mu.Lock()
	fd := s.fd
	s.fd = -1
	var in waitSet
	if fd >= 0 && s.registered {
		in = s.set
		in.unwatch(fd, s)
	}
	s.mu.Unlock()
	s.rd.poke()
	s.wr.poke()
	return fd, in
}

// surrender hands the descriptor to Attach: it reports whether set, the
// pair's loop's, has it already. A socket registered in another set
// leaves it (the pair is relayed where its client waited).
func (s *Socket) surrender(set waitSet) (fd int, inSet bool, err error) {
	fd, in := s.disown()
	if fd < 0 {
		return -1, false, net.ErrClosed
	}
	if in != nil && in != set {
		if err := in.forget(fd); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
		in = nil
	}
	return fd, in != nil, nil
}

// edge passes on an epoll event of the socket's descriptor.
func (s *Socket) edge(events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.rd.poke()
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.wr.poke()
	}
}

// LocalAddr implements net.Conn; it asks the kernel the first time.
func (s *Socket) LocalAddr() net.Addr {
	if a := s.laddr.Load(); a != nil {
		return a
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return (*net.TCPAddr)(nil)
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return (*net.TCPAddr)(nil)
	}
	a := sockaddrTCP(sa)
	s.laddr.Store(a)
	return a
}

// RemoteAddr implements net.Conn.
func (s *Socket) RemoteAddr() net.Addr { return s.raddr }

// SetDeadline implements net.Conn.
func (s *Socket) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn; a Read waiting now sees it.
func (s *Socket) SetReadDeadline(t time.Time) error { return s.setDeadline(&s.rd, t) }

// SetWriteDeadline implements net.Conn.
func (s *Socket) SetWriteDeadline(t time.Time) error { return s.setDeadline(&s.wr, t) }

func (s *Socket) setDeadline(r *readiness, t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
		if d == 0 {
			d = 1
		}
	}
	r.deadline.Store(d)
	r.poke()
	return nil
}

// CloseWrite shuts down the writing side, as (*net.TCPConn).CloseWrite.
func (s *Socket) CloseWrite() error { return s.shutdown(unix.SHUT_WR) }

// CloseRead shuts down the reading side, as (*net.TCPConn).CloseRead.
func (s *Socket) CloseRead() error { return s.shutdown(unix.SHUT_RD) }

func (s *Socket) shutdown(how int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return s.opError("shutdown", net.ErrClosed)
	}
	return s.opError("shutdown", os.NewSyscallError("shutdown", unix.Shutdown(s.fd, how)))
}

// SyscallConn gives access to the descriptor, as net's connections do.
func (s *Socket) SyscallConn() (syscall.RawConn, error) { return socketRaw{s}, nil }

// socketRaw is a Socket's syscall.RawConn.
type socketRaw struct{ s *Socket }

func (r socketRaw) Control(f func(fd uintptr)) error {
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	if r.s.fd < 0 {
		return net.ErrClosed
	}
	f(uintptr(r.s.fd))
	return nil
}

func (r socketRaw) Read(f func(fd uintptr) bool) error  { return r.s.retry(&r.s.rd, intFD(f)) }
func (r socketRaw) Write(f func(fd uintptr) bool) error { return r.s.retry(&r.s.wr, intFD(f)) }

func intFD(f func(fd uintptr) bool) func(int) bool {
	return func(fd int) bool { return f(uintptr(fd)) }
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		var zone string
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zone}
	}
	return &net.TCPAddr{}
}

// exitedLoop fails the socket's waits from now on: its loop is gone.
func (s *Socket) exitedLoop() {
	s.mu.Lock()
	s.regErr = errLoopGone
	s.mu.Unlock()
	s.rd.poke()
	s.wr.poke()
}

// NetConn returns c, or, for a Socket, a *net.TCPConn of the same socket
// (the Socket is closed). A Socket waits in an event loop, which exits
// once the engine drains and has no pair left: a connection that lives
// on outside the epoll driver (the HTTP server's, a pair on the net.Conn
// driver) goes to the runtime's poller instead. That costs a dozen system
// calls, once per such connection; WebSocket pairs never pay it.
func NetConn(c net.Conn) (net.Conn, error) {
	s, ok := c.(*Socket)
	if !ok {
		return c, nil
	}
	fd, in := s.disown()
	if fd < 0 {
		return nil, s.opError("read", net.ErrClosed)
	}
	if in != nil {
		// Its duplicate would keep the registration, and the loop would
		// go on receiving its edges.
		in.forget(fd)
	}
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// isSocket reports whether c is a Socket: a plain TCP connection, like a
// *net.TCPConn.
func isSocket(c net.Conn) bool {
	_, ok := c.(*Socket)
	return ok
}

// accept4 accepts a connection, non-blocking and close-on-exec, and
// fills sa with its peer's address. unix.Accept4 would also ask the
// kernel the socket's protocol (a getsockopt per connection) to convert
// the address.
func accept4(fd int, sa *unix.RawSockaddrAny) (int, error) {
	n := uint32(unix.SizeofSockaddrAny)
	r, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(sa)),
		uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// rawSockaddrTCP converts an IPv4 or IPv6 address from the kernel.
func rawSockaddrTCP(sa *unix.RawSockaddrAny) *net.TCPAddr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: int(p[0])<<8 | int(p[1])}
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return sockaddrTCP(&unix.SockaddrInet6{Port: int(p[0])<<8 | int(p[1]), ZoneId: a.Scope_id, Addr: a.Addr})
	}
	return &net.TCPAddr{}
}

// waitSetKey is the context key of the set a dial should wait in.
type waitSetKey struct{}

// NearConn returns ctx asking the engine's dial to make its socket wait
// in the event loop of c, the pair's client connection, so that Attach
// finds both sockets of the pair in one epoll set.
func NearConn(ctx context.Context, c net.Conn) context.Context {
	if s, ok := c.(*Socket); ok && s.near {
		return context.WithValue(ctx, waitSetKey{}, s.set)
	}
	return ctx
}
