package pool

import (
	"context"
	"errors"
	"net"
)

// errNoAddresses is a lookup that succeeded with nothing to dial.
var errNoAddresses = errors.New("no addresses")

// resolve returns the address to dial for s: its own when it is an IP
// address, else one of its name's addresses, looked up again once the
// cached answer is older than the pool's DNS TTL. Successive dials rotate
// among the addresses of one answer. A failed lookup is a failed dial of
// the server; the old answer is not reused, so that a name that was
// removed stops being dialed within one TTL.
func (p *Pool) resolve(ctx context.Context, s *server) (string, error) {
	if s.literal {
		return s.cfg.Address, nil
	}
	p.mu.Lock()
	if len(s.addrs) > 0 && p.now().Before(s.expires) {
		addr := p.pickAddr(s)
		p.mu.Unlock()
		return addr, nil
	}
	p.mu.Unlock()

	addrs, err := p.resolver.LookupHost(ctx, s.host)
	if err == nil && len(addrs) == 0 {
		err = errNoAddresses
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		s.addrs = nil
		return "", err
	}
	s.addrs, s.expires, s.nextAddr = addrs, p.now().Add(p.ttl), 0
	return p.pickAddr(s), nil
}

// pickAddr returns the next of s's resolved addresses; p.mu is held.
func (p *Pool) pickAddr(s *server) string {
	a := s.addrs[s.nextAddr%len(s.addrs)]
	s.nextAddr++
	return net.JoinHostPort(a, s.port)
}
