package relay

import (
	"net"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// Handoff is a pair whose two handshakes are complete: the client was
// answered 101 and the upstream answered 101. Attach takes ownership of
// both connections.
type Handoff struct {
	// Client is the accepted client connection (a *net.TCPConn).
	Client net.Conn
	// ClientBuffered holds bytes the client sent behind its request head;
	// they are relayed to the upstream before anything else.
	ClientBuffered []byte
	// Upstream is the dialed upstream connection (a *net.TCPConn).
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
}

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
