package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
)

// echoUpstream is a real WebSocket server (coder/websocket) that offers the
// given subprotocols, echoes every message, and reports the handshake
// headers it saw on seen.
func echoUpstream(t *testing.T, subprotocols []string, mode websocket.CompressionMode) (addr string, seen chan http.Header) {
	t.Helper()
	seen = make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:    subprotocols,
			CompressionMode: mode,
		})
		if err != nil {
			return // Accept has answered the client already
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), seen
}

// TestEndToEnd runs coder/websocket as both client and upstream through
// the proxy (with the io.Copy fake relay): the subprotocol and the
// compression extension, parameters included, are negotiated end to end,
// and messages make the round trip.
func TestEndToEnd(t *testing.T) {
	cases := []struct {
		name       string
		clientMode websocket.CompressionMode
		serverMode websocket.CompressionMode
		wantExt    string
	}{
		{
			name: "subprotocol-plain",
		},
		{
			name:       "subprotocol-with-deflate-params",
			clientMode: websocket.CompressionNoContextTakeover,
			serverMode: websocket.CompressionNoContextTakeover,
			wantExt:    "permessage-deflate",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upAddr, seen := echoUpstream(t, []string{"v2.chat", "v1.chat"}, tc.serverMode)
			p := startProxy(t, []*config.Route{testRoute("e2e", upAddr, 2*time.Second)}, config.Listener{}, true)

			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws://"+p.addr+"/echo", &websocket.DialOptions{
				Subprotocols:    []string{"v1.chat", "v2.chat"},
				CompressionMode: tc.clientMode,
				HTTPHeader:      http.Header{"X-Trace": {"e2e"}},
			})
			if err != nil {
				t.Fatalf("dial through proxy: %v", err)
			}
			defer c.CloseNow()

			if got := c.Subprotocol(); got != "v2.chat" && got != "v1.chat" {
				t.Errorf("subprotocol %q, want one the upstream offered", got)
			}
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if tc.wantExt == "" && ext != "" {
				t.Errorf("extensions %q, want none", ext)
			}
			if tc.wantExt != "" {
				if !strings.Contains(ext, tc.wantExt) || !strings.Contains(ext, "no_context_takeover") {
					t.Errorf("extensions %q, want %s with its parameters", ext, tc.wantExt)
				}
			}
			select {
			case h := <-seen:
				if h.Get("X-Trace") != "e2e" {
					t.Errorf("upstream X-Trace = %q", h.Get("X-Trace"))
				}
			case <-time.After(waitBound):
				t.Fatal("upstream saw no request")
			}

			h := p.relay.waitHandoff(t)
			if tc.wantExt != "" && (len(h.Extensions) != 1 || h.Extensions[0] != tc.wantExt) {
				t.Errorf("Handoff.Extensions = %q, want [%s]", h.Extensions, tc.wantExt)
			}

			for _, msg := range []string{"hello", strings.Repeat("long message ", 200)} {
				if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					t.Fatalf("write: %v", err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if typ != websocket.MessageText || string(got) != msg {
					t.Errorf("echo = %v %q, want text %q", typ, got, msg)
				}
			}
			if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
}
