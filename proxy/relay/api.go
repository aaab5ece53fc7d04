package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/metrics"
)

// DialFunc dials one address, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Handoff is a pair whose two handshakes are complete: the client was
// answered 101 and the upstream answered 101. Attach takes ownership of
// both connections.
type Handoff struct {
	// Client is the accepted client connection (a *net.TCPConn, or a
	// *Socket the engine accepted).
	Client net.Conn
	// ClientBuffered holds bytes the client sent behind its request head;
	// they are relayed to the upstream before anything else.
	ClientBuffered []byte
	// Upstream is the dialed upstream connection (a *net.TCPConn, or a
	// *Socket the engine dialed).
	Upstream net.Conn
	// UpstreamBuffered holds bytes the upstream sent behind its 101.
	UpstreamBuffered []byte
	// Extensions lists the names of the extensions the upstream accepted
	// (for example "permessage-deflate"); they decide which reserved bits
	// and opcodes are legal on the wire.
	Extensions []string
	// Route names the route, for logs.
	Route string
	// MaxFrameSize is the largest payload relayed; a larger frame ends the
	// pair with 1009 toward its sender. 0 means no limit.
	MaxFrameSize int64
	// CloseTimeout bounds the close handshake.
	CloseTimeout time.Duration
	// Policy is the route's liveness policy; nil relays without
	// heartbeats, idle or lifetime limits.
	Policy *Policy
	// ClientKeepaliveSet says the client's socket already carries the
	// Policy's client Keepalive, inherited from a listener opened with
	// ListenControl; the relay does not set it again.
	ClientKeepaliveSet bool
	// Session, when set, makes the pair a resumable session (the client
	// opted in): see session.go and examples/client/RESUME.md.
	Session *SessionOptions
}

// plainTCP reports whether both connections of h are plain TCP sockets,
// whose descriptors carry the WebSocket bytes themselves.
func plainTCP(h *Handoff) bool {
	_, c := h.Client.(*net.TCPConn)
	_, u := h.Upstream.(*net.TCPConn)
	return (c || isSocket(h.Client)) && (u || isSocket(h.Upstream))
}

// closeConns closes h's connections: a hand-off the engine could not
// take is still its to close.
func closeConns(h *Handoff) {
	if h.Client != nil {
		h.Client.Close()
	}
	if h.Upstream != nil {
		h.Upstream.Close()
	}
}

// PairStats is the account of one pair, given to Options.OnClose.
type PairStats struct {
	ID           uint64
	Route        string
	ClientAddr   string
	UpstreamAddr string
	Opened       time.Time
	Duration     time.Duration
	Reason       Reason
	// Bytes written toward each side, injected frames included.
	BytesToUpstream uint64
	BytesToClient   uint64
	// Frames received from each side, control frames included.
	FramesFromClient   uint64
	FramesFromUpstream uint64
	// Heartbeat accounts per side.
	ClientHeartbeat   liveness.Stats
	UpstreamHeartbeat liveness.Stats
	// The close handshake per side: the close frame that side received
	// and the one it sent.
	ClientClose   CloseHandshake
	UpstreamClose CloseHandshake
}

// CloseHandshake is one side's part of a pair's close handshake.
type CloseHandshake struct {
	// Received is the close frame wsalive sent toward the side: the
	// other side's, forwarded as it came, or wsalive's own (1001 when the
	// other side is gone or timed out, 1002 or 1009 to a side that broke
	// the protocol, a drain's code, or an echo of the side's own code
	// when the other side vanished before answering). It was handed to
	// the side's connection; a connection that failed meanwhile may not
	// have delivered it. None when the side was gone first, or when its
	// close could never go (the frame in flight toward it was cut off).
	Received CloseFrame
	// Sent is the close frame the side sent, if it sent one.
	Sent CloseFrame
}

// CloseFrame is the status of one close frame (RFC 6455 §5.5.1).
//
// The zero value means no close frame: code 0 is never on the wire
// (§7.4.2 leaves 0-999 unused), so it cannot be mistaken for one. A
// close frame without a body is reported as Code 1005 with no Reason,
// the code §7.1.5 gives for "a close frame without a status code"; 1005
// never appears on the wire either. This differs from gobwas/ws, whose
// ParseCloseFrameData returns 0 for an empty body (it sets §7.1.5 aside
// on purpose): here 0 is kept for "no frame at all", so that a side that
// sent an empty close and a side that sent none read apart.
type CloseFrame struct {
	Code uint16
	// Reason is the frame's UTF-8 reason, as it went on the wire (a reason
	// of wsalive's own is cut to fit a control frame).
	Reason string
}

// None reports whether no close frame went that way.
func (c CloseFrame) None() bool { return c.Code == 0 }

// DrainReport is what Engine.Drain did to the pairs that were live when it
// started.
type DrainReport struct {
	// Drained pairs were closed by the drain, with its close code.
	Drained int
	// Ended pairs closed for another reason before their drain moment.
	Ended int
	// Cut pairs were still open when the drain's context ended and were
	// closed without finishing their close handshake.
	Cut int
}

// Options configures an Engine.
type Options struct {
	// Loops is the number of event loops of the epoll driver; 0 means
	// runtime.GOMAXPROCS(0).
	Loops int
	// ReadBufferSize is the size of one read from a socket (per loop, not
	// per pair, on the epoll driver); 0 means 64 KiB. It also bounds what
	// a pair can hold buffered per direction while its sink is blocked.
	ReadBufferSize int
	// DisableIOUring makes every socket write its own system call instead
	// of batching a loop round's writes through io_uring. Batching is used
	// only where the kernel allows io_uring; this forces it off.
	DisableIOUring bool
	// ForceConnDriver runs every pair on the net.Conn driver, plain TCP
	// on Linux included. Without it, a pair of plain TCP connections runs
	// on the epoll driver on Linux and everything else (TLS, other
	// systems, and resumable sessions: resume.go) on the net.Conn driver. The test suites set it from
	// WSALIVE_TEST_DRIVER=conn.
	ForceConnDriver bool
	// ResumeMemory bounds the replay bytes all resumable sessions hold
	// together (RESUME.md §4); 0 means no bound beyond each session's
	// own. A session that would pass it loses its resumability.
	ResumeMemory int64
	// OnClose, when set, is called once for every pair that ends, on the
	// goroutine that ended it. It must not block.
	OnClose func(PairStats)
	// Metrics receives pair and traffic figures; nil means metrics.Nop{}.
	Metrics metrics.Metrics
	// Logger receives engine-level errors. nil means slog.Default().
	Logger *slog.Logger
}

// ErrClosed is returned by Attach once Drain or Close has started.
var ErrClosed = errors.New("relay: engine closed")

// Stats is a snapshot of engine-wide gauges.
type Stats struct {
	// Pairs is the number of live pairs.
	Pairs int64
	// BufferedBytes is the number of bytes held in pending write buffers
	// across all pairs (bytes read from one side not yet accepted by the
	// other's socket).
	BufferedBytes int64
	// Loops is the number of event loops of the epoll driver;
	// IOUringLoops how many of them batch their reads and writes through
	// io_uring.
	Loops, IOUringLoops int
	// Sessions is the number of live resumable sessions, ParkedSessions
	// how many of them wait for their client; ReplayBytes is what their
	// replay buffers hold.
	Sessions, ParkedSessions, ReplayBytes int64
}
