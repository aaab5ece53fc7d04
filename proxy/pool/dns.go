package pool

import (
	"context"
	"errors"
	"net"
)

// errNoAddresses is a lookup that succeeded with nothing to dial.
var errNoAddresses = errors.New("no addresses")

// lookup is a name resolution in flight, which the dials that need the
// same name meanwhile wait for instead of asking the resolver again: when
// the cached answer expires during a burst of handshakes, the resolver
// gets one query, not one per handshake. addrs and err are set before done
// is closed.
type lookup struct {
	done  chan struct{}
	addrs []string
	err   error
}

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
		addr := p.pickAddr(s, s.addrs)
		p.mu.Unlock()
		return addr, nil
	}
	if l := s.inflight; l != nil {
		p.mu.Unlock()
		if p.waiting != nil {
			p.waiting()
		}
		select {
		case <-l.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if l.err != nil {
			return "", l.err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.pickAddr(s, l.addrs), nil
	}
	l := &lookup{done: make(chan struct{})}
	s.inflight = l
	p.mu.Unlock()

	addrs, err := p.resolver.LookupHost(ctx, s.host)
	if err == nil && len(addrs) == 0 {
		err = errNoAddresses
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.inflight = nil
	l.addrs, l.err = addrs, err
	close(l.done)
	if err != nil {
		s.addrs = nil
		return "", err
	}
	s.addrs, s.expires, s.nextAddr = addrs, p.now().Add(p.ttl), 0
	return p.pickAddr(s, addrs), nil
}

// pickAddr returns the next of addrs, the answer for s, to dial; p.mu is
// held.
func (p *Pool) pickAddr(s *server, addrs []string) string {
	a := addrs[s.nextAddr%len(addrs)]
	s.nextAddr++
	return net.JoinHostPort(a, s.port)
}
