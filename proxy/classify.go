package proxy

import (
	"bytes"
	"io"
	"net/http"

	"github.com/gobwas/httphead"
	"github.com/valyala/bytebufferpool"
)

// recorder keeps a copy of every byte read through it, and the first error
// the connection returned. The first request head is read through one:
// when the request turns out to be plain HTTP, the recorded bytes are
// replayed to the HTTP server in front of the rest of the connection; and
// the connection's own error (a timeout, an EOF) tells a head cut short
// from a malformed one, which http.ReadRequest does not (it parses the
// cut-off line it was given and calls it malformed).
type recorder struct {
	r   io.Reader
	buf *bytebufferpool.ByteBuffer
	err error
}

func (rc *recorder) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.buf.B = append(rc.buf.B, p[:n]...)
	if err != nil && rc.err == nil {
		rc.err = err
	}
	return n, err
}

// headBufs holds the buffers heads are recorded in.
var headBufs bytebufferpool.Pool

// isWebSocketUpgrade is the upgrade decision, made for every request: it
// asks for a WebSocket (Upgrade lists "websocket") and means it (Connection
// lists "upgrade"; RFC 9110 §7.8 says an Upgrade header not named in
// Connection is to be ignored). Such a request goes to the WebSocket path
// whatever else it says, and only there; anything else is plain HTTP and
// is never tunneled.
func isWebSocketUpgrade(h http.Header) bool {
	return hasToken(h, "Upgrade", "websocket") && hasToken(h, "Connection", "upgrade")
}

// checkHeadLines applies the rules of RFC 9112 §5 that http.ReadRequest
// does not (golang/go#34540) to a raw request head: every field name is a
// non-empty token directly followed by the colon (no white space before
// it: "a server MUST reject, with a response status code of 400, any
// received request message that contains whitespace between a header
// field name and colon"), no obsolete line folding, and at most maxLines
// field lines (431). It also counts Host lines: RFC 9112 §3.2 wants exactly
// one, and http.ReadRequest removes them from the header (taking the host
// from an absolute-form target when there is none), so only the raw head
// can tell; and each Host line's value must be valid even when an
// absolute-form target names the host.
func checkHeadLines(head []byte, maxLines int) *rejection {
	// Skip the request line.
	i := bytes.IndexByte(head, '\n')
	if i < 0 {
		return nil
	}
	http11 := bytes.HasSuffix(bytes.TrimSuffix(head[:i], []byte("\r")), []byte("HTTP/1.1"))
	head = head[i+1:]
	lines, hosts := 0, 0
	for len(head) > 0 {
		var line []byte
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			line, head = head, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // the end of the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			return reject(http.StatusBadRequest, "obsolete line folding in request head")
		}
		lines++
		if lines > maxLines {
			return reject(http.StatusRequestHeaderFieldsTooLarge, "too many header lines")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return reject(http.StatusBadRequest, "malformed header line")
		}
		for _, b := range line[:colon] {
			if !httphead.OctetTypes[b].IsToken() {
				return reject(http.StatusBadRequest, "invalid header field name")
			}
		}
		if colon == len("Host") && bytes.EqualFold(line[:colon], []byte("Host")) {
			hosts++
			if !validHostHeader(string(bytes.Trim(line[colon+1:], " \t"))) {
				return reject(http.StatusBadRequest, "malformed Host header")
			}
		}
	}
	switch {
	case hosts > 1:
		return reject(http.StatusBadRequest, "more than one Host header")
	case hosts == 0 && http11:
		return reject(http.StatusBadRequest, "missing Host header")
	}
	return nil
}

// countHeaderLines counts the field lines net/http parsed into h; a plain
// HTTP request on a kept-alive connection is held to the same bound as
// the first.
func countHeaderLines(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}
