//go:build linux

package main

// The fault matrix of issue 12 on a real wsalive process: what its clients
// and upstreams see when the other side, or wsalive itself, meets a
// fault — a stop signal with handshakes in flight, an upstream killed or
// frozen under load, a client reset mid-frame, a slowloris crowd. Every
// peer is an independent implementation (coder/websocket) or raw bytes;
// every process is one the test started, ended by its handle. Times are
// asserted with generous bounds (the machine is shared and loaded) and the
// actual figures logged.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoProcEnv makes the test binary, re-executed, an echo upstream of its
// own (a process the test can kill -9 or SIGSTOP without stopping itself).
// It listens on the env's address and prints "listening ADDR".
const echoProcEnv = "WSALIVE_TEST_ECHO_UPSTREAM"

func init() {
	// init, not TestMain: the child never reaches the tests.
	if addr := os.Getenv(echoProcEnv); addr != "" {
		os.Exit(runEchoUpstream(addr))
	}
}

// runEchoUpstream serves a coder/websocket echo on addr until killed.
func runEchoUpstream(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	srv := &http.Server{Handler: echoHandler(nil)}
	srv.Serve(ln)
	return 1
}

// startEchoProcess starts the echo upstream as a child process and returns
// it with its address. Cleanup resumes and kills it (by its handle).
func startEchoProcess(t *testing.T, ctx context.Context) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), echoProcEnv+"=127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("the echo upstream said %q, %v", line, err)
	}
	return cmd, addr
}

// wsaliveProc is a wsalive child process started by startWsalive.
type wsaliveProc struct {
	cmd    *exec.Cmd
	file   string // its configuration
	lines  <-chan string
	exited <-chan error
}

// startWsalive writes conf to a file, starts wsalive on it and waits until
// it is ready. Cleanup kills it, if still running, and keeps reading its
// log so it never blocks on it.
func startWsalive(t *testing.T, ctx context.Context, conf string) *wsaliveProc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "wsalive.hcl")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, lines, exited := startChild(t, ctx, file)
	p := &wsaliveProc{cmd: cmd, file: file, lines: lines, exited: exited}
	t.Cleanup(func() {
		cmd.Process.Kill()
		go func() {
			for range lines {
			}
		}()
	})
	waitLine(t, ctx, lines, "serving: ready")
	return p
}

// waitFor waits for a log line containing want and returns it.
func (p *wsaliveProc) waitFor(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("wsalive ended before logging %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-ctx.Done():
			t.Fatalf("no log line %q in time", want)
		}
	}
}

// discardLog reads and drops wsalive's log from now on: a test that makes
// it log thousands of lines (one per connection of a flood) and waits for
// none must not let the pipe fill, or wsalive's logging would block the
// very goroutines under test.
func (p *wsaliveProc) discardLog() {
	go func() {
		for range p.lines {
		}
	}()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *wsaliveProc) stop(t *testing.T, ctx context.Context) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		for range p.lines {
		}
	}()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("wsalive exited with %v, want 0", err)
		}
	case <-ctx.Done():
		t.Fatal("wsalive did not exit after SIGTERM")
	}
}

// baseConf is a listener, an admin endpoint, an immediate drain and a
// default route to upstream, plus extra configuration.
func baseConf(listen, admin, upstream, extra string) string {
	return drainConf(listen, admin, upstream, 0, extra)
}

// drainConf is baseConf with the drain's close code (0: the default).
func drainConf(listen, admin, upstream string, closeCode int, extra string) string {
	code := ""
	if closeCode != 0 {
		code = fmt.Sprintf("\n  close_code = %d", closeCode)
	}
	return fmt.Sprintf(`listener {
  address = %q
}
admin {
  address = %q
}
drain {
  delay  = "0s"
  window = "0s"%s
}
route "default" {
  upstream = "ws://%s"
}
%s`, listen, admin, code, upstream, extra)
}

// readUntilEnd starts a reader on c that reports, once, how its pair ended.
func readUntilEnd(ctx context.Context, c *websocket.Conn, ends chan<- clientClose) {
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				ends <- clientClose{err, time.Now()}
				return
			}
		}
	}()
}

// collectEnds takes n ends and returns their delays after from. A client
// whose end is not a close frame with want fails the test.
func collectEnds(t *testing.T, ctx context.Context, ends <-chan clientClose, n int, from time.Time, want websocket.StatusCode, reason string) []time.Duration {
	t.Helper()
	var at []time.Duration
	for range n {
		var cc clientClose
		select {
		case cc = <-ends:
		case <-ctx.Done():
			t.Fatalf("%d of %d clients got their close in time", len(at), n)
		}
		if st := websocket.CloseStatus(cc.err); st != want {
			t.Fatalf("a client read %v, want close %d", cc.err, want)
		}
		var ce websocket.CloseError
		if reason != "" && errors.As(cc.err, &ce) && !strings.Contains(ce.Reason, reason) {
			t.Fatalf("a client's close reason %q, want %q", ce.Reason, reason)
		}
		at = append(at, cc.at.Sub(from))
	}
	slices.Sort(at)
	return at
}

func spread(at []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %s p50 %s p99 %s max %s", r(at[0]), r(at[len(at)/2]), r(at[len(at)*99/100]), r(at[len(at)-1]))
}

// rawHandshake opens a TCP connection to addr and upgrades it to path by
// hand, returning the connection after the 101's head.
func rawHandshake(t *testing.T, addr, path string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var key [16]byte
	rand.Read(key[:])
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, addr, base64.StdEncoding.EncodeToString(key[:]))
	// Byte by byte up to the head's end: nothing after it may be consumed.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading the 101: %v (got %q)", err, head)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("handshake answered %q", head)
	}
	c.SetDeadline(time.Time{})
	return c.(*net.TCPConn)
}

// maskedFrame is a final client frame of op with payload, masked.
func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// TestFaultSIGTERMWithHandshakesInFlight: SIGTERM while an upstream
// handshake is stuck (the upstream accepted TCP and never answers), an
// idle client has sent nothing and another sent half a head. The live
// pairs get the drain's close (drain.close_code: 1012 by default, or the
// configured one) at once (after the handshake grace, not the stuck
// handshakes' own 10 s bounds), both ways; the stuck handshakes are
// answered 503 or closed, never 101; nothing is cut and wsalive exits 0.
func TestFaultSIGTERMWithHandshakesInFlight(t *testing.T) {
	for _, code := range []int{0, 4000} {
		t.Run(fmt.Sprintf("close_code=%d", code), func(t *testing.T) { testSIGTERMWithHandshakesInFlight(t, code) })
	}
}

func testSIGTERMWithHandshakesInFlight(t *testing.T, closeCode int) {
	const pairs = 100
	want := websocket.StatusServiceRestart
	if closeCode != 0 {
		want = websocket.StatusCode(closeCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	up := startCloseRecorder(t, pairs)
	// The stuck upstream: accepts, reads, never answers.
	stuck, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuckAccepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := stuck.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
			stuckAccepted <- c
		}
	}()
	listen, admin := freeAddr(t), freeAddr(t)
	p := startWsalive(t, ctx, drainConf(listen, admin, up.addr, closeCode, fmt.Sprintf(`route "stuck" {
  path_prefix = "/stuck"
  upstream    = "ws://%s"
}
`, stuck.Addr())))
	url := "ws://" + listen + "/"

	ends := make(chan clientClose, pairs)
	for range pairs {
		c, err := dialEcho(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		readUntilEnd(ctx, c, ends)
	}
	// An idle pre-connected client, and one that sent half its head.
	idle, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	halfHead, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer halfHead.Close()
	fmt.Fprintf(halfHead, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", listen)
	// A handshake stuck on the upstream.
	type dialEnd struct {
		status int // 0: closed without an answer
		err    error
	}
	stuckDial := make(chan dialEnd, 1)
	go func() {
		c, resp, err := websocket.Dial(ctx, "ws://"+listen+"/stuck", nil)
		var end dialEnd
		switch {
		case err == nil:
			c.CloseNow()
			end.err = errors.New("the stuck handshake got a 101")
		case resp != nil && resp.StatusCode != http.StatusServiceUnavailable:
			end.err = fmt.Errorf("the stuck handshake was answered %d, want 503 or a close", resp.StatusCode)
		case resp != nil:
			end.status = resp.StatusCode
		}
		stuckDial <- end
	}()
	select {
	case c := <-stuckAccepted:
		defer c.Close()
	case <-ctx.Done():
		t.Fatal("the stuck upstream was never dialled")
	}

	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	at := collectEnds(t, ctx, ends, pairs, sent, want, drainReason)
	t.Logf("drain closes after SIGTERM (handshake grace %s): %s", handshakeGrace, spread(at))
	// Generous: the grace plus room for a loaded machine, far under the
	// 10 s the stuck handshakes would take by their own bounds.
	if max := at[len(at)-1]; max > handshakeGrace+5*time.Second {
		t.Errorf("the last live pair was closed %s after SIGTERM, want within %s", max, handshakeGrace+5*time.Second)
	}
	for range pairs {
		select {
		case code := <-up.codes:
			if code != websocket.StatusGoingAway {
				t.Fatalf("an upstream got close %d, want 1001", code)
			}
		case <-ctx.Done():
			t.Fatal("not every upstream connection ended in time")
		}
	}
	if end := <-stuckDial; end.err != nil {
		t.Fatal(end.err)
	} else {
		t.Logf("the handshake stuck on its upstream ended with status %d (0: closed unanswered)", end.status)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "half-head": halfHead} {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		got, err := io.ReadAll(c)
		if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 503") && !strings.HasPrefix(string(got), "HTTP/1.1 408") {
			t.Fatalf("the %s connection was answered %q", name, got)
		}
		if isTimeoutErr(err) {
			t.Fatalf("the %s connection was left open after the drain", name)
		}
		t.Logf("the %s connection got %.12q, then %v", name, got, err)
	}
	line := p.waitFor(t, ctx, "msg=drained")
	if !strings.Contains(line, "cut=0") || !strings.Contains(line, fmt.Sprintf("drained=%d", pairs)) {
		t.Fatalf("drain report %q, want %d drained and none cut", line, pairs)
	}
	t.Logf("drain report: %s", line)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("wsalive exited with %v, want 0", err)
		}
	case <-ctx.Done():
		t.Fatal("wsalive did not exit after SIGTERM")
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// startExchanging dials n clients that each send a message every 100 ms
// and read continuously; each reports how its pair ended on ends.
func startExchanging(t *testing.T, ctx context.Context, url string, n int, ends chan<- clientClose) {
	t.Helper()
	for i := range n {
		c, err := dialEcho(ctx, url)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		readUntilEnd(ctx, c, ends)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			msg := []byte(fmt.Sprintf("client %d", i))
			for {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
				if c.Write(ctx, websocket.MessageText, msg) != nil {
					return
				}
			}
		}()
	}
}

// TestFaultUpstreamKilled: kill -9 of the upstream process while 200
// pairs exchange messages. The kernel resets the upstream's sockets;
// every client gets 1001 from wsalive at once, and wsalive lives on.
func TestFaultUpstreamKilled(t *testing.T) {
	const pairs = 200
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	echo, upAddr := startEchoProcess(t, ctx)
	listen, admin := freeAddr(t), freeAddr(t)
	p := startWsalive(t, ctx, baseConf(listen, admin, upAddr, ""))
	ends := make(chan clientClose, pairs)
	began := time.Now()
	startExchanging(t, ctx, "ws://"+listen+"/", pairs, ends)
	t.Logf("%d pairs exchanging after %s", pairs, time.Since(began).Round(time.Millisecond))

	killed := time.Now()
	if err := echo.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	at := collectEnds(t, ctx, ends, pairs, killed, websocket.StatusGoingAway, "")
	t.Logf("closes after kill -9 of the upstream: %s", spread(at))
	if max := at[len(at)-1]; max > 5*time.Second {
		t.Errorf("the last client was told %s after the kill, want within 5 s (1 s unloaded)", max)
	}
	// wsalive is still there: its admin answers.
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz after the upstream died: %v %v", resp, err)
	}
	resp.Body.Close()
	began = time.Now()
	p.stop(t, ctx)
	t.Logf("stopped in %s", time.Since(began).Round(time.Millisecond))
}

// TestFaultUpstreamFrozen: SIGSTOP of the upstream process. Its kernel
// still acknowledges every byte, so only the upstream heartbeat can tell:
// every client gets 1001 "upstream heartbeat timeout" within the
// heartbeat's detection bound.
func TestFaultUpstreamFrozen(t *testing.T) {
	const pairs = 50
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	echo, upAddr := startEchoProcess(t, ctx)
	listen, admin := freeAddr(t), freeAddr(t)
	p := startWsalive(t, ctx, baseConf(listen, admin, upAddr, "")+`route "frozen" {
  path_prefix = "/frozen"
  upstream    = "ws://`+upAddr+`"
  heartbeat "upstream" {
    interval   = "1s"
    timeout    = "1s"
    max_missed = 1
  }
}
`)
	cfg, err := loadConfig(p.file, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var bound time.Duration
	for _, r := range cfg.Routes {
		if r.Name == "frozen" {
			bound = r.UpstreamHeartbeat.DetectionBound()
		}
	}
	if bound == 0 {
		t.Fatal("no detection bound for the frozen route")
	}
	ends := make(chan clientClose, pairs)
	startExchanging(t, ctx, "ws://"+listen+"/frozen", pairs, ends)

	stopped := time.Now()
	if err := echo.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	at := collectEnds(t, ctx, ends, pairs, stopped, websocket.StatusGoingAway, "upstream heartbeat timeout")
	t.Logf("closes after SIGSTOP of the upstream (detection bound %s): %s", bound, spread(at))
	// The bound counts from the last thing heard; plus the timer's tick
	// and a loaded machine.
	if max := at[len(at)-1]; max > bound+3*time.Second {
		t.Errorf("the last client was told %s after the SIGSTOP, want within the bound %s (+3 s)", max, bound)
	}
	echo.Process.Signal(syscall.SIGCONT)
	p.stop(t, ctx)
}

// rawUpstream is an upstream that answers the upgrade by hand and then
// hands its connections to the test as raw bytes: what wsalive forwards
// is seen byte by byte, partial frames included.
func startRawUpstream(t *testing.T) (addr string, conns <-chan rawConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan rawConn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(c)
			req, err := http.ReadRequest(r)
			if err != nil {
				c.Close()
				continue
			}
			sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(sum[:]))
			ch <- rawConn{c, r}
		}
	}()
	return ln.Addr().String(), ch
}

// rawConn is a raw upstream's connection and its reader.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// readFrameHead reads a frame's first bytes from the upstream side: its
// opcode, and its payload unmasked (payloads under 126 bytes only).
func readFrameHead(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	if n >= 126 {
		return 0, nil, fmt.Errorf("a %d-length frame: the test reads small ones only", n)
	}
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, payload, nil
}

// TestFaultClientReset: a raw client resets its connection (SO_LINGER 0)
// at a frame boundary and in the middle of a frame, once the raw upstream
// has seen what it sent. At the boundary the upstream gets a close frame
// with 1001; mid-frame, the upstream has part of a frame and no close
// frame can follow it (it would be read as the frame's payload), so its
// connection is closed without one. wsalive serves others throughout.
func TestFaultClientReset(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	upAddr, ups := startRawUpstream(t)
	echoAddr := startEcho(t)
	listen, admin := freeAddr(t), freeAddr(t)
	p := startWsalive(t, ctx, baseConf(listen, admin, echoAddr, fmt.Sprintf(`route "raw" {
  path_prefix = "/raw"
  upstream    = "ws://%s"
}
`, upAddr)))
	other, err := dialEcho(ctx, "ws://"+listen+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseNow()

	for _, midFrame := range []bool{false, true} {
		c := rawHandshake(t, listen, "/raw")
		var upc rawConn
		select {
		case upc = <-ups:
		case <-ctx.Done():
			t.Fatal("the raw upstream was never dialled")
		}
		up := upc.r
		msg := []byte("before the reset")
		c.Write(maskedFrame(0x1, msg))
		if op, got, err := readFrameHead(up); err != nil || op != 0x1 || string(got) != string(msg) {
			t.Fatalf("the upstream read op %d %q, %v", op, got, err)
		}
		if midFrame {
			// Half of a 100-byte frame's bytes: its head and 47 bytes of
			// payload, all seen by the upstream before the reset.
			f := maskedFrame(0x2, make([]byte, 100))
			c.Write(f[:53])
			seen := make([]byte, 53)
			if _, err := io.ReadFull(up, seen); err != nil {
				t.Fatalf("the upstream did not get the partial frame: %v", err)
			}
		}
		c.SetLinger(0)
		c.Close()
		reset := time.Now()
		if midFrame {
			rest, err := io.ReadAll(up)
			if isTimeoutErr(err) {
				t.Fatal("the upstream's connection was left open after the client's reset mid-frame")
			}
			if len(rest) > 0 {
				t.Fatalf("after a reset mid-frame the upstream got %q more: nothing may follow the partial frame", rest)
			}
			t.Logf("mid-frame: the upstream's connection ended (%v) %s after the reset, no close frame", err, time.Since(reset).Round(time.Millisecond))
		} else {
			op, payload, err := readFrameHead(up)
			if err != nil || op != 0x8 || len(payload) < 2 {
				t.Fatalf("after a reset at a frame boundary the upstream read op %d %q, %v; want a close frame", op, payload, err)
			}
			code := int(payload[0])<<8 | int(payload[1])
			if code != 1001 {
				t.Fatalf("the upstream's close code %d (%q), want 1001", code, payload[2:])
			}
			t.Logf("at a boundary: the upstream got close %d %q %s after the reset", code, payload[2:], time.Since(reset).Round(time.Millisecond))
			upc.Close() // the close handshake's end, from the upstream's side
		}
		if err := roundTrip(ctx, other, "still served"); err != nil {
			t.Fatalf("another pair after the reset: %v", err)
		}
	}
	// A reading client answers the drain's close at once.
	readUntilEnd(ctx, other, make(chan clientClose, 1))
	p.stop(t, ctx)
}

// TestFaultSlowloris: 500 connections dribble a request head a byte at a
// time from 10 source addresses (within the per-address handshake limit)
// while a normal client connects and exchanges messages. The normal client
// is served promptly; each slow head is cut at handshake_timeout with 408,
// as proxy.Server.headCutShort documents for a head that had begun.
func TestFaultSlowloris(t *testing.T) {
	const (
		sources = 10
		perSrc  = 50
		timeout = 3 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bln := startEcho(t)
	listen, admin := freeAddr(t), freeAddr(t)
	p := startWsalive(t, ctx, fmt.Sprintf(`listener {
  address = %q
}
admin {
  address = %q
}
route "default" {
  upstream          = "ws://%s"
  handshake_timeout = %q
}
`, listen, admin, bln, timeout.String()))

	type cut struct {
		answer string
		after  time.Duration
		err    error
	}
	cuts := make(chan cut, sources*perSrc)
	var wg, dialled sync.WaitGroup
	dialled.Add(sources * perSrc)
	head := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: %s\r\n\r\n",
		listen, strings.Repeat("z", 200))
	for s := range sources {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+s))}, Timeout: 10 * time.Second}
		for range perSrc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				c, err := d.DialContext(ctx, "tcp", listen)
				dialled.Done()
				if err != nil {
					cuts <- cut{err: err}
					return
				}
				defer c.Close()
				// A byte every 50 ms: the whole head would take 15 s,
				// far past the timeout.
				go func() {
					for i := range len(head) {
						if _, err := c.Write([]byte{head[i]}); err != nil {
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				}()
				c.SetReadDeadline(time.Now().Add(timeout + 20*time.Second))
				got, err := io.ReadAll(c)
				if errors.Is(err, syscall.ECONNRESET) {
					err = nil // closed while bytes of ours were unread
				}
				cuts <- cut{answer: string(got), after: time.Since(start), err: err}
			}()
		}
	}
	// The normal client, while the slow heads dribble.
	dialled.Wait() // bounded: each dial has its timeout
	began := time.Now()
	c, err := dialEcho(ctx, "ws://"+listen+"/")
	if err != nil {
		t.Fatalf("a normal client during the slowloris: %v", err)
	}
	for i := range 20 {
		if err := roundTrip(ctx, c, fmt.Sprintf("message %d", i)); err != nil {
			t.Fatalf("a normal client's message during the slowloris: %v", err)
		}
	}
	t.Logf("a normal client connected and did 20 round trips in %s during the slowloris", time.Since(began).Round(time.Millisecond))
	c.Close(websocket.StatusNormalClosure, "")

	wg.Wait()
	close(cuts)
	var at []time.Duration
	answered := 0
	for cu := range cuts {
		if cu.err != nil {
			t.Fatalf("a slow head: %v after %s (read %q)", cu.err, cu.after, cu.answer)
		}
		if cu.answer != "" {
			if !strings.HasPrefix(cu.answer, "HTTP/1.1 408") {
				t.Fatalf("a slow head was answered %q", cu.answer)
			}
			answered++
		}
		if cu.after < timeout-100*time.Millisecond {
			t.Fatalf("a slow head was cut after %s, before the %s timeout", cu.after, timeout)
		}
		at = append(at, cu.after)
	}
	slices.Sort(at)
	t.Logf("slow heads cut (handshake_timeout %s), %d of %d answered 408: %s", timeout, answered, len(at), spread(at))
	if answered < len(at)*9/10 {
		t.Errorf("only %d of %d slow heads were answered 408", answered, len(at))
	}
	p.stop(t, ctx)
}
