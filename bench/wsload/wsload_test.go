package wsload

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsalive/wsalive/examples/legacyecho"
)

// testTimeout bounds every run and wait of these tests.
const testTimeout = 20 * time.Second

// recordingListener remembers the remote address of every accepted
// connection.
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	addrs []net.Addr
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.addrs = append(l.addrs, c.RemoteAddr())
		l.mu.Unlock()
	}
	return c, err
}

func (l *recordingListener) remoteIPs() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int)
	for _, a := range l.addrs {
		m[a.(*net.TCPAddr).IP.String()]++
	}
	return m
}

// startEcho runs a legacyecho server on 127.0.0.1:0 and proves a round trip
// through it before the test body runs.
func startEcho(t *testing.T) (*legacyecho.Server, *recordingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: ln}
	srv := legacyecho.New(nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(rl) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf(
				"Serve: %v",
				err,
			)
		}
	})
	url := "ws://" + ln.Addr().String() + "/"

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := dialWS(t, ctx, url)
	defer c.Close()
	if err := wsutil.WriteClientText(c, []byte("fixture")); err != nil {
		t.Fatal(err)
	}
	if p, err := wsutil.ReadServerText(c); err != nil || string(p) != "fixture" {
		t.Fatalf(
			"fixture round trip: %q, %v",
			p, err,
		)
	}
	return srv, rl, url
}

// dialWS opens a WebSocket client connection to url, failing the test if
// it cannot. The caller closes it: some tests need it open only briefly,
// and some close it on purpose to see how the server records the end.
func dialWS(t *testing.T, ctx context.Context, url string) net.Conn {
	t.Helper()
	c, _, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveRaw runs handle on every upgraded connection of a listener on
// 127.0.0.1:0, for servers that misbehave on purpose.
func serveRaw(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if _, err := ws.Upgrade(c); err != nil {
					return
				}
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// readClientFrame reads one frame a client sent and unmasks its payload,
// for serveRaw handlers that check what the client answered.
func readClientFrame(c net.Conn) (ws.OpCode, []byte, error) {
	h, err := ws.ReadHeader(c)
	if err != nil {
		return 0, nil, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c, p); err != nil {
		return 0, nil, err
	}
	ws.Cipher(p, h.Mask, 0)
	return h.OpCode, p, nil
}

// runOneIdle holds one idle connection to url until READY, waits there
// (within the test timeout) for what the raw server reports on got, and
// then ends the hold the way SIGINT would. It returns the report, zero if
// none came, and the run's summary.
func runOneIdle[T any](t *testing.T, client, url string, got <-chan T) (T, *Summary) {
	t.Helper()
	var v T
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sum, err := Run(ctx, Config{
		Mode:   ModeIdle,
		Client: client,
		URL:    url,
		N:      1,
		Ready: func(int, int) {
			select {
			case v = <-got:
			case <-ctx.Done():
			}
			cancel()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, sum
}

func run(t *testing.T, cfg Config) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sum, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf(
			"Run: %v",
			err,
		)
	}
	if sum.Interrupted {
		t.Fatalf(
			"run hit the test timeout: %+v",
			sum,
		)
	}
	return sum
}

func TestIdleReachesReadyAndClosesCleanly(t *testing.T) {
	srv, rl, url := startEcho(t)
	const n = 50

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var readyOpened, readyFailed, serverConns int
	sum, err := Run(ctx, Config{
		Mode:   ModeIdle,
		URL:    url,
		N:      n,
		SrcIPs: "2-5",
		// Hold until READY, then end the hold the way SIGINT would.
		Ready: func(opened, failed int) {
			readyOpened, readyFailed = opened, failed
			serverConns = srv.Conns()
			cancel()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if readyOpened != n || readyFailed != 0 {
		t.Fatalf(
			"READY with %d opened, %d failed; want %d, 0",
			readyOpened, readyFailed, n,
		)
	}
	if serverConns != n {
		t.Fatalf(
			"server had %d connections at READY, want %d",
			serverConns, n,
		)
	}
	if sum.Opened != n || sum.Idle.AliveAtClose != n || sum.Idle.ClosedClean != n || sum.Errors != 0 {
		t.Fatalf(
			"summary: opened %d, alive %d, clean %d, errors %d %v",
			sum.Opened, sum.Idle.AliveAtClose, sum.Idle.ClosedClean, sum.Errors, sum.ErrorKinds,
		)
	}
	if sum.Handshake.Count != n || sum.Handshake.MaxMs <= 0 {
		t.Fatalf(
			"handshake stats: %+v",
			sum.Handshake,
		)
	}
	// Every connection waited for the server's FIN, which the server sends
	// after forgetting the connection.
	if got := srv.Conns(); got != 0 {
		t.Fatalf(
			"server still has %d connections",
			got,
		)
	}
	// Source addresses cycled through 127.0.0.2-5 (the fixture's own dial
	// came from 127.0.0.1).
	ips := rl.remoteIPs()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		if ips[ip] != n/4 && ips[ip] != n/4+1 {
			t.Errorf(
				"%d connections from %s, want about %d (all: %v)",
				ips[ip], ip, n/4, ips,
			)
		}
	}
}

func TestIdleHoldElapses(t *testing.T) { forEachClient(t, testIdleHoldElapses) }

func testIdleHoldElapses(t *testing.T, client string) {
	_, _, url := startEcho(t)
	sum := run(t, Config{
		Mode:   ModeIdle,
		Client: client,
		URL:    url,
		N:      10,
		Hold:   50 * time.Millisecond,
	})
	if sum.Idle.HeldSeconds < 0.05 || sum.Idle.ClosedClean != 10 || sum.Errors != 0 {
		t.Fatalf(
			"held %.3fs, clean %d, errors %v",
			sum.Idle.HeldSeconds, sum.Idle.ClosedClean, sum.ErrorKinds,
		)
	}
}

func TestIdleAnswersPings(t *testing.T) { forEachClient(t, testIdleAnswersPings) }

func testIdleAnswersPings(t *testing.T, client string) {
	pongs := make(chan string, 1)
	url := serveRaw(t, func(c net.Conn) {
		// Ping, expect the pong, then answer the client's close.
		ws.WriteFrame(c, ws.NewPingFrame([]byte("hb-1")))
		for {
			op, p, err := readClientFrame(c)
			if err != nil {
				return
			}
			switch op {
			case ws.OpPong:
				pongs <- string(p)
			case ws.OpClose:
				ws.WriteFrame(c, ws.NewCloseFrame(p))
				return
			}
		}
	})

	pong, sum := runOneIdle(t, client, url, pongs)
	if pong != "hb-1" {
		t.Fatalf(
			"pong payload %q, want %q",
			pong, "hb-1",
		)
	}
	if sum.Idle.PingsAnswered != 1 || sum.Idle.ClosedClean != 1 || sum.Errors != 0 {
		t.Fatalf(
			"pings %d, clean %d, errors %v",
			sum.Idle.PingsAnswered, sum.Idle.ClosedClean, sum.ErrorKinds,
		)
	}
}

func TestIdleCountsServerClose(t *testing.T) { forEachClient(t, testIdleCountsServerClose) }

func testIdleCountsServerClose(t *testing.T, client string) {
	answered := make(chan ws.StatusCode, 1)
	url := serveRaw(t, func(c net.Conn) {
		// Going away right after the handshake, as a restarting backend
		// would; then expect the client's answer.
		ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "restart")))
		if op, p, err := readClientFrame(c); err == nil && op == ws.OpClose {
			answered <- closeCodeOf(p)
		}
	})

	code, sum := runOneIdle(t, client, url, answered)
	if code != ws.StatusGoingAway {
		t.Fatalf(
			"client answered the close with %d, want %d",
			code, ws.StatusGoingAway,
		)
	}
	if sum.Idle.ServerClosed != 1 || sum.Idle.ClosedClean != 0 || sum.ErrorKinds["server closed with 1001"] != 1 {
		t.Fatalf(
			"server closed %d, clean %d, errors %v",
			sum.Idle.ServerClosed, sum.Idle.ClosedClean, sum.ErrorKinds,
		)
	}
}

func TestEchoVerifiesTraffic(t *testing.T) { forEachClient(t, testEchoVerifiesTraffic) }

func testEchoVerifiesTraffic(t *testing.T, client string) {
	cases := []struct {
		name     string
		n        int
		inflight int
		size     int
	}{
		{
			name:     "1 KiB, 4 in flight",
			n:        4,
			inflight: 4,
			size:     1024,
		},
		{
			name:     "empty messages",
			n:        2,
			inflight: 1,
			size:     0,
		},
		{
			name:     "shorter than the stamp",
			n:        2,
			inflight: 2,
			size:     5,
		},
		{
			name:     "256 KiB, 2 in flight",
			n:        2,
			inflight: 2,
			size:     256 << 10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, url := startEcho(t)
			sum := run(t, Config{
				Mode:     ModeEcho,
				Client:   client,
				URL:      url,
				N:        tc.n,
				Inflight: tc.inflight,
				Size:     tc.size,
				Duration: 200 * time.Millisecond,
			})
			st := sum.Echo
			if st.Messages == 0 || sum.Errors != 0 || st.Mismatches != 0 || st.Lost != 0 {
				t.Fatalf(
					"messages %d, mismatches %d, lost %d, errors %v",
					st.Messages, st.Mismatches, st.Lost, sum.ErrorKinds,
				)
			}
			if st.ClosedClean != int64(tc.n) {
				t.Fatalf(
					"clean closes %d, want %d",
					st.ClosedClean, tc.n,
				)
			}
			if st.RTT.Count != uint64(st.Messages) || st.RTT.P50Ms <= 0 || st.MessagesPerSec <= 0 {
				t.Fatalf(
					"rtt %+v, rate %v",
					st.RTT, st.MessagesPerSec,
				)
			}
		})
	}
}

func TestEchoDetectsCorruption(t *testing.T) { forEachClient(t, testEchoDetectsCorruption) }

func testEchoDetectsCorruption(t *testing.T, client string) {
	url := serveRaw(t, func(c net.Conn) {
		for {
			p, op, err := wsutil.ReadClientData(c)
			if err != nil {
				return
			}
			if len(p) > 0 {
				p[len(p)-1] ^= 0x01
			}
			if err := wsutil.WriteServerMessage(c, op, p); err != nil {
				return
			}
		}
	})
	sum := run(t, Config{
		Mode:     ModeEcho,
		Client:   client,
		URL:      url,
		N:        2,
		Size:     100,
		Duration: 100 * time.Millisecond,
	})
	if sum.Echo.Mismatches == 0 || sum.Echo.Messages != 0 || sum.Errors == 0 {
		t.Fatalf(
			"corrupted echoes not caught: mismatches %d, messages %d, errors %d",
			sum.Echo.Mismatches, sum.Echo.Messages, sum.Errors,
		)
	}
}

func TestDialFailuresCounted(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/"
	ln.Close()

	sum := run(t, Config{
		Mode: ModeIdle,
		URL:  url,
		N:    5,
		Hold: time.Nanosecond,
	})
	if sum.Opened != 0 || sum.DialFailed != 5 || sum.ErrorKinds["dial: connection refused"] != 5 {
		t.Fatalf(
			"opened %d, failed %d, errors %v",
			sum.Opened, sum.DialFailed, sum.ErrorKinds,
		)
	}
}

func TestRunRefusesMoreConnectionsThanDescriptors(t *testing.T) {
	_, err := Run(context.Background(), Config{
		Mode: ModeIdle,
		URL:  "ws://127.0.0.1:1/",
		N:    1 << 30,
	})
	if err == nil || !strings.Contains(err.Error(), "several wsload processes") {
		t.Fatalf(
			"want a descriptor-limit error, got %v",
			err,
		)
	}
}

func TestErrorKindHidesAddresses(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "refused connect names the errno only",
			err: &net.OpError{
				Op:     "dial",
				Net:    "tcp",
				Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 40000},
				Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
				Err:    os.NewSyscallError("connect", syscall.ECONNREFUSED),
			},
			want: "connection refused",
		},
		{
			name: "handshake status",
			err:  ws.StatusError(403),
			want: "handshake answered HTTP 403",
		},
		{
			name: "timeout",
			err:  context.DeadlineExceeded,
			want: "timeout",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorKind(tc.err); got != tc.want {
				t.Fatalf(
					"errorKind = %q, want %q",
					got, tc.want,
				)
			}
		})
	}
}

// forEachClient runs test once per client implementation, as subtests
// named after the client.
func forEachClient(t *testing.T, test func(t *testing.T, client string)) {
	for _, client := range []string{ClientGobwas, ClientGorilla} {
		t.Run(client, func(t *testing.T) { test(t, client) })
	}
}
