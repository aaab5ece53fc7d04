package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/examples/legacyecho"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(bad, []byte("listener {\n  address = \"127.0.0.1:8080\"\n}\nroute \"default\" {\n  upstream = \"ws://127.0.0.1:3000\"\n  close_timeout = \"5x\"\n}\n"), 0o644)
	cases := []struct {
		name   string
		args   []string
		code   int
		output string // expected in stdout or stderr
	}{
		{"no-command", nil, exitUsage, "Usage"},
		{"unknown-command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"version", []string{"version"}, exitOK, "wsalive "},
		{"version-revision", []string{"version"}, exitOK, "(revision "},
		{"health-down", []string{"health", "-url", "http://127.0.0.1:1/readyz", "-timeout", "1s"}, exitError, "health:"},
		{"health-bad-url", []string{"health", "-url", "::nope"}, exitUsage, "-url"},
		{"watch-without-config", []string{"run", "-listen", "127.0.0.1:0", "-upstream", "ws://127.0.0.1:1", "-watch-config"}, exitUsage, "-watch-config needs -config"},
		{"validate-ok", []string{"validate", "-config", "../../examples/minimal.hcl"}, exitOK, "valid (1 listener(s), 1 route(s))"},
		{"validate-bad", []string{"validate", "-config", bad}, exitError, "bad.hcl:6,"},
		{"validate-missing-flag", []string{"validate"}, exitUsage, "validate needs -config FILE"},
		{"validate-no-file", []string{"validate", "-config", "/nonexistent.hcl"}, exitError, "nonexistent.hcl"},
		{"run-without-config", []string{"run"}, exitUsage, "run needs -config FILE"},
		{"run-bad-flag", []string{"run", "-nope"}, exitUsage, "flag provided but not defined"},
		{"run-bad-log-level", []string{"run", "-listen", "127.0.0.1:0", "-upstream", "ws://127.0.0.1:1", "-log-level", "loud"}, exitUsage, "-log-level"},
		{"run-bad-listen", []string{"run", "-config", "../../examples/minimal.hcl", "-listen", "nope"}, exitUsage, "-listen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			if !strings.Contains(out+errOut, c.output) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", c.output, out, errOut)
			}
		})
	}
}

// TestLoadConfigFlagsOverrideFile checks that run's flags reach
// config.Overrides (tested in full there) and that a refused override is a
// usage error (exit status 2).
func TestLoadConfigFlagsOverrideFile(t *testing.T) {
	cfg, err := loadConfig("../../examples/minimal.hcl", "127.0.0.1:9999", "ws://127.0.0.1:4000/x")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Address != "127.0.0.1:9999" || cfg.Routes[0].Upstream.Address != "127.0.0.1:4000" {
		t.Fatalf("listeners %+v, upstream %+v: the flags did not apply", cfg.Listeners, cfg.Routes[0].Upstream)
	}
	_, err = loadConfig("../../config/testdata/full.hcl", "", "ws://127.0.0.1:4000")
	if _, ok := err.(usageError); !ok {
		t.Fatalf("-upstream with several routes: error %v (%T), want a usageError", err, err)
	}
}

// TestAppRelaysAndStops runs the whole program's assembly (engine, server,
// admin) in front of the legacy backend, relays one message, and stops;
// with the engine's io_uring batching and without.
func TestAppRelaysAndStops(t *testing.T) {
	for _, ring := range []bool{true, false} {
		t.Run(fmt.Sprintf("io_uring=%v", ring), func(t *testing.T) { testAppRelaysAndStops(t, ring) })
	}
}

func testAppRelaysAndStops(t *testing.T, ioUring bool) {
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := legacyecho.New(slog.New(slog.DiscardHandler))
	go echo.Serve(bln)
	defer echo.Close()

	cfg, err := config.Minimal("127.0.0.1:0", "ws://"+bln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin = &config.Admin{Address: "127.0.0.1:0"}
	cfg.Engine.IOUring = ioUring
	cfg.Drain = config.Drain{CloseCode: 1012} // no delay, no window
	a, err := startApp(cfg, slog.New(slog.DiscardHandler), appOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+a.listenerAddrs()[0].String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(msg) != "hello" {
		t.Fatalf("echo: %v %q %v", typ, msg, err)
	}
	// The admin endpoint tells the pair and whether the loops batch.
	resp, err := http.Get("http://" + a.adminAddr.String() + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pairs        int64 `json:"pairs"`
		Loops        int   `json:"loops"`
		IOUringLoops int   `json:"io_uring_loops"`
		Upstreams    map[string][]struct {
			Address string `json:"address"`
			State   string `json:"state"`
			Pairs   int    `json:"pairs"`
		} `json:"upstreams"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if up := st.Upstreams["default"]; len(up) != 1 || up[0].Address != bln.Addr().String() || up[0].State != "up" || up[0].Pairs != 1 {
		t.Fatalf("stats upstreams %+v, want the one server, up, with 1 pair", st.Upstreams)
	}
	switch {
	case st.Pairs != 1 || st.Loops < 1:
		t.Fatalf("stats %+v, want 1 pair and at least one loop", st)
	case !ioUring && st.IOUringLoops != 0:
		t.Fatalf("io_uring is off, yet %d loops use it", st.IOUringLoops)
	case ioUring && st.IOUringLoops == 0:
		t.Log("the kernel refused io_uring here: the loops run without batching")
	case ioUring && st.IOUringLoops != st.Loops:
		t.Fatalf("%d of %d loops use io_uring, want all or none", st.IOUringLoops, st.Loops)
	}
	// Draining sends the live pair its close: the drain's code once the
	// engine drains, 1001 going away from today's engine stop.
	stopped := make(chan error, 1)
	go func() {
		a.startDrain("test")
		<-a.drainDone
		stopped <- a.finish(ctx)
	}()
	_, _, err = c.Read(ctx)
	if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway && st != websocket.StatusServiceRestart {
		t.Fatalf("after the drain the client read %v, want close 1001 or 1012", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The engine's close report reached the pool.
	if up := a.server.UpstreamStates()["default"]; up[0].Pairs != 0 {
		t.Fatalf("after stop the pool counts %d pairs, want 0", up[0].Pairs)
	}
}
