package relay

import (
	"net"
	"testing"
	"time"
)

// TestPeerAddrFormatsAsTCPAddr: the pair keeps addresses as values and
// formats them when it ends; the text must be the one
// (*net.TCPAddr).String gives, byte for byte (logs, /stats and
// Server.PairClosed read it), and what has no value form is kept as text.
func TestPeerAddrFormatsAsTCPAddr(t *testing.T) {
	addrs := []net.Addr{
		&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000},        // 16-byte form
		&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7).To4(), Port: 65535}, // 4-byte form
		&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1:0:0:1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 0},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, // text
		&net.TCPAddr{Port: 80},                          // no IP: text
		&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, // not TCP: text
	}
	for _, a := range addrs {
		var p pair
		var v peerAddr
		p.setAddr(upstream, &v, a)
		if got, want := p.addrString(upstream, v), a.String(); got != want {
			t.Errorf("%#v: %q, want %q", a, got, want)
		}
		if _, ok := peerAddrOf(a); ok != (p.x == nil) {
			t.Errorf("%v: value form %v, but extras made: %v", a, ok, p.x != nil)
		}
	}
	// A side's address set again as a value drops its earlier text.
	var p pair
	var v peerAddr
	p.setAddr(client, &v, addrs[5])
	p.setAddr(client, &v, addrs[0])
	if got := p.addrString(client, v); got != addrs[0].String() {
		t.Errorf("after a second setAddr: %q, want %q", got, addrs[0].String())
	}
}

// TestPairStatsAddresses: the account of a pair names both sockets'
// remote addresses as their RemoteAddr gives them, on either driver.
func TestPairStatsAddresses(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	tp := attachPair(t, e, closed, Handoff{CloseTimeout: 50 * time.Millisecond})
	// The proxy's sockets' remote addresses are the peers' local ones.
	wantCli, wantUps := tp.cli.LocalAddr().String(), tp.ups.LocalAddr().String()
	tp.cli.Close()
	select {
	case st := <-closed:
		if st.ClientAddr != wantCli || st.UpstreamAddr != wantUps {
			t.Fatalf("stats addresses %q, %q; want %q, %q", st.ClientAddr, st.UpstreamAddr, wantCli, wantUps)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pair did not end")
	}
}
