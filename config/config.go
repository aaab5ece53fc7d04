// Package config loads, validates and documents wsalive's HCL configuration.
//
// The file keeps the user's shape (see schema.go); Load turns it into the
// runtime Config below, with every default applied and every value checked,
// so the rest of the program never sees an unset or unparsed setting.
// Minimal builds the same Config from the -listen and -upstream flags.
// Defaults and limits, with the reasons for them, are in defaults.go; the
// liveness settings of a route (heartbeats, TCP keepalive, NAT idle
// limits, idle timeout, lifetime, application pings) are converted and
// checked against each other in liveness.go, and the named NAT profiles
// are in nat.go. A listener's tls block and a route's upstream_tls block
// are in tls.go.
//
// A configuration that cannot be used yields an *Error carrying every
// problem found, each pointing at the file, line and column of the value at
// fault and rendered with the offending source line.
package config

import (
	"log/slog"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// Config is the validated runtime configuration the program runs on. Its
// two halves say, in the types, what a reload (SIGHUP) can change:
// Reloadable settings apply to new connections, handshakes and pairs as
// soon as a valid file is loaded; Static ones are read once at start, and
// a reload that changes them is reported as needing a restart (see
// StaticChanges). The halves are embedded, so cfg.Routes and cfg.Engine
// read as before.
type Config struct {
	Static
	Reloadable
}

// Static holds the settings that take effect at start only.
type Static struct {
	// Admin is the optional admin endpoint; nil when not configured. Its
	// listener serves the probes a reload must not interrupt.
	Admin *Admin
	// Engine tunes the relay engine, whose loops are created at start.
	Engine Engine
	// Limits bounds what the whole process takes on at once (connections
	// in handshake); the server is built with them.
	Limits Limits
}

// Reloadable holds the settings a reload applies. Live pairs keep the
// route and liveness policy they started with; the new values apply to
// what starts after the reload.
type Reloadable struct {
	// Listeners accept client connections. At least one. A reload opens
	// added addresses and closes removed ones.
	Listeners []Listener
	// Routes in file order. At least one.
	Routes []*Route
	// Drain is how the process drains on SIGTERM or POST /drain.
	Drain Drain
	// LogLevel is the least severe level logged.
	LogLevel slog.Level
}

// Drain is how the process drains: it stays in the load balancers' view as
// not ready but keeps accepting for Delay, then stops accepting and closes
// its live pairs, each at a random moment within Window, sending clients
// CloseCode, so that they do not all reconnect at the same instant.
type Drain struct {
	Delay     time.Duration
	Window    time.Duration
	CloseCode uint16
}

// Listener is one address that accepts client connections.
type Listener struct {
	// Address is host:port to listen on.
	Address string
	// MaxHeaderBytes bounds the size of a client's HTTP request head.
	MaxHeaderBytes int
	// TLS, when not nil, makes this a TLS listener (see tls.go).
	TLS *ListenerTLS
	// Front-door settings: forwarded headers, connection bounds, plain
	// HTTP keep-alive (see frontdoor.go).
	ListenerFrontDoor
}

// IsTLS reports whether the listener terminates TLS: its clients' scheme
// is https/wss.
func (l Listener) IsTLS() bool { return l.TLS != nil }

// Admin is the admin HTTP endpoint: probes, metrics, stats, drain.
type Admin struct {
	Address string
	// Pprof serves Go's profiles under /debug/pprof/; off unless asked.
	Pprof bool
}

// Engine tunes the relay engine.
type Engine struct {
	// Loops is the number of event loops; 0 means one per CPU.
	Loops int
	// IOUring lets a loop hand all the socket writes of a round to the
	// kernel in one io_uring_enter where the kernel allows io_uring (it
	// falls back to one write each where it does not). On by default.
	IOUring bool
}

// Route selects an upstream for the requests that match it.
type Route struct {
	// Name is the route block's label.
	Name string
	// Host, when not empty, must equal the request's host (port ignored,
	// case-insensitive). A leading "*." matches any subdomain. It is stored
	// lower-cased, without a trailing dot; "*" in the file is stored as "".
	Host string
	// PathPrefix, when not empty, must prefix the request path.
	PathPrefix string
	// Upstream is the route's first server (the first primary one): its
	// Path is every server's path, and with a single server it is the
	// whole pool.
	Upstream Upstream
	// UpstreamTLS is how to speak TLS to the upstream: not nil exactly
	// when Upstream.TLS is set (a wss:// upstream).
	UpstreamTLS *UpstreamTLS
	// Servers is the route's upstream pool in file order: the upstream
	// list first, then the server blocks; Upstream is one of them. Load
	// never leaves it empty. A route built or edited in code may leave it
	// nil: the pool is then Upstream alone, with the default health
	// settings.
	Servers []UpstreamServer
	// Balance picks among Servers; HashKey is what balance "hash" hashes.
	Balance Balance
	HashKey HashKey
	// DNSTTL is how long a server's resolved addresses are reused before
	// its name is resolved again.
	DNSTTL time.Duration
	// MaxFrameSize is the largest frame payload, in bytes, relayed in either
	// direction; a bigger frame ends the pair with 1009. Always at least
	// 125, so that legal control frames pass.
	MaxFrameSize int64
	// HandshakeTimeout bounds reading the client's request head and the whole
	// upstream dial and handshake.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the close handshake once a pair starts closing.
	CloseTimeout time.Duration

	// ClientHeartbeat and UpstreamHeartbeat are the liveness policies
	// toward each side.
	ClientHeartbeat   Heartbeat
	UpstreamHeartbeat Heartbeat
	// NATIdleTimeout is the idle limit of the network path in front of
	// wsalive (a NAT or load balancer); 0 when none was declared. The
	// client heartbeat is checked against it at load time.
	NATIdleTimeout time.Duration
	// NATProfile names the well-known limit NATIdleTimeout came from, ""
	// when it was given as a duration or not at all.
	NATProfile string
	// IdleTimeout closes a pair that carried no data frame (either way)
	// for this long; pings do not count. 0 turns it off.
	IdleTimeout time.Duration
	// MaxLifetime closes pairs older than this, less a random share of
	// MaxLifetimeJitter so that reconnects spread out. 0 turns it off.
	MaxLifetime       time.Duration
	MaxLifetimeJitter time.Duration
	// AppPing, when not nil, answers application-level pings for clients
	// that cannot send protocol pings (browsers).
	AppPing *AppPing
	// Resume, when not nil, lets the route's clients that opt in resume
	// their session after a break (see resume.go).
	Resume *Resume

	// Front-door settings: plain HTTP, origins, pair limits (see
	// frontdoor.go).
	RouteFrontDoor
}

// Heartbeat is the liveness policy toward one side of a pair.
type Heartbeat struct {
	// Enabled turns protocol pings toward the side on. When off, the side
	// is watched by TCP keepalive and the idle timeout only.
	Enabled bool
	// Interval is how long the side may stay silent before it is pinged.
	Interval time.Duration
	// Timeout is how long a ping may go unanswered before it is a miss.
	Timeout time.Duration
	// MaxMissed consecutive misses make the side dead.
	MaxMissed int
	// MinInterval and MaxInterval, when both set (MaxInterval >
	// MinInterval), make the interval adaptive between them, starting at
	// Interval. Zero when the interval is fixed.
	MinInterval, MaxInterval time.Duration
	// AnswerPings makes wsalive answer the side's pings itself instead of
	// forwarding them (for peers whose counterpart never answers).
	AnswerPings bool
	// TCP is the socket-level keepalive for the side's connection.
	TCP liveness.TCPKeepalive
}

// AppPing is an application-level ping: a client text message equal to
// Match is answered with Reply by wsalive and not forwarded.
type AppPing struct {
	Match string
	Reply string
}

// Upstream is a parsed upstream address.
type Upstream struct {
	// Raw is the value as written in the configuration.
	Raw string
	// Address is host:port to dial; the port is always present (80, or
	// 443 for wss://, when the upstream named none).
	Address string
	// TLS is set for a wss:// upstream.
	TLS bool
	// Path is the upstream URL's path, decoded as url.URL.Path is, ""
	// when none was given. When not empty (even "/") it replaces the
	// route's matched PathPrefix, as nginx's proxy_pass with a URI does.
	Path string
}
