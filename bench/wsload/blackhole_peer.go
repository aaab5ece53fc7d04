package wsload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// connEnd is how and when one connection ended, as its peer saw it: the
// close frame it received ("1001 client heartbeat timeout") or the read
// error that ended it ("EOF without close frame").
type connEnd struct {
	at   time.Time
	what string
}

// endRecorder collects one connEnd per connection, from many goroutines.
type endRecorder struct {
	mu      sync.Mutex
	ends    []connEnd
	stopped bool
	// changed gets a token whenever an end is recorded.
	changed chan struct{}
}

func newEndRecorder() *endRecorder {
	return &endRecorder{changed: make(chan struct{}, 1)}
}

// record notes that a connection ended now. Ends after stop are ignored:
// they are the run's own cleanup.
func (r *endRecorder) record(what string) {
	at := time.Now()
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.ends = append(r.ends, connEnd{at: at, what: what})
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *endRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ends)
}

// stop ends the recording and returns what was recorded.
func (r *endRecorder) stop() []connEnd {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return r.ends
}

// closeText names a close frame payload: "1001 client heartbeat timeout",
// "1000", or "1005 (no code)".
func closeText(p []byte) string {
	code := closeCodeOf(p)
	if code == ws.StatusNoStatusRcvd {
		return "1005 (no code)"
	}
	if len(p) > 2 {
		return fmt.Sprintf("%d %s", code, p[2:])
	}
	return fmt.Sprintf("%d", code)
}

// readEndText names the error that ended reading a connection.
func readEndText(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "EOF without close frame"
	}
	return "read error: " + errorKind(err)
}

// maxBackendFrame bounds the frames the backend echoes; the blackhole
// modes send none, so anything big is a bug worth seeing.
const maxBackendFrame = 1 << 20

// bhBackend is the legacy backend of the blackhole modes: a WebSocket echo
// server that never pings, answers pings, and, when rec is set, records for
// every connection when and how it ended (a close frame with its code and
// reason, or EOF). It answers a close with a close and then closes.
type bhBackend struct {
	ln       net.Listener
	rec      *endRecorder
	upgraded atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// serveBackend starts serving ln; rec may be nil.
func serveBackend(ln net.Listener, rec *endRecorder) *bhBackend {
	b := &bhBackend{ln: ln, rec: rec, conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go b.acceptLoop()
	return b
}

func (b *bhBackend) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go b.serveConn(c)
	}
}

func (b *bhBackend) serveConn(c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(DefaultDialTimeout))
	if _, err := ws.Upgrade(c); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	b.upgraded.Add(1)

	ended := func(what string) {
		if b.rec != nil {
			b.rec.record(what)
		}
	}
	br := bufio.NewReaderSize(c, 4<<10)
	var buf []byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			ended(readEndText(err))
			return
		}
		if h.Length > maxBackendFrame {
			ended(fmt.Sprintf("protocol error: frame of %d bytes", h.Length))
			ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusMessageTooBig, "")))
			return
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		p := buf[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			ended(readEndText(err))
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			err = ws.WriteFrame(c, ws.NewPongFrame(p))
		case ws.OpPong:
		case ws.OpClose:
			ended(closeText(p))
			// Answer with the same code, then close TCP first, as a
			// server should (RFC 6455 §7.1.1).
			c.SetWriteDeadline(time.Now().Add(DefaultCloseTimeout))
			if code := closeCodeOf(p); code == ws.StatusNoStatusRcvd {
				ws.WriteFrame(c, ws.NewCloseFrame(nil))
			} else {
				ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			}
			return
		default:
			err = ws.WriteFrame(c, ws.NewFrame(h.OpCode, h.Fin, p))
		}
		if err != nil {
			ended("write error: " + errorKind(err))
			return
		}
	}
}

// abortAll resets every open connection: Close with SO_LINGER 0 sends RST
// and frees the socket at once, instead of leaving it to retransmit a FIN
// toward a peer that may be gone.
func (b *bhBackend) abortAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		abortConn(c)
	}
}

// close stops accepting, resets every connection and waits for the
// goroutines.
func (b *bhBackend) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.ln.Close()
	b.abortAll()
	b.wg.Wait()
}

// abortConn closes c with a reset.
func abortConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
