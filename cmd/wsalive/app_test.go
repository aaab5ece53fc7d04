package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/examples/legacyecho"
	"github.com/wsalive/wsalive/proxy/relay"
)

// fixture is a running app in front of the legacy echo backend, with its
// configuration in a file that tests may rewrite and reload.
type fixture struct {
	t       *testing.T
	a       *app
	file    string
	backend string // the echo backend's ws:// URL
	logs    *syncBuffer
}

// syncBuffer is a log sink safe for the app's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// configText is a configuration with one listener on a free port, an admin
// endpoint, the drain given, and extra appended.
func configText(backend, drain, extra string) string {
	return fmt.Sprintf(`
listener {
  address = "127.0.0.1:0"
}
admin {
  address = "127.0.0.1:0"
}
drain {
%s
}
route "default" {
  upstream = %q
}
%s`, drain, backend, extra)
}

// startEcho starts the legacy echo backend and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := legacyecho.New(slog.New(slog.DiscardHandler))
	go echo.Serve(bln)
	t.Cleanup(func() { echo.Close() })
	return bln.Addr().String()
}

func startFixture(t *testing.T, drain string, opts appOptions) *fixture {
	t.Helper()
	f := &fixture{t: t, backend: "ws://" + startEcho(t), logs: &syncBuffer{}}
	f.file = filepath.Join(t.TempDir(), "wsalive.hcl")
	f.write(configText(f.backend, drain, ""))
	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	opts.level = level
	opts.load = func() (*config.Config, error) { return config.Load(f.file) }
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: level}))
	f.a, err = startApp(cfg, logger, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.a.force()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.a.startDrain("cleanup")
		<-f.a.drainDone
		f.a.finish(ctx)
		if t.Failed() {
			t.Logf("app log:\n%s", f.logs.String())
		}
	})
	return f
}

func (f *fixture) write(text string) {
	f.t.Helper()
	if err := os.WriteFile(f.file, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) url() string { return "ws://" + f.a.listenerAddrs()[0].String() + "/" }

func (f *fixture) admin(path string) string { return "http://" + f.a.adminAddr.String() + path }

// status returns the status code of GET path on the admin endpoint.
func (f *fixture) status(path string) int {
	f.t.Helper()
	resp, err := http.Get(f.admin(path))
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// dialEcho opens a pair and proves it relays both ways.
func dialEcho(ctx context.Context, url string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if err := roundTrip(ctx, c, "hello"); err != nil {
		c.CloseNow()
		return nil, err
	}
	return c, nil
}

func roundTrip(ctx context.Context, c *websocket.Conn, msg string) error {
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// isDrainClose reports whether err is the close a drain sends a client:
// the drain's close code, 1012 by default. Anything else, and above all a
// plain EOF, is a pair cut without its close.
func isDrainClose(err error) bool {
	return websocket.CloseStatus(err) == websocket.StatusServiceRestart
}

func TestReadinessAndDrainDelay(t *testing.T) {
	f := startFixture(t, `delay = "1500ms"
window = "0s"`, appOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := f.status("/readyz"); got != 200 {
		t.Fatalf("/readyz %d while serving, want 200", got)
	}
	if got := f.status("/healthz"); got != 200 {
		t.Fatalf("/healthz %d while serving, want 200", got)
	}
	if code, out, errOut := run("health", "-url", f.admin("/readyz")); code != exitOK {
		t.Fatalf("wsalive health while serving: exit %d %s %s", code, out, errOut)
	}
	before, err := dialEcho(ctx, f.url())
	if err != nil {
		t.Fatal(err)
	}
	defer before.CloseNow()

	// POST /drain from another client answers when the drain is done.
	type answer struct {
		code int
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(f.admin("/drain"), "", nil)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{code: resp.StatusCode, body: body}
	}()
	select {
	case <-f.a.drainStarted:
	case <-ctx.Done():
		t.Fatal("POST /drain did not start the drain")
	}
	if got := f.status("/readyz"); got != 503 {
		t.Fatalf("/readyz %d while draining, want 503", got)
	}
	if got := f.status("/healthz"); got != 200 {
		t.Fatalf("/healthz %d while draining, want 200: draining is not a liveness failure", got)
	}
	// Within the delay, new clients are still served.
	during, err := dialEcho(ctx, f.url())
	if err != nil {
		t.Fatalf("a client during the drain delay was not served: %v", err)
	}
	defer during.CloseNow()
	// Both clients read, as live clients do, so they answer the close.
	closes := map[string]chan error{"before": make(chan error, 1), "during": make(chan error, 1)}
	for name, c := range map[string]*websocket.Conn{"before": before, "during": during} {
		go func() {
			_, _, err := c.Read(ctx)
			closes[name] <- err
		}()
	}

	var a answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		t.Fatal("POST /drain did not answer")
	}
	select {
	case <-f.a.drainDone:
	default:
		t.Fatal("POST /drain answered before the drain was done")
	}
	if a.err != nil || a.code != 200 {
		t.Fatalf("POST /drain: %d %s %v", a.code, a.body, a.err)
	}
	var out drainOutcome
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("POST /drain body %s: %v", a.body, err)
	}
	if out.Drained+out.Ended != 2 || out.Cut != 0 {
		t.Fatalf("drain report %+v, want the 2 pairs drained and none cut", out)
	}
	for name, ch := range closes {
		if err := <-ch; !isDrainClose(err) {
			t.Fatalf("pair opened %s the drain read %v, want its close", name, err)
		}
	}
	// After the delay the listener is closed: a new client is refused.
	if c, _, err := websocket.Dial(ctx, f.url(), nil); err == nil {
		c.CloseNow()
		t.Fatal("a client after the drain delay was served")
	}
	if got := f.status("/readyz"); got != 503 {
		t.Fatalf("/readyz %d after the drain, want 503", got)
	}
	if code, _, errOut := run("health", "-url", f.admin("/readyz")); code != exitError || !strings.Contains(errOut, "503") {
		t.Fatalf("wsalive health after the drain: exit %d %s, want 1 and the 503", code, errOut)
	}
	if !strings.Contains(f.logs.String(), "msg=drained") {
		t.Fatalf("no drained log line")
	}
}

// TestDrainWithHandshakesInFlight is issue 12's defect 1: an idle
// pre-connected client and a client stuck mid-head must not hold the live
// pairs' closes back, nor use up the time the pairs' close handshakes get.
// Before the fix, the pairs stayed untold until the head's 10 s bound and
// half of them were then cut without a close frame.
func TestDrainWithHandshakesInFlight(t *testing.T) {
	const pairs = 50
	f := startFixture(t, `delay = "0s"
window = "0s"`, appOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range pairs {
		c, err := dialEcho(ctx, f.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	addr := f.a.listenerAddrs()[0].String()
	idle, err := net.Dial("tcp", addr) // a pre-connect: no request at all
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	slow, err := net.Dial("tcp", addr) // a head that never ends
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	// The server has both in hand before the drain starts.
	waitFor(t, ctx, func() bool { return f.a.server.Accepted() >= pairs+2 })

	started := time.Now()
	f.a.startDrain("test")
	closes := make(chan error, pairs)
	for _, c := range conns {
		go func() {
			_, _, err := c.Read(ctx)
			closes <- err
		}()
	}
	for range pairs {
		if err := <-closes; !isDrainClose(err) {
			t.Fatalf("a pair read %v, want its close frame", err)
		}
	}
	took := time.Since(started)
	<-f.a.drainDone
	if out := f.a.drainResult; out.Cut != 0 || out.Drained != pairs || !out.HandshakesAbandoned {
		t.Fatalf("drain report %+v, want %d drained, none cut, handshakes abandoned", out, pairs)
	}
	// The pairs' closes waited at most for the handshake grace, not for
	// the heads' 10 s bound.
	if limit := handshakeGrace + 2*time.Second; took > limit {
		t.Fatalf("the pairs got their close after %s, want within %s", took, limit)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "slow head": slow} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 512)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s connection was not closed by the drain (read %d, %v)", name, n, err)
		}
	}
}

// TestSecondSignalForces: forcing a drain (the second signal) ends its
// waits at once, even an hour-long delay.
func TestSecondSignalForces(t *testing.T) {
	f := startFixture(t, `delay = "1h"
window = "1h"`, appOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dialEcho(ctx, f.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	f.a.startDrain("test")
	f.a.force()
	select {
	case <-f.a.drainDone:
	case <-ctx.Done():
		t.Fatal("a forced drain did not end")
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("the pair is still open after a forced drain")
	}
}

// waitFor polls cond until it holds or ctx ends. It is for states with no
// signal to wait on (a counter in the server).
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("condition not reached in time")
		}
	}
}

// recordingDrainer is an engine drain that records what it was asked.
type recordingDrainer struct {
	code   uint16
	reason string
	window time.Duration
	left   time.Duration // time left before ctx's deadline, at the call
}

func (d *recordingDrainer) Drain(ctx context.Context, code uint16, reason string, window time.Duration) (relay.DrainReport, error) {
	d.code, d.reason, d.window = code, reason, window
	if dl, ok := ctx.Deadline(); ok {
		d.left = time.Until(dl)
	}
	return relay.DrainReport{Drained: 7, Ended: 2}, nil
}

// TestDrainHandsTheEngineItsOwnBound: the engine's drain gets the
// configured code, reason and window, and its full bound (window +
// close_timeout + 1 s) even when a handshake in flight used up its own
// grace first (issue 12, defect 1).
func TestDrainHandsTheEngineItsOwnBound(t *testing.T) {
	d := &recordingDrainer{}
	f := startFixture(t, `delay = "0s"
window = "20s"
close_code = 4001`, appOptions{drainer: d})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	idle, err := net.Dial("tcp", f.a.listenerAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, ctx, func() bool { return f.a.server.Accepted() >= 1 })
	f.a.startDrain("test")
	select {
	case <-f.a.drainDone:
	case <-ctx.Done():
		t.Fatal("the drain did not end")
	}
	if d.code != 4001 || d.reason != "service restart" || d.window != 20*time.Second {
		t.Fatalf("engine drained with code %d reason %q window %s", d.code, d.reason, d.window)
	}
	// 20 s window + 5 s close_timeout + 1 s; the handshake's grace came
	// before and took nothing from it.
	if want := 26 * time.Second; d.left < want-500*time.Millisecond || d.left > want {
		t.Fatalf("the engine's drain had %s left, want about %s", d.left, want)
	}
	if out := f.a.drainResult; out.Drained != 7 || out.Ended != 2 || !out.HandshakesAbandoned {
		t.Fatalf("outcome %+v, want the engine's report and the abandoned handshake", out)
	}
}
