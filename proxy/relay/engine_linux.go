package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Engine relays attached pairs on a fixed set of event loops. Its methods
// are safe for concurrent use.
type Engine struct {
	opts     Options
	logger   *slog.Logger
	start    time.Time
	loops    []*loop
	next     atomic.Uint32
	ids      atomic.Uint64
	pairs    atomic.Int64
	buffered atomic.Int64
	// ringLoops counts the loops that still use io_uring.
	ringLoops atomic.Int32
	closed    atomic.Bool
	stopOnce  sync.Once
	byReason  [numReasons]atomic.Uint64
}

// New starts an engine's event loops.
func New(opts Options) (*Engine, error) {
	if opts.Loops <= 0 {
		opts.Loops = runtime.GOMAXPROCS(0)
	}
	if opts.ReadBufferSize <= 0 {
		opts.ReadBufferSize = 64 << 10
	}
	if opts.ReadBufferSize < 4<<10 {
		return nil, fmt.Errorf("relay: read buffer size %d is below 4 KiB", opts.ReadBufferSize)
	}
	e := &Engine{opts: opts, logger: opts.Logger, start: time.Now()}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	for range opts.Loops {
		var seed [32]byte
		rand.Read(seed[:])
		l, err := newLoop(e, opts.ReadBufferSize, !opts.DisableIOUring, seed)
		if err != nil {
			e.closeFDs()
			return nil, fmt.Errorf("relay: starting event loop: %w", err)
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		if l.ring != nil {
			e.ringLoops.Add(1)
		}
	}
	if l := e.loops[0]; !opts.DisableIOUring && l.ringErr != nil {
		e.logger.Info("relay: io_uring unavailable; each socket write is its own system call", "err", l.ringErr)
	}
	for _, l := range e.loops {
		go l.run()
	}
	return e, nil
}

// clock is the engine's monotonic clock in nanoseconds.
func (e *Engine) clock() int64 { return int64(time.Since(e.start)) }

func (e *Engine) report(st PairStats) {
	e.byReason[st.Reason].Add(1)
	if e.opts.OnClose != nil {
		e.opts.OnClose(st)
	}
}

// Stats returns engine-wide gauges.
func (e *Engine) Stats() Stats {
	return Stats{Pairs: e.pairs.Load(), BufferedBytes: e.buffered.Load(),
		Loops: len(e.loops), IOUringLoops: int(e.ringLoops.Load())}
}

// Closed returns how many pairs have ended with reason r.
func (e *Engine) Closed(r Reason) uint64 {
	if r >= numReasons {
		return 0
	}
	return e.byReason[r].Load()
}

// Attach hands a pair to one of the loops and returns its id. The engine
// owns both connections from then on, whether or not Attach succeeds: after
// the call the net.Conns are closed and the loop works on duplicates of
// their descriptors.
func (e *Engine) Attach(h Handoff) (uint64, error) {
	p := &pair{route: h.Route, closeTimeout: h.CloseTimeout}
	if p.closeTimeout <= 0 {
		p.closeTimeout = 5 * time.Second
	}
	p.ep[client].fd, p.ep[upstream].fd = -1, -1
	cfd, cerr := takeFD(h.Client, &p.ep[client].addr)
	ufd, uerr := takeFD(h.Upstream, &p.ep[upstream].addr)
	if err := errors.Join(cerr, uerr); err != nil {
		closeFD(cfd)
		closeFD(ufd)
		return 0, err
	}
	if e.closed.Load() {
		closeFD(cfd)
		closeFD(ufd)
		return 0, ErrClosed
	}
	p.ep[client].fd, p.ep[upstream].fd = int32(cfd), int32(ufd)
	p.pol = h.Policy
	if p.pol == nil {
		p.pol = noPolicy
	}
	for s := client; s <= upstream; s++ {
		if err := setKeepalive(p.ep[s].sock(), &p.pol.side[s].Keepalive); err != nil {
			e.logger.Warn("relay: setting TCP keepalive options", "side", s.String(), "err", err)
		}
	}
	p.dir[client].rules = rulesFor(true, h.Extensions, h.MaxFrameSize)
	p.dir[client].rules.wholeText = uint64(p.pol.appMatchLen)
	p.dir[upstream].rules = rulesFor(false, h.Extensions, h.MaxFrameSize)
	p.id = e.ids.Add(1)
	e.pairs.Add(1)
	l := e.loops[int(e.next.Add(1))%len(e.loops)]
	if err := l.post(attachment{p, [2][]byte{h.ClientBuffered, h.UpstreamBuffered}}); err != nil {
		e.pairs.Add(-1)
		closeFD(cfd)
		closeFD(ufd)
		return 0, err
	}
	return p.id, nil
}

// takeFD duplicates the descriptor of a TCP connection and closes the
// connection, so that the runtime's poller lets go of it and the loop owns
// the socket. The duplicate shares the socket's non-blocking flag.
func takeFD(c net.Conn, addr *string) (int, error) {
	if c == nil {
		return -1, errors.New("relay: nil connection")
	}
	defer c.Close()
	*addr = c.RemoteAddr().String()
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
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// setKeepalive applies k to a socket; zero fields keep the kernel's
// values. Keepalive times are whole seconds, rounded up; the user timeout
// is milliseconds.
func setKeepalive(fd int, k *TCPKeepalive) error {
	var errs []error
	set := func(level, opt, v int) {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
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

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// Close stops the engine: new Attach calls fail, every pair is sent 1001
// "going away" on both sides and given its close handshake, and Close
// returns when all pairs are gone. When ctx ends first, the remaining
// pairs are closed at once. Close is idempotent; later calls wait likewise.
func (e *Engine) Close(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.closed.Store(true)
		for _, l := range e.loops {
			l.mu.Lock()
			l.stopping = true
			l.mu.Unlock()
			l.wake()
		}
	})
	var err error
	for _, l := range e.loops {
		select {
		case <-l.done:
		case <-ctx.Done():
			err = ctx.Err()
			l.mu.Lock()
			l.forced = true
			l.mu.Unlock()
			l.wake()
			<-l.done
		}
	}
	e.closeFDs()
	return err
}

func (e *Engine) closeFDs() {
	for _, l := range e.loops {
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
