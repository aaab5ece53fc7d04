package proxy

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"

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
type clientUpgrade struct {
	key        string
	protocols  []string
	extensions []httphead.Option
}

// checkHead rejects requests no route could serve whatever they ask: wrong
// HTTP version, missing or repeated Host, or a body. It runs before routing.
func checkHead(req *http.Request) *rejection {
	// RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP
	// version MUST be at least 1.1."
	if req.ProtoMajor != 1 || req.ProtoMinor < 1 {
		return reject(http.StatusHTTPVersionNotSupported, "HTTP/1.1 is required")
	}
	if hosts := req.Header["Host"]; len(hosts) > 1 {
		return reject(http.StatusBadRequest, "more than one Host header")
	}
	if req.Host == "" {
		return reject(http.StatusBadRequest, "missing Host header")
	}
	if strings.ContainsAny(req.Host, " \t/\\@") {
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
	u := &clientUpgrade{key: keys[0]}
	for _, p := range headerTokens(req.Header, "Sec-Websocket-Protocol") {
		if !isToken(p) {
			return nil, reject(http.StatusBadRequest, "malformed Sec-WebSocket-Protocol")
		}
		u.protocols = append(u.protocols, p)
	}
	if exts := req.Header.Values("Sec-Websocket-Extensions"); len(exts) > 0 {
		// The options are slices of this buffer; it lives as long as u.
		var ok bool
		u.extensions, ok = httphead.ParseOptions([]byte(strings.Join(exts, ", ")), nil)
		if !ok {
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
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// acceptKey computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key
// (RFC 6455 §4.2.2, item 5.4). The client checks it against its own key, so
// the proxy answers with the value for the client's key, not the one the
// upstream computed for the proxy's.
func acceptKey(key string) string {
	const magic = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	sum := sha1.Sum([]byte(key + magic))
	return base64.StdEncoding.EncodeToString(sum[:])
}
