package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// requireChromiumEnv, set to 1 (as CI does), turns a missing chromium into
// a failure instead of a skip.
const requireChromiumEnv = "WSALIVE_E2E_REQUIRE_CHROMIUM"

// chromiumPage runs testdata/helper/scenario.js in the browser and reports
// what it saw by a POST to /test/result (no DevTools protocol needed).
const chromiumPage = `<!doctype html><meta charset="utf-8"><title>wsalive helper test</title>
<script type="module">
import { WsaliveClient } from "/wsalive-client.js";
import { runScenario } from "/test/scenario.js";
const r = await runScenario({ WsaliveClient, WebSocket, httpBase: location.origin, wsBase: "ws://" + location.host });
await fetch("/test/result", { method: "POST", body: JSON.stringify(r) });
</script>`

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
	scenario, err := os.ReadFile("testdata/helper/scenario.js")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan scenarioResult, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/test/scenario.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(scenario)
	})
	mux.HandleFunc("/test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, chromiumPage)
	})
	mux.HandleFunc("POST /test/result", func(w http.ResponseWriter, r *http.Request) {
		var res scenarioResult
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

	var res scenarioResult
	select {
	case res = <-results:
	case <-exited:
		t.Fatal("chromium exited before the page reported")
	case <-ctx.Done():
		t.Fatal("no report from the page within 90s")
	}
	checkScenario(t, res)
}
