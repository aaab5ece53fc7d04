package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/relay"
)

// watchEcho returns an upstream handler that echoes until its connection
// ends, then sends the error that ended it on ended: the close code and
// reason the upstream saw are what the close tests check. A failed upgrade
// sends nothing, as there was no connection to end.
func watchEcho(ended chan<- error, opts *websocket.AcceptOptions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := serveMessages(w, r, opts, echoMessage); err != nil {
			ended <- err
		}
	}
}

// TestCloseHandshake checks that close codes and reasons cross wsalive
// both ways, and that the pair's end is attributed to whoever started it.
func TestCloseHandshake(t *testing.T) {
	ended := make(chan error, 1)
	upstreamClose := make(chan error, 1)
	deafRelease := make(chan struct{})
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/watch":
			watchEcho(ended, nil)(w, r)
		case "/close-later":
			c := accept(w, r, nil)
			if c == nil {
				return
			}
			defer c.CloseNow()
			upstreamClose <- c.Close(4002, "later")
		case "/deaf":
			// Never reads, so never answers the client's close; once the
			// test has seen the pair end, it reads what is left: the
			// engine closed its socket.
			c := accept(w, r, nil)
			if c == nil {
				return
			}
			defer c.CloseNow()
			select {
			case <-deafRelease:
			case <-upstreamOf(r).done:
				return
			}
			_, _, err := c.Read(r.Context())
			ended <- err
		default:
			http.NotFound(w, r)
		}
	}})

	t.Run("client-closes-4001", func(t *testing.T) {
		c, _ := f.dial(t, "/watch", nil)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := roundTrip(ctx, c, websocket.MessageText, []byte("before close")); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(4001, "bye"); err != nil {
			t.Errorf("client Close: %v (the upstream's answer did not come back)", err)
		}
		err := recv(t, ended, "end of the upstream's connection")
		if code, reason := closeError(err); code != 4001 || reason != "bye" {
			t.Errorf("upstream saw %v, want close 4001 %q", err, "bye")
		}
		if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
			t.Errorf("pair ended with %v, want client_closed", st.Reason)
		}
	})

	t.Run("upstream-closes-4002", func(t *testing.T) {
		c, _ := f.dial(t, "/close-later", nil)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		_, _, err := c.Read(ctx)
		if code, reason := closeError(err); code != 4002 || reason != "later" {
			t.Errorf("client saw %v, want close 4002 %q", err, "later")
		}
		if err := recv(t, upstreamClose, "upstream Close result"); err != nil {
			t.Errorf("upstream Close: %v (the client's answer did not come back)", err)
		}
		if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamClosed {
			t.Errorf("pair ended with %v, want upstream_closed", st.Reason)
		}
	})

	t.Run("upstream-never-answers", func(t *testing.T) {
		// The engine gives the close handshake closeTimeout, then closes
		// both sockets rather than hold the pair forever.
		c, _ := f.dial(t, "/deaf", nil)
		closed := make(chan error, 1)
		go func() { closed <- c.Close(4001, "bye") }()
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonClientClosed {
			t.Errorf("pair ended with %v, want client_closed", st.Reason)
		}
		if st.Duration < closeTimeout {
			t.Errorf("pair ended after %v, before its close timeout %v", st.Duration, closeTimeout)
		}
		if err := recv(t, closed, "client Close result"); err == nil {
			t.Errorf("client Close succeeded, want an error: nobody answered its close")
		}
		close(deafRelease)
		err := recv(t, ended, "end of the upstream's connection")
		if code, reason := closeError(err); code != 4001 || reason != "bye" {
			// The close frame was relayed before the timeout.
			t.Errorf("upstream read %v, want the client's close 4001 %q", err, "bye")
		}
	})
}

// TestUpstreamGone kills the upstream's TCP connection without a close
// frame; wsalive must tell the client with 1001.
func TestUpstreamGone(t *testing.T) {
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r, nil)
		if c == nil {
			return
		}
		defer c.CloseNow()
		// One message in proves the pair is relaying; then the process
		// "crashes": its socket closes with a FIN, or a RST with linger 0.
		if _, _, err := c.Read(r.Context()); err != nil {
			upstreamOf(r).reportf("%s: read: %v", r.URL.Path, err)
			return
		}
		conn := rawConnOf(r)
		if strings.HasSuffix(r.URL.Path, "/rst") {
			_ = conn.SetLinger(0)
		}
		_ = conn.Close()
	}})
	for _, how := range []string{"fin", "rst"} {
		t.Run(how, func(t *testing.T) {
			c, _ := f.dial(t, "/kill/"+how, nil)
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			if err := c.Write(ctx, websocket.MessageText, []byte("last words")); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, _, err := c.Read(ctx)
			if code, reason := closeError(err); code != websocket.StatusGoingAway || reason != "upstream gone" {
				t.Errorf("client saw %v, want close 1001 %q", err, "upstream gone")
			}
			if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamGone {
				t.Errorf("pair ended with %v, want upstream_gone", st.Reason)
			}
		})
	}
}

// TestClientGone drops a hand-driven client's TCP connection without a
// close frame; wsalive must tell the upstream with 1001 "client gone".
func TestClientGone(t *testing.T) {
	ended := make(chan error, 1)
	f := newFixture(t, fixtureOptions{handler: watchEcho(ended, nil)})
	for _, how := range []string{"fin", "rst"} {
		t.Run(how, func(t *testing.T) {
			rc := rawDial(t, f.proxyAddr, "/watch", nil)
			if rc.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", rc.resp.StatusCode)
			}
			if _, err := rc.conn.Write(clientFrame(ws.OpText, []byte("hello"))); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := expectFrame(rc.br, ws.OpText, false, []byte("hello")); err != nil {
				t.Fatalf("echo: %v", err)
			}
			if how == "rst" {
				_ = rc.conn.SetLinger(0)
			}
			_ = rc.conn.Close()

			err := recv(t, ended, "end of the upstream's connection")
			if code, reason := closeError(err); code != websocket.StatusGoingAway || reason != "client gone" {
				t.Errorf("upstream saw %v, want close 1001 %q", err, "client gone")
			}
			if st := f.nextClosed(t); st.Reason != relay.ReasonClientGone {
				t.Errorf("pair ended with %v, want client_gone", st.Reason)
			}
		})
	}
}

// TestUpstreamRefuses has the upstream answer the upgrade with 403: the
// client gets that answer as it came, and nothing reaches the engine.
func TestUpstreamRefuses(t *testing.T) {
	const body = "no websockets for you\n"
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Denied-By", "legacy-upstream")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, body)
	}})
	before := f.probe(t)

	rc := rawDial(t, f.proxyAddr, "/forbidden", nil)
	if rc.resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", rc.resp.StatusCode)
	}
	if got := rc.resp.Header.Get("X-Denied-By"); got != "legacy-upstream" {
		t.Errorf("X-Denied-By %q, want the upstream's legacy-upstream", got)
	}
	got, err := io.ReadAll(rc.resp.Body)
	if err != nil {
		t.Errorf("read body: %v", err)
	}
	if string(got) != body {
		t.Errorf("body %q, want %q", got, body)
	}
	_ = rc.conn.Close()

	if n := f.engine.Stats().Pairs; n != 0 {
		t.Errorf("engine has %d pairs, want 0", n)
	}
	f.noPairClosed(t)
	// Pair ids count every Attach: the next pair's id being the one after
	// the last probe's proves no pair was attached for the refused upgrade.
	after := f.probe(t)
	if after.ID != before.ID+1 {
		t.Errorf("pair ids went from %d to %d around the refused upgrade: a pair was attached", before.ID, after.ID)
	}
}

// TestPingPongPassThrough checks that pings and pongs the peers exchange
// themselves cross wsalive untouched, both ways: each peer's ping reaches
// the other peer, which answers it.
func TestPingPongPassThrough(t *testing.T) {
	upSawPing := make(chan string, 1)
	upPinged := make(chan error, 1)
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r, &websocket.AcceptOptions{
			OnPingReceived: func(_ context.Context, p []byte) bool {
				select {
				case upSawPing <- string(p):
				default:
				}
				return true
			},
		})
		if c == nil {
			return
		}
		defer c.CloseNow()
		// CloseRead answers pings and the close; ctx ends with the read.
		ctx := c.CloseRead(r.Context())
		pctx, cancel := context.WithTimeout(ctx, waitBound)
		defer cancel()
		upPinged <- c.Ping(pctx)
		<-ctx.Done()
	}})

	cliSawPing := make(chan string, 1)
	c, _ := f.dial(t, "/ping", &websocket.DialOptions{
		OnPingReceived: func(_ context.Context, p []byte) bool {
			select {
			case cliSawPing <- string(p):
			default:
			}
			return true
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	ctx = c.CloseRead(ctx)
	if err := c.Ping(ctx); err != nil {
		t.Errorf("client ping: %v (no pong came back)", err)
	}
	if p := recv(t, upSawPing, "ping at the upstream"); p == "" {
		t.Errorf("upstream saw a ping with an empty payload, want the client's")
	}
	if err := recv(t, upPinged, "upstream ping result"); err != nil {
		t.Errorf("upstream ping: %v (no pong came back)", err)
	}
	if p := recv(t, cliSawPing, "ping at the client"); p == "" {
		t.Errorf("client saw a ping with an empty payload, want the upstream's")
	}
	closeNormally(t, f, c, relay.ReasonClientClosed)
}

// TestEngineShutdown closes the engine under a live pair: both peers get
// 1001 and the pair ends with reason shutdown.
func TestEngineShutdown(t *testing.T) {
	ended := make(chan error, 1)
	f := newFixture(t, fixtureOptions{handler: watchEcho(ended, nil)})
	c, _ := f.dial(t, "/watch", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := roundTrip(ctx, c, websocket.MessageText, []byte("before shutdown")); err != nil {
		t.Fatal(err)
	}
	clientEnded := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		clientEnded <- err
	}()

	if err := f.server.Shutdown(ctx); err != nil {
		t.Errorf("server Shutdown: %v", err)
	}
	if err := f.engine.Close(ctx); err != nil {
		t.Errorf("engine Close: %v", err)
	}
	if err := recv(t, clientEnded, "end of the client's read"); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client saw %v, want close 1001", err)
	}
	if err := recv(t, ended, "end of the upstream's connection"); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("upstream saw %v, want close 1001", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonShutdown {
		t.Errorf("pair ended with %v, want shutdown", st.Reason)
	}
	if got := f.engine.Stats(); got.Pairs != 0 || got.BufferedBytes != 0 {
		t.Errorf("after Close: %+v, want zero", got)
	}
}
