package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/examples/client"
)

// startTestDemo runs the demo on free loopback ports and stops all of it
// (wsalive drained at once) when the test ends.
func startTestDemo(t *testing.T, extra http.Handler) *demo {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := startDemo(demoOptions{listen: "127.0.0.1:0", backend: "127.0.0.1:0", logger: logger, extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d.link.close()
		d.app.startDrain("test")
		select {
		case <-d.app.drainDone:
		case <-ctx.Done():
			t.Error("the demo's wsalive did not drain")
		}
		if err := d.app.finish(ctx); err != nil {
			t.Errorf("finish: %v", err)
		}
		d.stopBackend()
	})
	return d
}

func httpGet(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return resp.Header.Get("Content-Type"), string(body)
}

// TestDemo checks what the page relies on, through the link and wsalive:
// the page, the helper and the info as plain HTTP; echo and ticks on the
// WebSocket; a cut that ends the connection without a close frame.
func TestDemo(t *testing.T) {
	d := startTestDemo(t, nil)
	if ct, body := httpGet(t, d.pageURL); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "wsalive-client.js") {
		t.Fatalf("page: %s, %.80q", ct, body)
	}
	if ct, body := httpGet(t, d.pageURL+client.ScriptName); !strings.HasPrefix(ct, "text/javascript") || body != string(client.Script) {
		t.Fatalf("helper: %s, %d bytes", ct, len(body))
	}
	_, body := httpGet(t, d.pageURL+"demo/info")
	var info demoInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.AppPingMatch == "" || info.ClientHeartbeatMS > 5000 {
		t.Fatalf("info %s: %+v %v", body, info, err)
	}
	t.Logf("resume available: %v", info.Resume)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, d.wsURL+"ticks", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	sawEcho, sawTick := false, false
	for !sawEcho || !sawTick {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case string(msg) == "hello":
			sawEcho = true
		case strings.HasPrefix(string(msg), `{"tick":`):
			sawTick = true
		default:
			t.Fatalf("unexpected message %q", msg)
		}
	}
	resp, err := http.Post(d.pageURL+"demo/cut", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(n)) != "1" {
		t.Fatalf("cut %q connections, want 1 (the WebSocket, not the HTTP request)", n)
	}
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue // ticks already on their way
		}
		if st := websocket.CloseStatus(err); st != -1 {
			t.Fatalf("after the cut the client got close %d, want a connection failure without a close frame", st)
		}
		break
	}
}
