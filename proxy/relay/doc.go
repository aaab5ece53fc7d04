// Package relay is wsalive's relay engine: it moves WebSocket frames
// between the client and the upstream of each pair without unmasking,
// copying into messages, or re-framing, and takes over their liveness.
//
// A pair is two one-way directions (client→upstream and upstream→client).
// Each direction has a streaming frame-header parser (stream.go) that only
// learns where frame boundaries are, so control frames can be injected
// between frames and protocol violations caught before a bad frame is
// forwarded.
//
// Everything a pair decides is in one portable state machine (pair.go): it
// takes events (bytes read from a side, a write blocked, done or failed,
// the timer, a close requested) and returns effects (bytes to send toward
// a side, the next timer, the end of the pair with its Reason). It does no
// I/O. Two drivers run it:
//
//   - the epoll driver (epoll_linux.go), for pairs of plain TCP
//     connections on Linux: a few event loops on raw non-blocking
//     descriptors, a round's reads and writes batched through io_uring,
//     no goroutine per pair;
//   - the net.Conn driver (conn.go), for TLS pairs and for every pair on
//     systems without epoll: a reader and a writer goroutine per side.
//
// Engine (engine.go) picks the driver per pair from its Handoff, and
// stops with Drain or Close.
//
// On the epoll driver, the sockets of a pair are the engine's from the
// start: Engine.Listener accepts and Engine.DialFunc connects Sockets
// (socket_linux.go, listen_linux.go), net.Conns that wait for readiness
// in an event loop's epoll set instead of the Go runtime's poller while
// their handshakes run, so that Attach takes their descriptors as they
// are. A connection that lives on outside the epoll driver (plain HTTP,
// a pair on the net.Conn driver) is moved to the runtime's poller once
// (NetConn).
//
// A pair whose client opted in to a resumable session (Handoff.Session;
// examples/client/RESUME.md) always runs on the net.Conn driver. The
// state machine's part of a session (counts, acknowledgements, the replay
// buffer, parking) is in resume.go; the engine's (tokens, the session
// table, Engine.Resume, Claim) in session.go.
package relay
