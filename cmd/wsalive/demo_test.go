package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// scenarioResult is what testdata/helper/scenario.js reports.
type scenarioResult struct {
	Resume bool     `json:"resume"`
	Events []string `json:"events"`
	Ticks  []int    `json:"ticks"`
	Echoes []string `json:"echoes"`
	RTT    *int     `json:"rtt"`
	Cut    int      `json:"cut"`
	Error  string   `json:"error"`
	// GapMS is how long the helper was away (cut to first message after);
	// ReconnectToFirstMS is from its new WebSocket to that message.
	GapMS              int `json:"gapMs"`
	ReconnectToFirstMS int `json:"reconnectToFirstMs"`
	// LostCode is the close code of the statelost event, if one came.
	LostCode int `json:"lostCode"`
}

// checkScenario judges a run of scenario.js: it opened, exchanged messages
// and app pings, and came back after the cut. With resume the cut must be
// resumed with every tick exactly once and in order; without it, the helper
// must reconnect afresh.
func checkScenario(t *testing.T, res scenarioResult) {
	t.Helper()
	rtt := "none"
	if res.RTT != nil {
		rtt = strconv.Itoa(*res.RTT) + "ms"
	}
	t.Logf("resume=%v events=%v ticks=%v echoes=%v app ping rtt=%s cut=%d away=%dms reconnect-to-first-message=%dms",
		res.Resume, res.Events, res.Ticks, res.Echoes, rtt, res.Cut, res.GapMS, res.ReconnectToFirstMS)
	if res.Error != "" {
		t.Fatalf("scenario: %s", res.Error)
	}
	if res.Cut != 1 {
		t.Errorf("the cut reset %d connections, want the helper's one WebSocket", res.Cut)
	}
	if res.RTT == nil {
		t.Error("no app ping round trip")
	}
	for _, m := range []string{"before", "while-away"} {
		if n := countOf(res.Echoes, m); n != 1 {
			t.Errorf("echoes %v: %q came back %d times, want once", res.Echoes, m, n)
		}
	}
	if res.GapMS < 1000 {
		t.Errorf("the helper was away %d ms: too short for a tick to fall into the gap", res.GapMS)
	}
	if res.Resume {
		// The same backend connection: ticks 1, 2, 3, ... exactly once,
		// the ones pushed while the helper was away replayed.
		for i, n := range res.Ticks {
			if n != i+1 {
				t.Fatalf("ticks %v: want 1, 2, 3, ... with no gap or repeat across the resume", res.Ticks)
			}
		}
		if want := []string{"open", "reconnecting", "resumed", "close"}; !slices.Equal(res.Events, want) {
			t.Errorf("events %v, want %v", res.Events, want)
		}
	} else if want := []string{"open", "reconnecting", "open", "close"}; !slices.Equal(res.Events, want) {
		t.Errorf("events %v, want %v (no resume in this build: a fresh connection)", res.Events, want)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// nodeModules is where the end-to-end tests' npm ci puts the ws package.
const nodeModules = "../../proxy/e2e/testdata/node/node_modules"

// TestHelperInNode runs scenario.js in Node with the ws package (the
// WebSocket constructor passed in), against the demo through wsalive.
func TestHelperInNode(t *testing.T) {
	checkScenario(t, runNodeScenario(t, ""))
}

// TestHelperInNodeRefused has the resume refused (a token wsalive never
// issued): the helper reports the lost state with 4900 and starts afresh.
func TestHelperInNodeRefused(t *testing.T) {
	res := runNodeScenario(t, "refuse")
	if !res.Resume {
		t.Skip("skipping, this build has no resumable sessions")
	}
	t.Logf("events=%v ticks=%v echoes=%v lost code=%d", res.Events, res.Ticks, res.Echoes, res.LostCode)
	if res.Error != "" {
		t.Fatalf("scenario: %s", res.Error)
	}
	if want := []string{"open", "reconnecting", "statelost", "reconnecting", "open", "close"}; !slices.Equal(res.Events, want) {
		t.Errorf("events %v, want %v", res.Events, want)
	}
	if res.LostCode != 4900 {
		t.Errorf("statelost code %d, want 4900 (unknown session)", res.LostCode)
	}
	// The fresh session is a new backend connection: its ticks restart.
	if i := slices.Index(res.Ticks[1:], 1); i < 0 {
		t.Errorf("ticks %v: want a fresh count after the refusal", res.Ticks)
	}
	if countOf(res.Echoes, "while-away") != 1 {
		t.Errorf("echoes %v: the message queued while away must go to the fresh session once", res.Echoes)
	}
}

// runNodeScenario runs scenario.js in Node against a fresh demo.
func runNodeScenario(t *testing.T, mode string) scenarioResult {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(nodeModules, "ws", "package.json"))
	}
	if err != nil {
		if os.Getenv("WSALIVE_E2E_REQUIRE_NODE") == "1" {
			t.Fatalf("node or the ws package missing and WSALIVE_E2E_REQUIRE_NODE=1: %v", err)
		}
		t.Skipf("skipping, node or the ws package missing (npm ci in proxy/e2e/testdata/node): %v", err)
	}
	d := startTestDemo(t, nil)
	helper, err := filepath.Abs("../../examples/client/" + client.ScriptName)
	if err != nil {
		t.Fatal(err)
	}
	modules, err := filepath.Abs(nodeModules)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := strings.TrimSuffix(d.pageURL, "/")
	cmd := exec.CommandContext(ctx, node, "testdata/helper/node-run.mjs", helper, modules, base, "ws"+strings.TrimPrefix(base, "http"), mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res scenarioResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	return res
}
