package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/proxy/relay"
)

const (
	// backpressureReadBuffer is the engine's ReadBufferSize in
	// TestBackpressure.
	backpressureReadBuffer = 64 << 10
	// bufferedBound is what one direction of a pair may hold while its
	// sink is blocked: one read, plus room for a carried header and an
	// injected control frame. Only one direction carries data in each
	// case, so it bounds the whole engine's BufferedBytes.
	bufferedBound = backpressureReadBuffer + 1<<10
	// floodMessage is the size of each message a flooding writer sends.
	floodMessage = 32 << 10
	// stallSamples is how many samples in a row must see buffered bytes
	// before the sink counts as blocked: by then every socket buffer on
	// the way is full and the writer is held back by TCP.
	stallSamples = 500
	// stallBound bounds the wait for the stall.
	stallBound = 20 * time.Second
)

// bufferWatch samples the engine's BufferedBytes until stopped.
type bufferWatch struct {
	stalled chan struct{} // closed once stallSamples samples in a row saw bytes
	stop    chan struct{}
	result  chan bufferSamples
}

type bufferSamples struct {
	samples  int
	positive int   // samples that saw BufferedBytes > 0
	max      int64 // the largest BufferedBytes seen
}

func watchBuffered(e *relay.Engine) *bufferWatch {
	w := &bufferWatch{
		stalled: make(chan struct{}),
		stop:    make(chan struct{}),
		result:  make(chan bufferSamples, 1),
	}
	go func() {
		var s bufferSamples
		run := 0
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			b := e.Stats().BufferedBytes
			s.samples++
			s.max = max(s.max, b)
			if b > 0 {
				s.positive++
				run++
				if run == stallSamples {
					close(w.stalled)
				}
			} else if run < stallSamples {
				run = 0
			}
			select {
			case <-w.stop:
				w.result <- s
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops sampling and checks the bound; the samples must have seen
// bytes held, or the test could not have failed.
func (w *bufferWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	s := recv(t, w.result, "buffer samples")
	t.Logf("BufferedBytes: %d samples, %d above zero, max %d (bound %d)", s.samples, s.positive, s.max, bufferedBound)
	if s.positive == 0 {
		t.Errorf("BufferedBytes was never above zero in %d samples: the test saw no backpressure", s.samples)
	}
	if s.max > bufferedBound {
		t.Errorf("BufferedBytes reached %d, over the bound %d (ReadBufferSize %d + 1 KiB): memory grows with a slow reader",
			s.max, bufferedBound, backpressureReadBuffer)
	}
}

// flood writes floodMessage-sized binary messages (message i is
// payload(binary, floodMessage, i)) until stop is set, then a text message
// "end <count>". It returns how many binary messages it wrote.
func flood(ctx context.Context, c *websocket.Conn, stop *atomic.Bool) (int, error) {
	n := 0
	for ; !stop.Load(); n++ {
		if err := c.Write(ctx, websocket.MessageBinary, payload(websocket.MessageBinary, floodMessage, uint64(n))); err != nil {
			return n, fmt.Errorf("write message %d: %w", n, err)
		}
	}
	return n, c.Write(ctx, websocket.MessageText, []byte("end "+strconv.Itoa(n)))
}

// drainFlood reads what flood wrote, checking every message, and returns
// the count the writer announced.
func drainFlood(ctx context.Context, c *websocket.Conn) (int, error) {
	for i := 0; ; i++ {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return i, fmt.Errorf("read message %d: %w", i, err)
		}
		if typ == websocket.MessageText {
			want := "end " + strconv.Itoa(i)
			if string(msg) != want {
				return i, fmt.Errorf("got %q after %d messages, want %q", msg, i, want)
			}
			return i, nil
		}
		if d := sameMessage(typ, msg, websocket.MessageBinary, payload(websocket.MessageBinary, floodMessage, uint64(i))); d != "" {
			return i, fmt.Errorf("message %d: %s", i, d)
		}
	}
}

type floodResult struct {
	n   int
	err error
}

// TestBackpressure stops one peer from reading while the other writes as
// fast as it can: the engine must hold at most one read's worth of bytes
// and let TCP slow the writer down, then deliver everything intact once
// the reader resumes.
func TestBackpressure(t *testing.T) {
	var stop atomic.Bool
	resume := make(chan struct{})
	upResult := make(chan floodResult, 1)
	f := newFixture(t, fixtureOptions{
		readBufferSize: backpressureReadBuffer,
		handler: func(w http.ResponseWriter, r *http.Request) {
			f := upstreamOf(r)
			c := accept(w, r, nil)
			if c == nil {
				return
			}
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(r.Context(), 3*stallBound)
			defer cancel()
			switch r.URL.Path {
			case "/slow-reader":
				select {
				case <-resume:
				case <-f.done:
					return
				case <-ctx.Done():
					return
				}
				n, err := drainFlood(ctx, c)
				upResult <- floodResult{n, err}
			case "/fast-writer":
				n, err := flood(ctx, c, &stop)
				upResult <- floodResult{n, err}
			}
			// Wait for the client's close, answering it.
			_, _, _ = c.Read(ctx)
		},
	})

	t.Run("upstream-stops-reading", func(t *testing.T) {
		stop.Store(false)
		c, _ := f.dial(t, "/slow-reader", nil)
		watch := watchBuffered(f.engine)
		ctx, cancel := context.WithTimeout(context.Background(), 3*stallBound)
		defer cancel()
		wrote := make(chan floodResult, 1)
		go func() {
			n, err := flood(ctx, c, &stop)
			wrote <- floodResult{n, err}
		}()

		select {
		case <-watch.stalled:
		case <-time.After(stallBound):
			t.Errorf("the engine never held bytes for %d samples in a row within %v", stallSamples, stallBound)
		}
		stop.Store(true)
		close(resume)
		w := recvWithin(t, wrote, 2*stallBound, "client writer result")
		up := recvWithin(t, upResult, 2*stallBound, "upstream reader result")
		watch.finish(t)
		if w.err != nil {
			t.Errorf("client: %v", w.err)
		}
		if up.err != nil {
			t.Errorf("upstream: %v", up.err)
		}
		if w.n != up.n {
			t.Errorf("client wrote %d messages, upstream read %d", w.n, up.n)
		}
		t.Logf("%d messages of %d bytes (%d MiB) went through", w.n, floodMessage, w.n*floodMessage>>20)
		closeNormally(t, f, c, relay.ReasonClientClosed)
	})

	t.Run("client-stops-reading", func(t *testing.T) {
		stop.Store(false)
		// The client does not read until the engine holds bytes.
		c, _ := f.dial(t, "/fast-writer", nil)
		watch := watchBuffered(f.engine)
		ctx, cancel := context.WithTimeout(context.Background(), 3*stallBound)
		defer cancel()

		select {
		case <-watch.stalled:
		case <-time.After(stallBound):
			t.Errorf("the engine never held bytes for %d samples in a row within %v", stallSamples, stallBound)
		}
		stop.Store(true)
		n, err := drainFlood(ctx, c)
		up := recvWithin(t, upResult, 2*stallBound, "upstream writer result")
		watch.finish(t)
		if err != nil {
			t.Errorf("client: %v", err)
		}
		if up.err != nil {
			t.Errorf("upstream: %v", up.err)
		}
		if n != up.n {
			t.Errorf("upstream wrote %d messages, client read %d", up.n, n)
		}
		t.Logf("%d messages of %d bytes (%d MiB) went through", n, floodMessage, n*floodMessage>>20)
		closeNormally(t, f, c, relay.ReasonClientClosed)
	})
}
