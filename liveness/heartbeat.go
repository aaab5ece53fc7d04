package liveness

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Policy is the heartbeat policy toward one side of a pair.
type Policy struct {
	// Interval is how long a side may stay silent before it is pinged.
	// Zero turns the heartbeat off for that side.
	Interval time.Duration
	// Timeout is how long a ping may go unanswered before it counts as a
	// miss.
	Timeout time.Duration
	// MaxMissed consecutive misses make the side dead. At least 1.
	MaxMissed int
	// MinInterval and MaxInterval, when MaxInterval > MinInterval, make the
	// interval adaptive: it starts at Interval, grows by a quarter after
	// each pong that comes back within a quarter of Timeout, up to
	// MaxInterval, and falls back to MinInterval after a miss.
	MinInterval, MaxInterval time.Duration
}

// Enabled reports whether the policy pings at all.
func (p *Policy) Enabled() bool { return p.Interval > 0 }

// adaptive reports whether the interval moves between bounds.
func (p *Policy) adaptive() bool { return p.MaxInterval > p.MinInterval && p.MinInterval > 0 }

// DetectionBound is the longest a silent side can stay undetected: one
// interval of silence, then MaxMissed pings each given Timeout.
func (p *Policy) DetectionBound() time.Duration {
	iv := p.Interval
	if p.adaptive() {
		iv = max(iv, p.MaxInterval)
	}
	return iv + time.Duration(p.MaxMissed)*p.Timeout
}

// Action is what the owner of a Side must do after Check.
type Action uint8

const (
	// Wait: nothing to do before the returned deadline.
	Wait Action = iota
	// SendPing: send a ping with the payload from PingPayload now.
	SendPing
	// Dead: MaxMissed consecutive pings went unanswered.
	Dead
)

// PingTag starts the payload of every ping this process sends, so that the
// pongs answering them can be told from the peers' own: "wsa" and a random
// per-process nonce. The nonce matters when two wsalive proxies are
// chained: each must absorb only the pongs to its own pings and let the
// other's cross.
var PingTag = newPingTag()

func newPingTag() []byte {
	tag := []byte("wsa....")
	if _, err := rand.Read(tag[3:]); err != nil {
		panic("liveness: no randomness for the ping tag: " + err.Error())
	}
	return tag
}

// PingPayloadSize is the size of a wsalive ping payload: the tag and the
// send time.
const PingPayloadSize = 7 + 8

// Side is the heartbeat state of one side of a pair. It is a small value
// embedded in the pair; all times are nanoseconds of the owner's monotonic
// clock. The zero value is ready after Start.
type Side struct {
	lastRx   int64 // when anything was last received from the side
	pingAt   int64 // when the outstanding ping was sent
	interval int64 // current interval (adaptive policies move it)
	srtt     int64 // smoothed round-trip time
	lastRTT  int64
	missed   uint16
	waiting  bool // a ping is outstanding
	sent     uint32
	pongs    uint32
}

// Start begins watching a side at now: the side counts as just heard from.
func (s *Side) Start(p *Policy, now int64) {
	*s = Side{lastRx: now, interval: int64(p.Interval)}
}

// Received records that bytes arrived from the side. Any byte proves the
// side alive, so this is all traffic costs: no timer is touched.
func (s *Side) Received(now int64) { s.lastRx = now }

// Waiting reports whether a ping is outstanding.
func (s *Side) Waiting() bool { return s.waiting }

// LastReceived returns when anything was last received from the side.
func (s *Side) LastReceived() int64 { return s.lastRx }

// Check decides, at now, what the side needs and when Check must run next.
// Misses are counted here and only here, one per ping, so MaxMissed is
// honoured by construction: a side is dead only after MaxMissed pings in a
// row each got Timeout to be answered and nothing at all arrived meanwhile.
func (s *Side) Check(p *Policy, now int64) (Action, int64) {
	if !p.Enabled() {
		return Wait, 0
	}
	if s.waiting {
		// A ping is only sent when lastRx < now, so lastRx >= pingAt means
		// bytes came after it (at the same clock reading at the earliest).
		if s.lastRx >= s.pingAt {
			// Something arrived after the ping: alive, even if its pong
			// has not come (yet).
			s.waiting = false
			s.missed = 0
		} else if deadline := s.pingAt + int64(p.Timeout); now < deadline {
			return Wait, deadline
		} else {
			s.waiting = false
			s.missed++
			if p.adaptive() {
				s.interval = int64(p.MinInterval)
			}
			if int(s.missed) >= max(p.MaxMissed, 1) {
				return Dead, 0
			}
			// Ask again at once: the detection bound is one interval of
			// silence plus MaxMissed timeouts.
			return s.ping(p, now)
		}
	}
	if due := s.lastRx + s.interval; now < due {
		return Wait, due
	}
	return s.ping(p, now)
}

func (s *Side) ping(p *Policy, now int64) (Action, int64) {
	s.pingAt = now
	s.waiting = true
	s.sent++
	return SendPing, now + int64(p.Timeout)
}

// PingPayload writes the payload of the ping Check asked for into dst
// (at least PingPayloadSize bytes) and returns it.
func (s *Side) PingPayload(dst []byte) []byte {
	dst = append(dst[:0], PingTag...)
	return binary.BigEndian.AppendUint64(dst, uint64(s.pingAt))
}

// IsOwnPong reports whether a pong payload answers a wsalive ping; such a
// pong is absorbed, never forwarded.
func IsOwnPong(payload []byte) bool {
	return len(payload) == PingPayloadSize && bytes.HasPrefix(payload, PingTag)
}

// Pong records a pong carrying a wsalive payload at now. A pong that
// answers the outstanding ping gives a round-trip time and resets the miss
// count; a late pong for an older ping only proves life.
func (s *Side) Pong(p *Policy, payload []byte, now int64) {
	s.lastRx = now
	if !IsOwnPong(payload) {
		return
	}
	sentAt := int64(binary.BigEndian.Uint64(payload[len(PingTag):]))
	if !s.waiting || sentAt != s.pingAt {
		return
	}
	rtt := now - sentAt
	s.waiting = false
	s.missed = 0
	s.pongs++
	s.lastRTT = rtt
	if s.pongs == 1 {
		s.srtt = rtt
	} else {
		// RFC 6298's smoothing: srtt = 7/8 srtt + 1/8 rtt.
		s.srtt += (rtt - s.srtt) / 8
	}
	if p.adaptive() && rtt <= int64(p.Timeout)/4 {
		s.interval = min(s.interval+s.interval/4, int64(p.MaxInterval))
	}
}

// Stats is a side's heartbeat account.
type Stats struct {
	PingsSent     uint32
	PongsReceived uint32
	Missed        int
	LastRTT       time.Duration
	SmoothedRTT   time.Duration
	Interval      time.Duration
}

// Stats returns the side's account.
func (s *Side) Stats() Stats {
	return Stats{
		PingsSent:     s.sent,
		PongsReceived: s.pongs,
		Missed:        int(s.missed),
		LastRTT:       time.Duration(s.lastRTT),
		SmoothedRTT:   time.Duration(s.srtt),
		Interval:      time.Duration(s.interval),
	}
}
