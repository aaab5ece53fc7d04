//go:build linux

package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsalive/wsalive/proxy/internal/hostaddr"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// startGatedProxy serves routes on an engine listener, as cmd/wsalive
// does, with an accept gate of max and no timeout on its waits. Serve
// starts only after hold has run (nil: nothing).
type gatedProxy struct {
	*servedServer
	once sync.Once
}

// stop shuts the server down and checks Serve's return, once.
func (p *gatedProxy) stop(t *testing.T) { p.once.Do(func() { p.shutdown(t) }) }

func startGatedProxy(t *testing.T, routes []*config.Route, max int, hold func(*Server)) *gatedProxy {
	t.Helper()
	logger := testLogger(t)
	var srv *Server
	eng, err := relay.New(relay.Options{Loops: 1, Logger: logger, OnClose: func(st relay.PairStats) { srv.PairClosed(st) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	srv, err = NewServer(routes, eng, logger, WithLimits(config.Limits{MaxHandshakes: 1000, MaxHandshakesPerClientIP: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	srv.gate = newAcceptGate(max)
	srv.gate.maxWait = time.Hour
	if hold != nil {
		hold(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = eng.Listener(ln)
	s := &gatedProxy{servedServer: &servedServer{addr: ln.Addr().String(), srv: srv, served: make(chan error, 1)}}
	go func() { s.served <- srv.Serve(ln, config.Listener{}) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func switchingUpstream(t *testing.T) *rawUpstream {
	return startRawUpstream(t, answerWith(func(req *http.Request) string { return switching(req, "") }))
}

// Clients slow to send their heads (slowloris) are not counted by the
// gate: twice its bound of them cannot keep a client with a whole head
// from its 101.
func TestAcceptGateSlowHeads(t *testing.T) {
	up := switchingUpstream(t)
	s := startGatedProxy(t, []*config.Route{testRoute("r", up.addr, waitBound)}, 2, nil)
	for range 4 {
		c := dialProxy(t, s.addr)
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "4 heads in handshake, none counted at the gate", func() bool {
		return s.srv.handshakes.inHandshake() == 4 && s.srv.gate.counted() == 0
	})
	if ex := roundTrip(t, s.addr, upgradeRequest("/", "a", "")); ex.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", ex.resp.StatusCode)
	}
	if got := s.srv.Accepted(); got != 5 {
		t.Fatalf("accepted %d, want 5", got)
	}
}

// A handshake waiting for its loopback upstream is counted: the
// upstream's pace is this machine's (a storm piles up there). An
// upstream that does not answer holds the gate shut for its bound only,
// then the loop accepts anyway.
func TestAcceptGateSlowUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slow, release := firstHeldUpstream(t, ln)
	s := startGatedProxy(t, []*config.Route{testRoute("r", slow.addr, waitBound)}, 1, func(srv *Server) { srv.gate.maxWait = 20 * time.Millisecond })
	first := dialProxy(t, s.addr)
	if _, err := first.Write([]byte(upgradeRequest("/", "a", ""))); err != nil {
		t.Fatal(err)
	}
	slow.waitRequest(t)
	if got := s.srv.gate.counted(); got != 1 {
		t.Fatalf("counted %d while the upstream is silent, want 1", got)
	}
	if ex := roundTrip(t, s.addr, upgradeRequest("/", "a", "")); ex.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", ex.resp.StatusCode)
	}
	release()
	if st := statusOf(t, first); st != http.StatusSwitchingProtocols {
		t.Fatalf("the slow upstream's client: status %d, want 101", st)
	}
	waitFor(t, "nothing counted once both handed off", func() bool {
		return s.srv.gate.counted() == 0 && s.srv.Accepted() == 2 && s.srv.handshakes.inHandshake() == 0
	})
}

// A handshake waiting for an upstream that is not on loopback is not
// counted: its wait is the network's, and a bound on it would cap the
// handshake rate at the bound over the round trip.
func TestAcceptGateDistantUpstream(t *testing.T) {
	host := hostaddr.IPv4(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	slow, release := firstHeldUpstream(t, ln)
	s := startGatedProxy(t, []*config.Route{testRoute("r", slow.addr, waitBound)}, 1, nil)
	for _, rs := range s.srv.table.Load().states {
		if rs.local {
			t.Fatalf("route to %s taken for a loopback one", slow.addr)
		}
	}
	first := dialProxy(t, s.addr)
	if _, err := first.Write([]byte(upgradeRequest("/", "a", ""))); err != nil {
		t.Fatal(err)
	}
	slow.waitRequest(t)
	if got := s.srv.gate.counted(); got != 0 {
		t.Fatalf("counted %d while the distant upstream is silent, want 0", got)
	}
	if ex := roundTrip(t, s.addr, upgradeRequest("/", "a", "")); ex.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", ex.resp.StatusCode)
	}
	if w := s.srv.gate.waiting.Load(); w != 0 {
		t.Fatalf("%d accept loops waited at the gate", w)
	}
	release()
	if st := statusOf(t, first); st != http.StatusSwitchingProtocols {
		t.Fatalf("the slow upstream's client: status %d, want 101", st)
	}
}

// firstHeldUpstream serves ln as an upstream that answers 101, but
// holds its first request's answer until release is called (at the
// latest when the test ends).
func firstHeldUpstream(t *testing.T, ln net.Listener) (up *rawUpstream, release func()) {
	held := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release)
	var n atomic.Int32
	up = serveRawUpstream(t, ln, ln.Addr().String(), false, func(c net.Conn, req *http.Request) {
		if n.Add(1) == 1 {
			<-held
		}
		_, _ = c.Write([]byte(switching(req, "")))
	})
	return up, release
}

// While the gate is full the accept loop waits there, and the client it
// has not accepted waits in the kernel's queue; it is served once a
// counted handshake ends.
func TestAcceptGateHoldsAccept(t *testing.T) {
	up := switchingUpstream(t)
	var held *gateTicket
	s := startGatedProxy(t, []*config.Route{testRoute("r", up.addr, waitBound)}, 1, func(srv *Server) { held = countedTicket(srv.gate) })
	waitFor(t, "the accept loop at the gate", func() bool { return s.srv.gate.waiting.Load() == 1 })
	c := dialProxy(t, s.addr)
	if _, err := c.Write([]byte(upgradeRequest("/", "a", ""))); err != nil {
		t.Fatal(err)
	}
	if got := s.srv.Accepted(); got != 0 {
		t.Fatalf("accepted %d with the gate full, want 0", got)
	}
	held.end()
	if st := statusOf(t, c); st != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", st)
	}
}

// Shutdown ends an accept loop waiting at a full gate.
func TestAcceptGateShutdownServe(t *testing.T) {
	up := switchingUpstream(t)
	s := startGatedProxy(t, []*config.Route{testRoute("r", up.addr, waitBound)}, 1, func(srv *Server) { countedTicket(srv.gate) })
	waitFor(t, "the accept loop at the gate", func() bool { return s.srv.gate.waiting.Load() == 1 })
	s.stop(t) // checks that Serve returns ErrServerClosed
}

// statusOf reads the status of the response to what was written on c.
func statusOf(t *testing.T, c net.Conn) int {
	t.Helper()
	resp, _ := readResponse(t, bufio.NewReader(c), http.MethodGet)
	return resp.StatusCode
}
