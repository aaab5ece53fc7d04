package relay

import (
	"net"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// SidePolicy is the liveness policy toward one side of a pair.
type SidePolicy struct {
	// Heartbeat is the protocol ping policy; a zero Interval turns it off.
	Heartbeat liveness.Policy
	// AnswerPings makes wsalive answer the side's pings itself instead of
	// forwarding them.
	AnswerPings bool
	// Keepalive is set on the side's socket at attach.
	Keepalive liveness.TCPKeepalive
}

// PolicyConfig describes a route's liveness policy.
type PolicyConfig struct {
	Client, Upstream SidePolicy
	// IdleTimeout closes a pair with no data frame either way for this
	// long (pings do not count); 0 is off.
	IdleTimeout time.Duration
	// MaxLifetime closes pairs this old, less a random share of
	// MaxLifetimeJitter; 0 is off.
	MaxLifetime, MaxLifetimeJitter time.Duration
	// AppPingMatch, when not empty, is a client text message that wsalive
	// answers with AppPingReply instead of forwarding it.
	AppPingMatch, AppPingReply string
}

// Policy is a route's compiled liveness policy, shared read-only by all of
// its pairs; build it once per route with NewPolicy.
type Policy struct {
	side        [2]SidePolicy
	idle        int64
	lifetime    int64
	jitter      int64
	appMatch    []byte
	appReply    []byte // the whole reply frame, unmasked (toward the client)
	appMatchLen int
}

// NewPolicy compiles c. Values are trusted: the config package validated
// them.
func NewPolicy(c PolicyConfig) *Policy {
	p := &Policy{
		side:     [2]SidePolicy{c.Client, c.Upstream},
		idle:     int64(c.IdleTimeout),
		lifetime: int64(c.MaxLifetime),
		jitter:   int64(c.MaxLifetimeJitter),
	}
	if c.AppPingMatch != "" && len(c.AppPingMatch) <= maxControlPayload {
		p.appMatch = []byte(c.AppPingMatch)
		p.appMatchLen = len(p.appMatch)
		p.appReply = appendTextFrame(nil, []byte(c.AppPingReply))
	}
	return p
}

// noPolicy is used for pairs attached without one: relay only.
var noPolicy = &Policy{}

// keepaliveWanted reports whether the relay should set side s's TCP
// keepalive on c, that side's connection. Not when c inherited it from
// its listener (inherited), and not when c's peer is on loopback and the
// side's heartbeat is on: two loopback sockets are ends of one kernel,
// which answers keepalive probes for a frozen process and resets or
// finishes a dead one's connections, so keepalive can detect nothing the
// heartbeat does not, and no NAT or balancer sits between them to keep
// warm. A sidecar's upstream is such a peer, and the five setsockopt
// calls were a tenth of a proxied handshake's system calls. With the
// heartbeat off, keepalive stays: its user timeout still ends a
// connection whose loopback peer stopped reading for that long.
func (p *Policy) keepaliveWanted(s side, c net.Conn, inherited bool) bool {
	if inherited || p.side[s].Keepalive == (liveness.TCPKeepalive{}) {
		return false
	}
	if p.side[s].Heartbeat.Interval <= 0 {
		return true
	}
	if c == nil {
		return true
	}
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	return !ok || !a.IP.IsLoopback()
}
