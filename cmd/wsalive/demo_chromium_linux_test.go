package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// requireChromiumEnv, set to 1 (as CI does), turns a missing chromium into
// a failure instead of a skip.
const requireChromiumEnv = "WSALIVE_E2E_REQUIRE_CHROMIUM"

// chromiumPage runs the client helper in the browser against the demo: it
// sends a message, waits for ticks, cuts its own connection through the
// demo's link, sends a message while away, and waits until the helper is
// back and three more ticks arrived. It reports everything it saw by a POST
// to /test/result (no DevTools protocol needed).
const chromiumPage = `<!doctype html><meta charset="utf-8"><title>wsalive helper test</title>
<script type="module">
import { WsaliveClient } from "./wsalive-client.js";
const r = { events: [], ticks: [], echoes: [], error: "" };
const report = () => fetch("/test/result", { method: "POST", body: JSON.stringify(r) });
const waitFor = (cond, what) => new Promise((ok, fail) => {
  const t0 = Date.now();
  const tick = () => cond() ? ok() : Date.now() - t0 > 20000 ? fail(new Error("timed out waiting for " + what)) : setTimeout(tick, 20);
  tick();
});
try {
  const info = await (await fetch("/demo/info")).json();
  r.resume = info.resume;
  const c = new WsaliveClient("ws://" + location.host + "/ticks", {
    resume: info.resume, backoff: { base: 100, cap: 1000 },
    appPing: { interval: 300, message: info.app_ping_match, reply: info.app_ping_reply },
  });
  for (const type of ["open", "resumed", "reconnecting", "statelost", "close"]) {
    c.on(type, (e) => r.events.push(type));
  }
  c.on("pong", (e) => { r.rtt = e.rtt; });
  c.on("message", (e) => {
    const m = JSON.parse(e.data.startsWith("{") ? e.data : "null");
    if (m && typeof m.tick === "number") r.ticks.push(m.tick); else r.echoes.push(e.data);
  });
  c.send("before");
  await waitFor(() => r.echoes.includes("before") && r.ticks.length >= 2 && r.rtt !== undefined, "echo, ticks and a pong");
  r.cut = Number(await (await fetch("/demo/cut", { method: "POST" })).text());
  await waitFor(() => r.events.includes("reconnecting"), "the helper to notice the cut");
  c.send("while-away");
  const before = r.ticks.length;
  await waitFor(() => r.events.filter((e) => e === "open" || e === "resumed").length >= 2 && r.echoes.includes("while-away") && r.ticks.length >= before + 3, "reconnect, echo and ticks");
  c.close();
} catch (err) {
  r.error = String(err);
}
await report();
</script>`

// chromiumResult is what the page reports.
type chromiumResult struct {
	Resume bool     `json:"resume"`
	Events []string `json:"events"`
	Ticks  []int    `json:"ticks"`
	Echoes []string `json:"echoes"`
	RTT    *int     `json:"rtt"`
	Cut    int      `json:"cut"`
	Error  string   `json:"error"`
}

// TestHelperInChromium runs wsalive-client.js in headless Chromium
// (Debian's chromium package) against the demo, through wsalive: it opens,
// exchanges messages and app pings, and survives a cut connection. When
// the demo has resume, the cut must be resumed with every tick exactly once
// and in order; without it, the helper must reconnect afresh.
func TestHelperInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(requireChromiumEnv) == "1" {
			t.Fatalf("chromium is not on PATH and %s=1: %v", requireChromiumEnv, err)
		}
		t.Skipf("skipping, chromium is not on PATH (apt-get install chromium; set %s=1 to fail instead)", requireChromiumEnv)
	}
	results := make(chan chromiumResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, chromiumPage)
	})
	mux.HandleFunc("POST /test/result", func(w http.ResponseWriter, r *http.Request) {
		var res chromiumResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			res.Error = "bad report: " + err.Error()
		}
		select {
		case results <- res:
		default:
		}
	})
	d := startTestDemo(t, mux)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--disable-extensions", "--disable-background-networking",
		"--user-data-dir="+t.TempDir(), d.pageURL+"test")
	// Its own process group, so that the renderer and helper processes it
	// starts end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()

	var res chromiumResult
	select {
	case res = <-results:
	case <-exited:
		t.Fatal("chromium exited before the page reported")
	case <-ctx.Done():
		t.Fatal("no report from the page within 90s")
	}
	rtt := "none"
	if res.RTT != nil {
		rtt = strconv.Itoa(*res.RTT) + "ms"
	}
	t.Logf("resume=%v events=%v ticks=%v echoes=%v app ping rtt=%s cut=%d", res.Resume, res.Events, res.Ticks, res.Echoes, rtt, res.Cut)
	if res.Error != "" {
		t.Fatalf("page: %s", res.Error)
	}
	if res.Cut != 1 {
		t.Errorf("the cut reset %d connections, want the page's one WebSocket", res.Cut)
	}
	if res.RTT == nil {
		t.Error("no app ping round trip")
	}
	if !slices.Contains(res.Echoes, "before") || !slices.Contains(res.Echoes, "while-away") {
		t.Errorf("echoes %v, want before and while-away", res.Echoes)
	}
	if res.Resume {
		// The same backend connection: ticks 1, 2, 3, ... exactly once.
		for i, n := range res.Ticks {
			if n != i+1 {
				t.Fatalf("ticks %v: want 1, 2, 3, ... with no gap or repeat across the resume", res.Ticks)
			}
		}
		if want := []string{"open", "reconnecting", "resumed", "close"}; !slices.Equal(res.Events, want) {
			t.Errorf("events %v, want %v", res.Events, want)
		}
		if n := countOf(res.Echoes, "while-away") + countOf(res.Echoes, "before"); n != 2 {
			t.Errorf("echoes %v: want each message once", res.Echoes)
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
