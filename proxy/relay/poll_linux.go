package relay

import (
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is a loop's epoll set. The loop never blocks in epoll_wait:
// epoll_wait is only called with a zero timeout, and when nothing is ready
// the loop goroutine parks in the Go runtime's own poller, which watches
// the epoll descriptor itself (an epoll set is readable while it has
// events). A goroutine blocked in a system call holds an OS thread and its
// scheduler slot, and the runtime's monitor then wakes every 20 µs to take
// the slot back; with GOMAXPROCS=1 under load that churn cost more CPU than
// the relaying. Parked in the runtime's poller, the loop costs nothing
// while it waits and the scheduler stays free.
type poller struct {
	fd       int
	file     *os.File
	raw      syscall.RawConn
	deadline time.Time // the deadline set on file, to skip setting it again
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that os.NewFile registers it with the runtime's
	// poller and deadlines work.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{fd: fd, file: f, raw: raw}, nil
}

func (p *poller) add(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (p *poller) del(fd int) error {
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_DEL, fd, nil)
}

// poll returns the events ready now, without blocking.
func (p *poller) poll(events []unix.EpollEvent) (int, error) {
	// epoll_pwait with a zero timeout never blocks, so the raw system
	// call (no scheduler bookkeeping) is safe; it also exists on every
	// architecture, unlike epoll_wait.
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.fd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		if errno == unix.EINTR {
			return 0, nil
		}
		return 0, errno
	}
	return int(n), nil
}

// wait returns ready events, parking until some are ready or until
// deadline (zero: no deadline); at the deadline it returns 0 events.
func (p *poller) wait(events []unix.EpollEvent, deadline time.Time) (int, error) {
	// RawConn.Read calls the function once before it parks, so that first
	// call is the non-blocking check: no separate poll is needed here.
	if !deadline.Equal(p.deadline) {
		if err := p.file.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		p.deadline = deadline
	}
	var n int
	var perr error
	err := p.raw.Read(func(uintptr) bool {
		n, perr = p.poll(events)
		return n > 0 || perr != nil
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return n, perr
}

func (p *poller) close() error { return p.file.Close() }

// sysRead and sysWrite are read(2) and write(2) on the loop's non-blocking
// sockets. They never block, so they go straight to the kernel without the
// scheduler's system-call bookkeeping: with it, the runtime's monitor saw
// the loop "in a system call" during every loopback write and woke every
// 20 µs to consider taking its processor away, which under load cost more
// than the bookkeeping saved. The buffers are the loop's own, so skipping
// the race detector's annotations hides nothing.
func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func sysWritev(fd int, iov []unix.Iovec) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// sysSetsockoptInt is setsockopt(2) with an int value, sysClose close(2)
// and sysConnect connect(2) on a non-blocking socket: like sysRead, none
// of them sleeps, so none needs the scheduler's system-call bookkeeping.
// A non-blocking connect to loopback runs the whole TCP handshake inside
// the call (tens of µs), which was long enough for the runtime's monitor
// to take the handshake goroutine's processor away.
func sysSetsockoptInt(fd, level, opt, v int) error {
	val := int32(v)
	_, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&val)), unsafe.Sizeof(val), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func sysClose(fd int) error {
	_, _, errno := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func sysConnect(fd int, addr netip.AddrPort) error {
	var (
		ptr  unsafe.Pointer
		size uintptr
		sa4  unix.RawSockaddrInet4
		sa6  unix.RawSockaddrInet6
	)
	port := (*[2]byte)(unsafe.Pointer(&sa4.Port))
	if ip := addr.Addr(); ip.Is4() || ip.Is4In6() {
		sa4.Family = unix.AF_INET
		sa4.Addr = ip.Unmap().As4()
		ptr, size = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	} else {
		sa6.Family = unix.AF_INET6
		sa6.Addr = ip.As16()
		port = (*[2]byte)(unsafe.Pointer(&sa6.Port))
		ptr, size = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	}
	port[0], port[1] = byte(addr.Port()>>8), byte(addr.Port()) // network order
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size)
	if errno != 0 {
		return errno
	}
	return nil
}

func sysGetsockoptInt(fd, level, opt int) (int, error) {
	var val int32
	size := uint32(unsafe.Sizeof(val))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&val)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(val), nil
}

// sysConnected reports whether fd, a socket whose non-blocking connect
// said EINPROGRESS, is connected already: getpeername(2) succeeds only
// once the handshake is done.
func sysConnected(fd int) bool {
	var sa unix.RawSockaddrAny
	size := uint32(unsafe.Sizeof(sa))
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)))
	return errno == 0
}
