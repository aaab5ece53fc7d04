package proxy

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
)

// httpUpstream is a net/http upstream that serves plain requests and
// answers WebSocket upgrades with a hand-written 101 (the fake relay then
// pipes bytes). It records every request it saw.
type httpUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	// sse releases the SSE handler's next event.
	sse chan struct{}
}

func (u *httpUpstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.seen...)
}

func startHTTPUpstream(t *testing.T) *httpUpstream {
	t.Helper()
	u := &httpUpstream{sse: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-u.sse:
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(newPattern(1), n))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			fmt.Fprintf(w, "%s=%s\n", k, strings.Join(r.Header.Values(k), "|"))
		}
		fmt.Fprintf(w, "Host=%s\n", r.Host)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			http.Error(w, "plain request on /ws", http.StatusTeapot)
			return
		}
		if r.URL.Query().Get("refuse") != "" {
			http.Error(w, "no websocket for you", http.StatusForbidden)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		_, _ = brw.WriteString(switching(r, ""))
		_ = brw.Flush()
		// Echo whatever comes behind the 101 until the client closes.
		_, _ = io.Copy(c, brw)
		_ = c.Close()
	})
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r)
		u.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// pattern is a deterministic byte stream, so that both ends of a large
// transfer can check it without holding it.
type pattern struct{ r *rand.ChaCha8 }

func newPattern(seed byte) *pattern {
	var s [32]byte
	s[0] = seed
	return &pattern{r: rand.NewChaCha8(s)}
}

func (p *pattern) Read(b []byte) (int, error) { return p.r.Read(b) }

func passRoute(u *httpUpstream) *config.Route {
	r := testRoute("app", u.Listener.Addr().String(), 2*time.Second)
	r.HTTP = config.HTTPProxy
	return r
}

// readResponse reads one response and its body from br.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// TestKeepAliveThenUpgrade sends several plain requests on one TCP
// connection, then upgrades that same connection: net/http serves the
// first ones, the upgrade is hijacked onto the WebSocket path, and the
// bytes sent behind it reach the upstream through the pair.
func TestKeepAliveThenUpgrade(t *testing.T) {
	up := startHTTPUpstream(t)
	p := startProxy(t, []*config.Route{passRoute(up)}, config.Listener{}, true)
	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /hello?n=%d HTTP/1.1\r\nHost: app.example\r\n\r\n", i)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != fmt.Sprintf("hello %d", i) || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
	// The upgrade comes with bytes behind it in the same write.
	if _, err := io.WriteString(c, upgradeRequest("/ws", "app.example", "")+"behind"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	h := p.relay.waitHandoff(t)
	if string(h.ClientBuffered) != "behind" {
		t.Errorf("client buffered %q, want %q", h.ClientBuffered, "behind")
	}
	// The upstream echoes: the bytes went through the pair.
	got := make([]byte, len("behind"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "behind" {
		t.Fatalf("echo %q %v", got, err)
	}
	if n := len(up.requests()); n != 4 {
		t.Errorf("upstream saw %d requests, want 4", n)
	}
}

// TestPlainThenUpgradeInOneWrite pipelines a plain request and an upgrade
// in one write, so the upgrade arrives inside the replayed bytes.
func TestPlainThenUpgradeInOneWrite(t *testing.T) {
	up := startHTTPUpstream(t)
	p := startProxy(t, []*config.Route{passRoute(up)}, config.Listener{}, true)
	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /hello?n=1 HTTP/1.1\r\nHost: a\r\n\r\n"+upgradeRequest("/ws", "a", "")+"tail"); err != nil {
		t.Fatal(err)
	}
	if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != "hello 1" {
		t.Fatalf("plain: %d %q", resp.StatusCode, body)
	}
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if h := p.relay.waitHandoff(t); string(h.ClientBuffered) != "tail" {
		t.Errorf("client buffered %q, want %q", h.ClientBuffered, "tail")
	}
}

func TestPassThroughAnswers(t *testing.T) {
	up := startHTTPUpstream(t)
	route := passRoute(up)
	route.MaxBodySize = 1000
	reject := testRoute("wsonly", up.Listener.Addr().String(), 2*time.Second)
	reject.PathPrefix = "/wsonly"
	reject.HTTP = config.HTTPReject
	dead := testRoute("dead", closedAddr(t), 2*time.Second)
	dead.PathPrefix = "/dead"
	p := startProxy(t, []*config.Route{route, reject, dead}, config.Listener{}, true)

	cases := []struct {
		name, raw, method string
		status            int
		body              string
		close             bool
	}{
		{name: "http-1.0", raw: "GET /hello?n=10 HTTP/1.0\r\nHost: a\r\n\r\n", status: 200, body: "hello 10", close: true},
		{name: "head", raw: "HEAD /hello?n=abc HTTP/1.1\r\nHost: a\r\n\r\n", method: "HEAD", status: 200, body: ""},
		{name: "body-at-limit", raw: "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 1000), status: 200, body: "1000 "},
		{name: "content-length-over-limit", raw: "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("x", 1001), status: 413},
		{name: "chunked-over-limit", raw: "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + strings.Repeat("x", 1001) + "\r\n0\r\n\r\n", status: 413},
		{name: "expect-100-continue", raw: "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", status: 200, body: "3 "},
		{name: "reject-route", raw: "GET /wsonly HTTP/1.1\r\nHost: a\r\n\r\n", status: 426},
		{name: "upstream-down", raw: "GET /dead HTTP/1.1\r\nHost: a\r\n\r\n", status: 502},
		{name: "other-upgrade-ignored", raw: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", status: http.StatusTeapot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, p.addr)
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			// Interim answers come first, possibly more than one (RFC 9110
			// §15.2: a client must parse one or more 1xx before the final
			// answer). With Expect: 100-continue, wsalive's own server says
			// 100 when the proxy starts reading the body, and the
			// upstream's 100 may be passed on as well, depending on timing.
			resp, body := readResponse(t, br, method)
			for n := 0; resp.StatusCode == http.StatusContinue && n < 3; n++ {
				resp, body = readResponse(t, br, method)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if !strings.HasPrefix(body, tc.body) {
				t.Errorf("body %q, want prefix %q", body, tc.body)
			}
			if tc.method == "HEAD" && resp.ContentLength != int64(len("hello abc")) {
				t.Errorf("HEAD Content-Length %d, want %d", resp.ContentLength, len("hello abc"))
			}
			if tc.close {
				expectClosed(t, c, br)
			}
		})
	}
}

// TestSSEFlushedPerEvent checks that each event reaches the client while
// the upstream still holds the next one back: nothing is buffered.
func TestSSEFlushedPerEvent(t *testing.T) {
	up := startHTTPUpstream(t)
	p := startProxy(t, []*config.Route{passRoute(up)}, config.Listener{}, true)
	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /sse HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := events.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		if blank, _ := events.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not terminated: %q", i, blank)
		}
		// Only now may the upstream send the next event.
		select {
		case up.sse <- struct{}{}:
		case <-time.After(waitBound):
			t.Fatal("upstream handler gone")
		}
	}
}

// TestLargeBodies moves 100 MiB each way through the pass-through and
// checks every byte.
func TestLargeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB each way")
	}
	const size = 100 << 20
	up := startHTTPUpstream(t)
	p := startProxy(t, []*config.Route{passRoute(up)}, config.Listener{}, true)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}
	defer client.CloseIdleConnections()

	t.Run("upload", func(t *testing.T) {
		resp, err := client.Post("http://"+p.addr+"/upload", "application/octet-stream", io.LimitReader(newPattern(2), size))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := sha256.New()
		io.Copy(h, io.LimitReader(newPattern(2), size))
		if want := fmt.Sprintf("%d %x", size, h.Sum(nil)); string(body) != want {
			t.Fatalf("upstream got %q, want %q", body, want)
		}
	})
	t.Run("download", func(t *testing.T) {
		resp, err := client.Get(fmt.Sprintf("http://%s/download?size=%d", p.addr, size))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, want := sha256.New(), sha256.New()
		n, err := io.Copy(got, resp.Body)
		if err != nil || n != size {
			t.Fatalf("read %d bytes, %v", n, err)
		}
		io.Copy(want, io.LimitReader(newPattern(1), size))
		if string(got.Sum(nil)) != string(want.Sum(nil)) {
			t.Fatal("downloaded bytes differ")
		}
	})
}

// TestHTTPSmuggling covers the ways a request could sneak past the
// upgrade decision.
func TestHTTPSmuggling(t *testing.T) {
	up := startHTTPUpstream(t)
	p := startProxy(t, []*config.Route{passRoute(up)}, config.Listener{}, true)

	t.Run("content-length-and-transfer-encoding-on-upgrade", func(t *testing.T) {
		ex := roundTrip(t, p.addr, upgradeRequest("/ws", "a", "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n")+"0\r\n\r\n")
		if ex.resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", ex.resp.StatusCode)
		}
		expectClosed(t, ex.conn, ex.br)
	})
	t.Run("content-length-and-transfer-encoding-plain", func(t *testing.T) {
		// CL.TE: a front end that believed Content-Length would pass the
		// "GET /smuggled" as part of the body. Here the chunked body ends
		// at 0 and what follows is a request of its own, parsed and
		// proxied as such: the upstream sees exactly two clean requests.
		before := len(up.requests())
		c := dialProxy(t, p.addr)
		br := bufio.NewReader(c)
		smuggled := "GET /hello?n=smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(5+len(smuggled))+"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
		if resp, body := readResponse(t, br, "POST"); resp.StatusCode != 200 || body[:2] != "0 " {
			t.Fatalf("first: %d %q", resp.StatusCode, body)
		}
		if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != "hello smuggled" {
			t.Fatalf("second: %d %q", resp.StatusCode, body)
		}
		reqs := up.requests()[before:]
		if len(reqs) != 2 || reqs[0].ContentLength > 0 || reqs[1].URL.Path != "/hello" {
			t.Fatalf("upstream saw %d requests", len(reqs))
		}
		if cl := reqs[0].Header.Get("Content-Length"); cl != "" {
			t.Errorf("upstream got Content-Length %q with a chunked body", cl)
		}
	})
	t.Run("request-pipelined-behind-upgrade", func(t *testing.T) {
		// The second request is bytes of the WebSocket stream, relayed
		// after the 101: it never reaches an HTTP parser of the proxy.
		before := len(up.requests())
		c := dialProxy(t, p.addr)
		second := "GET /hello?n=behind HTTP/1.1\r\nHost: a\r\n\r\n"
		io.WriteString(c, upgradeRequest("/ws", "a", "")+second)
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		if h := p.relay.waitHandoff(t); string(h.ClientBuffered) != second {
			t.Fatalf("client buffered %q", h.ClientBuffered)
		}
		if n := len(up.requests()) - before; n != 1 {
			t.Fatalf("upstream parsed %d requests, want only the upgrade", n)
		}
	})
	t.Run("bytes-after-non-101", func(t *testing.T) {
		before := len(up.requests())
		c := dialProxy(t, p.addr)
		br := bufio.NewReader(c)
		io.WriteString(c, upgradeRequest("/ws?refuse=1", "a", ""))
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != http.StatusForbidden || !resp.Close {
			t.Fatalf("status %d close=%v body %q", resp.StatusCode, resp.Close, body)
		}
		// Whatever the client sends next is not a request any more.
		io.WriteString(c, "GET /hello?n=after HTTP/1.1\r\nHost: a\r\n\r\n")
		expectClosed(t, c, br)
		for _, r := range up.requests()[before:] {
			if r.URL.Path == "/hello" {
				t.Fatal("a request sent after a refused upgrade reached the upstream")
			}
		}
	})
	t.Run("upstream-101-to-plain-request", func(t *testing.T) {
		raw := startRawUpstream(t, func(c net.Conn, req *http.Request) {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		})
		p := startProxy(t, []*config.Route{passRoute(&httpUpstream{Server: &httptest.Server{Listener: fakeAddrListener(raw.addr)}})}, config.Listener{}, true)
		ex := roundTrip(t, p.addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if ex.resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", ex.resp.StatusCode)
		}
	})
}

// fakeAddrListener is a listener that only reports addr, for building a
// route to an upstream started elsewhere.
type fakeAddrListener string

func (fakeAddrListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeAddrListener) Close() error              { return nil }
func (a fakeAddrListener) Addr() net.Addr {
	ta, _ := net.ResolveTCPAddr("tcp", string(a))
	return ta
}

// TestPassThroughRetriesAFailedDial sends plain requests to a pool of one
// refusing and one live server: every request is answered by the live
// one, a body included (the refused dial sent none of it), and the
// refusing server's failures reach its passive health.
func TestPassThroughRetriesAFailedDial(t *testing.T) {
	up := startHTTPUpstream(t)
	refusing := closedAddr(t)
	never := poolServer(refusing)
	never.MaxFails = 0 // never skipped: every other request dials it first
	route := poolRoute(config.BalanceRoundRobin, never, poolServer(up.Listener.Addr().String()))
	route.HTTP = config.HTTPProxy
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)

	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	body := strings.Repeat("x", 5000)
	want := fmt.Sprintf("%d %x", len(body), sha256.Sum256([]byte(body)))
	// Round robin alternates between the two servers, so of each two
	// requests in a row one meets the refusing server first: two GETs,
	// two POSTs, and so on.
	for i := range 8 {
		raw := fmt.Sprintf("GET /hello?n=%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		wantBody := fmt.Sprintf("hello %d", i)
		if i/2%2 == 1 {
			raw = fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			wantBody = want
		}
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, got := readResponse(t, br, "GET")
		if resp.StatusCode != http.StatusOK || got != wantBody {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, got, wantBody)
		}
	}
	if n := len(up.requests()); n != 8 {
		t.Errorf("live server saw %d requests, want 8", n)
	}
	st := p.srv.UpstreamStates()["pool"][0]
	if !strings.Contains(st.LastError, "refused") {
		t.Errorf("refusing server's failure not recorded: %+v", st)
	}

	// With the default max_fails the first refusal takes the server out
	// of rotation; the request that met it was still answered.
	route2 := poolRoute(config.BalanceRoundRobin, poolServer(refusing), poolServer(up.Listener.Addr().String()))
	route2.HTTP = config.HTTPProxy
	p2 := startProxy(t, []*config.Route{route2}, config.Listener{}, true)
	c2 := dialProxy(t, p2.addr)
	br2 := bufio.NewReader(c2)
	if _, err := io.WriteString(c2, "GET /hello?n=1 HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, got := readResponse(t, br2, "GET"); resp.StatusCode != http.StatusOK || got != "hello 1" {
		t.Fatalf("first request: %d %q", resp.StatusCode, got)
	}
	if st := p2.srv.UpstreamStates()["pool"][0]; st.State != "skipped" || st.Fails != 1 {
		t.Errorf("refusing server after one failed dial: %+v, want skipped with 1 failure", st)
	}
}

// TestPassThroughDoesNotRetryASingleServer: with nowhere else to go, a
// refused dial is the client's 502.
func TestPassThroughDoesNotRetryASingleServer(t *testing.T) {
	route := poolRoute(config.BalanceRoundRobin, poolServer(closedAddr(t)))
	route.HTTP = config.HTTPProxy
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	c := dialProxy(t, p.addr)
	if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	if resp, got := readResponse(t, bufio.NewReader(c), "GET"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d %q, want 502", resp.StatusCode, got)
	}
}

// TestPassThroughTriesEveryServer: a request moves on from server to
// server until one connects, not only to a second one.
func TestPassThroughTriesEveryServer(t *testing.T) {
	up := startHTTPUpstream(t)
	var servers []config.UpstreamServer
	for range 2 {
		s := poolServer(closedAddr(t))
		s.MaxFails = 0 // never skipped: requests keep meeting it first
		servers = append(servers, s)
	}
	servers = append(servers, poolServer(up.Listener.Addr().String()))
	route := poolRoute(config.BalanceRoundRobin, servers...)
	route.HTTP = config.HTTPProxy
	p := startProxy(t, []*config.Route{route}, config.Listener{}, true)
	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	// Round robin starts each request at the next server: one in three
	// meets both refusing servers before the live one.
	for i := range 6 {
		if _, err := fmt.Fprintf(c, "GET /hello?n=%d HTTP/1.1\r\nHost: a\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		if resp, got := readResponse(t, br, "GET"); resp.StatusCode != http.StatusOK || got != fmt.Sprintf("hello %d", i) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
	}
	for i, st := range p.srv.UpstreamStates()["pool"][:2] {
		if !strings.Contains(st.LastError, "refused") {
			t.Errorf("refusing server %d: failure not recorded: %+v", i, st)
		}
	}
}

// TestPassThroughFailsOverOnTLS: toward a wss:// pool, a server whose TLS
// handshake fails is a failed connect like a refused one: the request
// goes to the next server, and the failure (with its cause) counts
// against the server's passive health.
func TestPassThroughFailsOverOnTLS(t *testing.T) {
	m := newTestMaterial(t)
	good := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "over TLS %v", r.TLS != nil)
	}))
	good.TLS = &tls.Config{Certificates: []tls.Certificate{m.server.TLS}}
	good.StartTLS()
	t.Cleanup(good.Close)
	notTLS := startPlainHTTPServer(t)

	wss := func(addr string) config.UpstreamServer {
		s := poolServer(addr)
		s.Raw, s.TLS = "wss://"+addr, true
		return s
	}
	bad := wss(notTLS)
	bad.MaxFails = 0
	route := wssRoute(notTLS, &config.UpstreamTLS{CAFile: m.caFile, ServerName: "backend.internal"})
	route.Servers = []config.UpstreamServer{bad, wss(good.Listener.Addr().String())}
	route.HTTP = config.HTTPProxy
	p := startTLSProxy(t, []*config.Route{route}, nil)
	c := dialProxy(t, p.addr)
	br := bufio.NewReader(c)
	for i := range 4 {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if resp, got := readResponse(t, br, "GET"); resp.StatusCode != http.StatusOK || got != "over TLS true" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
	}
	if st := p.srv.UpstreamStates()["wss"][0]; !strings.Contains(st.LastError, "not TLS") {
		t.Errorf("the non-TLS server's failure: %+v, want its cause", st)
	}

	// A server that accepts TCP and never speaks TLS gets its share of
	// handshake_timeout (half of 4 s, at least 2 s), not all of it: the
	// next server is tried in time.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close() // accepted by the kernel, never answered
	mute := wss(silent.Addr().String())
	mute.MaxFails = 0
	route2 := wssRoute(mute.Address, &config.UpstreamTLS{CAFile: m.caFile, ServerName: "backend.internal"})
	route2.Servers = []config.UpstreamServer{mute, wss(good.Listener.Addr().String())}
	route2.HTTP = config.HTTPProxy
	route2.HandshakeTimeout = 4 * time.Second
	p2 := startTLSProxy(t, []*config.Route{route2}, nil)
	c2 := dialProxy(t, p2.addr)
	_ = c2.SetDeadline(time.Now().Add(4 * time.Second))
	// Round robin: the first request meets the silent server first.
	if _, err := io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, got := readResponse(t, bufio.NewReader(c2), "GET"); resp.StatusCode != http.StatusOK || got != "over TLS true" {
		t.Fatalf("after a silent server: %d %q", resp.StatusCode, got)
	}
	if st := p2.srv.UpstreamStates()["wss"][0]; !strings.Contains(st.LastError, "deadline") {
		t.Errorf("the silent server's timeout not recorded: %+v", st)
	}
}

// closeCounter is a request body that counts its Closes.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

// TestHeldBody checks the body a retry may resend: a Close during the
// first try is held back while nothing was read, done at release without
// a retry, and left to the second try's Transport with one; once read,
// a body closes at once. It is closed exactly once in every case.
func TestHeldBody(t *testing.T) {
	t.Run("no retry", func(t *testing.T) {
		rc := &closeCounter{Reader: strings.NewReader("abc")}
		b := &heldBody{rc: rc, hold: true}
		_ = b.Close() // the failed first try's Transport
		if rc.closes != 0 {
			t.Fatal("closed while held")
		}
		b.release(false)
		if rc.closes != 1 {
			t.Fatalf("%d closes after release, want 1", rc.closes)
		}
	})
	t.Run("retry", func(t *testing.T) {
		rc := &closeCounter{Reader: strings.NewReader("abc")}
		b := &heldBody{rc: rc, hold: true}
		_ = b.Close()
		b.release(true)
		if rc.closes != 0 || b.wasRead() {
			t.Fatal("a body to retry was closed or read")
		}
		if got, _ := io.ReadAll(b); string(got) != "abc" {
			t.Fatalf("retry read %q", got)
		}
		_ = b.Close() // the second try's Transport
		_ = b.Close()
		if rc.closes != 1 {
			t.Fatalf("%d closes, want 1", rc.closes)
		}
	})
	t.Run("read", func(t *testing.T) {
		rc := &closeCounter{Reader: strings.NewReader("abc")}
		b := &heldBody{rc: rc, hold: true}
		_, _ = b.Read(make([]byte, 1))
		_ = b.Close()
		b.release(false)
		if rc.closes != 1 || !b.wasRead() {
			t.Fatalf("read body: %d closes, read %v", rc.closes, b.wasRead())
		}
	})
}
