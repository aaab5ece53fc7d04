package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/relay"
)

// TestTLSHeartbeatFrozenPeer is TestHeartbeatFrozenPeer on TLS pairs (TLS
// toward the client and toward the upstream): the freezer forwards the
// encrypted bytes and then stops, and the frozen side must be detected
// within the same bound as on a plain pair.
func TestTLSHeartbeatFrozenPeer(t *testing.T) {
	requireNode(t)
	const (
		interval = 300 * time.Millisecond
		timeout  = 250 * time.Millisecond
	)
	m := newTLSMaterial(t)
	for _, side := range []string{"client", "upstream"} {
		for _, maxMissed := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/max-missed-%d", side, maxMissed), func(t *testing.T) {
				other := map[string]string{"client": "upstream", "upstream": "client"}[side]
				hcl := heartbeatHCL(side, interval, timeout, maxMissed) +
					heartbeatHCL(other, interval, time.Second, 2)
				pol := liveness.Policy{Interval: interval, Timeout: timeout, MaxMissed: maxMissed}
				testTLSFrozen(t, m, side, withLiveness(t, hcl), pol)
			})
		}
	}
}

// testTLSFrozen runs a TLS pair from a coder/websocket client to a Node
// wss:// upstream with a freezer on side, proves a round trip, freezes,
// and checks that wsalive detects the frozen side in time and closes the
// other one.
func testTLSFrozen(t *testing.T, m *tlsMaterial, side string, route func(*config.Route), pol liveness.Policy) {
	node := startNode(t, "wss-server.js", "0", m.serverCert, m.serverKey, "-")
	nodeAddr := "127.0.0.1:" + listeningPort(t, node)
	fr := newFreezer(t)
	upstream := nodeAddr
	if side == "upstream" {
		upstream = fr.addr()
	}
	f := newTLSFixture(t, tlsFixtureOptions{
		listener:    m.listenerTLS(),
		upstream:    "wss://" + upstream,
		upstreamTLS: &config.UpstreamTLS{CAFile: m.caFile, ServerName: "127.0.0.1"},
		route:       route,
	})
	conf := m.clientTLS(nil, nil)
	if side == "upstream" {
		fr.forwardTo(nodeAddr)
	} else {
		fr.forwardTo(f.proxyAddr)
	}
	f.requireRelay(t, conf, nil)
	node.waitLine(t, "CLOSED ") // the probe's

	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	addr := f.proxyAddr
	if side == "client" {
		addr = fr.addr()
	}
	c, _, err := websocket.Dial(ctx, "wss://"+addr+"/frozen", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: conf}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	node.waitLine(t, "CONNECTED ")
	rd := readCoder(t, c)
	if err := c.Write(ctx, websocket.MessageText, []byte("before the freeze")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := recv(t, rd.msgs, "echo"); string(got) != "before the freeze" {
		t.Fatalf("echo %q", got)
	}
	fr.Freeze()
	frozenAt := time.Now()

	// The side that stayed alive witnesses wsalive's close.
	var took time.Duration
	if side == "client" {
		line := node.waitLine(t, "CLOSED ")
		took = time.Since(frozenAt)
		if want := "CLOSED 1001 client heartbeat timeout"; line != want {
			t.Errorf("node printed %q, want %q", line, want)
		}
	} else {
		ev := recv(t, rd.ended, "end of the client's connection")
		took = ev.at.Sub(frozenAt)
		expectGoingAway(t, "client", ev, "upstream heartbeat timeout")
	}
	checkDetection(t, took, pol)
	st := f.nextClosed(t)
	want, frozenHB := relay.ReasonClientHeartbeatTimeout, st.ClientHeartbeat
	if side == "upstream" {
		want, frozenHB = relay.ReasonUpstreamHeartbeatTimeout, st.UpstreamHeartbeat
	}
	if st.Reason != want {
		t.Errorf("pair ended with %v, want %v", st.Reason, want)
	}
	if frozenHB.Missed != pol.MaxMissed {
		t.Errorf("%s heartbeat %+v, want %d misses", side, frozenHB, pol.MaxMissed)
	}
}

// TestTLSBackpressure is TestBackpressure's first case on a TLS pair: the
// TLS upstream stops reading while the TLS client writes as fast as it
// can; the engine must hold no more than on a plain pair, and deliver
// everything intact once the upstream reads again.
func TestTLSBackpressure(t *testing.T) {
	m := newTLSMaterial(t)
	var stop atomic.Bool
	resume := make(chan struct{})
	done := make(chan struct{})
	upResult := make(chan floodResult, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(maxMessage)
		ctx, cancel := context.WithTimeout(r.Context(), 3*stallBound)
		defer cancel()
		if r.URL.Path == "/slow-reader" {
			select {
			case <-resume:
			case <-done:
				return
			case <-ctx.Done():
				return
			}
			n, err := drainFlood(ctx, c)
			upResult <- floodResult{n, err}
		}
		// Echo what comes (the probe), and answer the client's close.
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil || c.Write(ctx, typ, msg) != nil {
				return
			}
		}
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{m.server.TLS}, NextProtos: []string{"http/1.1"}}
	up.StartTLS()
	t.Cleanup(func() {
		close(done)
		up.Close()
	})
	f := newTLSFixture(t, tlsFixtureOptions{
		listener:       m.listenerTLS(),
		upstream:       strings.Replace(up.URL, "https://", "wss://", 1),
		upstreamTLS:    &config.UpstreamTLS{CAFile: m.caFile, ServerName: "127.0.0.1"},
		readBufferSize: backpressureReadBuffer,
	})
	conf := m.clientTLS(nil, nil)
	f.requireRelay(t, conf, nil)

	c, err := f.dial(t, "/slow-reader", conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv(t, f.attached, "Attach"); err != nil {
		t.Fatal(err)
	}
	watch := watchBuffered(f.engine)
	ctx, cancel := context.WithTimeout(context.Background(), 3*stallBound)
	defer cancel()
	wrote := make(chan floodResult, 1)
	go func() {
		n, err := flood(ctx, c, &stop)
		wrote <- floodResult{n, err}
	}()
	select {
	case <-watch.stalled:
	case <-time.After(stallBound):
		t.Errorf("the engine never held bytes for %d samples in a row within %v", stallSamples, stallBound)
	}
	stop.Store(true)
	close(resume)
	w := recvWithin(t, wrote, 2*stallBound, "client writer result")
	got := recvWithin(t, upResult, 2*stallBound, "upstream reader result")
	watch.finish(t)
	if w.err != nil {
		t.Errorf("client: %v", w.err)
	}
	if got.err != nil {
		t.Errorf("upstream: %v", got.err)
	}
	if w.n != got.n {
		t.Errorf("client wrote %d messages, upstream read %d", w.n, got.n)
	}
	closeNormallyTLS(t, f, c)
}
