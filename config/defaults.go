package config

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

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

	// DefaultDrainDelay is how long a draining process keeps accepting
	// while its readiness probe fails. Load balancers take a few probe
	// periods to notice: Kubernetes endpoints update within a second or
	// two, an AWS target group after two failed health checks. Five
	// seconds covers the first and the common probe periods; raise it to
	// the balancer's deregistration time where that is longer.
	DefaultDrainDelay = 5 * time.Second
	// DefaultDrainWindow is the time over which a drain spreads the closes
	// of live pairs. Spread over 30 s, 10,000 clients reconnect at about
	// 330 a second instead of all at once, and 30 s still fits, with the
	// delay and the close timeout, in Kubernetes' default 30 s + grace
	// budget once terminationGracePeriodSeconds is raised as
	// examples/kubernetes explains.
	DefaultDrainWindow = 30 * time.Second
	// DefaultDrainCloseCode is 1012 "service restart" (IANA registry of
	// WebSocket close codes): it tells clients the server is restarting
	// and that reconnecting is right, where 1001 says the endpoint went
	// away.
	DefaultDrainCloseCode = 1012

	// DefaultLogLevel logs each pair's open and close and every warning;
	// debug adds per-handshake detail.
	DefaultLogLevel = slog.LevelInfo

	// DefaultUpstreamPort is used when an upstream names no port: 80 is
	// the default port of ws:// URIs (RFC 6455 §3).
	DefaultUpstreamPort = 80
	// DefaultSecureUpstreamPort is used when a wss:// upstream names no
	// port: 443, the default port of wss:// URIs (RFC 6455 §3).
	DefaultSecureUpstreamPort = 443

	// DefaultTLSMinVersion is the oldest TLS version a TLS listener
	// accepts. TLS 1.0 and 1.1 are deprecated (RFC 8996) and no browser
	// still offers them; 1.2 rather than 1.3 because older clients and
	// load balancers (Android 9 and earlier, some Java 8 and .NET stacks)
	// still stop at 1.2, which is safe with the cipher suites Go offers.
	DefaultTLSMinVersion = tls.VersionTLS12

	// DefaultBalance takes a route's servers in turn: it needs no state
	// beyond a counter and spreads new pairs evenly when they are alike.
	DefaultBalance = BalanceRoundRobin

	// DefaultHashKey is the client's IP: what every request of one client
	// (Socket.IO's polling requests and its WebSocket) has in common
	// without any cooperation from the application.
	DefaultHashKey = HashClientIP

	// DefaultMaxFails and DefaultFailTimeout are nginx's (max_fails=1,
	// fail_timeout=10s): one failed dial takes a server out of rotation
	// for 10 s. A dial that fails is already retried on the next server,
	// so skipping quickly costs nothing, and 10 s is short enough that a
	// restarted server is back in rotation almost at once.
	DefaultMaxFails    = 1
	DefaultFailTimeout = 10 * time.Second

	// DefaultWeight gives every server the same share: servers of one
	// route are usually alike.
	DefaultWeight = 1

	// DefaultDNSTTL is how long a server name's addresses are reused.
	// net.Resolver does not report record TTLs, so this is a fixed bound:
	// 30 s follows a service moving to new addresses (a redeployed
	// container, a failed-over database) within half a minute while
	// keeping lookups off the handshake path for nearly every handshake.
	DefaultDNSTTL = 30 * time.Second
)

// Heartbeat defaults, per side. A side's worst-case detection time, from
// its last sign of life to being declared dead, is interval + timeout ×
// max_missed; both defaults give 40 s, so that whichever side of a pair
// vanishes, the pair is torn down in about the same time.
const (
	// DefaultClientHeartbeatInterval: a client that stays silent is pinged
	// after 20 s, so a frame crosses the path in front of wsalive at least
	// every 20 s. That is a third of the strictest idle limit in common
	// use, 60 s (the AWS Application Load Balancer default and nginx's
	// default proxy_read_timeout), which leaves room for a lost ping, a
	// scheduling delay or a slow mobile round trip. Shorter would wake
	// mobile radios (and drain batteries) for no gain.
	DefaultClientHeartbeatInterval = 20 * time.Second
	// DefaultClientHeartbeatTimeout: 10 s covers a round trip over a
	// congested mobile link, including a radio waking from idle, which
	// alone can take a few seconds.
	DefaultClientHeartbeatTimeout = 10 * time.Second
	// DefaultClientHeartbeatMaxMissed: two misses, because a single ping
	// or pong lost on a lossy last mile should not end a session; the
	// worst-case detection time is 20 s + 10 s × 2 = 40 s.
	DefaultClientHeartbeatMaxMissed = 2

	// DefaultUpstreamHeartbeatInterval: the upstream is usually close (the
	// same host or data centre) and seldom behind a NAT with a short idle
	// limit, and every ping costs the backend work for every pair, so it
	// is pinged less often than clients are.
	DefaultUpstreamHeartbeatInterval = 30 * time.Second
	// DefaultUpstreamHeartbeatTimeout: as for clients; a backend that is
	// alive but too busy to answer a pong in 10 s is not serving its
	// clients either.
	DefaultUpstreamHeartbeatTimeout = 10 * time.Second
	// DefaultUpstreamHeartbeatMaxMissed: one miss, because a data-centre
	// path does not lose pongs the way a mobile one does; the worst-case
	// detection time is 30 s + 10 s × 1 = 40 s, the same as for clients.
	DefaultUpstreamHeartbeatMaxMissed = 1
)

// TCP keepalive settings for a side whose heartbeat is off. Linux's own
// defaults (2 hours idle, then 9 probes 75 s apart) notice a vanished peer
// after 2 h 11 min; these notice it after a minute, in line with what the
// heartbeat would have done. Keepalive probes also refresh the mappings of
// NATs and layer-4 load balancers, but not of proxies that end TCP (an
// ALB, nginx, Cloudflare): that is why a declared NAT limit is checked
// against the heartbeat, never against keepalive.
const (
	// DefaultTCPKeepaliveIdle: the first probe goes after 30 s of silence,
	// half the strictest common idle limit (60 s).
	DefaultTCPKeepaliveIdle = 30 * time.Second
	// DefaultTCPKeepaliveInterval and DefaultTCPKeepaliveCount: three
	// unanswered probes 10 s apart, so one lost probe is not fatal.
	DefaultTCPKeepaliveInterval = 10 * time.Second
	DefaultTCPKeepaliveCount    = 3
	// The TCP user timeout of such a side is derived, not a constant:
	// idle + interval × count, 60 s with these defaults (see
	// deriveTCPKeepalive).
)

// DefaultMaxLifetimeJitterPercent is the max_lifetime_jitter used when only
// max_lifetime is set, as a percentage of it. Pairs opened together (after
// a deploy, or a network blip that reconnected everyone) would otherwise
// all be closed together, and reconnect together; 10% spreads a day-long
// lifetime over 2.4 hours while every pair still lives at least 90% of
// what was asked.
const DefaultMaxLifetimeJitterPercent = 10

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

	// A heartbeat interval, timeout or adaptive bound above a day is a typo
	// (a missing unit, "20h" for "20s"), not a policy: a peer silent for a
	// day is not being watched. The bound also keeps the detection time,
	// interval + timeout × max_missed, far from overflow.
	maxHeartbeatDuration = 24 * time.Hour
	// More than 100 consecutive misses is no longer a miss count but a way
	// of turning detection off; enabled = false says that plainly.
	maxMaxMissed = 100

	// Keepalive times are whole seconds for the kernel (TCP_KEEPIDLE and
	// TCP_KEEPINTVL; the engine rounds up), so less than a second cannot
	// be honoured. Above 2 hours, Linux's own default idle time, keepalive
	// detects nothing that the default would not.
	minTCPKeepalive = time.Second
	maxTCPKeepalive = 2 * time.Hour
	// Linux caps TCP_KEEPCNT at 127; past 50 probes the keepalive is a
	// detection time of hours, better said with a longer interval.
	maxTCPKeepaliveCount = 50
	// TCP_USER_TIMEOUT is in milliseconds, and 0 leaves the kernel's
	// retransmission limit (about 15 minutes) in charge. A non-zero value
	// below a second would abort connections over one slow round trip.
	minTCPUserTimeout = time.Second
	maxTCPUserTimeout = 24 * time.Hour

	// An application ping is matched against whole client text messages.
	// Pings are tiny; bounding the match at 125 bytes, the largest control
	// frame payload (RFC 6455 §5.5), lets the relay compare a candidate
	// message in a small fixed buffer and skip every larger frame unread.
	minAppPingMatch = 1
	maxAppPingMatch = 125
	// The reply is sent by wsalive itself, once per ping; 4 KiB is room
	// for any pong an application defines, without turning app_ping into a
	// way of serving bulk data from the proxy.
	maxAppPingReply = 4 << 10

	// A drain delay or window above an hour is a typo, not a plan: no
	// orchestrator waits that long for a pod to stop.
	maxDrainDuration = time.Hour
	// maxMaxFails bounds max_fails: a thousand failed dials in a row is
	// already "never skip"; larger values are typos (0 says it plainly).
	maxMaxFails = 1000
	// minFailTimeout: a server skipped for less than a second would be
	// tried again by the next burst of handshakes anyway.
	minFailTimeout = time.Second
	// maxFailTimeout and maxDNSTTL bound how long a server may be left out
	// of rotation, or kept at addresses it may have left.
	maxFailTimeout = time.Hour
	maxDNSTTL      = time.Hour
	// maxWeight bounds a server's weight: a ratio beyond a thousand to
	// one is better written as a backup.
	maxWeight = 1000
	// maxServers bounds a route's pool: hash and least_pairs look at every
	// server on each pick.
	maxServers = 256
)

// minimalRouteName is the label of the one route that Minimal builds.
const minimalRouteName = "default"

// newListener returns a listener with every default applied; decoding
// overwrites what the configuration sets.
func newListener() Listener {
	return Listener{MaxHeaderBytes: DefaultMaxHeaderBytes, ListenerFrontDoor: newListenerFrontDoor()}
}

// newDrain returns the drain settings used when there is no drain block.
func newDrain() Drain {
	return Drain{Delay: DefaultDrainDelay, Window: DefaultDrainWindow, CloseCode: DefaultDrainCloseCode}
}

// newEngine returns the engine settings used when there is no engine block.
func newEngine() Engine {
	return Engine{Loops: DefaultLoops, IOUring: true}
}

// newRoute returns a route named name with every default applied; decoding
// overwrites what the configuration sets. IdleTimeout, MaxLifetime and its
// jitter are off (0) and no NAT limit is declared.
func newRoute(name string) *Route {
	return &Route{
		Name:              name,
		MaxFrameSize:      DefaultMaxFrameSize,
		HandshakeTimeout:  DefaultHandshakeTimeout,
		CloseTimeout:      DefaultCloseTimeout,
		Balance:           DefaultBalance,
		HashKey:           HashKey{Source: DefaultHashKey},
		DNSTTL:            DefaultDNSTTL,
		ClientHeartbeat:   newHeartbeat(sideClient),
		UpstreamHeartbeat: newHeartbeat(sideUpstream),
		RouteFrontDoor:    newRouteFrontDoor(),
	}
}

// newHeartbeat returns the default heartbeat policy toward side, with the
// TCP keepalive derived from it.
func newHeartbeat(side string) Heartbeat {
	h := Heartbeat{
		Enabled:   true,
		Interval:  DefaultClientHeartbeatInterval,
		Timeout:   DefaultClientHeartbeatTimeout,
		MaxMissed: DefaultClientHeartbeatMaxMissed,
	}
	if side == sideUpstream {
		h.Interval = DefaultUpstreamHeartbeatInterval
		h.Timeout = DefaultUpstreamHeartbeatTimeout
		h.MaxMissed = DefaultUpstreamHeartbeatMaxMissed
	}
	h.TCP = deriveTCPKeepalive(h, tcpOverrides{})
	return h
}

// tcpOverrides are the TCP keepalive values a heartbeat block sets
// explicitly; nil means "derive it".
type tcpOverrides struct {
	idle, interval, userTimeout *time.Duration
	count                       *int
}

// deriveTCPKeepalive returns the TCP keepalive of a side whose heartbeat
// policy is h: each value set in set, the derived one otherwise.
//
// When the heartbeat is on, it is what detects a dead peer, and keepalive
// is a backstop tied to the heartbeat's own bound, the longest a dead peer
// can go unnoticed: the longest interval (max_interval when adaptive) plus
// timeout × max_missed.
//
//   - idle = bound: pings keep a live connection from ever being idle that
//     long, so probes start only if the heartbeat itself has stalled.
//   - interval = timeout, count = 2: the probes then get the patience a
//     ping gets, and two of them, since the heartbeat already spent its
//     misses.
//   - user_timeout = bound: a ping written to a peer that vanished is
//     never acknowledged, and without this the kernel would retransmit it
//     for about 15 minutes before giving up. With it, the write fails
//     within the heartbeat's own bound.
//
// When the heartbeat is off, keepalive is the only detector: idle,
// interval and count are the DefaultTCPKeepalive constants, and
// user_timeout = idle + interval × count (60 s), the time keepalive takes
// to give up on a peer, computed from the values in effect (set ones
// included) so that unacknowledged data is not allowed to outlive it.
//
// Derived values are clamped to the limits a file is held to (1 s to 2 h
// for keepalive times, at most a day for the user timeout), which only
// matters for heartbeats of hours.
func deriveTCPKeepalive(h Heartbeat, set tcpOverrides) liveness.TCPKeepalive {
	var k liveness.TCPKeepalive
	if h.Enabled {
		bound := h.DetectionBound()
		k = liveness.TCPKeepalive{
			Idle:        clamp(bound, minTCPKeepalive, maxTCPKeepalive),
			Interval:    clamp(h.Timeout, minTCPKeepalive, maxTCPKeepalive),
			Count:       2,
			UserTimeout: clamp(bound, minTCPUserTimeout, maxTCPUserTimeout),
		}
	} else {
		k = liveness.TCPKeepalive{
			Idle:     DefaultTCPKeepaliveIdle,
			Interval: DefaultTCPKeepaliveInterval,
			Count:    DefaultTCPKeepaliveCount,
		}
	}
	if set.idle != nil {
		k.Idle = *set.idle
	}
	if set.interval != nil {
		k.Interval = *set.interval
	}
	if set.count != nil {
		k.Count = *set.count
	}
	if !h.Enabled {
		k.UserTimeout = clamp(k.Idle+k.Interval*time.Duration(k.Count), minTCPUserTimeout, maxTCPUserTimeout)
	}
	if set.userTimeout != nil {
		k.UserTimeout = *set.userTimeout
	}
	return k
}

// clamp returns d bounded to [lo, hi].
func clamp(d, lo, hi time.Duration) time.Duration {
	return min(max(d, lo), hi)
}

// defaultMaxLifetimeJitter is the jitter of a route whose file sets
// max_lifetime but not max_lifetime_jitter.
func defaultMaxLifetimeJitter(maxLifetime time.Duration) time.Duration {
	return maxLifetime / 100 * DefaultMaxLifetimeJitterPercent
}

// Front-door defaults: plain HTTP pass-through, forwarded headers and the
// bounds on what clients may hold (frontdoor.go).
const (
	// DefaultHTTPIdleTimeout closes a plain HTTP keep-alive connection
	// that carried no request for this long. A minute outlives a browser's
	// pause between page loads and Socket.IO's 25 s polling cycle, and is
	// under the 75 s nginx keeps idle connections, so the client, not a
	// half-closed socket, decides when to reconnect.
	DefaultHTTPIdleTimeout = 60 * time.Second

	// DefaultMaxConnections is 0: a listener takes client connections up
	// to the process's descriptor limit, whose exhaustion the accept loop
	// already survives (it backs off and logs once per burst). A number
	// here is a capacity decision only the operator can make.
	DefaultMaxConnections = 0

	// DefaultMaxHandshakes bounds connections still sending their first
	// request head, process-wide. Each costs about 18 KiB, a goroutine and
	// a descriptor until its head arrives or handshake_timeout ends it:
	// 4096 of them pin some 72 MiB at most, while a legitimate burst of
	// that many simultaneous connects is already served in milliseconds.
	DefaultMaxHandshakes = 4096
	// DefaultMaxHandshakesPerClientIP bounds the same per client address.
	// A browser opens at most 6 connections per host and pre-connects a
	// few; 64 leaves room for an office behind one NAT address while one
	// slowloris source can hold only 1/64 of the process-wide budget.
	DefaultMaxHandshakesPerClientIP = 64

	// DefaultMaxHeaderLines bounds the header lines of a request head. Real
	// browsers send 10 to 30; 100 is net/http's own bound for trailers and
	// HTTP/2's default for header list entries, and it stops a 15 KiB head
	// of thousands of one-byte headers from being forwarded upstream.
	DefaultMaxHeaderLines = 100

	// DefaultMaxBodySize is 0 (no limit): wsalive stands in front of an
	// existing application whose own limits already apply, and a silent
	// 1 MiB default (nginx's) is the most common reason uploads break when
	// a proxy is added. Set max_body_size to refuse larger bodies with 413.
	DefaultMaxBodySize = 0

	// DefaultMaxPairs and DefaultMaxPairsPerClientIP are 0 (no limit):
	// how many pairs a backend can carry is the operator's knowledge.
	DefaultMaxPairs            = 0
	DefaultMaxPairsPerClientIP = 0
)

// Front-door limits checked at load time.
const (
	// An idle limit under a second closes keep-alive connections between
	// the requests of one page load; above an hour it no longer bounds
	// anything an operator would notice.
	minHTTPIdleTimeout = time.Second
	maxHTTPIdleTimeout = time.Hour
	// Counts above ten million are typos: the process could not hold that
	// many descriptors anyway.
	maxCount = 10_000_000
	// Fewer than 16 header lines refuses ordinary browser requests;
	// above 10,000 the bound no longer bounds anything.
	minMaxHeaderLines = 16
	maxMaxHeaderLines = 10_000
	// A body limit is at most 1 TiB: above that it is a typo.
	maxMaxBodySize = 1 << 40
)

func newListenerFrontDoor() ListenerFrontDoor {
	return ListenerFrontDoor{
		ForwardedProto:  "http",
		MaxConnections:  DefaultMaxConnections,
		HTTPIdleTimeout: DefaultHTTPIdleTimeout,
		MaxHeaderLines:  DefaultMaxHeaderLines,
	}
}

func newRouteFrontDoor() RouteFrontDoor {
	return RouteFrontDoor{
		HTTP:                HTTPProxy,
		MaxBodySize:         DefaultMaxBodySize,
		MaxPairs:            DefaultMaxPairs,
		MaxPairsPerClientIP: DefaultMaxPairsPerClientIP,
	}
}

func newLimits() Limits {
	return Limits{
		MaxHandshakes:            DefaultMaxHandshakes,
		MaxHandshakesPerClientIP: DefaultMaxHandshakesPerClientIP,
		ResumeMemory:             DefaultResumeMemory,
	}
}
