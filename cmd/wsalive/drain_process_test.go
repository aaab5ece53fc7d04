//go:build !windows

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// closeRecorder is an upstream that echoes and records the close code
// each of its connections ended with.
type closeRecorder struct {
	addr  string
	codes chan websocket.StatusCode
}

func startCloseRecorder(t *testing.T, capacity int) *closeRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &closeRecorder{addr: ln.Addr().String(), codes: make(chan websocket.StatusCode, capacity)}
	srv := &http.Server{Handler: echoHandler(func(code websocket.StatusCode) { r.codes <- code })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// echoHandler is a coder/websocket echo server's handler: it echoes every
// message until the connection ends, then calls ended (when not nil) with
// the close code the peer sent, -1 when it sent none.
func echoHandler(ended func(websocket.StatusCode)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err == nil {
				err = c.Write(context.Background(), typ, msg)
			}
			if err != nil {
				if ended != nil {
					ended(websocket.CloseStatus(err))
				}
				return
			}
		}
	})
}

// clientClose is what a client read when its pair ended, and when.
type clientClose struct {
	err error
	at  time.Time
}

// TestDrainSpreadsClosesProcess is issue 11's drain test on a real
// process: 200 live pairs, a 2 s delay and a 4 s window. Every client
// gets 1012 "service restart" and every upstream 1001; the closes cover
// the window; a client during the delay is served and one after it
// refused. A SIGTERM-started drain exits 0; a POST /drain answers only
// after the last pair closed.
func TestDrainSpreadsClosesProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spreads closes over 4 s")
	}
	for _, trigger := range []string{"SIGTERM", "POST-drain"} {
		t.Run(trigger, func(t *testing.T) { testDrainSpreadsCloses(t, trigger) })
	}
}

func testDrainSpreadsCloses(t *testing.T, trigger string) {
	const (
		pairs  = 200
		delay  = 2 * time.Second // room for a dial under load: a late one would be refused
		window = 4 * time.Second
	)
	up := startCloseRecorder(t, pairs+1)
	listen, admin := freeAddr(t), freeAddr(t)
	file := filepath.Join(t.TempDir(), "wsalive.hcl")
	conf := fmt.Sprintf(`listener {
  address = %q
}
admin {
  address = %q
}
drain {
  delay  = %q
  window = %q
}
route "default" {
  upstream = "ws://%s"
}
`, listen, admin, delay.String(), window.String(), up.addr)
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, lines, exited := startChild(t, ctx, file)
	defer func() {
		// On an early failure: end the child (ours, by its handle) and
		// keep its log from blocking it.
		cmd.Process.Kill()
		go func() {
			for range lines {
			}
		}()
	}()
	waitLine(t, ctx, lines, "serving: ready")
	url := "ws://" + listen + "/"

	closes := make(chan clientClose, pairs+1)
	// reading makes a live client of c: it reads (answering pings and the
	// close) until its pair ends.
	reading := func(c *websocket.Conn) {
		go func() {
			_, _, err := c.Read(ctx)
			closes <- clientClose{err, time.Now()}
		}()
	}
	for range pairs {
		c, err := dialEcho(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		reading(c)
	}

	type answer struct {
		code int
		body string
		err  error
		at   time.Time
	}
	answered := make(chan answer, 1)
	switch trigger {
	case "SIGTERM":
		cmd.Process.Signal(syscall.SIGTERM)
	default:
		go func() {
			resp, err := http.Post("http://"+admin+"/drain", "", nil)
			if err != nil {
				answered <- answer{err: err, at: time.Now()}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answered <- answer{code: resp.StatusCode, body: string(body), at: time.Now()}
		}()
	}
	waitLine(t, ctx, lines, "draining: not ready")
	// Within the delay: served, and drained like the others.
	during, err := dialEcho(ctx, url)
	if err != nil {
		t.Fatalf("a client during the drain delay was not served: %v", err)
	}
	defer during.CloseNow()
	reading(during)

	waitLine(t, ctx, lines, "draining: closing live pairs")
	windowStart := time.Now()
	// The listeners closed before the engine's drain began.
	if c, _, err := websocket.Dial(ctx, url, nil); err == nil {
		c.CloseNow()
		t.Fatal("a client after the drain delay was served")
	}

	var at []time.Duration
	for range pairs + 1 {
		var cc clientClose
		select {
		case cc = <-closes:
		case <-ctx.Done():
			t.Fatalf("%d of %d clients got their close in time", len(at), pairs+1)
		}
		if st := websocket.CloseStatus(cc.err); st != websocket.StatusServiceRestart {
			t.Fatalf("a client read %v, want close 1012", cc.err)
		}
		var ce websocket.CloseError
		if errors.As(cc.err, &ce) && ce.Reason != drainReason {
			t.Fatalf("a client's close reason %q, want %q", ce.Reason, drainReason)
		}
		at = append(at, cc.at.Sub(windowStart))
	}
	lastClose := windowStart.Add(slices.Max(at))
	for range pairs + 1 {
		select {
		case code := <-up.codes:
			if code != websocket.StatusGoingAway {
				t.Fatalf("an upstream got close %d, want 1001", code)
			}
		case <-ctx.Done():
			t.Fatal("not every upstream connection ended in time")
		}
	}
	slices.Sort(at)
	p10, p90 := at[len(at)/10], at[len(at)*9/10]
	t.Logf("closes after the window opened: min %s p10 %s p50 %s p90 %s max %s",
		at[0].Round(time.Millisecond), p10.Round(time.Millisecond), at[len(at)/2].Round(time.Millisecond),
		p90.Round(time.Millisecond), at[len(at)-1].Round(time.Millisecond))
	if p10 > window/4 {
		t.Errorf("10th percentile close at %s, want within the window's first quarter (%s)", p10, window/4)
	}
	if p90 < window*3/4 || p90 > window {
		t.Errorf("90th percentile close at %s, want within the window's last quarter [%s, %s]", p90, window*3/4, window)
	}

	if trigger != "SIGTERM" {
		var a answer
		select {
		case a = <-answered:
		case <-ctx.Done():
			t.Fatal("POST /drain did not answer")
		}
		if a.err != nil || a.code != 200 {
			t.Fatalf("POST /drain: %d %s %v", a.code, a.body, a.err)
		}
		if a.at.Before(lastClose) {
			t.Fatalf("POST /drain answered %s before the last pair closed", lastClose.Sub(a.at))
		}
		// Drained, the process waits for its stop signal.
		cmd.Process.Signal(syscall.SIGTERM)
	}
	waitLine(t, ctx, lines, "msg=drained")
	go func() {
		for range lines {
		}
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("wsalive exited with %v, want 0", err)
		}
	case <-ctx.Done():
		t.Fatal("wsalive did not exit after the drain")
	}
}
