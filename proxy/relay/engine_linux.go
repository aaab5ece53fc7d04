package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/liveness"
	"golang.org/x/sys/unix"
)

// epollDriver is the engine's set of event loops (epoll_linux.go).
type epollDriver struct {
	env   *env
	loops []*loop
	next  atomic.Uint32
}

// newEpollDriver starts the event loops.
func newEpollDriver(e *env) (*epollDriver, error) {
	d := &epollDriver{env: e}
	opts := &e.opts
	for range opts.Loops {
		var seed [32]byte
		rand.Read(seed[:])
		l, err := newLoop(e, opts.ReadBufferSize, !opts.DisableIOUring, seed)
		if err != nil {
			d.closeFDs()
			return nil, fmt.Errorf("relay: starting event loop: %w", err)
		}
		d.loops = append(d.loops, l)
	}
	if l := d.loops[0]; !opts.DisableIOUring && l.ringErr != nil {
		e.logger.Info("relay: io_uring unavailable; each socket write is its own system call", "err", l.ringErr)
	}
	for _, l := range d.loops {
		go l.run()
	}
	return d, nil
}

func (d *epollDriver) loopCounts() (loops, ring int) {
	for _, l := range d.loops {
		if l.ringOn.Load() {
			ring++
		}
	}
	return len(d.loops), ring
}

// attach takes the descriptors of h's connections and hands the pair to
// one of the loops: the loop its Sockets wait in, if they are Sockets.
// The connections are closed (a Socket's descriptor taken as it is, a
// *net.TCPConn's duplicated) whether or not it succeeds.
func (d *epollDriver) attach(id uint64, h *Handoff, m *routeInfo) error {
	e := d.env
	p := &epair{}
	p.init(id, h, m)
	p.ep[client].fd, p.ep[upstream].fd = -1, -1
	p.setAddr(client, &p.ep[client].addr, remoteAddr(h.Client))
	p.setAddr(upstream, &p.ep[upstream].addr, remoteAddr(h.Upstream))
	// The pair goes where its Sockets wait, if they do.
	l := socketLoop(h.Client)
	if l == nil {
		l = socketLoop(h.Upstream)
	}
	if l == nil {
		l = d.pick()
	}
	a := attachment{p: p, initial: [2][]byte{h.ClientBuffered, h.UpstreamBuffered}}
	cfd, cin, cerr := takeFD(h.Client, l)
	ufd, uin, uerr := takeFD(h.Upstream, l)
	if err := errors.Join(cerr, uerr); err != nil {
		closeFD(cfd)
		closeFD(ufd)
		return err
	}
	p.ep[client].fd, p.ep[upstream].fd = int32(cfd), int32(ufd)
	a.watched = [2]bool{cin, uin}
	conns := [2]net.Conn{h.Client, h.Upstream}
	for s := client; s <= upstream; s++ {
		if !p.pol.keepaliveWanted(s, conns[s], s == client && h.ClientKeepaliveSet) {
			continue // 5 system calls spared
		}
		if err := setKeepalive(p.ep[s].sock(), &p.pol.side[s].Keepalive); err != nil {
			e.logger.Warn("relay: setting TCP keepalive options", "side", s.String(), "err", err)
		}
	}
	e.pairs.Add(1)
	if err := l.post(a); err != nil {
		e.pairs.Add(-1)
		closeFD(cfd)
		closeFD(ufd)
		return err
	}
	return nil
}

// pick chooses a loop for a new socket or pair: round robin.
func (d *epollDriver) pick() *loop {
	return d.loops[int(d.next.Add(1))%len(d.loops)]
}

// socketLoop returns the loop a Socket waits in, nil for other
// connections.
func socketLoop(c net.Conn) *loop {
	if s, ok := c.(*Socket); ok {
		l, _ := s.set.(*loop)
		return l
	}
	return nil
}

// drain hands every loop the order.
func (d *epollDriver) drain(o *drainOrder) {
	for _, l := range d.loops {
		l.postDrain(o)
	}
}

// wait returns when every loop has exited.
func (d *epollDriver) wait() {
	for _, l := range d.loops {
		<-l.done
	}
}

// force makes every loop cut its pairs and exit.
func (d *epollDriver) force() {
	for _, l := range d.loops {
		l.force()
	}
}

// live probes every loop at once and waits, up to bound in all, for each
// to answer or to have exited. Exiting is an error only while the engine
// is not closed: a drained engine's loops exit by design.
func (d *epollDriver) live(bound time.Duration) error {
	answers := make([]<-chan struct{}, len(d.loops))
	for i, l := range d.loops {
		answers[i] = l.probe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var errs []error
	for i, l := range d.loops {
		select {
		case <-answers[i]:
		case <-l.done:
			if !d.env.closed.Load() {
				errs = append(errs, fmt.Errorf("relay: event loop %d has exited", i))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("relay: event loop %d did not turn within %s", i, bound))
		}
	}
	return errors.Join(errs...)
}

// takeFD takes the descriptor of a pair's connection for loop l, and
// reports whether l's epoll set has it already: a Socket's as it is, a
// *net.TCPConn's duplicated (dupFD). The connection is closed.
//
// For a *net.TCPConn, the dup, and the runtime's epoll_ctl DEL and close of the original, are
// the price of taking a socket from the net package, which has no way to
// let go of a descriptor without closing it. Keeping the net.Conn open
// instead would leave the socket in the runtime's epoll set as well as the
// loop's: every later readiness event, each pong included, would be
// delivered twice, and the pair would hold the netFD for its lifetime.
func takeFD(c net.Conn, l *loop) (fd int, inL bool, err error) {
	if c == nil {
		return -1, false, errors.New("relay: nil connection")
	}
	if s, ok := c.(*Socket); ok {
		return s.surrender(l)
	}
	fd, err = dupFD(c)
	return fd, false, err
}

// dupFD returns a duplicate of c's descriptor and closes c: the net
// package cannot give its descriptor away.
func dupFD(c net.Conn) (int, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("relay: %T has no file descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("relay: dup: %w", dupErr)
	}
	// No SetNonblock: O_NONBLOCK belongs to the open file, which the
	// duplicate shares, and Go creates every socket non-blocking (accept4
	// and socket with SOCK_NONBLOCK); nothing on the handshake path makes
	// it blocking (only (*net.TCPConn).File did, before Go 1.11). It cost
	// an fcntl per socket on every handshake.
	return fd, nil
}

// setKeepalive applies k to a socket; zero fields keep the kernel's
// values. Keepalive times are whole seconds, rounded up; the user timeout
// is milliseconds.
func setKeepalive(fd int, k *liveness.TCPKeepalive) error {
	var errs []error
	set := func(level, opt, v int) {
		if err := sysSetsockoptInt(fd, level, opt, v); err != nil {
			errs = append(errs, err)
		}
	}
	secs := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
	if k.Idle > 0 {
		set(unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		set(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(k.Idle))
		if k.Interval > 0 {
			set(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(k.Interval))
		}
		if k.Count > 0 {
			set(unix.IPPROTO_TCP, unix.TCP_KEEPCNT, k.Count)
		}
	}
	if k.UserTimeout > 0 {
		set(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(k.UserTimeout/time.Millisecond))
	}
	return errors.Join(errs...)
}

// ListenControl returns a net.ListenConfig Control function that sets k
// on a listening socket before it listens, nil when k sets nothing.
//
// A socket Linux accepts is a copy of its listening socket
// (tcp_create_openreq_child): it inherits SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT
// (TestAcceptedSocketInheritsKeepalive checks these on the running
// kernel), and the kernel arms its keepalive timer when SO_KEEPALIVE came
// with it (read in tcp_create_openreq_child, not tested). A listener opened with k therefore spares the relay
// the five setsockopt calls per client socket whose route's keepalive is
// k (Handoff.ClientKeepaliveSet). Set before listen, not after: a
// connection completed in between would be accepted without it.
func ListenControl(k liveness.TCPKeepalive) func(network, address string, c syscall.RawConn) error {
	if k == (liveness.TCPKeepalive{}) {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var setErr error
		if err := c.Control(func(fd uintptr) { setErr = setKeepalive(int(fd), &k) }); err != nil {
			return err
		}
		return setErr
	}
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// closeFDs closes the loops' own descriptors once they have exited.
func (d *epollDriver) closeFDs() {
	for _, l := range d.loops {
		l.mu.Lock()
		if l.wakefd >= 0 {
			l.poll.close()
			unix.Close(l.wakefd)
			l.wakefd = -1
			if l.ring != nil {
				l.ring.close()
			}
		}
		l.mu.Unlock()
	}
}

// connKeepalive applies k to the TCP socket under c (a TLS connection's
// too).
func connKeepalive(c net.Conn, k *liveness.TCPKeepalive) error {
	if k == nil || *k == (liveness.TCPKeepalive{}) {
		return nil
	}
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var setErr error
	if err := raw.Control(func(fd uintptr) { setErr = setKeepalive(int(fd), k) }); err != nil {
		return err
	}
	return setErr
}
