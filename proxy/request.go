package proxy

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"

	"github.com/gobwas/httphead"
)

// rejection is a handshake failure answered with a small HTTP error
// response: what the client gets, and what goes to the log.
type rejection struct {
	status int
	// header holds extra response headers (Allow, Upgrade,
	// Sec-WebSocket-Version); may be nil.
	header http.Header
	// msg is the response body and the log reason.
	msg string
}

func reject(status int, msg string) *rejection {
	return &rejection{status: status, msg: msg}
}

// clientUpgrade is what the proxy needs from a valid client upgrade request.
//
// It is pooled, slices and all: an httphead.Option alone is some 450
// bytes, and browsers offer an extension on every handshake. Nothing may
// refer to its slices after putClientUpgrade.
type clientUpgrade struct {
	key        string
	protocols  []string
	extensions []httphead.Option
	// extBuf holds the Sec-WebSocket-Extensions values the options are
	// parsed from; their names and parameters are slices of it.
	extBuf []byte
}

var clientUpgrades = sync.Pool{New: func() any { return new(clientUpgrade) }}

func getClientUpgrade() *clientUpgrade {
	return clientUpgrades.Get().(*clientUpgrade)
}

func putClientUpgrade(u *clientUpgrade) {
	// Clear what points into the request, so the pool does not pin it.
	clear(u.protocols)
	clear(u.extensions)
	*u = clientUpgrade{
		protocols:  u.protocols[:0],
		extensions: u.extensions[:0],
		extBuf:     u.extBuf[:0],
	}
	clientUpgrades.Put(u)
}

// checkHead rejects requests no route could serve whatever they ask: wrong
// HTTP version, missing or repeated Host, or a body. It runs before routing.
func checkHead(req *http.Request) *rejection {
	// RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP
	// version MUST be at least 1.1."
	if req.ProtoMajor != 1 || req.ProtoMinor < 1 {
		return reject(http.StatusHTTPVersionNotSupported, "HTTP/1.1 is required")
	}
	// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
	// status code to any HTTP/1.1 request message that lacks a Host
	// header field and to any request message that contains more than one
	// Host header field line or a Host header field with an invalid
	// field value." The count of Host lines is checked on the raw head
	// (checkHeadLines; net/http's server does it for kept-alive
	// requests), the value here.
	if req.Host == "" {
		return reject(http.StatusBadRequest, "missing Host header")
	}
	if !validHostHeader(req.Host) {
		return reject(http.StatusBadRequest, "malformed Host header")
	}
	// A body would sit where the first frames go; a proxy that reads it as
	// frames (or forwards its length) desynchronizes the two peers.
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
		return reject(http.StatusBadRequest, "an upgrade request must not have a body")
	}
	if !strings.HasPrefix(req.URL.Path, "/") {
		return reject(http.StatusBadRequest, "request target must be an absolute path")
	}
	return nil
}

// checkUpgrade validates req as a WebSocket opening handshake (RFC 6455
// §4.2.1) and extracts what the upstream handshake needs.
func checkUpgrade(req *http.Request) (*clientUpgrade, *rejection) {
	if req.Method != http.MethodGet {
		return nil, &rejection{
			status: http.StatusMethodNotAllowed,
			header: http.Header{"Allow": {http.MethodGet}},
			msg:    "method must be GET",
		}
	}
	// RFC 9110 §7.8: an Upgrade header not listed in Connection must be
	// ignored, so both are needed for this to be an upgrade request at all.
	if !hasToken(req.Header, "Upgrade", "websocket") || !hasToken(req.Header, "Connection", "upgrade") {
		return nil, &rejection{
			status: http.StatusUpgradeRequired,
			header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}},
			msg:    "this endpoint requires a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)",
		}
	}
	// RFC 6455 §4.2.2: on an unsupported version the server answers with
	// the versions it does support.
	if v := req.Header["Sec-Websocket-Version"]; len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return nil, &rejection{
			status: http.StatusUpgradeRequired,
			header: http.Header{"Sec-Websocket-Version": {"13"}},
			msg:    "Sec-WebSocket-Version must be 13",
		}
	}
	keys := req.Header["Sec-Websocket-Key"]
	if len(keys) != 1 || !validKey(keys[0]) {
		return nil, reject(http.StatusBadRequest, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes")
	}
	u := getClientUpgrade()
	u.key = keys[0]
	for p := range headerTokens(req.Header, "Sec-Websocket-Protocol") {
		if !isToken(p) {
			putClientUpgrade(u)
			return nil, reject(http.StatusBadRequest, "malformed Sec-WebSocket-Protocol")
		}
		u.protocols = append(u.protocols, p)
	}
	if exts := req.Header["Sec-Websocket-Extensions"]; len(exts) > 0 {
		// The values joined as one list, as strings.Join(exts, ", ").
		for i, v := range exts {
			if i > 0 {
				u.extBuf = append(u.extBuf, ", "...)
			}
			u.extBuf = append(u.extBuf, v...)
		}
		var ok bool
		u.extensions, ok = httphead.ParseOptions(u.extBuf, u.extensions)
		if !ok {
			putClientUpgrade(u)
			return nil, reject(http.StatusBadRequest, "malformed Sec-WebSocket-Extensions")
		}
	}
	return u, nil
}

// validKey reports whether key is base64 of a 16-byte nonce (RFC 6455
// §4.1, item 7).
func validKey(key string) bool {
	if len(key) != base64.StdEncoding.EncodedLen(16) {
		return false
	}
	var b [18]byte // DecodedLen(24), on the stack
	n, err := base64.StdEncoding.Decode(b[:], []byte(key))
	return err == nil && n == 16
}

// acceptKey computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key
// (RFC 6455 §4.2.2, item 5.4). The client checks it against its own key, so
// the proxy answers with the value for the client's key, not the one the
// upstream computed for the proxy's.
func acceptKey(key string) string {
	return string(appendAcceptKey(nil, key))
}

// appendAcceptKey appends acceptKey(key) to dst.
func appendAcceptKey(dst []byte, key string) []byte {
	const magic = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	// A valid key is 24 bytes, so the input fits on the stack.
	in := make([]byte, 0, 64)
	in = append(in, key...)
	in = append(in, magic...)
	sum := sha1.Sum(in)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// validHostHeader reports whether v is a Host field value: uri-host
// [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3). The host is an IP
// literal in brackets or a reg-name of unreserved characters,
// percent-encodings and sub-delims (an IPv4 address is one of those); the
// port is digits.
func validHostHeader(v string) bool {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 2 {
			return false
		}
		host, port = v[1:end], v[end+1:]
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !isHexDigit(c) && c != ':' && c != '.' && !(host[0] == 'v' && (isRegNameByte(c) || c == ':')) {
				return false
			}
		}
	} else {
		if i := strings.IndexByte(v, ':'); i >= 0 {
			host, port = v[:i], v[i:]
		}
		for i := 0; i < len(host); i++ {
			switch c := host[i]; {
			case c == '%':
				if i+2 >= len(host) || !isHexDigit(host[i+1]) || !isHexDigit(host[i+2]) {
					return false
				}
				i += 2
			case !isRegNameByte(c):
				return false
			}
		}
	}
	if port == "" {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// isRegNameByte: unreserved or sub-delims (RFC 3986 §2.2-2.3).
func isRegNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=", c) >= 0
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
