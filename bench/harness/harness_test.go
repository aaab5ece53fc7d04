package harness

import (
	"context"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsalive/wsalive/bench/configs"
	"github.com/wsalive/wsalive/bench/wsload"
)

// TestSmoke runs the whole harness end to end with ShortPlan: it builds
// wsalive, wsload and legacy-echo, runs every scenario against direct and
// wsalive (and, without -short, against nginx, HAProxy and Caddy when they
// are installed), and renders the report and charts. The blackhole
// scenarios need root, ip and iptables; without them they are skipped with
// a note, unless WSALIVE_REQUIRE_NETNS=1.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Log("-short: direct and wsalive only")
	}
	targets := []string{TargetDirect, TargetWsalive}
	if !testing.Short() {
		for _, c := range []string{TargetNginx, TargetHAProxy, TargetCaddy, TargetNginxL4, TargetHAProxyL4} {
			if lookCompetitor(c) != "" {
				targets = append(targets, c)
			} else {
				t.Logf("%s is not installed: skipped", c)
			}
		}
	}
	out := t.TempDir()
	// The smoke takes about two minutes under -race on a quiet 2-core
	// machine with nginx and HAProxy installed; on a loaded one it took
	// over three, and a deadline that a slow machine misses is a flaky
	// test, not a finding. Five minutes stays within go test's default
	// ten for the package.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Bench(ctx, Options{
		Root:    root,
		OutDir:  out,
		Targets: targets,
		Reps:    1,
		Short:   true,
		// A busy machine slows the smoke; it does not make it wrong.
		QuietWait: -1,
		Command:   "go test ./bench/harness -run Smoke",
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Bench: %v", err)
	}
	netnsErr := wsload.NetnsSupport()
	if netnsErr != nil && os.Getenv("WSALIVE_REQUIRE_NETNS") == "1" {
		t.Fatalf("WSALIVE_REQUIRE_NETNS=1 but the blackhole scenarios cannot run: %v", netnsErr)
	}
	plan, err := WithClients(ShortPlan(), []string{wsload.ClientGobwas, wsload.ClientGorilla})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range plan {
		if sc.Kind == KindBlackhole && netnsErr != nil {
			continue
		}
		for _, tg := range res.Targets {
			if !sc.appliesTo(tg) {
				continue
			}
			for _, run := range res.failed(sc.Name, tg) {
				t.Errorf("%s × %s failed: %s", sc.Name, tg, run.Error)
			}
			runs := res.runs(sc.Name, tg)
			if len(runs) != 1 {
				t.Errorf("%s × %s: %d successful runs, want 1", sc.Name, tg, len(runs))
				continue
			}
			m := runs[0].Metrics
			if m[MetricLoadErrors] > 0 {
				t.Errorf("%s × %s: wsload counted errors: %v", sc.Name, tg, runs[0].LoadErrors)
			}
			switch sc.Kind {
			case KindEcho:
				if m[MetricMsgsPerSec] <= 0 || m[MetricRTTP50] <= 0 {
					t.Errorf("%s × %s: no throughput: %v", sc.Name, tg, m)
				}
				if tg != TargetDirect && m[MetricCPUPerMsg] <= 0 && m[MetricProxyCPU] > 0 {
					t.Errorf("%s × %s: no CPU per message: %v", sc.Name, tg, m)
				}
			case KindHandshake:
				if m[MetricConnsOpened] != float64(sc.N) || m[MetricHSP50] <= 0 {
					t.Errorf("%s × %s: %v", sc.Name, tg, m)
				}
			case KindIdle:
				if m[MetricPairs] != float64(sc.N) || m[MetricRSS0] <= 0 || m[MetricRSS] <= 0 {
					t.Errorf("%s × %s: %v", sc.Name, tg, m)
				}
				if tg == TargetWsalive && (m[MetricFloorUs] <= 0 || m[MetricPingRTPerS] != float64(sc.N)*2/5) {
					t.Errorf("%s × wsalive: no heartbeat per ping or floor: %v", sc.Name, m)
				}
			case KindStorm:
				if m[MetricConnsOpened] != float64(sc.N) || m[MetricHSPerSec] <= 0 || m[MetricHSP999] < m[MetricHSP50] {
					t.Errorf("%s × %s: %v", sc.Name, tg, m)
				}
				if _, ok := m[MetricCPUPerHS]; tg != TargetDirect && !ok {
					t.Errorf("%s × %s: no CPU per handshake: %v", sc.Name, tg, m)
				}
			case KindChurn:
				if n := sc.Rate * sc.Duration.Seconds(); m[MetricCompleted] != n || m[MetricChurnPerSec] <= 0 || m[MetricLifeP50] <= 0 {
					t.Errorf("%s × %s: completed %v of %v: %v", sc.Name, tg, m[MetricCompleted], n, m)
				}
			case KindBlackhole:
				if m[MetricConnected] == 0 {
					t.Errorf("%s × %s: nothing connected: %v", sc.Name, tg, m)
				}
				// How fast is bench/wsload's test's business; here every
				// pair must be found within the wait, and measured.
				if tg == TargetWsalive && (m[MetricDetected] != float64(sc.N) || len(runs[0].Detections) != sc.N || m[MetricBound] != 2) {
					t.Errorf("%s × wsalive: detected %v (%d times recorded) of %d, bound %v s",
						sc.Name, m[MetricDetected], len(runs[0].Detections), sc.N, m[MetricBound])
				}
			}
			if len(runs[0].Commands) == 0 {
				t.Errorf("%s × %s: no commands recorded", sc.Name, tg)
			}
		}
	}
	if netnsErr != nil && !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "blackhole") }) {
		t.Errorf("blackhole scenarios skipped without a note: %v", res.Notes)
	}

	// The results file, read back, renders the report and the charts.
	loaded, err := LoadResults(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Runs) != len(res.Runs) {
		t.Fatalf("results.json has %d runs, want %d", len(loaded.Runs), len(res.Runs))
	}
	md := filepath.Join(out, "BENCHMARKS.md")
	charts := filepath.Join(out, "charts")
	if err := Render(loaded, md, charts); err != nil {
		t.Fatalf("Render: %v", err)
	}
	checkReport(t, md, charts, netnsErr == nil)
	assertNoChildren(t)
}

// checkReport checks the rendered report and decodes every chart.
func checkReport(t *testing.T, md, charts string, blackhole bool) {
	t.Helper()
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	want := []string{"# Benchmarks", "go run ./bench/cmd/wsbench", "## Machine and versions",
		"## Exact commands", "messages/s", "RSS per pair", "wsalive against the issue's targets"}
	if blackhole {
		want = append(want, "## Blackhole detection")
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the report lacks %q", w)
		}
	}
	names := []string{ChartThroughput, ChartLatency, ChartResources}
	if blackhole {
		names = append(names, ChartDetection)
	}
	for _, name := range names {
		if !strings.Contains(text, name) {
			t.Errorf("the report does not show %s", name)
		}
		f, err := os.Open(filepath.Join(charts, name))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if img.Bounds().Dx() < 400 || img.Bounds().Dy() < 300 {
			t.Errorf("%s is only %v", name, img.Bounds())
		}
	}
}

// assertNoChildren checks that the harness left no child process running.
func assertNoChildren(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var live []int
		for _, pid := range descendants(os.Getpid()) {
			if !pidGone(pid) {
				live = append(live, pid)
			}
		}
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("child processes left running: %v", live)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestMedianAndRatio(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	res := &Results{}
	add := func(target string, round int, v float64) {
		res.Runs = append(res.Runs, Run{Scenario: "s", Target: target, Round: round, Metrics: map[string]float64{"m": v}})
	}
	// Round 2 is a slow round for everyone: ratios within rounds hide it.
	add("nginx", 1, 100)
	add("wsalive", 1, 120)
	add("nginx", 2, 50)
	add("wsalive", 2, 60)
	add("nginx", 3, 100)
	add("wsalive", 3, 130)
	res.Runs = append(res.Runs, Run{Scenario: "s", Target: "wsalive", Round: 4, Error: "boom", Metrics: map[string]float64{"m": 1}})
	if v, ok := res.Median("s", "wsalive", "m"); !ok || v != 120 {
		t.Errorf("median = %v, %v", v, ok)
	}
	if v, ok := res.Ratio("s", "wsalive", "nginx", "m"); !ok || math.Abs(v-1.2) > 1e-9 {
		t.Errorf("ratio = %v, %v; want 1.2", v, ok)
	}
	if _, ok := res.Ratio("s", "wsalive", "caddy", "m"); ok {
		t.Error("ratio against a missing target")
	}
	if got := res.perRound("s", "wsalive", "m", f0); got != "120 / 60 / 130" {
		t.Errorf("perRound = %q", got)
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 41234.6: "41,235", -1234567: "-1,234,567"} {
		if got := fmtInt(v); got != want {
			t.Errorf("fmtInt(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.25: "0.25", 2.5: "2.5", 12: "12", 500: "500", 25000: "25K", 41200: "41.2K", 1.5e6: "1.5M"} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
	for hi, wantLast := range map[float64]float64{1: 1, 7: 8, 43000: 50000, 0.3: 0.3, 160: 200} {
		ticks := niceTicks(hi)
		if ticks[0] != 0 || math.Abs(ticks[len(ticks)-1]-wantLast) > 1e-9 || len(ticks) < 3 || len(ticks) > 9 {
			t.Errorf("niceTicks(%v) = %v, want 0 … %v", hi, ticks, wantLast)
		}
	}
	if got := srcRanges(2); !slices.Equal(got, []string{"2-125", "126-250"}) {
		t.Errorf("srcRanges(2) = %v", got)
	}
	if got := srcRanges(3); len(got) != 3 || got[0] != "2-84" || got[2] != "168-250" {
		t.Errorf("srcRanges(3) = %v", got)
	}
}

// TestFontCoversLabels checks that every character the charts draw has a
// glyph of its own (not the box of a missing one).
func TestFontCoversLabels(t *testing.T) {
	labels := []string{
		"ECHO THROUGHPUT (MEDIAN; WHISKERS: MIN-MAX OF THE ROUNDS)", "0123456789", "41.2K 1.5M 12%",
		"RSS PER IDLE PAIR (BYTES)", "200 CONNECTIONS × 1 KIB", "PROXY CPU WITH IDLE PAIRS (% OF A CORE)",
		"wsalive, backend gone: 1,000/1,000", "BOUND 8S", "+1S", "P50", "P99", "N/A", "µs ≤ ≥",
		"GOAL 1,024 B", "GOAL 0.5 × NGINX",
	}
	for _, l := range labels {
		for _, r := range l {
			if r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			if _, ok := glyphs[r]; !ok {
				t.Errorf("no glyph for %q (in %q)", r, l)
			}
		}
	}
	for r, g := range glyphs {
		for _, row := range g {
			if len([]rune(row)) != glyphW {
				t.Errorf("glyph %q has a row %q of width %d", r, row, len(row))
			}
		}
	}
}

// TestRenderSynthetic renders a report from made-up results and checks
// the goals it states.
func TestRenderSynthetic(t *testing.T) {
	res := &Results{
		Started: time.Now().Add(-time.Minute), Finished: time.Now(), Reps: 2,
		Targets: []string{TargetDirect, TargetNginx, TargetWsalive},
		Version: map[string]string{"nginx": "1.22.1"},
	}
	for _, sc := range FullPlan() {
		var ts []string
		for _, tg := range res.Targets {
			if sc.appliesTo(tg) {
				ts = append(ts, tg)
			}
		}
		res.Scenarios = append(res.Scenarios, ScenarioInfo{Name: sc.Name, Kind: sc.Kind, Title: sc.Title, Params: sc.params(), Targets: ts})
	}
	add := func(sc, tg string, round int, m map[string]float64, det []float64) {
		res.Runs = append(res.Runs, Run{Scenario: sc, Target: tg, Round: round, Metrics: m, Detections: det,
			Commands: []string{"$BIN/wsload -mode x"}})
	}
	for round := 1; round <= 2; round++ {
		for _, sc := range []string{ScenarioEcho1K, ScenarioEcho64, ScenarioEcho16K, ScenarioEcho64K} {
			add(sc, TargetDirect, round, map[string]float64{MetricMsgsPerSec: 40000, MetricRTTP50: 4, MetricRTTP99: 20}, nil)
			add(sc, TargetNginx, round, map[string]float64{MetricMsgsPerSec: 25000, MetricRTTP50: 7, MetricRTTP99: 30, MetricCPUPerMsg: 20}, nil)
			add(sc, TargetWsalive, round, map[string]float64{MetricMsgsPerSec: 33000, MetricRTTP50: 5, MetricRTTP99: 25, MetricRTTP999: 41.5, MetricCPUPerMsg: 14}, nil)
		}
		add(ScenarioIdle, TargetNginx, round, map[string]float64{MetricRSSPerPair: 18000, MetricIdleCPU: 0}, nil)
		add(ScenarioIdle, TargetWsalive, round, map[string]float64{MetricRSSPerPair: 3000, MetricIdleCPU: 1.5}, nil)
		add(ScenarioBlackholeCli, TargetWsalive, round, map[string]float64{MetricConnected: 3, MetricDetected: 3,
			MetricWithinBound1: 3, MetricBound: 8, MetricMaxWait: 30, MetricDetectMax: 8.1}, []float64{5.5, 7, 8.1})
		add(ScenarioBlackholeUp, TargetWsalive, round, map[string]float64{MetricConnected: 3, MetricDetected: 3,
			MetricWithinBound1: 2, MetricBound: 8, MetricMaxWait: 30, MetricDetectMax: 9.5}, []float64{5.5, 7, 9.5})
	}
	add(ScenarioBlackholeCli, TargetNginx, 1, map[string]float64{MetricConnected: 2, MetricUndetected: 2, MetricMaxWait: 160}, nil)
	dir := t.TempDir()
	md, charts := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "bench", "charts")
	if err := Render(res, md, charts); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	text := string(b)
	for _, want := range []string{
		"| messages/s vs nginx, 200 connections × 1 KiB | ≥ 1.25× | 1.32× | met |",
		"| messages/s vs direct, 200 connections × 1 KiB | ≥ 0.80× | 0.82× | met |",
		"| messages/s vs nginx, 50 connections × 64 KiB | ≥ 1.25× | 1.32× | met |",
		"| proxy CPU per message vs nginx, 200 connections × 1 KiB | ≤ 0.50× | 0.70× | **missed** |",
		"| RSS per idle pair, heartbeats on (5 s both sides) | ≤ 1,024 B | 3,000 B | **missed** |",
		"| heartbeat CPU at idle pairs, 5 s interval both sides | < 2 % of one core | 1.5 % | met |",
		"6 of 6 (slowest 8.10 s) | met |",
		"4 of 6 (slowest 9.50 s) | **missed** |",
		"](bench/charts/throughput.png)",
		"| 5.00 ms | 25.00 ms | 41.50 ms | 14.0 µs |", // wsalive's echo row: RTT p50, p99, p99.9
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", text)
	}
	checkReport(t, md, charts, true)
}

// TestDeriveWindowMissed checks that an echo run whose CPU window missed
// the traffic keeps its throughput but loses its CPU figures, and that the
// other CPU is what the machine used beyond the measured processes.
func TestDeriveWindowMissed(t *testing.T) {
	res := &Results{Machine: Machine{CPUs: 2}, Runs: []Run{
		{Scenario: "s", Target: "haproxy", Round: 1, Metrics: map[string]float64{
			MetricMsgsPerSec: 20000, MetricProxyCPU: 0, MetricCPUPerMsg: 0, MetricMachineBusy: 0.2}},
		{Scenario: "s", Target: "nginx", Round: 1, Metrics: map[string]float64{
			MetricMsgsPerSec: 20000, MetricProxyCPU: 60, MetricBackendCPU: 40, MetricLoadCPU: 50, MetricMachineBusy: 90}},
	}}
	res.derive()
	m := res.Runs[0].Metrics
	if _, ok := m[MetricCPUPerMsg]; ok || m[MetricWindowMissed] != 1 || m[MetricMsgsPerSec] != 20000 {
		t.Errorf("missed window: %v", m)
	}
	if got := res.Runs[1].Metrics[MetricOtherCPU]; math.Abs(got-30) > 1e-9 {
		t.Errorf("other CPU = %v, want 180 - 150 = 30", got)
	}
	if err := checkLag(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("checkLag of a missing file")
	}
	f := filepath.Join(t.TempDir(), "ready")
	os.WriteFile(f, []byte("READY\n"), 0o644)
	if err := checkLag(f); err != nil {
		t.Errorf("fresh ready file: %v", err)
	}
	old := time.Now().Add(-2 * time.Second)
	os.Chtimes(f, old, old)
	var late *lateError
	if err := checkLag(f); !errors.As(err, &late) {
		t.Errorf("old ready file: %v", err)
	}
}

func TestWithClients(t *testing.T) {
	plan, err := WithClients(ShortPlan(), []string{wsload.ClientGobwas, wsload.ClientGorilla})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range plan {
		names = append(names, sc.Name)
		if strings.HasSuffix(sc.Name, "+gorilla") != (sc.client() == wsload.ClientGorilla) {
			t.Errorf("%s runs with client %s", sc.Name, sc.client())
		}
	}
	want := []string{ScenarioEcho1K, ScenarioEcho1K + "+gorilla", ScenarioHandshake, ScenarioIdle, ScenarioIdle + "+gorilla",
		ScenarioStorm, ScenarioStorm + "+gorilla", ScenarioChurn, ScenarioChurn + "+gorilla", ScenarioBlackholeCli, ScenarioBlackholeUp}
	if !slices.Equal(names, want) {
		t.Errorf("plan = %v, want %v", names, want)
	}
	if _, err := WithClients(ShortPlan(), []string{"nhooyr"}); err == nil {
		t.Error("an unknown client was accepted")
	}
	if backendFor(wsload.ClientGorilla) != backendGorilla || backendFor(wsload.ClientGobwas) != backendLegacy {
		t.Error("a client goes with the wrong backend")
	}
}

func TestL4TargetsRunEchoOnly(t *testing.T) {
	for _, sc := range FullPlan() {
		for _, tg := range []string{TargetNginxL4, TargetHAProxyL4} {
			if got := sc.appliesTo(tg); got != (sc.Kind == KindEcho) {
				t.Errorf("%s applies to %s: %v", sc.Name, tg, got)
			}
		}
	}
}

func TestStreamModuleLine(t *testing.T) {
	has := func(string) bool { return true }
	hasNot := func(string) bool { return false }
	cases := []struct {
		name, v  string
		exists   func(string) bool
		want     string
		wantFail bool
	}{
		{"built in", "configure arguments: --with-http_ssl_module --with-stream --with-stream_ssl_module", hasNot, "", false},
		{"dynamic, installed", "configure arguments: --modules-path=/usr/lib/nginx/modules --with-stream=dynamic", has,
			"load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n", false},
		{"dynamic, other path", "configure arguments: --with-stream=dynamic --modules-path=/opt/ngx/mods", has,
			"load_module /opt/ngx/mods/ngx_stream_module.so;\n", false},
		{"dynamic, missing", "configure arguments: --with-stream=dynamic", hasNot, "", true},
		{"absent", "configure arguments: --with-stream_ssl_module", has, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := streamModuleLine(c.v, c.exists)
			if (err != nil) != c.wantFail || got != c.want {
				t.Errorf("got %q, %v; want %q, failure %v", got, err, c.want, c.wantFail)
			}
		})
	}
}

// TestHeartbeatTemplate checks that the idle scenario's configuration
// pings both sides every heartbeatInterval, which heartbeatPerPing assumes.
func TestHeartbeatTemplate(t *testing.T) {
	text := configs.Text(configs.WsaliveHeartbeat)
	want := fmt.Sprintf("interval   = %q", heartbeatInterval.String())
	if n := strings.Count(text, want); n != heartbeatSides {
		t.Errorf("%s has %d heartbeats with %s, want %d", configs.WsaliveHeartbeat, n, want, heartbeatSides)
	}
	m := map[string]float64{MetricProxyCPU: 2, MetricWindow: 10, MetricFloorUs: 4}
	heartbeatPerPing(m, 9000)
	// 9,000 pairs × 2 sides / 5 s = 3,600 round trips a second; 2 % of a
	// core over 10 s is 0.2 s, over 36,000 round trips 5.56 µs each.
	if m[MetricPingRTPerS] != 3600 || math.Abs(m[MetricCPUPerPing]-0.2/36000*1e6) > 1e-9 ||
		math.Abs(m[MetricPingFloorX]-m[MetricCPUPerPing]/4) > 1e-12 {
		t.Errorf("heartbeat per ping: %v", m)
	}
}

// TestOwnsListener checks the check that a probed port is the child's.
func TestOwnsListener(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !ownsListener(os.Getpid(), ln.Addr().String()) {
		t.Errorf("this process does not own its own listener %s", ln.Addr())
	}
	// A process that holds no socket: the test's own child.
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if ownsListener(cmd.Process.Pid, ln.Addr().String()) {
		t.Errorf("sleep owns %s", ln.Addr())
	}
}

// TestRenderStormChurnAndFloors renders the issue-14 sections from
// made-up results and checks their goals and tables.
func TestRenderStormChurnAndFloors(t *testing.T) {
	res := &Results{
		Started: time.Now().Add(-time.Minute), Finished: time.Now(), Reps: 1,
		Targets: []string{TargetDirect, TargetNginx, TargetHAProxy, TargetNginxL4, TargetHAProxyL4, TargetWsalive},
	}
	plan, err := WithClients(FullPlan(), []string{wsload.ClientGobwas, wsload.ClientGorilla})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range plan {
		var ts []string
		for _, tg := range res.Targets {
			if sc.appliesTo(tg) {
				ts = append(ts, tg)
			}
		}
		res.Scenarios = append(res.Scenarios, ScenarioInfo{Name: sc.Name, Kind: sc.Kind, Title: sc.Title, Params: sc.params(), Targets: ts, Client: sc.client()})
	}
	add := func(sc, tg string, m map[string]float64) {
		res.Runs = append(res.Runs, Run{Scenario: sc, Target: tg, Round: 1, Metrics: m, Commands: []string{"$BIN/wsload"}})
	}
	add(ScenarioStorm, TargetNginx, map[string]float64{MetricHSPerSec: 8000, MetricHSP99: 60, MetricCPUPerHS: 240})
	add(ScenarioStorm, TargetHAProxy, map[string]float64{MetricHSPerSec: 9000, MetricHSP99: 50, MetricCPUPerHS: 260})
	add(ScenarioStorm, TargetWsalive, map[string]float64{MetricHSPerSec: 10000, MetricHSP99: 55, MetricHSP999: 70, MetricCPUPerHS: 180})
	add(ScenarioChurn, TargetWsalive, map[string]float64{MetricCompleted: 20000, MetricChurnPerSec: 1000, MetricCPUPerConn: 150})
	add(ScenarioEcho1K, TargetNginx, map[string]float64{MetricMsgsPerSec: 20000, MetricCPUPerMsg: 20})
	add(ScenarioEcho1K, TargetNginxL4, map[string]float64{MetricMsgsPerSec: 22000, MetricCPUPerMsg: 16})
	add(ScenarioEcho1K, TargetHAProxyL4, map[string]float64{MetricMsgsPerSec: 21000, MetricCPUPerMsg: 10})
	add(ScenarioEcho1K, TargetWsalive, map[string]float64{MetricMsgsPerSec: 26000, MetricCPUPerMsg: 12})
	m := map[string]float64{MetricProxyCPU: 1.5, MetricWindow: 10, MetricFloorUs: 3, MetricIdleCPU: 1.5, MetricRSSPerPair: 900}
	heartbeatPerPing(m, 9000)
	add(ScenarioIdle+"+gorilla", TargetWsalive, m)

	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := Render(res, md, filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	text := string(b)
	for _, want := range []string{
		"| storm handshakes/s vs haproxy | ≥ 1.10× | 1.11× | met |",
		"| storm handshakes/s vs nginx | ≥ 1.20× | 1.25× | met |",
		"| storm connect p99 vs nginx | ≤ 1.00× | 0.92× | met |",
		"| storm proxy CPU per handshake vs nginx | ≤ 0.80× | 0.75× | met |",
		"| storm handshakes/s vs nginx (gorilla clients) | ≥ 1.20× | — | not measured |",
		// 1.5 % of a core over 10 s, 3,600 round trips a second: 4.17 µs, 1.39 × a 3 µs floor.
		"| heartbeat CPU per ping-pong vs a bare loopback write+read (gorilla clients) | ≤ 1.25× | 1.39× | **missed** |",
		"| wsalive heartbeat | 3,600 | 1.50 % | 4.17 µs | 3.00 µs | 1.39× |",
		"## L4 floor: wsalive against nginx and HAProxy relaying bare bytes",
		"| 200 connections × 1 KiB | 12.0 µs | 16.0 µs | 10.0 µs | 0.75× | 1.20× | 0.60× |",
		"## Reconnect storm, 9,000 clients at once\n",
		"## Reconnect storm, 9,000 clients at once (gorilla clients and backend)",
		"| wsalive | 10,000 | 1.25× | 1.11× |",
		"## Churn, 1,000 connections/s",
		"| wsalive | 20,000 | 1,000 |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", text)
	}
}
