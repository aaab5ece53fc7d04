package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsalive/wsalive/examples/client"
)

// demoPage is the page `wsalive demo` serves at its root.
//
//go:embed demo_page.html
var demoPage []byte

// demoTickPath is where the demo backend's WebSocket pushes a numbered tick
// every tickEvery, besides echoing; upgrades on any other path only echo,
// as the legacy echo backend does.
const (
	demoTickPath = "/ticks"
	tickEvery    = time.Second
)

// demoInfo is what the page learns from /demo/info before connecting.
type demoInfo struct {
	// Resume is whether the route has a resume block (this build of
	// wsalive knows the setting).
	Resume bool `json:"resume"`
	// AppPing is the route's app_ping, which the page's helper sends.
	AppPingMatch string `json:"app_ping_match"`
	AppPingReply string `json:"app_ping_reply"`
	// ClientHeartbeat is wsalive's ping interval toward the page, in ms.
	ClientHeartbeatMS int64 `json:"client_heartbeat_ms"`
}

// demoBackend is the demo's application: a legacy backend that never pings.
// It serves the page and the helper as plain HTTP and WebSockets that echo
// (and, on demoTickPath, push ticks), all on one port, as a sidecar's
// application does. It runs one goroutine or two per WebSocket, which is
// fine for a demo.
type demoBackend struct {
	log  *slog.Logger
	info demoInfo
	// cut resets every client WebSocket connection (the page's button); it
	// returns how many it reset.
	cut func() int
	// extra serves paths the demo does not know; tests add their pages.
	extra http.Handler

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func (b *demoBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		b.serveWebSocket(w, r)
		return
	}
	switch r.URL.Path {
	case "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(demoPage)
	case "/" + client.ScriptName:
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(client.Script)
	case "/demo/info":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.info)
	case "/demo/cut":
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		n := b.cut()
		b.log.Info("demo: cut client connections without a close frame", "connections", n)
		fmt.Fprintf(w, "%d\n", n)
	default:
		if b.extra != nil {
			b.extra.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

// track registers a hijacked connection, unless the backend is closing.
func (b *demoBackend) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	if b.conns == nil {
		b.conns = map[net.Conn]struct{}{}
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	return true
}

func (b *demoBackend) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
	b.wg.Done()
}

// close drops every WebSocket (without a close frame, like the legacy echo
// backend) and waits for their goroutines.
func (b *demoBackend) close() {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// serveWebSocket echoes every message back whole and, on demoTickPath,
// pushes {"tick":n} every tickEvery, n counting from 1 per connection: a
// resumed session visibly continues its count, a fresh one starts again.
func (b *demoBackend) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return // UpgradeHTTP has answered
	}
	if !b.track(conn) {
		conn.Close()
		return
	}
	defer b.untrack(conn)

	// Ticks and echoes come from two goroutines; a message is written
	// whole under wmu so that frames never interleave.
	var wmu sync.Mutex
	write := func(op ws.OpCode, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return wsutil.WriteServerMessage(conn, op, p)
	}
	done := make(chan struct{})
	defer close(done)
	if r.URL.Path == demoTickPath {
		go func() {
			t := time.NewTicker(tickEvery)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-done:
					return
				case <-t.C:
				}
				msg := fmt.Sprintf(`{"tick":%d,"at":%q}`, n, time.Now().Format("15:04:05"))
				if write(ws.OpText, []byte(msg)) != nil {
					return
				}
			}
		}()
	}

	// Control frames: answer pings and the close handshake, written whole
	// under wmu (the handler writes a header and a payload separately).
	var ctrlOut bytes.Buffer
	ctrl := wsutil.ControlFrameHandler(&ctrlOut, ws.StateServerSide)
	handleControl := func(h ws.Header, r io.Reader) error {
		err := ctrl(h, r)
		if ctrlOut.Len() > 0 {
			wmu.Lock()
			conn.Write(ctrlOut.Bytes())
			wmu.Unlock()
			ctrlOut.Reset()
		}
		return err
	}
	rd := wsutil.Reader{
		Source:         rw.Reader, // holds what came with the upgrade request
		State:          ws.StateServerSide,
		OnIntermediate: handleControl,
		MaxMessageSize: 1 << 20,
	}
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return
		}
		if hdr.OpCode.IsControl() {
			if handleControl(hdr, &rd) != nil {
				return
			}
			continue
		}
		msg, err := io.ReadAll(&rd)
		if err != nil {
			return
		}
		if write(hdr.OpCode, msg) != nil {
			return
		}
	}
}
