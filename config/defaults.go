package config

import "time"

// Every default and every limit of the configuration lives in this file, so
// that the values, and the reasons for them, are read in one place. The
// constructors at the bottom are the only code that applies the defaults:
// a file and the command line both start from them.

// Defaults for settings left out of the configuration.
const (
	// DefaultMaxHeaderBytes bounds a client's HTTP request head. Browser
	// upgrade requests, cookies included, are a few KiB; 16 KiB is twice
	// nginx's default large header buffer (8k) yet small enough that many
	// half-sent heads cannot pin much memory.
	DefaultMaxHeaderBytes = 16 << 10

	// DefaultLoops asks for one event loop per CPU: a pair never moves
	// between loops, so more loops than CPUs only adds contention.
	DefaultLoops = 0

	// DefaultMaxFrameSize is the largest frame payload relayed. Frames
	// stream through without being buffered whole, so this is a policy
	// limit, not a memory bound: 16 MiB admits any realistic application
	// message while a peer that announces a gigabyte frame is cut off with
	// 1009 instead of tying up the pair for minutes.
	DefaultMaxFrameSize = 16 << 20

	// DefaultHandshakeTimeout bounds reading the client's request head plus
	// the upstream dial and handshake. Ten seconds leaves room for a slow
	// upstream across a WAN, and is well under the 60 s idle limit of
	// common load balancers, so the client hears 504 from wsalive rather
	// than a silent drop from the balancer.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultCloseTimeout bounds the close handshake. A live peer answers a
	// close frame within one round trip; a dead one never will, and five
	// seconds is long enough for a slow mobile round trip yet short enough
	// that dead pairs release their descriptors promptly.
	DefaultCloseTimeout = 5 * time.Second

	// DefaultUpstreamPort is used when an upstream names no port: 80 is
	// the default port of ws:// URIs (RFC 6455 §3).
	DefaultUpstreamPort = 80
)

// Limits checked at load time. Values outside them are rejected rather than
// clamped, so the file always means what it says.
const (
	// A head smaller than 1 KiB cannot carry a real upgrade request; one
	// larger than 1 MiB is not a header any more but an attack.
	minMaxHeaderBytes = 1 << 10
	maxMaxHeaderBytes = 1 << 20

	// More loops than this is a typo (a CPU count times a thousand, say),
	// not a tuning decision.
	maxLoops = 1024

	// A frame limit below 125 bytes would reject legal control frames,
	// whose payload may be up to 125 bytes (RFC 6455 §5.5).
	minMaxFrameSize = 125
	// Above 1 GiB a single frame is no longer a message worth relaying
	// through a heartbeat proxy; the bound also keeps sizes far from
	// overflow in arithmetic on them.
	maxMaxFrameSize = 1 << 30
)

// minimalRouteName is the label of the one route that Minimal builds.
const minimalRouteName = "default"

// newListener returns a listener with every default applied; decoding
// overwrites what the configuration sets.
func newListener() Listener {
	return Listener{MaxHeaderBytes: DefaultMaxHeaderBytes}
}

// newEngine returns the engine settings used when there is no engine block.
func newEngine() Engine {
	return Engine{Loops: DefaultLoops}
}

// newRoute returns a route named name with every default applied; decoding
// overwrites what the configuration sets.
func newRoute(name string) *Route {
	return &Route{
		Name:             name,
		MaxFrameSize:     DefaultMaxFrameSize,
		HandshakeTimeout: DefaultHandshakeTimeout,
		CloseTimeout:     DefaultCloseTimeout,
	}
}
