package e2e

import (
	"strings"
	"testing"
)

// TestSocketIO runs a stock Socket.IO 4 server and client (npm packages we
// did not write) through wsalive: the default client, which starts with
// HTTP long-polling (plain HTTP pass-through, requests held open by the
// server) and then upgrades to WebSocket on a new connection, and the
// websocket-only client.
func TestSocketIO(t *testing.T) {
	requireNode(t)
	srv := startNode(t, "socketio-server.js")
	port := strings.TrimPrefix(srv.waitLine(t, "LISTENING "), "LISTENING ")
	f := newFixture(t, fixtureOptions{routes: map[string]string{"/socket.io/": "127.0.0.1:" + port}})

	for _, tc := range []struct {
		mode, connected string
		upgrades        bool
	}{
		{mode: "default", connected: "polling", upgrades: true},
		{mode: "websocket", connected: "websocket"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			client := startNode(t, "socketio-client.js", "http://"+f.proxyAddr, tc.mode)
			if got := client.waitLine(t, "CONNECTED "); got != "CONNECTED "+tc.connected {
				t.Errorf("client: %q, want transport %s", got, tc.connected)
			}
			if got := srv.waitLine(t, "CONNECTED "); got != "CONNECTED "+tc.connected+" xff=127.0.0.1" {
				t.Errorf("server: %q", got)
			}
			if tc.upgrades {
				client.waitLine(t, "UPGRADED websocket")
				srv.waitLine(t, "UPGRADED websocket")
			}
			if got := client.waitLine(t, "DONE "); got != "DONE websocket" {
				t.Errorf("client ended with %q", got)
			}
			<-client.exited
			if client.waitErr != nil {
				t.Fatalf("client: %v\n%s", client.waitErr, client.stderr.String())
			}
		})
	}
}
