package relay

import (
	"net"
	"testing"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// peerConn is a connection that only knows its peer's address.
type peerConn struct {
	net.Conn
	peer net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.peer }

func TestKeepaliveWanted(t *testing.T) {
	k := liveness.TCPKeepalive{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 50 * time.Second}
	hb := liveness.Policy{Interval: 30 * time.Second, Timeout: 10 * time.Second, MaxMissed: 1}
	tcp := func(ip string) net.Conn { return peerConn{peer: &net.TCPAddr{IP: net.ParseIP(ip), Port: 80}} }
	for _, tc := range []struct {
		name      string
		side      SidePolicy
		conn      net.Conn
		inherited bool
		want      bool
	}{
		{"remote peer, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("10.0.0.7"), false, true},
		{"remote peer, heartbeat off", SidePolicy{Keepalive: k}, tcp("10.0.0.7"), false, true},
		{"loopback peer, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("127.0.0.1"), false, false},
		{"loopback /8, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("127.3.2.1"), false, false},
		{"IPv6 loopback, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("::1"), false, false},
		{"IPv4-mapped loopback, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("::ffff:127.0.0.1"), false, false},
		{"loopback peer, heartbeat off", SidePolicy{Keepalive: k}, tcp("127.0.0.1"), false, true},
		{"inherited from the listener", SidePolicy{Heartbeat: hb, Keepalive: k}, tcp("10.0.0.7"), true, false},
		{"nothing to set", SidePolicy{Heartbeat: hb}, tcp("10.0.0.7"), false, false},
		{"not TCP, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, peerConn{peer: &net.UnixAddr{Name: "/x", Net: "unix"}}, false, true},
		{"no address, heartbeat on", SidePolicy{Heartbeat: hb, Keepalive: k}, nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := NewPolicy(PolicyConfig{Upstream: tc.side})
			if got := pol.keepaliveWanted(upstream, tc.conn, tc.inherited); got != tc.want {
				t.Errorf("keepaliveWanted = %v, want %v", got, tc.want)
			}
		})
	}
}
