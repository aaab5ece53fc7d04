package relay

import (
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
