package wsload

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// requireNetns skips the test when this process cannot create network
// namespaces (not root, no ip or iptables), or fails it when
// WSALIVE_REQUIRE_NETNS=1 says the environment must be able to.
func requireNetns(t *testing.T) {
	t.Helper()
	err := NetnsSupport()
	if err == nil {
		return
	}
	if os.Getenv("WSALIVE_REQUIRE_NETNS") == "1" {
		t.Fatalf("the blackhole test needs root, ip and iptables (WSALIVE_REQUIRE_NETNS=1): %v", err)
	}
	t.Skipf("skipping: the blackhole test needs root, ip and iptables: %v "+
		"(set WSALIVE_REQUIRE_NETNS=1 to make this a failure)", err)
}

// buildWsalive builds the proxy under test into a temporary directory.
func buildWsalive(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found to build wsalive: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "wsalive")
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/wsalive/wsalive/cmd/wsalive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wsalive: %v\n%s", err, out)
	}
	return bin
}

// fastTemplate is a proxy configuration with a 1s/1s/1 heartbeat toward
// side (a 2 s bound) and a short close timeout, so that the test is quick.
func fastTemplate(side string) string {
	return fmt.Sprintf(`listener {
  address = "{{listen}}"
}

route "blackhole" {
  upstream      = "{{upstream}}"
  close_timeout = "1s"

  heartbeat %q {
    interval   = "1s"
    timeout    = "1s"
    max_missed = 1
  }
}
`, side)
}

func TestBlackholeDetectsVanishedPeer(t *testing.T) {
	requireNetns(t)
	bin := buildWsalive(t)
	const (
		n     = 5
		bound = 2 * time.Second // 1s interval + 1s timeout x 1
		slack = 1500 * time.Millisecond
	)
	for _, mode := range []Mode{ModeBlackholeClient, ModeBlackholeUpstream} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			side := mode.blackholeSide()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var ready bool
			sum, err := Run(ctx, Config{
				Mode:        mode,
				N:           n,
				ProxyBin:    bin,
				ProxyConfig: fastTemplate(side),
				MaxWait:     bound + slack + time.Second,
				Ready:       func(opened, failed int) { ready = opened == n && failed == 0 },
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := sum.Blackhole
			if st == nil {
				t.Fatalf("no blackhole stats: %+v", sum)
			}
			var text bytes.Buffer
			sum.WriteText(&text)
			t.Logf("\n%s", text.String())

			if !ready || sum.Opened != n || st.Connected != n {
				t.Fatalf("ready %v, opened %d, connected %d; want %d", ready, sum.Opened, st.Connected, n)
			}
			if st.BoundS != bound.Seconds() || st.BoundFrom != "config" {
				t.Errorf("bound %vs from %q, want %v from the config", st.BoundS, st.BoundFrom, bound)
			}
			if st.Detected != n || st.Undetected != 0 || st.EndedBefore != 0 || sum.Errors != 0 {
				t.Fatalf("detected %d, undetected %d, ended before %d, errors %v",
					st.Detected, st.Undetected, st.EndedBefore, sum.ErrorKinds)
			}
			want := "1001 " + side + " heartbeat timeout"
			for _, d := range st.Detections {
				if d.Close != want {
					t.Errorf("a pair ended with %q, want %q", d.Close, want)
				}
				if d.Seconds > (bound + slack).Seconds() {
					t.Errorf("detected after %.3fs, want within %v", d.Seconds, bound+slack)
				}
			}
			assertCleanedUp(t, st.Netns, st.ProxyPID)
		})
	}
}

// assertCleanedUp checks that the namespace, its veth pair and the proxy
// (when proxyPID is not 0) are gone.
func assertCleanedUp(t *testing.T, ns string, proxyPID int) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ns {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	var pid, seq int
	if _, err := fmt.Sscanf(ns, netnsPrefix+"-%d-%d", &pid, &seq); err != nil {
		t.Fatalf("namespace name %q: %v", ns, err)
	}
	link := fmt.Sprintf("%s%dh%d", netnsPrefix, pid, seq)
	if _, err := os.Stat("/sys/class/net/" + link); err == nil {
		t.Errorf("veth %s left behind", link)
	}
	if proxyPID > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", proxyPID)); err == nil &&
			strings.HasPrefix(string(b), "Name:\twsalive\n") {
			t.Errorf("proxy process %d left running", proxyPID)
		}
	}
}

func TestDefaultBlackholeTemplateBound(t *testing.T) {
	for _, side := range []string{"client", "upstream"} {
		text := ExpandTemplate(DefaultBlackholeTemplate(side), "127.0.0.1:1", "ws://127.0.0.1:2", "127.0.0.1:3")
		desc, bound, err := heartbeatBound(text, side)
		if err != nil {
			t.Fatalf("%s: %v\n%s", side, err, text)
		}
		if bound != 8*time.Second || desc != side+" interval=5s timeout=3s max_missed=1" {
			t.Errorf("%s: %q, bound %v; want 5s/3s/1 and 8s", side, desc, bound)
		}
	}
	// The other side of the default template keeps the proxy's defaults.
	text := ExpandTemplate(DefaultBlackholeTemplate("client"), "127.0.0.1:1", "ws://127.0.0.1:2", "")
	if _, bound, err := heartbeatBound(text, "upstream"); err != nil || bound <= 8*time.Second {
		t.Errorf("upstream bound of the client template: %v, %v", bound, err)
	}
}

func TestBlackholeConfigValidation(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{
			name:    "no proxy binary",
			cfg:     Config{Mode: ModeBlackholeClient, N: 1},
			wantErr: "needs the proxy binary",
		},
		{
			name:    "template without listen",
			cfg:     Config{Mode: ModeBlackholeUpstream, N: 1, ProxyBin: "x", ProxyConfig: `upstream = "{{upstream}}"`},
			wantErr: "no {{listen}} placeholder",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
	c, err := Config{Mode: ModeBlackholeClient, N: 1, ProxyBin: "x"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxWait != DefaultMaxWait || c.ProxyConfig != DefaultBlackholeTemplate("client") {
		t.Fatalf("defaults not applied: max wait %v, template %q", c.MaxWait, c.ProxyConfig)
	}
}

func TestBlackholeSummarize(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	hb := "1001 client heartbeat timeout"
	var ends []connEnd
	// 100 detections at 7.01 ... 8.00 s, listed backwards.
	for i := 100; i >= 1; i-- {
		ends = append(ends, connEnd{at: at(7 + float64(i)/100), what: hb})
	}
	ends = append(ends,
		connEnd{at: at(8.5), what: "EOF without close frame"},
		connEnd{at: at(-1), what: "1000"},      // before the blackhole
		connEnd{at: at(61), what: hb},          // after max-wait: undetected
		connEnd{at: at(8.05), what: "1001 xy"}, // over the bound
	)
	st := &BlackholeStats{Connected: 105, BoundS: 8, Closes: map[string]int{}}
	var errs errorCounter
	st.summarize(ends, t0, time.Minute, &errs)

	if st.Detected != 102 || st.EndedBefore != 1 || st.Undetected != 2 || st.OverBound != 2 {
		t.Fatalf("detected %d, before %d, undetected %d, over %d",
			st.Detected, st.EndedBefore, st.Undetected, st.OverBound)
	}
	near := func(got, want float64) bool { return got > want-1e-6 && got < want+1e-6 }
	// Nearest rank of 102 sorted values: p50 is the 51st (7.51), p90 the
	// 92nd (7.92), p99 the 101st (8.05), max 8.5.
	if !near(st.MinS, 7.01) || !near(st.P50S, 7.51) || !near(st.P90S, 7.92) ||
		!near(st.P99S, 8.05) || !near(st.MaxS, 8.5) {
		t.Fatalf("min %v p50 %v p90 %v p99 %v max %v", st.MinS, st.P50S, st.P90S, st.P99S, st.MaxS)
	}
	if st.Closes[hb] != 100 || st.Closes["EOF without close frame"] != 1 || st.Closes["1001 xy"] != 1 {
		t.Fatalf("closes %v", st.Closes)
	}
	if k := errs.snapshot(); k["not detected within max-wait"] != 2 || k["ended before the blackhole: 1000"] != 1 {
		t.Fatalf("errors %v", k)
	}

	var csv bytes.Buffer
	if err := st.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if len(lines) != 103 || lines[0] != "rank,detection_s,cdf,close" ||
		lines[1] != "1,7.010000,0.009615,"+hb || lines[102] != "102,8.500000,0.980769,EOF without close frame" {
		t.Fatalf("csv: %d lines, first %q, second %q, last %q", len(lines), lines[0], lines[1], lines[len(lines)-1])
	}
}

// TestBackendRecordsEnds checks the blackhole backend on loopback, no
// namespace needed: it answers pings, echoes, and records a close frame's
// code and reason, or EOF.
func TestBackendRecordsEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := newEndRecorder()
	b := serveBackend(ln, rec)
	defer b.close()
	url := "ws://" + ln.Addr().String() + "/"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	c1 := dialWS(t, ctx, url)
	defer c1.Close()
	c1.Write(clientFrame(ws.OpPing, []byte("p")))
	c1.Write(clientFrame(ws.OpText, []byte("hello")))
	for _, want := range []struct {
		op ws.OpCode
		p  string
	}{{ws.OpPong, "p"}, {ws.OpText, "hello"}} {
		f, err := ws.ReadFrame(c1)
		if err != nil || f.Header.OpCode != want.op || string(f.Payload) != want.p {
			t.Fatalf("got %v %q %v, want %v %q", f.Header.OpCode, f.Payload, err, want.op, want.p)
		}
	}
	c1.Write(clientFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "client heartbeat timeout")))
	if f, err := ws.ReadFrame(c1); err != nil || f.Header.OpCode != ws.OpClose || closeCodeOf(f.Payload) != ws.StatusGoingAway {
		t.Fatalf("close answer: %+v %v", f.Header, err)
	}

	c2 := dialWS(t, ctx, url)
	for b.upgraded.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	c2.Close()

	for rec.count() < 2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	got := map[string]bool{}
	for _, e := range rec.stop() {
		got[e.what] = true
	}
	if !got["1001 client heartbeat timeout"] || !got["EOF without close frame"] || len(got) != 2 {
		t.Fatalf("recorded %v", got)
	}
}

// The netns test dials from threads it moves into a namespace; make sure
// that this never leaks into the test's other goroutines.
func TestNetnsDoLeavesCallerThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	before, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Skipf("cannot read the thread's namespace: %v", err)
	}
	requireNetns(t)
	ns, err := newNetns(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.close()
	var inside string
	if err := ns.do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if inside == before || after != before {
		t.Fatalf("root %s, inside %s, after %s", before, inside, after)
	}
	if err := ns.close(); err != nil {
		t.Fatal(err)
	}
	assertCleanedUp(t, ns.name, 0)
}

func TestExpandVars(t *testing.T) {
	got := ExpandVars("listen {{listen}}; up {{upstream}} / {{upstream_addr}}; admin {{admin}}; pid {{dir}}/x.pid",
		TemplateVars{Listen: "10.0.0.1:80", Upstream: "ws://127.0.0.1:3000", Admin: "127.0.0.1:9", Dir: "/tmp/d"})
	want := "listen 10.0.0.1:80; up ws://127.0.0.1:3000 / 127.0.0.1:3000; admin 127.0.0.1:9; pid /tmp/d/x.pid"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestBlackholeProxyCmdValidation(t *testing.T) {
	// Another proxy needs its own template, with host:port upstream.
	if _, err := (Config{Mode: ModeBlackholeClient, N: 1, ProxyCmd: []string{"nginx"}}).withDefaults(); err == nil ||
		!strings.Contains(err.Error(), "needs a configuration template") {
		t.Errorf("no template: %v", err)
	}
	c, err := Config{Mode: ModeBlackholeClient, N: 1, ProxyCmd: []string{"nginx", "-c", "{{config}}"},
		ProxyConfig: "listen {{listen}}; proxy_pass http://{{upstream_addr}};", ProxyConfigName: "nginx.conf"}.withDefaults()
	if err != nil || c.ProxyConfigName != "nginx.conf" {
		t.Errorf("nginx template: %v, %q", err, c.ProxyConfigName)
	}
	if _, err := (Config{Mode: ModeBlackholeClient, N: 1, ProxyBin: "x", ProxyConfigName: "../x.hcl"}).withDefaults(); err == nil {
		t.Error("a configuration name with a path was accepted")
	}
}
