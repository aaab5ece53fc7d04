package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Engine relays attached pairs. Plain TCP pairs on Linux run on the epoll
// driver's event loops; the others on the net.Conn driver. Its methods
// are safe for concurrent use.
type Engine struct {
	// env is what the drivers share with the engine (env.go): they are
	// given it, never the Engine.
	env
	ids    atomic.Uint64
	routes sync.Map     // route name → *routeInfo
	epoll  *epollDriver // nil: every pair runs on conns
	conns  connDriver
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
	e := &Engine{}
	e.env.init(opts)
	e.conns.init(&e.env)
	if !opts.ForceConnDriver {
		d, err := newEpollDriver(&e.env)
		if err != nil {
			return nil, err
		}
		e.epoll = d
	}
	return e, nil
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

// Listener returns ln, or, when the engine runs event loops and ln is a
// *net.TCPListener, a listener over it whose connections are *Sockets:
// their descriptors are the engine's from accept on, and Attach takes
// them as they are (socket_linux.go says what that spares). Closing ln
// closes the returned listener.
func (e *Engine) Listener(ln net.Listener) net.Listener {
	if e.epoll == nil {
		return ln
	}
	return e.epoll.listener(ln)
}

// DialFunc returns fallback, or, when the engine runs event loops, a dial
// function that connects to IP addresses with *Sockets and leaves names
// and other networks to fallback. A context from NearConn makes the
// socket wait in the loop of the pair's client.
func (e *Engine) DialFunc(fallback DialFunc) DialFunc {
	if e.epoll == nil {
		return fallback
	}
	return e.epoll.dialFunc(fallback)
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
	} else if err = settleSockets(&h); err == nil {
		err = e.conns.attach(id, &h, m)
	}
	if err != nil {
		return 0, err
	}
	return id, nil
}

// settleSockets turns h's Sockets into net's connections for the net.Conn
// driver (see NetConn). On failure both connections are closed.
func settleSockets(h *Handoff) error {
	c, cerr := NetConn(h.Client)
	u, uerr := NetConn(h.Upstream)
	if err := errors.Join(cerr, uerr); err != nil {
		for _, x := range []net.Conn{c, u, h.Client, h.Upstream} {
			if x != nil {
				x.Close()
			}
		}
		return err
	}
	h.Client, h.Upstream = c, u
	return nil
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

// Resume claims the session that req names. The returned error is a
// *ResumeRefused when the session cannot be resumed. The token is spent
// whatever the answer.
func (e *Engine) Resume(req ResumeRequest) (*Claim, error) {
	c, code := e.resume(req)
	if code != 0 {
		e.countResume(code)
		return nil, refused(code)
	}
	return c, nil
}
