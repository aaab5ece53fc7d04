package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// TestKeepAliveThenUpgradeThroughEngine reuses one TCP connection for
// plain requests, then upgrades it, through the real engine, to a
// coder/websocket upstream behind net/http: the pair relays frames both
// ways, and a request pipelined behind the upgrade reaches the relay as
// bytes that are not a frame, which ends the pair as a protocol error
// instead of reaching the upstream as a request.
func TestKeepAliveThenUpgradeThroughEngine(t *testing.T) {
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
			fmt.Fprintf(w, "plain %s", r.URL.Query().Get("n"))
		case "/echo":
			echo(w, r)
		default:
			http.NotFound(w, r)
		}
	}})
	c, err := net.DialTimeout("tcp", f.proxyAddr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitBound))
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /plain?n=%d HTTP/1.1\r\nHost: app\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("plain %d", i) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	key := newKey()
	if _, err := c.Write(upgradeRequest("app", "/echo", key)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(key) {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	msg := []byte("over the kept-alive connection")
	if _, err := c.Write(clientFrame(ws.OpText, msg)); err != nil {
		t.Fatal(err)
	}
	if err := expectFrame(br, ws.OpText, false, msg); err != nil {
		t.Fatal(err)
	}
	// An HTTP request where frames belong is a protocol error.
	if _, err := io.WriteString(c, "GET /plain?n=smuggled HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	st := f.nextClosed(t)
	if st.Reason != relay.ReasonClientProtocolError {
		t.Errorf("pair ended with %v, want %v", st.Reason, relay.ReasonClientProtocolError)
	}
}

// TestPairLimitThroughEngine checks that max_pairs counts live pairs of
// the real engine: the place of a pair comes back when the engine reports
// it closed (relay.Options.OnClose -> Server.PairClosed), not before.
func TestPairLimitThroughEngine(t *testing.T) {
	f := newFixture(t, fixtureOptions{
		handler: echo,
		route:   func(r *config.Route) { r.MaxPairs = 1 },
	})
	first, _ := f.dial(t, "/echo", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+f.proxyAddr+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second pair: %v %+v, want 503 with Retry-After", err, resp)
	}
	closeNormally(t, f, first, relay.ReasonClientClosed)
	second, _ := f.dial(t, "/echo", nil)
	closeNormally(t, f, second, relay.ReasonClientClosed)
}
