package proxy

import (
	"iter"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/gobwas/httphead"
)

// hopByHop lists the headers that describe one connection, not the message
// (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection that
// net/http's reverse proxy also drops). A proxy must not forward them.
var hopByHop = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// dialerWritten lists the request headers gobwas/ws's Dialer writes itself.
// Forwarding the client's copies would send them twice, and the client's
// Sec-WebSocket-Key must never reach the upstream: the proxy is the
// upstream's client and proves it with its own nonce. Content-Length goes
// too: requests with a body are rejected, and a stray length would make the
// upstream read the first frames as a body.
var dialerWritten = []string{
	"Host",
	"Sec-Websocket-Key",
	"Sec-Websocket-Version",
	"Sec-Websocket-Protocol",
	"Sec-Websocket-Extensions",
	"Sec-Websocket-Accept",
	"Content-Length",
}

// removeHopByHop deletes from h the hop-by-hop headers and every header
// named by its Connection header(s).
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// headerTokens yields the comma-separated tokens of every value of the
// header key, trimmed, empty elements skipped (RFC 9110 §5.6.1 allows
// them). Yielding instead of returning a slice keeps the checks every
// handshake makes free of allocations.
func headerTokens(h http.Header, key string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range h.Values(key) {
			for t := range strings.SplitSeq(v, ",") {
				if t = textproto.TrimString(t); t != "" && !yield(t) {
					return
				}
			}
		}
	}
}

// hasToken reports whether the header key lists token, case-insensitively.
func hasToken(h http.Header, key, token string) bool {
	for t := range headerTokens(h, key) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// isToken reports whether s is a non-empty RFC 9110 token. Subprotocol names
// must be tokens (RFC 6455 §4.1), and checking matters here: the Dialer
// writes them into the upstream request unescaped.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httphead.OctetTypes[s[i]].IsToken() {
			return false
		}
	}
	return true
}
