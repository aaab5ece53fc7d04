// Package proxy is wsalive's front door: it accepts client connections,
// performs both WebSocket opening handshakes (the server side toward the
// client, the client side toward the upstream) and hands the finished pair
// of sockets to the relay engine.
//
// The order of events is what keeps the proxy safe (RFC 6455 §4, DESIGN.md
// "Data path"):
//
//  1. Read the client's request head, bounded in size (431) and time.
//  2. Route it by host and path prefix (404 when nothing matches).
//  3. Validate it as a WebSocket upgrade (405, 426, 400, 505).
//  4. Dial the upstream and perform the client side of the handshake with
//     gobwas/ws, forwarding end-to-end headers and adding X-Forwarded-*.
//     A failed dial is 502, a timeout is 504, an invalid 101 is 502.
//  5. Only an upstream 101 with a valid Sec-WebSocket-Accept earns the client
//     a 101. Any other upstream answer is copied back to the client and both
//     connections close: nothing is ever tunneled without a 101, which is
//     what prevents WebSocket connection smuggling.
//  6. Hand both sockets, with whatever either handshake reader had already
//     buffered beyond the HTTP head, to the Relay.
//
// A goroutine exists per connection only while it handshakes; after the
// handoff the relay engine owns both sockets and no goroutine of this package
// stays behind.
package proxy
