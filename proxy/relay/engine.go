package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// Options configures an Engine.
type Options struct {
	// Loops is the number of event loops of the epoll driver; 0 means
	// runtime.GOMAXPROCS(0).
	Loops int
	// ReadBufferSize is the size of one read from a socket (per loop, not
	// per pair, on the epoll driver); 0 means 64 KiB. It also bounds what
	// a pair can hold buffered per direction while its sink is blocked.
	ReadBufferSize int
	// DisableIOUring makes every socket write its own system call instead
	// of batching a loop round's writes through io_uring. Batching is used
	// only where the kernel allows io_uring; this forces it off.
	DisableIOUring bool
	// ForceConnDriver runs every pair on the net.Conn driver, plain TCP
	// on Linux included. Without it, a pair of plain TCP connections runs
	// on the epoll driver on Linux and everything else (TLS, other
	// systems, and resumable sessions: resume.go) on the net.Conn driver. The test suites set it from
	// WSALIVE_TEST_DRIVER=conn.
	ForceConnDriver bool
	// ResumeMemory bounds the replay bytes all resumable sessions hold
	// together (RESUME.md §4); 0 means no bound beyond each session's
	// own. A session that would pass it loses its resumability.
	ResumeMemory int64
	// OnClose, when set, is called once for every pair that ends, on the
	// goroutine that ended it. It must not block.
	OnClose func(PairStats)
	// Metrics receives pair and traffic figures; nil means metrics.Nop{}.
	Metrics metrics.Metrics
	// Logger receives engine-level errors. nil means slog.Default().
	Logger *slog.Logger
}

// ErrClosed is returned by Attach once Drain or Close has started.
var ErrClosed = errors.New("relay: engine closed")

// Stats is a snapshot of engine-wide gauges.
type Stats struct {
	// Pairs is the number of live pairs.
	Pairs int64
	// BufferedBytes is the number of bytes held in pending write buffers
	// across all pairs (bytes read from one side not yet accepted by the
	// other's socket).
	BufferedBytes int64
	// Loops is the number of event loops of the epoll driver;
	// IOUringLoops how many of them batch their reads and writes through
	// io_uring.
	Loops, IOUringLoops int
	// Sessions is the number of live resumable sessions, ParkedSessions
	// how many of them wait for their client; ReplayBytes is what their
	// replay buffers hold.
	Sessions, ParkedSessions, ReplayBytes int64
}

// Engine relays attached pairs. Plain TCP pairs on Linux run on the epoll
// driver's event loops; the others on the net.Conn driver. Its methods
// are safe for concurrent use.
type Engine struct {
	opts     Options
	logger   *slog.Logger
	metrics  metrics.Metrics
	start    time.Time
	ids      atomic.Uint64
	pairs    atomic.Int64
	buffered atomic.Int64
	closed   atomic.Bool
	byReason [numReasons]atomic.Uint64
	routes   sync.Map     // route name → *routeInfo
	sessions sessionTable // resumable sessions (session.go)
	epoll    *epollDriver // nil: every pair runs on conns
	conns    connDriver
}

// New starts an engine.
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
	e := &Engine{opts: opts, logger: opts.Logger, metrics: opts.Metrics, start: time.Now()}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	if e.metrics == nil {
		e.metrics = metrics.Nop{}
	}
	e.conns.init(e)
	e.sessions.init(opts.ResumeMemory)
	if !opts.ForceConnDriver {
		d, err := newEpollDriver(e)
		if err != nil {
			return nil, err
		}
		e.epoll = d
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
	st := Stats{Pairs: e.pairs.Load(), BufferedBytes: e.buffered.Load(),
		Sessions: e.sessions.live.Load(), ParkedSessions: e.sessions.parked.Load(), ReplayBytes: e.sessions.budget.used.Load()}
	if e.epoll != nil {
		st.Loops, st.IOUringLoops = e.epoll.loopCounts()
	}
	return st
}

// liveBound is how long Live waits for every event loop to answer its
// probe. A turn of a loop is one epoll wait and the work on at most
// maxEvents events: milliseconds even under load. Half a second is a stall
// an operator must hear about, and it leaves the answer inside a
// Kubernetes probe's default 1 s timeout.
const liveBound = 500 * time.Millisecond

// Live reports whether the engine's event loops still turn: it wakes each
// loop the way Attach does and waits, up to liveBound, for every one to
// answer at the start of its next turn. An idle loop parked in epoll_wait
// answers at once; a loop stuck in a system call or a blocking callback
// does not, and Live returns an error naming it. A loop that exited while
// the engine was not draining (its epoll wait failed) is an error too.
// The net.Conn driver has no loops of its own: its pairs' goroutines are
// the runtime's to schedule, and Live says nil for it. Live is meant for
// /healthz.
func (e *Engine) Live() error {
	if e.epoll == nil {
		return nil
	}
	return e.epoll.live(liveBound)
}

// Closed returns how many pairs have ended with reason r.
func (e *Engine) Closed(r Reason) uint64 {
	if r >= numReasons {
		return 0
	}
	return e.byReason[r].Load()
}

// Attach hands a pair to a driver and returns its id. The engine owns both
// connections from then on, whether or not Attach succeeds.
func (e *Engine) Attach(h Handoff) (uint64, error) {
	if h.Client == nil || h.Upstream == nil {
		closeConns(&h)
		return 0, errors.New("relay: nil connection")
	}
	if e.closed.Load() {
		closeConns(&h)
		return 0, ErrClosed
	}
	m := e.route(h.Route)
	id := e.ids.Add(1)
	var err error
	// A resumable session always runs on the net.Conn driver (resume.go
	// says why).
	if e.epoll != nil && plainTCP(&h) && h.Session == nil {
		err = e.epoll.attach(id, &h, m)
	} else {
		err = e.conns.attach(id, &h, m)
	}
	if err != nil {
		return 0, err
	}
	return id, nil
}

// route returns the shared information of the named route, resolving its
// metrics handle the first time.
func (e *Engine) route(name string) *routeInfo {
	if r, ok := e.routes.Load(name); ok {
		return r.(*routeInfo)
	}
	r, _ := e.routes.LoadOrStore(name, &routeInfo{name: name, metrics: e.metrics.Route(name)})
	return r.(*routeInfo)
}

// plainTCP reports whether both connections of h are plain TCP sockets,
// whose descriptors carry the WebSocket bytes themselves.
func plainTCP(h *Handoff) bool {
	_, c := h.Client.(*net.TCPConn)
	_, u := h.Upstream.(*net.TCPConn)
	return c && u
}

func closeConns(h *Handoff) {
	if h.Client != nil {
		h.Client.Close()
	}
	if h.Upstream != nil {
		h.Upstream.Close()
	}
}

// Drain stops the engine gracefully: Attach fails with ErrClosed from
// now on, and every live pair is closed at a uniformly random moment
// within window (0: at once). The client gets a close frame with code and
// reason, the upstream 1001 "going away", and each gets its close
// handshake, bounded by the pair's CloseTimeout. Drain returns when every
// pair is gone, or when ctx ends: then the pairs still open are cut
// (closed without finishing their handshake) and ctx's error is
// returned. Pairs closed by a drain end with ReasonDrain, or with
// ReasonShutdown for 1001 at once (what Close does).
//
// A later Drain or Close takes over the pairs that have not reached their
// moment yet, and counts them in its own report.
func (e *Engine) Drain(ctx context.Context, code uint16, reason string, window time.Duration) (DrainReport, error) {
	o := &drainOrder{code: ws.StatusCode(code), text: reason, reason: ReasonDrain, window: max(window, 0)}
	if o.code == ws.StatusGoingAway && o.window == 0 {
		o.reason = ReasonShutdown
	}
	return e.drain(ctx, o)
}

// Close stops the engine: Drain with 1001 "going away" at once. Close is
// idempotent; later calls wait likewise.
func (e *Engine) Close(ctx context.Context) error {
	_, err := e.drain(ctx, &drainOrder{code: ws.StatusGoingAway, text: "going away", reason: ReasonShutdown})
	return err
}

func (e *Engine) drain(ctx context.Context, o *drainOrder) (DrainReport, error) {
	e.closed.Store(true)
	if e.epoll != nil {
		e.epoll.drain(o)
	}
	e.conns.drain(o)
	done := make(chan struct{})
	go func() {
		if e.epoll != nil {
			e.epoll.wait()
		}
		e.conns.wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		if e.epoll != nil {
			e.epoll.force()
		}
		e.conns.force()
		<-done
	}
	if e.epoll != nil {
		e.epoll.closeFDs()
	}
	return DrainReport{Drained: int(o.drained.Load()), Ended: int(o.ended.Load()), Cut: int(o.cut.Load())}, err
}
