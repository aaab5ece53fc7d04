package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Forwarded headers.
//
// A listener's trusted_proxies are the peers whose claims about the
// client are believed. From such a peer wsalive keeps X-Forwarded-Proto
// and X-Forwarded-Host as they came (the proxy in front terminated TLS and
// saw the real host) and appends the peer to X-Forwarded-For, as nginx's
// $proxy_add_x_forwarded_for does. From any other peer it believes
// nothing: the three headers are replaced by what it saw itself, so a
// client cannot forge its address or scheme to the upstream.
//
// RFC 7239 Forwarded: wsalive does not generate it (the X-Forwarded-*
// trio is what the backends it stands in front of read, and sending both
// invites them to disagree). From a trusted peer it is passed on as it
// came; from any other peer it is removed, for the same reason the
// X-Forwarded-* headers are replaced: an upstream that reads it must not
// read a client's forgery.
//
// The client IP that logs, limits and metrics use is the forwarded one
// from a trusted peer (the rightmost X-Forwarded-For entry that is not
// itself a trusted proxy) and the peer's own address otherwise. The same
// rules apply on the WebSocket and the plain HTTP path.

// trustedSet is a listener's trusted_proxies.
type trustedSet []netip.Prefix

func (t trustedSet) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is what is known of a client connection's other end.
type peer struct {
	addr netip.Addr // invalid when the connection is not TCP
	ip   string     // addr as text (with zone), or the address string
}

func peerOf(c net.Conn) peer {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && len(a.IP) > 0 {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap().WithZone(a.Zone)
		return peer{addr: ip, ip: ip.String()}
	}
	s := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, _ := netip.ParseAddr(s)
	return peer{addr: a, ip: s}
}

// forwarding is what one request's forwarded headers become.
type forwarding struct {
	// clientIP is the client's address for logs and limits.
	clientIP string
	// trusted says the peer is a trusted proxy.
	trusted bool
	xff     string // X-Forwarded-For to send
	proto   string // X-Forwarded-Proto to send
	host    string // X-Forwarded-Host to send
}

// forwardingFor applies the rules above to a request from p with header h
// and Host host, on a listener whose own scheme is proto.
func forwardingFor(trusted trustedSet, proto string, p peer, h http.Header, host string) forwarding {
	f := forwarding{clientIP: p.ip, xff: p.ip, proto: proto, host: host}
	if len(trusted) == 0 || !trusted.contains(p.addr) {
		return f
	}
	f.trusted = true
	if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
		chain := strings.Join(prior, ", ")
		f.xff = chain + ", " + p.ip
		f.clientIP = clientFromChain(trusted, chain, p.ip)
	}
	if v := h.Get("X-Forwarded-Proto"); v != "" {
		f.proto = v
	}
	if v := h.Get("X-Forwarded-Host"); v != "" {
		f.host = v
	}
	return f
}

// clientFromChain returns the rightmost address of an X-Forwarded-For
// chain that is not a trusted proxy: entries to its left were written by
// the client or by proxies nobody vouches for. An entry that is not an
// address ends the walk at the last good one (fallback at first).
func clientFromChain(trusted trustedSet, chain, fallback string) string {
	client := fallback
	for chain != "" {
		var entry string
		if i := strings.LastIndexByte(chain, ','); i >= 0 {
			entry, chain = chain[i+1:], chain[:i]
		} else {
			entry, chain = chain, ""
		}
		entry = strings.TrimSpace(entry)
		a, err := netip.ParseAddr(entry)
		if err != nil {
			if ap, err2 := netip.ParseAddrPort(entry); err2 == nil {
				a = ap.Addr()
			} else {
				return client
			}
		}
		client = a.Unmap().String()
		if !trusted.contains(a) {
			return client
		}
	}
	return client
}

// apply writes f into the request header h bound for the upstream.
func (f *forwarding) apply(h http.Header) {
	// What h.Set does three times, with one allocation for the three
	// values instead of one each.
	v := &[3]string{f.xff, f.proto, f.host}
	h["X-Forwarded-For"] = v[0:1:1]
	h["X-Forwarded-Proto"] = v[1:2:2]
	h["X-Forwarded-Host"] = v[2:3:3]
	if !f.trusted {
		h.Del("Forwarded")
	}
}

// applyShared is apply for a request from a peer that is not trusted,
// with the values that do not change between its requests given as
// ready-made header values: peerXFF is []string{the peer's address} (one
// per client connection) and proto []string{the listener's scheme}. The
// header shares them, so a request allocates no value for them; nobody
// changes a header value in place (Add appends to a full slice, which
// copies). From a trusted peer it is apply.
func (f *forwarding) applyShared(h http.Header, peerXFF, proto []string) {
	if f.trusted {
		f.apply(h)
		return
	}
	h["X-Forwarded-For"] = peerXFF
	h["X-Forwarded-Proto"] = proto
	h["X-Forwarded-Host"] = []string{f.host}
	delete(h, "Forwarded")
}
