package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/gobwas/httphead"
)

// readHeadLines reads through h.br up to and including the empty line that
// ends a request head, leaving what follows it buffered; the head is then
// h.head(). Each line is checked as it arrives against the rules under
// which http.ReadRequest would refuse the head at that line (a request
// line that is not method SP target SP version, a field name that is not
// a token or lacks its colon, a control character in a value, white space
// before the first field line), so that a malformed head is answered at
// once, as http.ReadRequest answers it, not after its end or its timeout.
// malformed reports such a line; err is the reader's error (the limit's
// io.EOF included) when the head ended before its empty line.
func (h *headReader) readHeadLines() (malformed bool, err error) {
	start := 0 // of the current line in the recorded bytes
	for n := 0; ; {
		if _, err := h.br.ReadSlice('\n'); err == bufio.ErrBufferFull {
			continue // a line longer than the buffer; it is recorded whole
		} else if err != nil {
			return false, err
		}
		end := len(h.rec.buf.B) - h.br.Buffered()
		line := trimEOL(h.rec.buf.B[start:end])
		start = end
		switch {
		case n == 0:
			if !validRequestLine(line) {
				return true, nil
			}
		case len(line) == 0:
			return false, nil // the end of the head
		case line[0] == ' ' || line[0] == '\t':
			// obs-fold: refused later (checkHeadLines) with its own
			// reason; net/http refuses a fold of the request line here.
			if n == 1 || !validFieldValue(line) {
				return true, nil
			}
		default:
			colon := bytes.IndexByte(line, ':')
			if colon < 0 || !isTokenBytes(line[:colon]) || !validFieldValue(line[colon+1:]) {
				return true, nil
			}
		}
		n++
	}
}

// trimEOL removes a line's ending: LF, or CRLF (RFC 9112 §2.2), as
// bufio.Reader.ReadLine (and so http.ReadRequest) does.
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// validRequestLine applies http.ReadRequest's checks of a request line that
// need no allocation: method SP target SP version, the method a token, no
// control character in the target (url.ParseRequestURI refuses them), the
// version HTTP/DIGIT.DIGIT. The target is parsed with the head.
func validRequestLine(line []byte) bool {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return false
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return false
	}
	for _, c := range line[sp1+1 : sp1+1+sp2] {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	proto := line[sp1+1+sp2+1:]
	// A stack copy: http.ParseHTTPVersion takes a string.
	var buf [8]byte
	if len(proto) != len(buf) {
		return false
	}
	copy(buf[:], proto)
	_, _, ok := http.ParseHTTPVersion(string(buf[:]))
	return ok && isTokenBytes(line[:sp1])
}

func isTokenBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !httphead.OctetTypes[c].IsToken() {
			return false
		}
	}
	return true
}

// validFieldValue reports whether v holds only the bytes net/textproto
// accepts in a field value: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5).
// No CR (a bare one), LF or NUL.
func validFieldValue[T string | []byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseHead builds the request of a whole head (request line through the
// empty line) the way http.ReadRequest would, for the heads of an ordinary
// WebSocket upgrade: an origin-form target, field lines without folds,
// no body framing. Everything else (ok false) is left to http.ReadRequest,
// which remains the authority for what is valid: parseHead accepts a
// subset of what it accepts and yields the same request for it
// (TestParseHeadMatchesReadRequest, FuzzParseHead).
//
// It copies the head into one string and slices the method, target,
// names and values out of it; the header's value slices share one
// backing array. Well under half of what http.ReadRequest allocates.
func parseHead(head []byte) (req *http.Request, ok bool) {
	s := string(head)
	line, rest, ok := cutLine(s)
	if !ok {
		return nil, false
	}
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || !isToken(method) || !strings.HasPrefix(target, "/") {
		return nil, false
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return nil, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	lines := strings.Count(rest, "\n") - 1 // the field lines, less the empty one
	if lines < 0 {
		return nil, false
	}
	h := make(http.Header, lines)
	values := make([]string, lines)
	for {
		if line, rest, ok = cutLine(rest); !ok {
			return nil, false
		}
		if line == "" {
			break
		}
		name, value, found := strings.Cut(line, ":")
		// A fold (leading white space) fails the token check.
		if !found || !isToken(name) || !validFieldValue(value) {
			return nil, false
		}
		key := canonicalKey(name)
		switch key {
		case "Content-Length", "Transfer-Encoding":
			return nil, false // body framing: net/http's
		case "Host":
			if h[key] != nil {
				return nil, false
			}
		}
		value = strings.Trim(value, " \t")
		if len(values) == 0 {
			return nil, false // more field lines than lines: no end
		}
		if vv := h[key]; vv != nil {
			h[key] = append(vv, value)
		} else {
			// Most fields are single; capacity 1 keeps an append from
			// running into the next field's value.
			h[key], values = values[:1:1], values[1:]
			h[key][0] = value
		}
	}
	if rest != "" {
		return nil, false
	}
	// As net/http's fixPragmaCacheControl (RFC 9111 §5.4).
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"}
	}
	// As http.ReadRequest: the host is req.Host, not a field.
	host := h.Get("Host")
	delete(h, "Host")
	req = &http.Request{
		Method:     method,
		URL:        u,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RequestURI: target,
		// As net/http's shouldClose for a request.
		Close: major < 1 || hasToken(h, "Connection", "close") ||
			major == 1 && minor == 0 && !hasToken(h, "Connection", "keep-alive"),
	}
	return req, true
}

// cutLine cuts the first line (ending in LF or CRLF) off s.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return "", s, false
	}
	line, rest = s[:i], s[i+1:]
	return strings.TrimSuffix(line, "\r"), rest, true
}

// wsKeys are the canonical forms of the WebSocket fields, which clients
// spell Sec-WebSocket-*: net/textproto interns the canonical keys of
// common fields, not these, and allocates a new key for each.
var wsKeys = [...]string{
	"Sec-Websocket-Key",
	"Sec-Websocket-Version",
	"Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol",
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey(name) for a token name,
// without allocating for the WebSocket fields. (EqualFold folds only
// ASCII here: a token is ASCII.)
func canonicalKey(name string) string {
	for _, k := range wsKeys {
		if len(k) == len(name) && strings.EqualFold(name, k) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}
