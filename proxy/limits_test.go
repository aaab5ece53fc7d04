package proxy

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
)

// TestPairCounterKeepsNoIPTextForPlainClients: a pair whose client IP is
// its address's own text holds no string of its own for its life (the
// counter's per-pair entry is a value), while a forwarded client's IP,
// or one written differently (upper-case hex), is kept as given; either
// way the pair's end gives back exactly what it reserved.
func TestPairCounterKeepsNoIPTextForPlainClients(t *testing.T) {
	route := &config.Route{Name: "r"}
	route.MaxPairsPerClientIP = 5
	other := &config.Route{Name: "other"}
	cases := []struct {
		name, ip string
		addr     netip.AddrPort
		kept     bool
	}{
		{"ipv4", "192.0.2.7", netip.MustParseAddrPort("192.0.2.7:4000"), false},
		{"ipv6", "2001:db8::7", netip.MustParseAddrPort("[2001:db8::7]:4000"), false},
		{"zone", "fe80::1%eth0", netip.MustParseAddrPort("[fe80::1%eth0]:4000"), false},
		{"forwarded", "198.51.100.1", netip.MustParseAddrPort("127.0.0.1:4000"), true},
		{"v4-mapped-v6", "::ffff:192.0.2.7", netip.MustParseAddrPort("[::ffff:192.0.2.7]:4000"), false},
		{"upper-case", "2001:DB8::7", netip.MustParseAddrPort("[2001:db8::7]:4001"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPairCounter()
			if r := pc.reserve(other, tc.ip); r != "" {
				t.Fatal(r)
			}
			if r := pc.reserve(route, tc.ip); r != "" {
				t.Fatal(r)
			}
			pc.attach(route.Name, tc.addr, tc.ip, nil)
			pc.attach(other.Name, tc.addr, tc.ip, nil) // same address, another route
			// Plain pairs are keys alone; the others keep what the key
			// does not say (a zone cannot be in a plain key).
			wantPlain := 2
			if tc.kept || tc.addr.Addr().Zone() != "" || tc.addr.Addr().Is4In6() {
				wantPlain = 0
			}
			if len(pc.plain) != wantPlain || len(pc.live) != 2-wantPlain {
				t.Fatalf("%d plain and %d other entries, want %d and %d", len(pc.plain), len(pc.live), wantPlain, 2-wantPlain)
			}
			for k, p := range pc.live {
				if got := p.clientIP != ""; got != tc.kept {
					t.Errorf("route %d: clientIP %q kept = %v, want %v", k.route, p.clientIP, got, tc.kept)
				}
			}
			if n, byIP := pc.count(route.Name, tc.ip); n != 1 || byIP != 1 {
				t.Fatalf("count = %d, %d; want 1, 1", n, byIP)
			}
			if !pc.closed(route.Name, tc.addr, 99) {
				t.Fatal("closed: pair not found")
			}
			if pc.closed(route.Name, tc.addr, 99) {
				t.Fatal("closed twice: found again")
			}
			if n, byIP := pc.count(route.Name, tc.ip); n != 0 || byIP != 0 {
				t.Fatalf("after closed: count = %d, %d; want 0, 0", n, byIP)
			}
			if len(pc.routes[route.Name].byIP) != 0 {
				t.Fatalf("byIP keeps %v", pc.routes[route.Name].byIP)
			}
			if n, _ := pc.count(other.Name, tc.ip); n != 1 {
				t.Fatalf("the other route's pair: count %d, want 1", n)
			}
		})
	}
}

// TestPairCounterSessionKeepsItsIP: a session's pair is found by ID once
// identified, and gives back the IP it was reserved under, whatever
// address it ends with.
func TestPairCounterSessionKeepsItsIP(t *testing.T) {
	pc := newPairCounter()
	route := &config.Route{Name: "r"}
	addr := netip.MustParseAddrPort("192.0.2.7:4000")
	pc.reserve(route, "192.0.2.7")
	pc.attach(route.Name, addr, "192.0.2.7", nil)
	pc.identify(route.Name, addr, 7)
	if len(pc.plain) != 0 || len(pc.live) != 0 || len(pc.sessions) != 1 {
		t.Fatalf("plain %d, live %d, sessions %d; want 0, 0, 1", len(pc.plain), len(pc.live), len(pc.sessions))
	}
	if !pc.closed(route.Name, netip.MustParseAddrPort("203.0.113.1:5000"), 7) {
		t.Fatal("session's pair not found by ID")
	}
	if n, byIP := pc.count(route.Name, "192.0.2.7"); n != 0 || byIP != 0 {
		t.Fatalf("count = %d, %d; want 0, 0", n, byIP)
	}
}

// TestPairCounterEntryAllocatesNothing: recording a plain client's pair
// allocates nothing, the comparison of its IP with its address's text
// included (which formats the address on the stack).
func TestPairCounterEntryAllocatesNothing(t *testing.T) {
	pc := newPairCounter()
	route := &config.Route{Name: "r"}
	addr := netip.MustParseAddrPort("192.0.2.7:4000")
	ip := "192.0.2.7"
	pc.reserve(route, ip)
	pc.attach(route.Name, addr, ip, nil)
	pc.closed(route.Name, addr, 0)
	if n := testing.AllocsPerRun(100, func() { pc.attach(route.Name, addr, ip, nil) }); n != 0 {
		t.Fatalf("attach: %v allocations, want 0", n)
	}
}

// TestListenerKeepaliveHandoff: a route whose client keepalive is the one
// the listeners were opened with hands its pairs off with
// ClientKeepaliveSet (the relay skips the socket's setsockopt calls);
// another route's pairs, and every pair of a server told nothing about
// its listeners, are set by the relay.
func TestListenerKeepaliveHandoff(t *testing.T) {
	up := startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
	k := liveness.TCPKeepalive{Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}
	same := testRoute("same", up.addr, 2*time.Second)
	same.PathPrefix = "/same"
	same.ClientHeartbeat.TCP = k
	other := testRoute("other", up.addr, 2*time.Second)
	other.PathPrefix = "/other"
	other.ClientHeartbeat.TCP = liveness.TCPKeepalive{Idle: time.Minute}

	if got, ok := ListenerKeepalive([]*config.Route{same, other}); ok {
		t.Errorf("routes that differ: ListenerKeepalive = %+v, true; want false", got)
	}
	if got, ok := ListenerKeepalive([]*config.Route{same, same}); !ok || got != k {
		t.Errorf("routes that agree: ListenerKeepalive = %+v, %v; want %+v, true", got, ok, k)
	}
	if _, ok := ListenerKeepalive([]*config.Route{testRoute("none", up.addr, time.Second)}); ok {
		t.Error("routes with no keepalive: want false (nothing to set on a listener)")
	}

	for _, told := range []bool{true, false} {
		var opts []Option
		if told {
			opts = append(opts, WithListenerKeepalive(k))
		}
		p, _ := startProxyWith(t, []*config.Route{same, other}, config.Listener{}, false, opts...)
		for _, path := range []string{"/same", "/other"} {
			if ex := roundTrip(t, p.addr, upgradeRequest(path, "a", "")); ex.resp.StatusCode != 101 {
				t.Fatalf("%s: status %d", path, ex.resp.StatusCode)
			}
			h := p.relay.waitHandoff(t)
			if want := told && path == "/same"; h.ClientKeepaliveSet != want {
				t.Errorf("told %v, %s: ClientKeepaliveSet = %v, want %v", told, path, h.ClientKeepaliveSet, want)
			}
		}
	}
}
