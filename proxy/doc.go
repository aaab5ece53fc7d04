// Package proxy is wsalive's front door: it accepts client connections,
// classifies each request as a WebSocket upgrade or plain HTTP, passes
// plain HTTP to the route's upstream, performs both WebSocket opening
// handshakes for upgrades (the server side toward the client, the client
// side toward the upstream) and hands the finished pair of sockets to the
// relay engine.
//
// The order of events is what keeps the proxy safe (RFC 6455 §4); the numbers match the steps in handshake.go:
//
//  1. Read the client's first request head, bounded in size (431), time
//     (408 once it has begun; silence is closed without an answer) and
//     header lines (431), with field names checked as RFC 9112 §5 demands
//     (400), and the bytes read recorded.
//  2. Classify it. A request that is not a WebSocket upgrade, for a route
//     with http = "proxy", hands the connection, recorded bytes replayed
//     in front, to the listener's net/http server, which serves it and
//     every later request on the connection through the route's
//     httputil.ReverseProxy. A WebSocket upgrade among those later
//     requests is hijacked from net/http and continues at step 3, as the
//     first request does.
//  3. Route it by host and path prefix (404), validate it as a WebSocket
//     upgrade (405, 426, 400, 505), check its Origin (403) and the route's
//     pair limits (503 with Retry-After).
//  4. Dial the upstream and perform the client side of the handshake with
//     gobwas/ws, forwarding end-to-end headers and setting X-Forwarded-*.
//     A failed dial is 502, a timeout is 504, an invalid 101 is 502.
//  5. Only an upstream 101 with a valid Sec-WebSocket-Accept earns the client
//     a 101. Any other upstream answer is copied back to the client and both
//     connections close.
//  6. Hand both sockets, with whatever either handshake reader had already
//     buffered beyond the HTTP head, to the Relay.
//
// # Why no tunnel can be smuggled
//
// WebSocket connection smuggling tricks a proxy into treating a connection
// as an opaque tunnel while the backend still speaks HTTP on it, so that
// requests the proxy never checked reach the backend. Three rules close
// every way in:
//
//   - The upgrade decision is made on each request, by one predicate
//     (isWebSocketUpgrade: Upgrade lists "websocket" and Connection lists
//     "upgrade"), and a request it selects goes to the WebSocket path
//     only. No other path ever switches protocols: the reverse proxy is
//     given requests without an Upgrade header (another protocol's upgrade
//     is dropped, as RFC 9110 §7.8 allows), and an upstream 101 to such a
//     request is a 502, never a tunnel.
//   - Bytes behind an upgrade request (a second request pipelined behind
//     it) are not parsed as HTTP by wsalive. They are kept and, only after
//     both 101s, relayed to the upstream as the first bytes of the
//     WebSocket stream, where the relay reads them as frames: an HTTP
//     request there is an invalid frame and ends the pair with 1002. An
//     upgrade request with a body (Content-Length or Transfer-Encoding,
//     or both) is refused with 400 before anything is dialed.
//   - A non-101 answer to an upgrade (or a 101 without a valid
//     Sec-WebSocket-Accept) ends both connections. The answer is passed
//     to the client with Connection: close, and nothing the client sends
//     afterwards is read as a request or relayed: a backend that answers
//     200 to an upgrade cannot leave the connection open to requests.
//
// A goroutine exists per connection only while it handshakes, or inside
// net/http while a plain HTTP connection lives; after the handoff the relay
// engine owns both sockets and no goroutine of this package stays behind.
package proxy
