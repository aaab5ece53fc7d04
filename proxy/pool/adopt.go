package pool

// Adopt takes over from old, the same route's pool before a
// configuration reload, what old learned about the servers p still has,
// so that a reload (SIGHUP) does not forget it. It must be called before
// p is used.
//
// Live pairs follow the address: a server of p with the address of one
// of old's counts old's live pairs (balance "least_pairs" keeps seeing
// them, and their Release reaches p), as do the addresses its name
// resolved to. Passive health (failed dials, skipped-until) is adopted
// only when the server is the same server dialed the same way: same
// address, same wss:// or ws://, same max_fails and fail_timeout, and
// keepHealth, which the caller sets when nothing else about how the
// route dials changed (its upstream_tls settings): failures seen with an
// old CA must not keep a server out once the CA is fixed. A server that
// is new, or changed, starts afresh.
//
// Dials that started on old before the reload are counted by old alone;
// their pairs' Release finds nothing in p and is ignored, so a pair that
// was in handshake during a reload is not counted by p.
func (p *Pool) Adopt(old *Pool, keepHealth bool) {
	if old == nil || old == p {
		return
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	taken := map[*server]bool{} // a server listed twice adopts one old server each
	for _, s := range p.servers {
		var was *server
		for _, o := range old.servers {
			if o.cfg.Address == s.cfg.Address && !taken[o] {
				was = o
				taken[o] = true
				break
			}
		}
		if was == nil {
			continue
		}
		for k, n := range old.live {
			if k.server == was {
				p.live[liveKey{k.remote, s}] += n
				s.pairs += n
			}
		}
		s.addrs, s.expires, s.nextAddr = was.addrs, was.expires, was.nextAddr
		if keepHealth && sameHealth(was, s) {
			s.fails, s.firstFail, s.downUntil, s.lastErr = was.fails, was.firstFail, was.downUntil, was.lastErr
		}
	}
}

// sameHealth says whether passive health learned about a means the same
// for b: the same server, dialed the same way, judged by the same rule.
func sameHealth(a, b *server) bool {
	return a.cfg.Address == b.cfg.Address && a.cfg.TLS == b.cfg.TLS &&
		a.cfg.MaxFails == b.cfg.MaxFails && a.cfg.FailTimeout == b.cfg.FailTimeout
}
