package main

import (
	"context"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
)

// fakeRoutes records the route tables a reload hands over.
type fakeRoutes struct {
	mu   sync.Mutex
	sets [][]*config.Route
}

func (f *fakeRoutes) SetRoutes(routes []*config.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, routes)
	return nil
}

func (f *fakeRoutes) calls() [][]*config.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]*config.Route(nil), f.sets...)
}

// freeAddr returns a loopback address that was free a moment ago, for a
// listener a reload adds (port 0 cannot name it twice).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrapeText returns the admin endpoint's /metrics text.
func (f *fixture) scrapeText() string {
	f.t.Helper()
	resp, err := http.Get(f.admin("/metrics"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// chatter keeps a pair busy: it sends a numbered message every
// chatterPace and checks each echo until stop, counting round trips; an
// error ends it. The pace keeps a thousand pairs from saturating the
// machine's two cores, which would only slow the test down.
type chatter struct {
	c     *websocket.Conn
	trips atomic.Int64
	err   error
	done  chan struct{}
}

const chatterPace = 50 * time.Millisecond

func startChatter(ctx context.Context, c *websocket.Conn, stop <-chan struct{}) *chatter {
	ch := &chatter{c: c, done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		pace := time.NewTicker(chatterPace)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			if err := roundTrip(ctx, c, fmt.Sprintf("m%d", i)); err != nil {
				ch.err = err
				return
			}
			ch.trips.Add(1)
		}
	}()
	return ch
}

// TestReloadKeepsLivePairs reloads under live pairs with traffic: a valid
// reload that changes the route's heartbeat, the log level and the
// listeners, then an invalid one. No pair is dropped and no message lost.
func TestReloadKeepsLivePairs(t *testing.T) {
	// 1,000 pairs as the operations issue asks; 200 under the race
	// detector (see raceEnabled), 100 with -short.
	pairs := 1000
	switch {
	case testing.Short():
		pairs = 100
	case raceEnabled:
		pairs = 200
	}
	routes := &fakeRoutes{}
	f := startFixture(t, `delay = "0s"
window = "0s"`, appOptions{routes: routes})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	stop := make(chan struct{})
	var chatters []*chatter
	for range pairs {
		c, _, err := websocket.Dial(ctx, f.url(), nil)
		if err != nil {
			t.Fatalf("pair %d: %v", len(chatters), err)
		}
		defer c.CloseNow()
		chatters = append(chatters, startChatter(ctx, c, stop))
	}
	stopped := false
	stopChatter := func() {
		if !stopped {
			close(stop)
			stopped = true
		}
		for _, ch := range chatters {
			<-ch.done
		}
	}
	defer stopChatter()
	// trafficAfter waits until every pair made two more round trips than
	// it had made when it was called: the pairs carry traffic across
	// whatever happened before.
	trafficAfter := func(what string) {
		t.Helper()
		marks := make([]int64, len(chatters))
		for i, ch := range chatters {
			marks[i] = ch.trips.Load()
		}
		for i, ch := range chatters {
			waitFor(t, ctx, func() bool { return ch.trips.Load() >= marks[i]+2 || ch.err != nil })
			if ch.err != nil {
				t.Fatalf("pair %d failed %s: %v", i, what, ch.err)
			}
		}
	}
	trafficAfter("before the reload")
	t.Logf("%d pairs relaying", pairs)

	// A valid reload: the client heartbeat changes, the level goes to
	// debug, a second listener opens.
	added := freeAddr(t)
	f.write(configText(f.backend, "delay = \"0s\"\nwindow = \"0s\"", fmt.Sprintf(`
log_level = "debug"
listener {
  address = %q
}
`, added)))
	f.write(strings.Replace(readFile(t, f.file), `upstream = "`, "heartbeat \"client\" {\n    interval = \"7s\"\n  }\n  upstream = \"", 1))
	if err := f.a.reload("test"); err != nil {
		t.Fatalf("valid reload failed: %v\n%s", err, f.logs.String())
	}
	trafficAfter("after a valid reload")
	t.Log("reloaded")
	calls := routes.calls()
	if len(calls) != 1 || calls[0][0].ClientHeartbeat.Interval != 7*time.Second {
		t.Fatalf("SetRoutes calls %v, want one with the new client heartbeat", calls)
	}
	if got := f.a.level.Level(); got != slog.LevelDebug {
		t.Fatalf("log level %s after the reload, want debug", got)
	}
	if c, err := dialEcho(ctx, "ws://"+added+"/"); err != nil {
		t.Fatalf("the added listener does not serve: %v", err)
	} else {
		c.Close(websocket.StatusNormalClosure, "")
	}

	// An invalid file changes nothing and says where it is wrong.
	f.write(configText(f.backend, `delay = "soon"`, ""))
	err := f.a.reload("test")
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("invalid reload returned %v, want the configuration error", err)
	}
	trafficAfter("after an invalid reload")
	if logs := f.logs.String(); !strings.Contains(logs, "wsalive.hcl:9,") || !strings.Contains(logs, "reload failed") {
		t.Fatalf("the invalid reload's diagnostics were not logged with their position:\n%s", logs)
	}
	if c, err := dialEcho(ctx, f.url()); err != nil {
		t.Fatalf("after an invalid reload the old listener does not serve: %v", err)
	} else {
		c.Close(websocket.StatusNormalClosure, "")
	}
	if len(routes.calls()) != 1 {
		t.Fatal("an invalid reload swapped the routes")
	}
	m := f.scrapeText()
	for _, want := range []string{`wsalive_config_reloads_total{result="ok"} 1`, `wsalive_config_reloads_total{result="error"} 1`} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}

	stopChatter()
	for i, ch := range chatters {
		if ch.err != nil {
			t.Fatalf("pair %d: %v", i, ch.err)
		}
	}
	if got := f.a.engine.Stats().Pairs; got != int64(pairs) {
		t.Fatalf("%d pairs live after the reloads, want all %d", got, pairs)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReloadRemovesListener: a listener left out of the file stops
// accepting, and its end is not taken for a failure.
func TestReloadRemovesListener(t *testing.T) {
	f := startFixture(t, `delay = "0s"`, appOptions{routes: &fakeRoutes{}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	added := freeAddr(t)
	extra := fmt.Sprintf("listener {\n  address = %q\n}\n", added)
	f.write(configText(f.backend, `delay = "0s"`, extra))
	if err := f.a.reload("add"); err != nil {
		t.Fatal(err)
	}
	if _, err := dialEcho(ctx, "ws://"+added+"/"); err != nil {
		t.Fatalf("added listener: %v", err)
	}
	f.write(configText(f.backend, `delay = "0s"`, ""))
	if err := f.a.reload("remove"); err != nil {
		t.Fatal(err)
	}
	// The first listener is ":0" in the file, so it is kept as it runs.
	if _, err := net.Dial("tcp", added); err == nil {
		t.Fatal("the removed listener still accepts")
	}
	if _, err := dialEcho(ctx, f.url()); err != nil {
		t.Fatalf("the kept listener: %v", err)
	}
	select {
	case err := <-f.a.serveErr:
		t.Fatalf("removing a listener was reported as a failure: %v", err)
	default:
	}
}

// refusingRoutes is a server whose route swap fails.
type refusingRoutes struct{}

var errRoutesRefused = errors.New("routes refused")

func (refusingRoutes) SetRoutes([]*config.Route) error { return errRoutesRefused }

// TestReloadRoutesRefused: when the server refuses the new routes, a
// reload that changes them fails whole, saying why, and opens nothing.
func TestReloadRoutesRefused(t *testing.T) {
	f := startFixture(t, `delay = "0s"`, appOptions{routes: refusingRoutes{}})
	added := freeAddr(t)
	f.write(strings.Replace(configText(f.backend, `delay = "0s"`, fmt.Sprintf("listener {\n  address = %q\n}\n", added)),
		`route "default" {`, "route \"default\" {\n  idle_timeout = \"1h\"", 1))
	if err := f.a.reload("test"); !errors.Is(err, errRoutesRefused) {
		t.Fatalf("reload returned %v, want errRoutesRefused", err)
	}
	if _, err := net.Dial("tcp", added); err == nil {
		t.Fatal("a failed reload left its new listener open")
	}
	if got := f.a.config().Routes[0].IdleTimeout; got != 0 {
		t.Fatalf("a failed reload changed the running routes (idle_timeout %s)", got)
	}
}

// TestReloadStaticNeedsRestart: an engine change is logged as needing a
// restart, the rest of the reload applies.
func TestReloadStaticNeedsRestart(t *testing.T) {
	f := startFixture(t, `delay = "0s"`, appOptions{})
	f.write(configText(f.backend, `delay = "3s"`, "engine {\n  loops = 3\n}\n"))
	if err := f.a.reload("test"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logs.String(), "engine.loops: 0 -> 3") {
		t.Fatalf("the engine change was not reported:\n%s", f.logs.String())
	}
	cfg := f.a.config()
	if cfg.Engine.Loops != 0 || cfg.Drain.Delay != 3*time.Second {
		t.Fatalf("running config engine=%+v drain=%+v, want the old engine and the new drain", cfg.Engine, cfg.Drain)
	}
}

// TestWatchConfigSymlinkSwap updates a configuration the way a Kubernetes
// ConfigMap volume does: the file is a symlink through `..data`, and an
// update swaps `..data` to a new directory by renaming a symlink over it.
// The watcher reloads once per new content, not for a swap to the same
// bytes.
func TestWatchConfigSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "wsalive.hcl"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(to string) {
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "A")
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "wsalive.hcl")
	if err := os.Symlink(filepath.Join("..data", "wsalive.hcl"), file); err != nil {
		t.Fatal(err)
	}

	reloads := make(chan string, 10)
	cw, err := newConfigWatcher(file, func(string) {
		b, _ := os.ReadFile(file)
		reloads <- string(b)
	}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cw.run(ctx)

	next := func(want string) {
		t.Helper()
		select {
		case got := <-reloads:
			if got != want {
				t.Fatalf("reloaded %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload for %q", want)
		}
	}
	version("..v2", "B")
	swap("..v2")
	os.RemoveAll(filepath.Join(dir, "..v1"))
	next("B")
	// A swap to the same bytes, then to new ones: one reload, for C.
	version("..v3", "B")
	swap("..v3")
	version("..v4", "C")
	swap("..v4")
	next("C")
	select {
	case got := <-reloads:
		t.Fatalf("an extra reload for %q", got)
	default:
	}
}
