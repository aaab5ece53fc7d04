package pool

import (
	"slices"
	"time"
)

// ServerState is what a pool knows about one server at one moment.
type ServerState struct {
	// Address is the server's host:port as configured.
	Address string `json:"address"`
	Backup  bool   `json:"backup"`
	// State is "up", or "skipped" while its failures keep it out of
	// rotation (until SkippedUntil).
	State        string     `json:"state"`
	SkippedUntil *time.Time `json:"skipped_until,omitempty"`
	// Fails counts its recent failed dials (reset by a successful one).
	Fails     int    `json:"fails"`
	LastError string `json:"last_error,omitempty"`
	// Pairs is how many pairs it relays now (handshakes in progress
	// included).
	Pairs int `json:"pairs"`
	// Resolved holds the addresses its name resolved to, when it is a
	// name and has been resolved.
	Resolved []string `json:"resolved,omitempty"`
}

// States returns the state of every server, in configuration order.
func (p *Pool) States() []ServerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := make([]ServerState, len(p.servers))
	for i, s := range p.servers {
		st := ServerState{
			Address:  s.cfg.Address,
			Backup:   s.cfg.Backup,
			State:    "up",
			Fails:    s.fails,
			Pairs:    s.pairs,
			Resolved: slices.Clone(s.addrs),
		}
		if now.Before(s.downUntil) {
			st.State = "skipped"
			until := s.downUntil
			st.SkippedUntil = &until
		}
		if s.lastErr != nil {
			st.LastError = s.lastErr.Error()
		}
		out[i] = st
	}
	return out
}
