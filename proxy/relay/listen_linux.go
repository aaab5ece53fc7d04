package relay

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The epoll driver's side of Sockets (socket_linux.go): the listener that
// accepts them and the dial that connects them, each placed in one of
// the driver's loops.

// socketListener is a listener whose Accept returns Sockets. It owns a
// duplicate of the listening socket, waited on as an *os.File in the
// runtime's poller (a *net.TCPListener's RawConn cannot wait), and
// closed the original.
type socketListener struct {
	file *os.File
	raw  syscall.RawConn
	addr net.Addr
	drv  *epollDriver
	// nodelay: accepted sockets inherit TCP_NODELAY from the listener.
	// Set on a listener that was already listening, it is inherited by
	// the connections completed after that, which are all behind the
	// first EAGAIN of accept: until then each socket gets its own.
	nodelay atomic.Bool
	closed  atomic.Bool
}

// Accept implements net.Listener.
func (ln *socketListener) Accept() (net.Conn, error) {
	var (
		nfd int
		sa  unix.RawSockaddrAny
		err error
	)
	rerr := ln.raw.Read(func(fd uintptr) bool {
		for {
			nfd, err = accept4(int(fd), &sa)
			// ECONNABORTED: the connection went away in the queue; net
			// retries it the same way.
			if err == unix.EAGAIN {
				ln.nodelay.Store(true)
				return false
			}
			if err != unix.EINTR && err != unix.ECONNABORTED {
				return true
			}
		}
	})
	switch {
	case rerr != nil && ln.closed.Load():
		rerr = net.ErrClosed // what a closed net.Listener says
	case rerr == nil && err != nil:
		rerr = os.NewSyscallError("accept4", err)
	}
	if rerr != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: ln.addr, Err: rerr}
	}
	if !ln.nodelay.Load() {
		sysSetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	return newSocket(nfd, ln.drv.pick(), len(ln.drv.loops) > 1, rawSockaddrTCP(&sa)), nil
}

// Close implements net.Listener.
func (ln *socketListener) Close() error {
	ln.closed.Store(true)
	if err := ln.file.Close(); err != nil {
		return &net.OpError{Op: "close", Net: "tcp", Addr: ln.addr, Err: net.ErrClosed}
	}
	return nil
}

// Addr implements net.Listener.
func (ln *socketListener) Addr() net.Addr { return ln.addr }

// SyscallConn gives access to the listening socket, as net's listeners
// do (Control only: Read and Write are not for listeners).
func (ln *socketListener) SyscallConn() (syscall.RawConn, error) { return ln.raw, nil }

// listener takes over ln when it is a *net.TCPListener: see
// Engine.Listener. TCP_NODELAY, which net sets on every connection it
// accepts, is set once on the listener when it is not there already:
// Linux copies it into every socket it accepts
// (TestSocketListenerNoDelay).
func (d *epollDriver) listener(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	raw, err := tl.SyscallConn()
	if err != nil {
		return ln
	}
	sl := &socketListener{addr: tl.Addr(), drv: d}
	dup := -1
	var derr error
	raw.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY); err == nil && v != 0 {
			sl.nodelay.Store(true)
		} else {
			// Inherited from now on; nodelay waits for accept's EAGAIN.
			sysSetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if derr != nil || dup < 0 {
		return ln
	}
	// The duplicate shares the listener's O_NONBLOCK, so os.NewFile
	// registers it with the runtime's poller.
	sl.file = os.NewFile(uintptr(dup), "listener "+sl.addr.String())
	if sl.raw, err = sl.file.SyscallConn(); err != nil {
		sl.file.Close()
		return ln
	}
	tl.Close()
	return sl
}

// dial connects to addr with a Socket that waits in the client's loop
// when ctx carries one (NearConn), so that Attach finds both of a
// pair's sockets in one epoll set. ctx bounds and cancels the connect.
func (d *epollDriver) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	l, _ := ctx.Value(waitSetKey{}).(*loop)
	if l == nil || l.env != d.env {
		l = d.pick()
	}
	raddr := net.TCPAddrFromAddrPort(addr)
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Addr: raddr, Err: err} }
	family := unix.AF_INET6
	if ip := addr.Addr(); ip.Is4() || ip.Is4In6() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, opErr(os.NewSyscallError("socket", err))
	}
	sysSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	s := newSocket(fd, l, len(d.loops) > 1, raddr)
	err = sysConnect(fd, addr)
	for err == unix.EINTR {
		err = sysConnect(fd, addr)
	}
	if err == nil {
		return s, nil
	}
	if err != unix.EINPROGRESS {
		s.Close()
		return nil, opErr(os.NewSyscallError("connect", err))
	}
	// Toward loopback the kernel has usually run the whole TCP handshake
	// inside connect. Then the request goes out now, in the same turn, as
	// HAProxy's does: it reaches the upstream with its connection, which
	// accepts and reads it in one go instead of waking once for the
	// connection and again for the request, and the dial skips a trip
	// through the event loop.
	if sysConnected(fd) {
		return s, nil
	}
	// ctx bounds the wait: its end (its own timer, for a deadline) pokes
	// the waiter, so the wait needs no timer of its own. Every other
	// token is an edge (EPOLLOUT comes once the connection is
	// established or has failed) or Close.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, s.wr.poke)
	}
	for {
		if werr := s.awaitEdge(&s.wr); werr != nil {
			if stop != nil {
				stop()
			}
			s.Close()
			return nil, opErr(werr)
		}
		if cerr := ctx.Err(); cerr != nil {
			s.Close()
			return nil, opErr(cerr)
		}
		s.mu.RLock()
		soErr := -1
		var gerr error
		if s.fd >= 0 {
			soErr, gerr = sysGetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		}
		s.mu.RUnlock()
		switch {
		case gerr != nil:
			err = os.NewSyscallError("getsockopt", gerr)
		case soErr == -1:
			err = net.ErrClosed
		case soErr == 0:
			if stop != nil {
				stop()
			}
			return s, nil
		case syscall.Errno(soErr) == unix.EINPROGRESS || syscall.Errno(soErr) == unix.EALREADY || syscall.Errno(soErr) == unix.EINTR:
			continue // a spurious wake: still connecting
		default:
			err = os.NewSyscallError("connect", syscall.Errno(soErr))
		}
		if stop != nil {
			stop()
		}
		s.Close()
		return nil, opErr(err)
	}
}

// dialFunc returns a dial function that dials IP addresses with Sockets
// and leaves the rest (names to resolve, other networks) to fallback.
func (d *epollDriver) dialFunc(fallback DialFunc) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if network == "tcp" || network == "tcp4" || network == "tcp6" {
			if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().Zone() == "" &&
				(network == "tcp" || (network == "tcp4") == (ap.Addr().Is4() || ap.Addr().Is4In6())) {
				return d.dial(ctx, ap)
			}
		}
		return fallback(ctx, network, address)
	}
}
