package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
)

// TestUpstreamDialTimeout puts the upstream's address in a network
// namespace that drops every packet, so the dial neither succeeds nor is
// refused: a plain HTTP request and a WebSocket upgrade both get 504 once
// the route's handshake_timeout has passed.
func TestUpstreamDialTimeout(t *testing.T) {
	n := newNetns(t)
	n.blackhole(t)
	const timeout = 300 * time.Millisecond
	f := newFixture(t, fixtureOptions{
		routes: map[string]string{"/dark": n.nsIP + ":80"},
		route: func(r *config.Route) {
			if r.PathPrefix == "/dark" {
				r.HandshakeTimeout = timeout
			}
		},
	})
	for _, tc := range []struct{ name, raw string }{
		{"http", "GET /dark/page HTTP/1.1\r\nHost: app\r\n\r\n"},
		{"websocket", string(upgradeRequest("app", "/dark/ws", newKey()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", f.proxyAddr, waitBound)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitBound))
			start := time.Now()
			fmt.Fprint(c, tc.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status %d, want 504", resp.StatusCode)
			}
			if took < timeout {
				t.Errorf("answered after %v, before the %v timeout", took, timeout)
			}
		})
	}
}
