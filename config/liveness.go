package config

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/wsalive/wsalive/liveness"
)

// This file converts a route's liveness settings: the heartbeat policy
// toward each side, the NAT idle limit in front of wsalive, the idle
// timeout and lifetime of pairs, and application-level pings. It ends with
// the check that ties them together: a declared NAT limit must be shorter
// than the longest silence the client heartbeat allows.

// buildLiveness converts the liveness settings of route block b into r,
// which holds the defaults.
func (s scope) buildLiveness(b *routeBlock, r *Route) {
	clientOK := s.buildHeartbeat(b.ClientHeartbeat, &r.ClientHeartbeat)
	s.buildHeartbeat(b.UpstreamHeartbeat, &r.UpstreamHeartbeat)

	limitAttr := s.buildNATLimit(b, r)
	// A heartbeat block with a problem keeps some defaults in place of
	// what the user meant; checking those against the limit would only
	// add noise to the problem already reported.
	if limitAttr != nil && clientOK {
		s.checkNATLimit(b, r, limitAttr)
	}

	if d, ok := s.durationIn(b.IdleTimeout, 0, -1); ok {
		r.IdleTimeout = d
	}
	s.buildMaxLifetime(b, r)
	s.buildAppPing(b.AppPing, r)
}

// buildHeartbeat converts heartbeat block b, when there is one, into h,
// which holds the side's defaults: a setting left out keeps its default.
// ok reports that the block had no problem.
func (s scope) buildHeartbeat(b *heartbeatBlock, h *Heartbeat) (ok bool) {
	if b == nil {
		return true
	}
	s = s.child(fmt.Sprintf("heartbeat %q", b.Side))
	before := len(*s.diags)

	// enabled first: whether a zero interval is an error depends on it.
	if v, ok := s.boolean(b.Enabled); ok {
		h.Enabled = v
	}
	intervalOK := true
	if d, ok := s.heartbeatDuration(b.Interval, h.Enabled); ok {
		h.Interval = d
	} else if !absent(b.Interval) {
		intervalOK = false
	}
	if d, ok := s.heartbeatDuration(b.Timeout, h.Enabled); ok {
		h.Timeout = d
	}
	if n, ok := s.integer(b.MaxMissed, 1, maxMaxMissed); ok {
		h.MaxMissed = int(n)
	}
	if v, ok := s.boolean(b.AnswerPings); ok {
		h.AnswerPings = v
	}
	s.adaptiveInterval(b, h, intervalOK)

	var set tcpOverrides
	if d, ok := s.durationIn(b.TCPKeepaliveIdle, minTCPKeepalive, maxTCPKeepalive); ok {
		set.idle = &d
	}
	if d, ok := s.durationIn(b.TCPKeepaliveInterval, minTCPKeepalive, maxTCPKeepalive); ok {
		set.interval = &d
	}
	if n, ok := s.integer(b.TCPKeepaliveCount, 1, maxTCPKeepaliveCount); ok {
		c := int(n)
		set.count = &c
	}
	if d, ok := s.durationIn(b.TCPUserTimeout, 0, maxTCPUserTimeout); ok {
		if d != 0 && d < minTCPUserTimeout {
			s.fail(b.TCPUserTimeout.Expr.Range(), b.TCPUserTimeout.Name,
				fmt.Sprintf("must be 0 (off) or at least %s, got %s", minTCPUserTimeout, d),
				"The user timeout aborts a connection whose sent data stays unacknowledged that long; below a second, one slow round trip would abort it.")
		} else {
			set.userTimeout = &d
		}
	}
	h.TCP = deriveTCPKeepalive(*h, set)

	return len(*s.diags) == before
}

// heartbeatDuration converts an interval or timeout: at most a day, and
// greater than zero while the heartbeat is enabled (a zero interval would
// ping without pause, a zero timeout would count every ping as missed).
func (s scope) heartbeatDuration(attr *hcl.Attribute, enabled bool) (time.Duration, bool) {
	d, ok := s.durationIn(attr, 0, maxHeartbeatDuration)
	if !ok {
		return 0, false
	}
	if d == 0 && enabled {
		s.fail(attr.Expr.Range(), attr.Name, "must be greater than 0 while the heartbeat is enabled, got 0s",
			"To turn the heartbeat toward this side off, write enabled = false instead.")
		return 0, false
	}
	return d, true
}

// adaptiveBound converts min_interval or max_interval: greater than zero
// and at most a day.
func (s scope) adaptiveBound(attr *hcl.Attribute) (time.Duration, bool) {
	d, ok := s.durationIn(attr, 0, maxHeartbeatDuration)
	if !ok {
		return 0, false
	}
	if d == 0 {
		s.fail(attr.Expr.Range(), attr.Name, "must be greater than 0, got 0s",
			"For a fixed interval, remove min_interval and max_interval.")
		return 0, false
	}
	return d, true
}

// adaptiveInterval converts min_interval and max_interval, which come as a
// pair: 0 < min_interval <= interval <= max_interval, min_interval <
// max_interval. intervalOK reports that h.Interval is what the file meant
// (it was left out, or converted without a problem); otherwise the pair is
// only checked on its own.
func (s scope) adaptiveInterval(b *heartbeatBlock, h *Heartbeat, intervalOK bool) {
	minGiven, maxGiven := !absent(b.MinInterval), !absent(b.MaxInterval)
	if minGiven != maxGiven {
		given, missing := b.MinInterval, "max_interval"
		if maxGiven {
			given, missing = b.MaxInterval, "min_interval"
		}
		s.fail(given.Range, given.Name,
			fmt.Sprintf("set without %s: an adaptive interval needs both bounds", missing),
			fmt.Sprintf("Add %s as well, or remove %s for a fixed interval.", missing, given.Name))
		// Still check the value that was given.
		s.adaptiveBound(given)
		return
	}
	if !minGiven {
		return
	}
	minD, minOK := s.adaptiveBound(b.MinInterval)
	maxD, maxOK := s.adaptiveBound(b.MaxInterval)
	if !minOK || !maxOK || !intervalOK {
		return
	}
	interval := h.Interval.String()
	if absent(b.Interval) {
		interval += ", the default"
	}
	const order = "An adaptive interval starts at interval and moves between min_interval and max_interval, so they must satisfy min_interval <= interval <= max_interval."
	switch {
	case minD > h.Interval:
		s.fail(b.MinInterval.Expr.Range(), "",
			fmt.Sprintf("min_interval (%s) must not be longer than interval (%s)", minD, interval), order)
	case h.Interval > maxD:
		s.fail(b.MaxInterval.Expr.Range(), "",
			fmt.Sprintf("max_interval (%s) must not be shorter than interval (%s)", maxD, interval), order)
	case minD >= maxD:
		s.fail(b.MaxInterval.Expr.Range(), "",
			fmt.Sprintf("max_interval (%s) must be longer than min_interval (%s)", maxD, minD),
			"For a fixed interval, remove min_interval and max_interval.")
	default:
		h.MinInterval, h.MaxInterval = minD, maxD
	}
}

// buildNATLimit converts nat_idle_timeout or nat_profile, which say the
// same thing two ways, into r. It returns the attribute the limit came
// from, nil when no usable limit was declared.
func (s scope) buildNATLimit(b *routeBlock, r *Route) *hcl.Attribute {
	timeoutGiven, profileGiven := !absent(b.NATIdleTimeout), !absent(b.NATProfile)
	if timeoutGiven && profileGiven {
		first, second := b.NATIdleTimeout, b.NATProfile
		if second.Range.Start.Byte < first.Range.Start.Byte {
			first, second = second, first
		}
		s.fail(second.Range, second.Name,
			fmt.Sprintf("conflicts with %s on line %d: set one or the other", first.Name, first.Range.Start.Line),
			"nat_profile is a named nat_idle_timeout: keep the one that describes the path in front of wsalive, and remove the other.")
		return nil
	}
	if d, ok := s.duration(b.NATIdleTimeout); ok {
		if d <= 0 {
			s.fail(b.NATIdleTimeout.Expr.Range(), b.NATIdleTimeout.Name,
				fmt.Sprintf("must be greater than 0, got %s", d),
				"Leave nat_idle_timeout out when nothing in front of wsalive drops idle connections.")
			return nil
		}
		r.NATIdleTimeout = d
		return b.NATIdleTimeout
	}
	if name, ok := s.str(b.NATProfile, `"aws-alb"`); ok {
		p, known := lookupNATProfile(name)
		if !known {
			s.fail(b.NATProfile.Expr.Range(), b.NATProfile.Name, unknownNATProfile(name),
				"A profile is the default idle limit of a well-known load balancer, NAT or proxy. For any other path, or one whose limit was changed, set nat_idle_timeout to its limit instead.")
			return nil
		}
		r.NATIdleTimeout, r.NATProfile = p.Limit, p.Name
		return b.NATProfile
	}
	return nil
}

// checkNATLimit checks the client heartbeat of r against the NAT idle
// limit declared by limitAttr. wsalive pings a client after interval of
// silence, so the longest a client connection goes without a frame is the
// longest interval (max_interval when adaptive); that must be strictly
// shorter than the limit, or the NAT or load balancer forgets the
// connection while both ends still believe in it. TCP keepalive does not
// count: proxies that end TCP (an ALB, nginx, Cloudflare) never see the
// probes as traffic.
//
// The problem is reported at the setting to change: the interval or
// max_interval, enabled = false, or, when the defaults are what breaks
// the limit, the heartbeat block or the route.
func (s scope) checkNATLimit(b *routeBlock, r *Route, limitAttr *hcl.Attribute) {
	h, hb := r.ClientHeartbeat, b.ClientHeartbeat
	limit := limitText(r.NATIdleTimeout)
	declared := "nat_idle_timeout"
	device := "the NAT or load balancer in front of wsalive"
	if r.NATProfile != "" {
		declared = fmt.Sprintf("nat_profile %q", r.NATProfile)
		p, _ := lookupNATProfile(r.NATProfile)
		device = "the " + p.Device
	}
	where := fmt.Sprintf("%s is set on line %d.", limitAttr.Name, limitAttr.Range.Start.Line)
	hs := s.child(fmt.Sprintf("heartbeat %q", sideClient))

	if !h.Enabled {
		subject := hb.DefRange
		if hb.Enabled != nil {
			subject = hb.Enabled.Range
		}
		hs.fail(subject, "",
			fmt.Sprintf("enabled = false leaves %s (%s) unguarded: a silent client would send no frame across %s, which drops idle connections after %s",
				declared, limit, device, limit),
			fmt.Sprintf("Turn the client heartbeat on, or remove %s if nothing in front of wsalive drops idle connections. TCP keepalive is no substitute: proxies that end TCP do not count its probes as traffic. %s",
				limitAttr.Name, where))
		return
	}

	longest, setting := h.Interval, "interval"
	if h.MaxInterval > 0 {
		longest, setting = h.MaxInterval, "max_interval"
	}
	if longest < r.NATIdleTimeout {
		return
	}
	// Half the limit leaves room for a lost ping and for delays.
	suggestion := r.NATIdleTimeout / 2
	if suggestion >= time.Second {
		suggestion = suggestion.Truncate(time.Second)
	}
	const why = "half the limit leaves room for a lost ping and for delays"
	value := longest.String()
	var subject hcl.Range
	var fix string
	switch {
	case setting == "max_interval":
		subject = hb.MaxInterval.Expr.Range()
		fix = fmt.Sprintf("Set max_interval below %s, such as max_interval = %q (%s), lowering interval and min_interval with it if needed",
			limit, limitText(suggestion), why)
	case hb != nil && !absent(hb.Interval):
		subject = hb.Interval.Expr.Range()
		fix = fmt.Sprintf("Set interval below %s, such as interval = %q (%s)", limit, limitText(suggestion), why)
	case hb != nil:
		value += ", the default"
		subject = hb.DefRange
		fix = fmt.Sprintf("Add interval = %q to this block (%s)", limitText(suggestion), why)
	default:
		value += ", the default"
		subject = b.DefRange
		fix = fmt.Sprintf("Add heartbeat %q { interval = %q } to this route (%s)", sideClient, limitText(suggestion), why)
	}
	hs.fail(subject, "",
		fmt.Sprintf("%s (%s) must be shorter than %s (%s): a silent client could go %s without a frame crossing %s, which drops idle connections after %s",
			setting, value, declared, limit, longest, device, limit),
		fmt.Sprintf("%s; or correct %s if the path in front of wsalive is different. %s",
			fix, limitAttr.Name, where))
}

// buildMaxLifetime converts max_lifetime and max_lifetime_jitter into r.
func (s scope) buildMaxLifetime(b *routeBlock, r *Route) {
	lifetimeOK := true
	if d, ok := s.durationIn(b.MaxLifetime, 0, -1); ok {
		r.MaxLifetime = d
	} else {
		lifetimeOK = absent(b.MaxLifetime) // null is "not set", not a problem
	}

	jitter, ok := s.durationIn(b.MaxLifetimeJitter, 0, -1)
	switch {
	case !ok:
		if r.MaxLifetime > 0 {
			r.MaxLifetimeJitter = defaultMaxLifetimeJitter(r.MaxLifetime)
		}
	case !lifetimeOK:
		// max_lifetime is wrong and already reported.
	case r.MaxLifetime == 0:
		why := "set without max_lifetime"
		if !absent(b.MaxLifetime) {
			why = "set while max_lifetime is 0 (off)"
		}
		s.fail(b.MaxLifetimeJitter.Range, b.MaxLifetimeJitter.Name,
			why+": the jitter only spreads the closes that max_lifetime makes",
			"Set max_lifetime as well, or remove max_lifetime_jitter.")
	case jitter >= r.MaxLifetime:
		s.fail(b.MaxLifetimeJitter.Expr.Range(), "",
			fmt.Sprintf("max_lifetime_jitter (%s) must be shorter than max_lifetime (%s)", jitter, r.MaxLifetime),
			"A pair is closed at a random age between max_lifetime - max_lifetime_jitter and max_lifetime, which must stay above zero.")
	default:
		r.MaxLifetimeJitter = jitter
	}
}

// buildAppPing converts the app_ping block, when there is one, into r.
//
// HCL normalizes strings to Unicode NFC, so a match with decomposed
// characters is stored composed; JSON pings are ASCII in practice.
func (s scope) buildAppPing(b *appPingBlock, r *Route) {
	if b == nil {
		return
	}
	s = s.child("app_ping")
	match, matchOK := s.requiredStr(b.Match, b.DefRange, "match", `"{\"type\":\"ping\"}"`)
	if matchOK {
		matchOK = s.messageText(b.Match, match, minAppPingMatch, maxAppPingMatch,
			"The match is compared with whole client text messages, and a ping is a short one; 125 bytes is the largest control frame payload.")
	}
	reply, replyOK := s.requiredStr(b.Reply, b.DefRange, "reply", `"{\"type\":\"pong\"}"`)
	if replyOK {
		replyOK = s.messageText(b.Reply, reply, 0, maxAppPingReply,
			"The reply is sent by wsalive as one text message for every ping.")
	}
	if matchOK && replyOK {
		r.AppPing = &AppPing{Match: match, Reply: reply}
	}
}

// messageText checks that text, the value of attr, can be a WebSocket text
// message of lo to hi bytes.
func (s scope) messageText(attr *hcl.Attribute, text string, lo, hi int, detail string) bool {
	rng := attr.Expr.Range()
	switch {
	case !utf8.ValidString(text):
		s.fail(rng, attr.Name, "must be valid UTF-8: text messages are UTF-8 (RFC 6455 §5.6)", "")
		return false
	case len(text) < lo || len(text) > hi:
		s.fail(rng, attr.Name, fmt.Sprintf("must be %d to %d bytes long, got %d", lo, hi, len(text)), detail)
		return false
	}
	return true
}

// absent reports whether attr is left out or set to null, which both mean
// "not set". An expression that cannot be evaluated is not absent; its
// problem is reported when it is converted.
func absent(attr *hcl.Attribute) bool {
	if attr == nil {
		return true
	}
	v, diags := attr.Expr.Value(nil)
	return !diags.HasErrors() && v.IsKnown() && v.IsNull()
}

// DetectionBound is the longest the side can stay silent before the
// heartbeat declares it dead: the liveness package's bound for this
// policy (one interval of silence, the largest when it is adaptive, then
// MaxMissed pings each given Timeout). 0 when the heartbeat is off. TCP
// keepalive defaults, the benchmark's expectations and the tests all use
// this one formula.
func (h Heartbeat) DetectionBound() time.Duration {
	if !h.Enabled {
		return 0
	}
	p := liveness.Policy{Interval: h.Interval, Timeout: h.Timeout, MaxMissed: h.MaxMissed,
		MinInterval: h.MinInterval, MaxInterval: h.MaxInterval}
	return p.DetectionBound()
}
