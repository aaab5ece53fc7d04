package wsload

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// clientConn is the client end of a connection as every mode writes to it:
// one goroutine reads, while frames (messages, pongs, the close) may be
// written from others, each whole under wmu so that they never interleave.
type clientConn struct {
	conn net.Conn
	wmu  sync.Mutex
	// closing is set once a close frame has gone out, or is about to;
	// nothing may follow it (RFC 6455 §5.5.1).
	closing atomic.Bool
}

// writeFrame sends one whole frame by deadline. Errors surface in the
// reading goroutine, which sees the connection fail.
func (c *clientConn) writeFrame(frame []byte, deadline time.Time) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(deadline)
	c.conn.Write(frame)
}

// sendClose sends a close frame with code, unless one has gone out
// already, and gives the peer until deadline to answer. It reports whether
// it sent one: false means this side had begun the close, so a close frame
// now arriving is the answer to it.
func (c *clientConn) sendClose(code ws.StatusCode, deadline time.Time) bool {
	if !c.closing.CompareAndSwap(false, true) {
		return false
	}
	c.conn.SetReadDeadline(deadline)
	c.writeFrame(closeFrame(code), deadline)
	return true
}

// clientFrame returns a whole masked client frame, with a fresh mask
// (RFC 6455 §5.3). It copies payload.
func clientFrame(op ws.OpCode, payload []byte) []byte {
	return ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, true, payload)))
}

// closeFrame returns a masked close frame with code.
func closeFrame(code ws.StatusCode) []byte {
	if code == ws.StatusNoStatusRcvd {
		// 1005 must not be sent on the wire (RFC 6455 §7.4.1): answer a
		// close without a code with one without a code.
		return clientFrame(ws.OpClose, nil)
	}
	return clientFrame(ws.OpClose, ws.NewCloseFrameBody(code, ""))
}

// closeCodeOf returns the status code of a close payload, or 1005 when it
// has none.
func closeCodeOf(p []byte) ws.StatusCode {
	if len(p) < 2 {
		return ws.StatusNoStatusRcvd
	}
	return ws.StatusCode(binary.BigEndian.Uint16(p))
}
