package proxy

import (
	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/relay"
)

// routePolicy compiles a route's liveness settings for the relay, once per
// route, so that attaching a pair costs a pointer.
func routePolicy(r *config.Route) *relay.Policy {
	c := relay.PolicyConfig{
		Client:            sidePolicy(&r.ClientHeartbeat),
		Upstream:          sidePolicy(&r.UpstreamHeartbeat),
		IdleTimeout:       r.IdleTimeout,
		MaxLifetime:       r.MaxLifetime,
		MaxLifetimeJitter: r.MaxLifetimeJitter,
	}
	if r.AppPing != nil {
		c.AppPingMatch, c.AppPingReply = r.AppPing.Match, r.AppPing.Reply
	}
	return relay.NewPolicy(c)
}

func sidePolicy(h *config.Heartbeat) relay.SidePolicy {
	sp := relay.SidePolicy{
		AnswerPings: h.AnswerPings,
		Keepalive:   h.TCP,
	}
	if h.Enabled {
		sp.Heartbeat = liveness.Policy{
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			MaxMissed:   h.MaxMissed,
			MinInterval: h.MinInterval,
			MaxInterval: h.MaxInterval,
		}
	}
	return sp
}
