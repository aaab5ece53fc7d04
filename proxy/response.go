package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

const (
	// lingerTimeout bounds how long a rejected client may keep sending
	// after its error response before the connection is closed anyway.
	lingerTimeout = time.Second
	// lingerBytes bounds how much is drained from it meanwhile.
	lingerBytes = 256 << 10
)

// writeRejection writes a complete small error response: the status, the
// rejection's extra headers, Connection: close, and a plain-text body that
// says what was wrong.
func writeRejection(c net.Conn, r *rejection, deadline time.Time) error {
	body := r.msg + "\n"
	var b bytes.Buffer
	writeStatusLine(&b, r.status, http.StatusText(r.status))
	h := http.Header{}
	for k, v := range r.header {
		h[k] = v
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	// RFC 9110 §7.8: a response that sends Upgrade must list "upgrade" in
	// Connection. The 426 for a non-upgrade request names what to upgrade
	// to, yet this connection still ends, hence both options.
	if r.header.Get("Upgrade") != "" {
		h.Set("Connection", "Upgrade, close")
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(body)
	return writeAll(c, b.Bytes(), deadline)
}

// writeUpstreamResponse copies a non-101 upstream answer to the client as it
// came: status code and reason, end-to-end headers, body. Content-Length is
// recomputed (the body is whole now) and Connection: close added, because
// nothing else will ever travel on this connection.
func writeUpstreamResponse(c net.Conn, resp *upstreamResponse, deadline time.Time) error {
	h := resp.header.Clone()
	removeHopByHop(h)
	h.Del("Content-Length")
	// RFC 9110 §8.6: no Content-Length in 1xx and 204 answers; in a 304 it
	// would describe the cached representation, not this (empty) body.
	if resp.status != http.StatusNoContent && resp.status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	h.Set("Connection", "close")
	var b bytes.Buffer
	reason := resp.reason
	if reason == "" {
		reason = http.StatusText(resp.status)
	}
	writeStatusLine(&b, resp.status, reason)
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(resp.body)
	return writeAll(c, b.Bytes(), deadline)
}

// writeSwitching answers the client's upgrade with 101, carrying what the
// upstream chose: subprotocol, extensions (parameters kept) and its other
// response headers such as Set-Cookie.
func writeSwitching(c net.Conn, clientKey string, hs ws.Handshake, header http.Header, deadline time.Time) error {
	// The response is gone once written; its buffer serves the next one.
	b := switchingBufs.Get()
	defer switchingBufs.Put(b)
	b.B = append(b.B, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b.B = appendAcceptKey(b.B, clientKey)
	b.B = append(b.B, "\r\n"...)
	if hs.Protocol != "" {
		b.B = append(b.B, "Sec-WebSocket-Protocol: "...)
		b.B = append(b.B, hs.Protocol...)
		b.B = append(b.B, "\r\n"...)
	}
	if len(hs.Extensions) > 0 {
		b.B = append(b.B, "Sec-WebSocket-Extensions: "...)
		_, _ = httphead.WriteOptions(b, hs.Extensions)
		b.B = append(b.B, "\r\n"...)
	}
	_ = header.Write(b)
	b.B = append(b.B, "\r\n"...)
	return writeAll(c, b.B, deadline)
}

// switchingBufs holds the buffers 101 responses are built in: a pool of
// its own, as their sizes are alike and unlike the relay's buffers.
var switchingBufs bytebufferpool.Pool

func writeStatusLine(b *bytes.Buffer, status int, reason string) {
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(reason)
	b.WriteString("\r\n")
}

func writeAll(c net.Conn, p []byte, deadline time.Time) error {
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.Write(p)
	return err
}

// closeLingering closes a connection that was just sent an error response.
// Closing a socket with unread input makes the kernel send RST, which can
// destroy the response before the client reads it (an oversized head, for
// one, is never read to its end). So, as net/http does, it half-closes
// first, then drains what the client still sends, bounded in time and
// bytes, and closes for good.
func closeLingering(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		if c.SetReadDeadline(time.Now().Add(lingerTimeout)) == nil {
			_, _ = io.CopyN(io.Discard, c, lingerBytes)
		}
	}
	_ = c.Close()
}
