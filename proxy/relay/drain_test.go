package relay

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// eachDriver runs f on every driver available here: the epoll driver on
// Linux, and the net.Conn driver everywhere.
func eachDriver(t *testing.T, f func(t *testing.T, opts Options)) {
	t.Run("epoll", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("the epoll driver is Linux's")
		}
		f(t, Options{Loops: 1})
	})
	t.Run("conn", func(t *testing.T) { f(t, Options{ForceConnDriver: true}) })
}

type drainResult struct {
	rep DrainReport
	err error
}

func startDrain(e *Engine, ctx context.Context, code uint16, reason string, window time.Duration) chan drainResult {
	ch := make(chan drainResult, 1)
	go func() {
		rep, err := e.Drain(ctx, code, reason, window)
		ch <- drainResult{rep, err}
	}()
	return ch
}

// waitDraining waits until e has started draining. The drain's start has
// no signal of its own; the flag it sets first is polled, with a bound.
func waitDraining(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the drain did not start")
		}
		runtime.Gosched()
	}
	// The net.Conn driver gives the order to its pairs one by one on the
	// drain's goroutine, right after the flag: wait until every one has
	// it, or a pair the test ends meanwhile would end before its order
	// and be in no count of the report (it happened in CI).
	for {
		given, live := 0, 0
		e.conns.each(func(p *cpair) {
			live++
			if p.drain != nil {
				given++
			}
		})
		if given == live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drain reached %d of %d pairs", given, live)
		}
		runtime.Gosched()
	}
	// The epoll driver takes it at its loop's next turn; give it that
	// turn before the test's pair starts its close handshake.
	for range 100 {
		runtime.Gosched()
	}
}

func waitDrain(t *testing.T, ch chan drainResult) drainResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return")
	}
	return drainResult{}
}

// TestDrain: every pair gets the drain's close within the window (the
// client the drain's code, the upstream 1001), finishes its handshake,
// and is counted as drained; Attach fails from the start of the drain.
func TestDrain(t *testing.T) {
	eachDriver(t, func(t *testing.T, opts Options) {
		e, closed := newTestEngine(t, opts)
		const n = 6
		var pairs []*testPair
		for range n {
			pairs = append(pairs, attachPair(t, e, closed, Handoff{CloseTimeout: 10 * time.Second}))
		}
		start := time.Now()
		ch := startDrain(e, context.Background(), 1012, "service restart", 300*time.Millisecond)
		for _, tp := range pairs {
			expectClose(t, tp.cli, 1012, "service restart")
			expectClose(t, tp.ups, ws.StatusGoingAway, "going away")
			tp.cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1012, "")))
			tp.ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1001, "")))
		}
		r := waitDrain(t, ch)
		if r.err != nil || r.rep != (DrainReport{Drained: n}) {
			t.Fatalf("Drain: %+v, %v; want %d drained", r.rep, r.err, n)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("drain took %v", took)
		}
		for range n {
			if st := waitClosed(t, closed); st.Reason != ReasonDrain {
				t.Fatalf("reason %v, want drain", st.Reason)
			}
		}
		a, b := tcpPair(t)
		c, d := tcpPair(t)
		defer b.Close()
		defer d.Close()
		if _, err := e.Attach(Handoff{Client: a, Upstream: c}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Attach after Drain: %v, want ErrClosed", err)
		}
	})
}

// TestDrainCut: pairs whose peers never answer are cut when the drain's
// context ends; a pair that ended for its own reason meanwhile is counted
// apart.
func TestDrainCut(t *testing.T) {
	eachDriver(t, func(t *testing.T, opts Options) {
		e, closed := newTestEngine(t, opts)
		const n = 4
		var pairs []*testPair
		for range n {
			pairs = append(pairs, attachPair(t, e, closed, Handoff{CloseTimeout: time.Hour}))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A window so long that no pair reaches its moment in the test.
		ch := startDrain(e, ctx, 1012, "restart", 1000*time.Hour)
		// The drain counts the pairs live when it starts: wait until it
		// has (Attach is refused from then on), so that the pair below
		// ends after it, not before.
		waitDraining(t, e)
		// One client goes away on its own; its upstream answers the close.
		pairs[0].cli.Close()
		expectClose(t, pairs[0].ups, ws.StatusGoingAway, "client gone")
		pairs[0].ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1001, "")))
		if st := waitClosed(t, closed); st.Reason != ReasonClientGone {
			t.Fatalf("reason %v", st.Reason)
		}
		cancel()
		r := waitDrain(t, ch)
		if !errors.Is(r.err, context.Canceled) || r.rep != (DrainReport{Ended: 1, Cut: n - 1}) {
			t.Fatalf("Drain: %+v, %v; want 1 ended, %d cut, context.Canceled", r.rep, r.err, n-1)
		}
		if st := e.Stats(); st.Pairs != 0 {
			t.Fatalf("%d pairs left", st.Pairs)
		}
	})
}

// TestCloseIsShutdown: Close sends 1001 "going away" both ways at once
// and ends pairs with ReasonShutdown.
func TestCloseIsShutdown(t *testing.T) {
	eachDriver(t, func(t *testing.T, opts Options) {
		e, closed := newTestEngine(t, opts)
		tp := attachPair(t, e, closed, Handoff{})
		done := make(chan error, 1)
		go func() { done <- e.Close(context.Background()) }()
		expectClose(t, tp.cli, ws.StatusGoingAway, "going away")
		expectClose(t, tp.ups, ws.StatusGoingAway, "going away")
		tp.cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1001, "")))
		tp.ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1001, "")))
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		if st := waitClosed(t, closed); st.Reason != ReasonShutdown {
			t.Fatalf("reason %v", st.Reason)
		}
	})
}

// metricsRecorder is a metrics.Metrics that keeps what it is told.
type metricsRecorder struct {
	mu      sync.Mutex
	routes  map[string]int
	opened  int
	closed  map[string]int
	bytes   [2]uint64
	frames  [2]uint64
	reports int
	pings   [2]int
}

func newMetricsRecorder() *metricsRecorder {
	return &metricsRecorder{routes: map[string]int{}, closed: map[string]int{}}
}

func (r *metricsRecorder) Route(name string) metrics.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[name]++
	return recRoute{r}
}
func (r *metricsRecorder) ConfigReload(bool) {}
func (r *metricsRecorder) Draining(bool)     {}

type recRoute struct{ r *metricsRecorder }

func (recRoute) Handshake(string, time.Duration) {}
func (recRoute) HTTPRequest(int)                 {}
func (x recRoute) PairOpened()                   { x.r.mu.Lock(); x.r.opened++; x.r.mu.Unlock() }
func (x recRoute) PairClosed(reason string) {
	x.r.mu.Lock()
	x.r.closed[reason]++
	x.r.mu.Unlock()
}
func (x recRoute) Relayed(dir metrics.Direction, bytes, frames uint64) {
	x.r.mu.Lock()
	x.r.bytes[dir] += bytes
	x.r.frames[dir] += frames
	x.r.reports++
	x.r.mu.Unlock()
}
func (x recRoute) Ping(s metrics.Side)            { x.r.mu.Lock(); x.r.pings[s]++; x.r.mu.Unlock() }
func (recRoute) Pong(metrics.Side, time.Duration) {}
func (recRoute) Miss(metrics.Side)                {}

// TestMetrics: both drivers report a pair's life and what it relayed,
// and the sums match the pair's own account.
func TestMetrics(t *testing.T) {
	eachDriver(t, func(t *testing.T, opts Options) {
		rec := newMetricsRecorder()
		opts.Metrics = rec
		e, closed := newTestEngine(t, opts)
		tp := attachPair(t, e, closed, Handoff{Route: "chat"})
		for i := range 10 {
			msg := clientFrame(ws.OpText, true, make([]byte, 100+i))
			tp.cli.Write(msg)
			readExactly(t, tp.ups, len(msg))
			back := serverFrame(ws.OpBinary, true, make([]byte, 10+i))
			tp.ups.Write(back)
			readExactly(t, tp.cli, len(back))
		}
		tp.cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "")))
		expectClose(t, tp.ups, 1000, "")
		tp.ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "")))
		expectClose(t, tp.cli, 1000, "")
		st := waitClosed(t, closed)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.routes["chat"] != 1 || rec.opened != 1 || rec.closed["client_closed"] != 1 {
			t.Fatalf("routes %v, opened %d, closed %v", rec.routes, rec.opened, rec.closed)
		}
		up, down := metrics.ToUpstream, metrics.ToClient
		if rec.bytes[up] != st.BytesToUpstream || rec.bytes[down] != st.BytesToClient ||
			rec.frames[up] != st.FramesFromClient || rec.frames[down] != st.FramesFromUpstream {
			t.Fatalf("metrics bytes %v frames %v; pair %+v", rec.bytes, rec.frames, st)
		}
		if st.FramesFromClient != 11 || rec.reports > 2*22 {
			t.Fatalf("%d frames from the client, %d reports (want sums, not one per frame)", st.FramesFromClient, rec.reports)
		}
	})
}
