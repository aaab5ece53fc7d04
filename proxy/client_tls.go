package proxy

import (
	"crypto/tls"
	"net"
)

// tlsHandshakeFailed reports whether c is a TLS client connection (from a
// listener with a tls block) whose TLS handshake did not complete: a
// client without an acceptable certificate, one that offered only old
// versions or only h2, or plain HTTP on the TLS port, which tlsconf has
// answered with a 400 already. There is no channel left to answer on, so
// the handshake just ends, logged at debug like a client that left.
func tlsHandshakeFailed(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && !tc.ConnectionState().HandshakeComplete
}
