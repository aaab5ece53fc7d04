package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// demoLink is the demo's stand-in for the network between a browser and
// wsalive: a TCP forwarder on the demo's public address in front of
// wsalive's listener, which can cut its WebSocket connections the way a
// network switch does. A cut resets both halves (SO_LINGER 0, then close):
// the browser sees its connection fail (1006, no close frame) and wsalive
// sees a connection reset, the "vanished without a close frame" case a
// resumable session survives.
//
// The cut lives here rather than in wsalive because after the handshake
// wsalive's event loops own a duplicate of the socket: closing the
// listener's net.Conn would not reset anything. The forwarder owns both of
// its sockets. It costs one extra loopback hop, which a demo can afford.
type demoLink struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool
	links  map[*linkedConn]struct{}
	wg     sync.WaitGroup
}

// linkedConn is one forwarded client connection.
type linkedConn struct {
	client, server net.Conn
	// websocket is set once an upgrade request crossed toward wsalive:
	// only WebSocket connections are cut, so that the page's own HTTP
	// request for the cut is not.
	websocket atomic.Bool
	ended     atomic.Int32 // directions that ended with EOF
	closeOnce sync.Once
}

func newDemoLink(ln net.Listener, target string) *demoLink {
	return &demoLink{ln: ln, target: target, links: map[*linkedConn]struct{}{}}
}

// serve forwards every accepted connection until close.
func (d *demoLink) serve() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s, err := net.Dial("tcp", d.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &linkedConn{client: c, server: s}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			l.abort()
			return
		}
		d.links[l] = struct{}{}
		d.wg.Add(2)
		d.mu.Unlock()
		go d.pipe(l, s, c, true)
		go d.pipe(l, c, s, false)
	}
}

// upgradeHeader marks a request that asks for a WebSocket; matched in
// lower case.
var upgradeHeader = []byte("upgrade: websocket")

// pipe copies src to dst until src ends, then half-closes dst; an error
// (a reset, a cut) aborts both halves.
func (d *demoLink) pipe(l *linkedConn, dst, src net.Conn, towardServer bool) {
	defer d.wg.Done()
	buf := make([]byte, 32<<10)
	var err error
	for {
		var n int
		n, err = src.Read(buf)
		if n > 0 {
			if towardServer && !l.websocket.Load() && bytes.Contains(bytes.ToLower(buf[:n]), upgradeHeader) {
				l.websocket.Store(true)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		// An orderly end: close both once both directions have ended, so
		// that nothing written is discarded.
		if l.ended.Add(1) < 2 {
			return
		}
		l.closeOnce.Do(func() {
			l.client.Close()
			l.server.Close()
		})
	} else {
		l.abort()
	}
	d.mu.Lock()
	delete(d.links, l)
	d.mu.Unlock()
}

// abort resets both halves.
func (l *linkedConn) abort() {
	l.closeOnce.Do(func() {
		for _, c := range []net.Conn{l.client, l.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	})
}

// cut resets every WebSocket connection and returns how many it reset.
func (d *demoLink) cut() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for l := range d.links {
		if l.websocket.Load() {
			l.abort()
			delete(d.links, l)
			n++
		}
	}
	return n
}

// close stops accepting, resets what is left and waits for the pipes.
func (d *demoLink) close() {
	d.mu.Lock()
	d.closed = true
	d.ln.Close()
	for l := range d.links {
		l.abort()
	}
	d.mu.Unlock()
	d.wg.Wait()
}
