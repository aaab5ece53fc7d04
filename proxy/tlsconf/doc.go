// Package tlsconf turns wsalive's TLS settings into crypto/tls
// configurations, for both sides of a pair:
//
//   - Server serves a TLS listener: it loads the listener's certificates,
//     picks one per handshake by SNI, accepts TLS 1.2 or 1.3 (min_version),
//     offers only http/1.1 by ALPN, and verifies client certificates when a
//     client CA is configured (mutual TLS). It reloads its files when they
//     change on disk: new handshakes use the new material, connections
//     already open keep theirs.
//   - NewListener wraps a TCP listener into a TLS one that answers a plain
//     HTTP request with a short 400, as nginx does, instead of leaving the
//     client waiting for a TLS handshake that will never come.
//   - NewClient builds the configuration for a wss:// upstream, and
//     Classify names why a handshake with one failed (unknown authority,
//     name mismatch, expired, ...), for the 502's log line.
//
// Reload is exported for a SIGHUP handler; the watcher (watch.go) calls
// it on file events. A connection from NewListener is a *tls.Conn over a
// small wrapper of the TCP connection; both answer NetConn(), so code that
// needs the socket (keepalive options) unwraps twice.
//
// Package tlstest makes the certificates the tests use.
package tlsconf
