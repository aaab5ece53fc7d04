package liveness

import "time"

// TCPKeepalive are the TCP options set on a side's socket so that a peer
// that vanished is noticed by the kernel in bounded time even without
// heartbeats, and writes to it fail instead of retrying for 15 minutes.
// The config package derives them from a side's heartbeat (its detection
// bound); the relay sets them on the socket when a pair is attached,
// except on a client socket that inherited them from its listener
// (relay.ListenControl). Zero fields keep the kernel's values.
type TCPKeepalive struct {
	// Idle, Interval and Count map to TCP_KEEPIDLE, TCP_KEEPINTVL and
	// TCP_KEEPCNT (SO_KEEPALIVE is on whenever Idle > 0).
	Idle     time.Duration
	Interval time.Duration
	Count    int
	// UserTimeout maps to TCP_USER_TIMEOUT: how long written data may stay
	// unacknowledged before the connection is aborted.
	UserTimeout time.Duration
}
