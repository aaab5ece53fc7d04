package relay

import (
	"net"
	"net/netip"
)

// peerAddr is a socket's remote address kept as a value inside the pair,
// formatted only when the pair's account is written (PairStats). A string
// made per socket at attach time was a separate 16-byte allocation that
// lived as long as the pair, and 9,000 of them, scattered among a
// handshake storm's freed 16-byte garbage, kept most of those spans from
// being given back.
//
// It is not a netip.AddrPort: that is 32 bytes (its zone is a pointer),
// and two of them would push the epoll pair past its 512-byte allocation
// class. The 18 bytes here fit where the string header and the
// endpoint's padding were. IPv4 addresses are kept in their IPv4-mapped
// form and formatted as IPv4, as net.IP does, so the text is the one
// RemoteAddr().String() gives; an address this cannot hold (a zone, or
// not an IP address at all) is kept as that text in the pair's extras
// (pairExtras.addrText), which only such rare pairs allocate.
type peerAddr struct {
	ip   [16]byte
	port uint16
}

// peerAddrOf returns a's value, and ok false when a must be kept as text.
func peerAddrOf(a net.Addr) (peerAddr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.Zone != "" || ta.Port < 0 || ta.Port > 0xffff {
		return peerAddr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return peerAddr{}, false
	}
	return peerAddr{ip: ip.As16(), port: uint16(ta.Port)}, true
}

// String formats a as (*net.TCPAddr).String does.
func (a peerAddr) String() string {
	return netip.AddrPortFrom(netip.AddrFrom16(a.ip).Unmap(), a.port).String()
}

// setAddr records the remote address of side s's socket: as a value in
// *v, or as text in the pair's extras when it has no value form.
func (p *pair) setAddr(s side, v *peerAddr, a net.Addr) {
	if pa, ok := peerAddrOf(a); ok {
		*v = pa
		if p.x != nil {
			p.x.addrText[s] = ""
		}
		return
	}
	*v = peerAddr{}
	if a != nil {
		p.extras().addrText[s] = a.String()
	}
}

// addrString returns side s's address as text, v its value form.
func (p *pair) addrString(s side, v peerAddr) string {
	if p.x != nil && p.x.addrText[s] != "" {
		return p.x.addrText[s]
	}
	return v.String()
}

// remoteAddr is c's remote address; nil for no connection.
func remoteAddr(c net.Conn) net.Addr {
	if c == nil {
		return nil
	}
	return c.RemoteAddr()
}

// remoteText is c's remote address as text ("" for none). The net.Conn
// driver keeps its connections for the pair's life, and a closed
// connection still knows its address, so it formats them only here.
func remoteText(c net.Conn) string {
	if a := remoteAddr(c); a != nil {
		return a.String()
	}
	return ""
}
