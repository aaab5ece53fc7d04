package tlsconf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"time"
)

// ErrPlainHTTP is the error of a TLS handshake that met a plain HTTP
// request: the client was answered 400 and the connection is done.
var ErrPlainHTTP = errors.New("tls: plain HTTP request on a TLS port (answered 400)")

const (
	// recordTypeHandshake is the first byte of every TLS connection: a
	// handshake record carrying the ClientHello (RFC 8446 §5.1).
	recordTypeHandshake = 0x16
	// plainHTTPWait bounds how long the rest of a plain HTTP request head
	// is read (so that closing does not reset the connection under the
	// unread request, which would lose the answer), and how long writing
	// the answer may take.
	plainHTTPWait = time.Second
	// plainHTTPHead bounds how much of it is read.
	plainHTTPHead = 16 << 10
)

// plainHTTPAnswer is what a plain HTTP request on a TLS port gets: nginx's
// answer in spirit (a 400 that says what happened), short, and closing.
var plainHTTPAnswer = func() []byte {
	body := "400 Bad Request: this port speaks TLS; the plain HTTP request was sent to an HTTPS (wss://) port.\n"
	return []byte("HTTP/1.1 400 Bad Request\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Connection: close\r\n" +
		"\r\n" + body)
}()

// NewListener returns a listener whose connections are TLS server
// connections using srv's material. The TLS handshake itself happens on
// the connection's first Read (or an explicit Handshake), on the caller's
// goroutine and under its deadlines, never in Accept: one slow client
// cannot hold up the accept loop.
//
// A connection whose first byte cannot start a TLS handshake and looks
// like an HTTP request ("GET ...") is answered with a short HTTP 400
// instead, and its handshake fails with ErrPlainHTTP.
func NewListener(inner net.Listener, srv *Server) net.Listener {
	return &listener{Listener: inner, conf: srv.TLSConfig()}
}

type listener struct {
	net.Listener
	conf *tls.Config
}

// Accept returns a *tls.Conn. Errors are the inner listener's, unchanged,
// so that a caller's handling of temporary errors still works.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&sniffConn{Conn: c}, l.conf), nil
}

// sniffConn looks at the first bytes a client sends before the TLS
// server sees them. After that first read it only passes reads through.
type sniffConn struct {
	net.Conn
	// sniffed is set after the first read. Reads are serialized by the
	// tls.Conn above, so a plain bool does.
	sniffed bool
}

// NetConn returns the TCP connection underneath, for code that needs its
// socket (keepalive options, say).
func (c *sniffConn) NetConn() net.Conn { return c.Conn }

func (c *sniffConn) Read(p []byte) (int, error) {
	first := !c.sniffed
	c.sniffed = true
	n, err := c.Conn.Read(p)
	if !first || n == 0 || p[0] == recordTypeHandshake || !looksLikeHTTP(p[0]) {
		return n, err
	}
	c.answerPlainHTTP(p[:n])
	return 0, ErrPlainHTTP
}

// looksLikeHTTP reports whether b can start an HTTP/1.x request line: every
// method is upper-case letters. Anything else that is not TLS is left to
// fail the TLS handshake on its own.
func looksLikeHTTP(b byte) bool { return b >= 'A' && b <= 'Z' }

// answerPlainHTTP reads the rest of the request head (bounded in time and
// size), then writes the 400. Errors are ignored: the connection is closed
// by the caller either way, and the client may already be gone.
func (c *sniffConn) answerPlainHTTP(start []byte) {
	deadline := time.Now().Add(plainHTTPWait)
	_ = c.Conn.SetDeadline(deadline)
	head := append(make([]byte, 0, 1024), start...)
	buf := make([]byte, 1024)
	for !bytes.Contains(head, []byte("\r\n\r\n")) && !bytes.Contains(head, []byte("\n\n")) && len(head) < plainHTTPHead {
		n, err := c.Conn.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	_, _ = c.Conn.Write(plainHTTPAnswer)
}
