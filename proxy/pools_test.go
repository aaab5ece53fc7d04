package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/relay"
)

// byteEchoUpstream is a real upstream server that completes the WebSocket
// handshake and then echoes every byte back (the fake relay copies bytes,
// so an echo of the raw stream is an echo of the frames).
func byteEchoUpstream(t *testing.T) *rawUpstream {
	return startRawUpstream(t, func(c net.Conn, req *http.Request) {
		if _, err := io.WriteString(c, switching(req, "")); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	})
}

// poolRoute is a catch-all route balancing among servers.
func poolRoute(balance config.Balance, servers ...config.UpstreamServer) *config.Route {
	r := testRoute("pool", servers[0].Address, 5*time.Second)
	r.Servers, r.Balance = servers, balance
	return r
}

func poolServer(addr string) config.UpstreamServer {
	return config.UpstreamServer{
		Upstream:    config.Upstream{Raw: "ws://" + addr, Address: addr},
		MaxFails:    config.DefaultMaxFails,
		FailTimeout: config.DefaultFailTimeout,
	}
}

// openPair completes a handshake through the proxy, checks that bytes go
// to an upstream and back, and returns which of ups took the pair, with
// the client connection (closed at cleanup) and the handoff.
func openPair(t *testing.T, p *testProxy, extra string, ups ...*rawUpstream) (int, net.Conn, relay.Handoff) {
	t.Helper()
	e := roundTrip(t, p.addr, upgradeRequest("/chat", "example.com", extra))
	if e.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101: %s", e.resp.StatusCode, e.body)
	}
	h := p.relay.waitHandoff(t)
	which := -1
	for i, u := range ups {
		select {
		case req := <-u.reqs:
			which = i
			if req.Host != u.addr {
				t.Errorf("upstream %s was sent Host %q, want its own address", u.addr, req.Host)
			}
		default:
		}
	}
	if which < 0 {
		t.Fatal("no upstream got the request")
	}
	msg := fmt.Sprintf("hello %d\n", time.Now().UnixNano())
	if _, err := io.WriteString(e.conn, msg); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(e.br).ReadString('\n')
	if err != nil || got != msg {
		t.Fatalf("echo through the pair: got %q, %v; want %q", got, err, msg)
	}
	return which, e.conn, h
}

func TestPoolSpreadsPairsAmongUpstreams(t *testing.T) {
	ups := []*rawUpstream{byteEchoUpstream(t), byteEchoUpstream(t), byteEchoUpstream(t)}
	route := poolRoute(config.BalanceRoundRobin, poolServer(ups[0].addr), poolServer(ups[1].addr), poolServer(ups[2].addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	counts := make([]int, len(ups))
	for range 9 {
		which, _, _ := openPair(t, p, "", ups...)
		counts[which]++
	}
	for i, n := range counts {
		if n != 3 {
			t.Errorf("upstream %d took %d of 9 pairs, want 3: %v", i, n, counts)
		}
	}
}

func TestPoolFailsOverFromARefusingUpstream(t *testing.T) {
	up := byteEchoUpstream(t)
	refusing := closedAddr(t)
	route := poolRoute(config.BalanceRoundRobin, poolServer(refusing), poolServer(up.addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	for i := range 6 {
		if which, _, _ := openPair(t, p, "", up); which != 0 {
			t.Fatalf("pair %d: not on the live upstream", i)
		}
	}
	states := p.srv.UpstreamStates()["pool"]
	if states[0].State != "skipped" || !strings.Contains(states[0].LastError, "refused") {
		t.Errorf("refusing upstream's state: %+v", states[0])
	}
	if states[1].Pairs != 6 {
		t.Errorf("live upstream counts %d pairs, want 6", states[1].Pairs)
	}
}

func TestPoolNeverRetriesAnHTTPAnswer(t *testing.T) {
	var ups [2]*rawUpstream
	for i := range ups {
		ups[i] = startRawUpstream(t, answerWith(func(*http.Request) string {
			return "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"
		}))
	}
	route := poolRoute(config.BalanceRoundRobin, poolServer(ups[0].addr), poolServer(ups[1].addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	for range 4 {
		e := roundTrip(t, p.addr, upgradeRequest("/chat", "example.com", ""))
		if e.resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want the upstream's 403", e.resp.StatusCode)
		}
		// One request reached exactly one upstream. An upstream records a
		// request before it answers, and a retry would have happened
		// before the proxy answered: both channels are final by now.
		got := 0
		for _, u := range ups {
			select {
			case <-u.reqs:
				got++
			default:
			}
		}
		if got != 1 {
			t.Fatalf("%d upstreams saw the request, want 1", got)
		}
	}
	for _, st := range p.srv.UpstreamStates()["pool"] {
		if st.State != "up" || st.Fails != 0 || st.Pairs != 0 {
			t.Errorf("an HTTP answer counted against %+v", st)
		}
	}
}

func TestPoolHashIsStickyPerKey(t *testing.T) {
	ups := []*rawUpstream{byteEchoUpstream(t), byteEchoUpstream(t), byteEchoUpstream(t)}
	route := poolRoute(config.BalanceHash, poolServer(ups[0].addr), poolServer(ups[1].addr), poolServer(ups[2].addr))
	route.HashKey = config.HashKey{Source: config.HashHeader, Name: "X-Room"}
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	seen := map[int]bool{}
	for room := range 6 {
		hdr := fmt.Sprintf("X-Room: room-%d\r\n", room)
		first, _, _ := openPair(t, p, hdr, ups...)
		for range 2 {
			if again, _, _ := openPair(t, p, hdr, ups...); again != first {
				t.Fatalf("room %d went to upstream %d, then %d", room, first, again)
			}
		}
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Errorf("six rooms all hashed to one upstream: %v", seen)
	}
}

func TestPoolLeastPairsCountsClosedPairs(t *testing.T) {
	ups := []*rawUpstream{byteEchoUpstream(t), byteEchoUpstream(t)}
	route := poolRoute(config.BalanceLeastPairs, poolServer(ups[0].addr), poolServer(ups[1].addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	var handoffs [2][]relay.Handoff
	for range 4 {
		which, _, h := openPair(t, p, "", ups...)
		handoffs[which] = append(handoffs[which], h)
	}
	if len(handoffs[0]) != 2 || len(handoffs[1]) != 2 {
		t.Fatalf("least_pairs spread 4 pairs as %d and %d", len(handoffs[0]), len(handoffs[1]))
	}
	// The engine reports two pairs of upstream 1 closed: the next two
	// pairs go there.
	for _, h := range handoffs[1] {
		p.srv.PairClosed(relay.PairStats{Route: "pool", UpstreamAddr: h.Upstream.RemoteAddr().String()})
	}
	for range 2 {
		if which, _, _ := openPair(t, p, "", ups...); which != 1 {
			t.Errorf("pair went to upstream %d, want 1, which has fewer pairs", which)
		}
	}
}

// TestReloadKeepsPoolState reloads a pool's route (new config values, as
// SIGHUP builds them) and checks that the unchanged servers keep their
// live pairs and passive health, and that the pairs from before the
// reload are released through the new pool.
func TestReloadKeepsPoolState(t *testing.T) {
	up := byteEchoUpstream(t)
	refusing := closedAddr(t)
	route := poolRoute(config.BalanceLeastPairs, poolServer(refusing), poolServer(up.addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	var handoffs []relay.Handoff
	for range 3 {
		_, _, h := openPair(t, p, "", up)
		handoffs = append(handoffs, h)
	}
	before := p.srv.UpstreamStates()["pool"]
	if before[0].State != "skipped" || before[1].Pairs != 3 {
		t.Fatalf("before the reload: %+v", before)
	}

	again := poolRoute(config.BalanceLeastPairs, poolServer(refusing), poolServer(up.addr))
	if err := p.srv.SetRoutes([]*config.Route{again}); err != nil {
		t.Fatal(err)
	}
	after := p.srv.UpstreamStates()["pool"]
	if after[0].State != "skipped" || after[0].Fails != before[0].Fails || after[0].LastError == "" {
		t.Errorf("refusing server's health forgotten by the reload: %+v, was %+v", after[0], before[0])
	}
	if after[1].Pairs != 3 {
		t.Errorf("live server counts %d pairs after the reload, want 3", after[1].Pairs)
	}
	for _, h := range handoffs {
		p.srv.PairClosed(relay.PairStats{Route: "pool", UpstreamAddr: h.Upstream.RemoteAddr().String()})
	}
	if st := p.srv.UpstreamStates()["pool"][1]; st.Pairs != 0 {
		t.Errorf("pairs from before the reload not released: %+v", st)
	}

	// A server whose settings changed starts afresh.
	changed := poolServer(refusing)
	changed.MaxFails = 3
	third := poolRoute(config.BalanceLeastPairs, changed, poolServer(up.addr))
	if err := p.srv.SetRoutes([]*config.Route{third}); err != nil {
		t.Fatal(err)
	}
	if st := p.srv.UpstreamStates()["pool"][0]; st.State != "up" || st.Fails != 0 {
		t.Errorf("changed server kept its old health: %+v", st)
	}
}

// TestUpstreamServerMetrics scrapes /metrics of a Prometheus fed by the
// server's pools: the refusing server is down with its failure counted,
// the live one up with its pair.
func TestUpstreamServerMetrics(t *testing.T) {
	up := byteEchoUpstream(t)
	refusing := closedAddr(t)
	route := poolRoute(config.BalanceRoundRobin, poolServer(refusing), poolServer(up.addr))
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	prom := metrics.NewPrometheus(metrics.PrometheusOptions{UpstreamServers: p.srv.UpstreamServers})
	openPair(t, p, "", up)

	rec := httptest.NewRecorder()
	prom.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		fmt.Sprintf(`wsalive_upstream_server_up{route="pool",server=%q} 0`, refusing),
		fmt.Sprintf(`wsalive_upstream_server_fails{route="pool",server=%q} 1`, refusing),
		fmt.Sprintf(`wsalive_upstream_server_pairs{route="pool",server=%q} 0`, refusing),
		fmt.Sprintf(`wsalive_upstream_server_up{route="pool",server=%q} 1`, up.addr),
		fmt.Sprintf(`wsalive_upstream_server_fails{route="pool",server=%q} 0`, up.addr),
		fmt.Sprintf(`wsalive_upstream_server_pairs{route="pool",server=%q} 1`, up.addr),
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
