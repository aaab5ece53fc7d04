package e2e

import (
	"context"
	"net"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/examples/legacyecho"
	"github.com/wsalive/wsalive/proxy/relay"
)

// TestLegacyEchoUpstream puts wsalive in front of the example legacy
// backend it is made for: messages echo through, and when the backend
// goes away without a close frame (as a crashing process does), the client
// still gets a proper 1001.
func TestLegacyEchoUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	legacy := legacyecho.NewWithOptions(nil, legacyecho.Options{Subprotocol: "chat"})
	served := make(chan error, 1)
	go func() { served <- legacy.Serve(ln) }()
	t.Cleanup(func() {
		_ = legacy.Close()
		if err := recv(t, served, "legacy Serve result"); err != nil {
			t.Errorf("legacy Serve: %v", err)
		}
	})
	f := newFixture(t, fixtureOptions{routes: map[string]string{"/legacy": ln.Addr().String()}})

	c, _ := f.dial(t, "/legacy/room", &websocket.DialOptions{Subprotocols: []string{"other", "chat"}})
	if got := c.Subprotocol(); got != "chat" {
		t.Errorf("subprotocol %q, want chat", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	for i, m := range []messageCase{
		{websocket.MessageText, 0},
		{websocket.MessageText, 125},
		{websocket.MessageBinary, 65536},
		{websocket.MessageBinary, 1 << 20},
	} {
		if err := roundTrip(ctx, c, m.typ, payload(m.typ, m.size, uint64(i))); err != nil {
			t.Fatalf("%s: %v", m.name(), err)
		}
	}

	// The legacy server drops its sockets without a close frame.
	if err := legacy.Close(); err != nil {
		t.Errorf("legacy Close: %v", err)
	}
	_, _, err = c.Read(ctx)
	if code, _ := closeError(err); code != websocket.StatusGoingAway {
		t.Errorf("client saw %v, want close 1001", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamGone {
		t.Errorf("pair ended with %v, want upstream_gone", st.Reason)
	}
}
