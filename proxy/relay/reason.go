package relay

// Reason is why a pair ended. Every pair ends with exactly one Reason, the
// first cause seen; logs and metrics use the same names.
type Reason uint8

// The closed taxonomy of pair endings.
const (
	ReasonNone Reason = iota
	// ReasonClientClosed: the client started the close handshake.
	ReasonClientClosed
	// ReasonUpstreamClosed: the upstream started the close handshake.
	ReasonUpstreamClosed
	// ReasonClientGone: the client's connection ended (EOF, reset, write
	// error) without a close frame. A resumable session whose client went
	// so and did not come back within its window (or whose replay buffer
	// overflowed meanwhile) ends with the reason its client went:
	// this one, or ReasonClientHeartbeatTimeout.
	ReasonClientGone
	// ReasonUpstreamGone: likewise for the upstream.
	ReasonUpstreamGone
	// ReasonClientProtocolError: the client broke RFC 6455.
	ReasonClientProtocolError
	// ReasonUpstreamProtocolError: the upstream broke RFC 6455.
	ReasonUpstreamProtocolError
	// ReasonClientFrameTooBig: the client sent a frame over max_frame_size.
	ReasonClientFrameTooBig
	// ReasonUpstreamFrameTooBig: likewise for the upstream.
	ReasonUpstreamFrameTooBig
	// ReasonShutdown: wsalive was stopping.
	ReasonShutdown
	// ReasonClientHeartbeatTimeout: the client missed max_missed pings in
	// a row and sent nothing meanwhile.
	ReasonClientHeartbeatTimeout
	// ReasonUpstreamHeartbeatTimeout: likewise for the upstream.
	ReasonUpstreamHeartbeatTimeout
	// ReasonIdleTimeout: no data frame either way for idle_timeout.
	ReasonIdleTimeout
	// ReasonMaxLifetime: the pair reached max_lifetime.
	ReasonMaxLifetime
	// ReasonDrain: Engine.Drain closed it, with the drain's close code
	// toward the client (Close, 1001 at once, is ReasonShutdown).
	ReasonDrain
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:                     "none",
	ReasonClientClosed:             "client_closed",
	ReasonUpstreamClosed:           "upstream_closed",
	ReasonClientGone:               "client_gone",
	ReasonUpstreamGone:             "upstream_gone",
	ReasonClientProtocolError:      "client_protocol_error",
	ReasonUpstreamProtocolError:    "upstream_protocol_error",
	ReasonClientFrameTooBig:        "client_frame_too_big",
	ReasonUpstreamFrameTooBig:      "upstream_frame_too_big",
	ReasonShutdown:                 "shutdown",
	ReasonClientHeartbeatTimeout:   "client_heartbeat_timeout",
	ReasonUpstreamHeartbeatTimeout: "upstream_heartbeat_timeout",
	ReasonIdleTimeout:              "idle_timeout",
	ReasonMaxLifetime:              "max_lifetime",
	ReasonDrain:                    "drain",
}

// String returns the reason's stable snake_case name.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every reason a pair can end with, for metrics.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonClientClosed; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
