//go:build !windows

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary run wsalive's main instead of the tests,
// so that signals are tested on a real process.
const childEnv = "WSALIVE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// logLines forwards a child's log lines to a channel.
// startChild runs `wsalive run -config file` as a child process (the
// test binary re-executed), bounded by ctx. Its log lines arrive on
// lines, and its end on exited.
func startChild(t *testing.T, ctx context.Context, file string) (cmd *exec.Cmd, lines <-chan string, exited <-chan error) {
	t.Helper()
	cmd = exec.CommandContext(ctx, os.Args[0], "run", "-config", file)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	// A pipe of our own, not StderrPipe: Wait would close that one and
	// could lose the last lines.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, logLines(r), done
}

func logLines(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(r)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

// waitLine waits for a line containing want, bounded by ctx, and returns
// the lines seen.
func waitLine(t *testing.T, ctx context.Context, lines <-chan string, want string) {
	t.Helper()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the process ended before logging %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no log line %q in time", want)
		}
	}
}

// TestSignals runs wsalive as a process: SIGHUP reloads it (it used to
// kill it with exit 129), SIGTERM drains it and it exits 0.
func TestSignals(t *testing.T) {
	bln := startEcho(t)
	listen, admin := freeAddr(t), freeAddr(t)
	file := filepath.Join(t.TempDir(), "wsalive.hcl")
	text := func(level string) string {
		return fmt.Sprintf(`log_level = %q
listener {
  address = %q
}
admin {
  address = %q
}
drain {
  delay  = "0s"
  window = "0s"
}
route "default" {
  upstream = "ws://%s"
}
`, level, listen, admin, bln)
	}
	if err := os.WriteFile(file, []byte(text("info")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, lines, exited := startChild(t, ctx, file)
	waitLine(t, ctx, lines, "serving: ready")
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	c, err := dialEcho(ctx, "ws://"+listen+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	if err := os.WriteFile(file, []byte(text("debug")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLine(t, ctx, lines, "configuration reloaded")
	if err := roundTrip(ctx, c, "after SIGHUP"); err != nil {
		t.Fatalf("the pair after SIGHUP: %v", err)
	}

	closed := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		closed <- err
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-closed; !isDrainClose(err) {
		t.Fatalf("after SIGTERM the client read %v, want its close", err)
	}
	waitLine(t, ctx, lines, "msg=drained")
	go func() {
		for range lines { // keep the child from blocking on its log
		}
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("wsalive exited with %v, want 0", err)
		}
	case <-ctx.Done():
		t.Fatal("wsalive did not exit after SIGTERM")
	}
}
