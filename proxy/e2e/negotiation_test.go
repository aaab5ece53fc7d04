package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/proxy/relay"
)

// TestPermessageDeflate lets the client and the upstream negotiate
// permessage-deflate through wsalive: the relay forwards compressed frames
// (RSV1 set) untouched, so what crosses it must be much smaller than the
// messages, and the messages must come out intact.
func TestPermessageDeflate(t *testing.T) {
	modes := []struct {
		name string
		mode websocket.CompressionMode
	}{
		{"context-takeover", websocket.CompressionContextTakeover},
		{"no-context-takeover", websocket.CompressionNoContextTakeover},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
				echoWith(w, r, &websocket.AcceptOptions{CompressionMode: m.mode})
			}})
			opts := &websocket.DialOptions{CompressionMode: m.mode}

			t.Run("negotiated", func(t *testing.T) {
				c, resp := f.dial(t, "/deflate", opts)
				ext := resp.Header.Get("Sec-WebSocket-Extensions")
				if !strings.HasPrefix(ext, "permessage-deflate") {
					t.Errorf("client saw Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
				}
				if m.mode == websocket.CompressionNoContextTakeover && !strings.Contains(ext, "no_context_takeover") {
					t.Errorf("client saw Sec-WebSocket-Extensions %q, want its no_context_takeover parameters", ext)
				}
				closeNormally(t, f, c, relay.ReasonClientClosed)
			})

			t.Run("compressible-1MiB", func(t *testing.T) {
				c, _ := f.dial(t, "/deflate", opts)
				msg := []byte(strings.Repeat("wsalive keeps legacy websockets alive. ", (1<<20)/39+1)[:1<<20])
				ctx, cancel := context.WithTimeout(context.Background(), waitBound)
				defer cancel()
				if err := roundTrip(ctx, c, websocket.MessageText, msg); err != nil {
					t.Fatal(err)
				}
				st := closeNormally(t, f, c, relay.ReasonClientClosed)
				// Compressed, 1 MiB of a repeated sentence is a few KiB;
				// sent as is it would be over 1 MiB each way.
				const limit = 64 << 10
				if st.BytesToUpstream > limit || st.BytesToClient > limit {
					t.Errorf("relayed %d bytes to the upstream and %d to the client for a 1 MiB message, want under %d each: not compressed",
						st.BytesToUpstream, st.BytesToClient, limit)
				}
				t.Logf("1 MiB message: %d bytes to the upstream, %d to the client", st.BytesToUpstream, st.BytesToClient)
			})

			t.Run("incompressible-256KiB", func(t *testing.T) {
				c, _ := f.dial(t, "/deflate", opts)
				msg := payload(websocket.MessageBinary, 256<<10, 1)
				ctx, cancel := context.WithTimeout(context.Background(), waitBound)
				defer cancel()
				if err := roundTrip(ctx, c, websocket.MessageBinary, msg); err != nil {
					t.Fatal(err)
				}
				st := closeNormally(t, f, c, relay.ReasonClientClosed)
				if st.BytesToUpstream < uint64(len(msg)) || st.BytesToClient < uint64(len(msg)) {
					t.Errorf("relayed %d bytes to the upstream and %d to the client, want at least %d each: random bytes do not shrink",
						st.BytesToUpstream, st.BytesToClient, len(msg))
				}
			})

			t.Run("mixed-sequence", func(t *testing.T) {
				// Small messages stay below the compression threshold
				// (sent without RSV1), large ones are compressed; both
				// kinds interleave on one pair.
				c, _ := f.dial(t, "/deflate", opts)
				ctx, cancel := context.WithTimeout(context.Background(), waitBound)
				defer cancel()
				msgs := []struct {
					typ websocket.MessageType
					p   []byte
				}{
					{websocket.MessageText, []byte("hi")},
					{websocket.MessageText, []byte(strings.Repeat("abc", 10000))},
					{websocket.MessageBinary, payload(websocket.MessageBinary, 70000, 2)},
					{websocket.MessageBinary, nil},
					{websocket.MessageText, []byte(strings.Repeat("xyz", 10000))},
					{websocket.MessageText, []byte("bye")},
				}
				for i, m := range msgs {
					if err := roundTrip(ctx, c, m.typ, m.p); err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
				}
				closeNormally(t, f, c, relay.ReasonClientClosed)
			})
		})
	}
}

// TestSubprotocol negotiates a subprotocol end to end: the upstream sees
// the client's offer and picks one; the client sees the upstream's choice.
func TestSubprotocol(t *testing.T) {
	offered := make(chan string, 1)
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		var tokens []string
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for _, p := range strings.Split(v, ",") {
				tokens = append(tokens, strings.TrimSpace(p))
			}
		}
		offered <- strings.Join(tokens, ", ")
		echoWith(w, r, &websocket.AcceptOptions{Subprotocols: []string{"b.v2"}})
	}})
	c, resp := f.dial(t, "/chat", &websocket.DialOptions{Subprotocols: []string{"a.v1", "b.v2"}})

	if got := recv(t, offered, "upstream request"); got != "a.v1, b.v2" {
		t.Errorf("upstream saw Sec-WebSocket-Protocol %q, want %q", got, "a.v1, b.v2")
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "b.v2" {
		t.Errorf("client saw Sec-WebSocket-Protocol %q, want b.v2", got)
	}
	if got := c.Subprotocol(); got != "b.v2" {
		t.Errorf("client Subprotocol() = %q, want b.v2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := roundTrip(ctx, c, websocket.MessageText, []byte("in b.v2")); err != nil {
		t.Fatal(err)
	}
	closeNormally(t, f, c, relay.ReasonClientClosed)
}
