package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Chart file names, in the charts directory.
const (
	ChartThroughput = "throughput.png"
	ChartLatency    = "latency.png"
	ChartResources  = "resources.png"
	ChartDetection  = "detection.png"
)

// The targets for wsalive.
const (
	// Issue 14's echo goals hold at 200 × 1 KiB, 1,000 × 64 B and
	// 50 × 64 KiB, with either client.
	goalVsNginx      = 1.25 // messages/s, × nginx
	goalVsDirect     = 0.80 // messages/s, × direct (the relay issue's)
	goalCPUVsNginx   = 0.50 // proxy CPU per message, × nginx
	goalRSSPerPair   = 1024 // bytes per idle pair, heartbeats on, either client
	goalHeartbeatCPU = 2.0  // % of one core at 9,000 idle pairs
	goalDetectSlack  = 1.0  // seconds over the heartbeat bound
	// Issue 14: reconnect storms and the heartbeat's floor.
	goalStormVsHAProxy = 1.1  // handshakes/s, × HAProxy
	goalStormVsNginx   = 1.2  // handshakes/s, × nginx
	goalStormCPU       = 0.8  // proxy CPU per handshake, × nginx
	goalPingVsFloor    = 1.25 // heartbeat CPU per round trip, × the loopback floor
	referenceNginx     = TargetNginx
	referenceDirect    = TargetDirect
	notesFileName      = "notes.md"
	benchmarksCommand  = "go run ./bench/cmd/wsbench"
)

// Render writes the report to mdPath and its charts to chartsDir, from
// res alone. If a file notes.md sits beside results' bench directory
// (ROOT/bench/notes.md), its text is included as the closing section: the
// place for profiles and before/after notes that no run produces.
func Render(res *Results, mdPath, chartsDir string) error {
	res.derive()
	if err := os.MkdirAll(chartsDir, 0o755); err != nil {
		return err
	}
	charts, err := renderCharts(res, chartsDir)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(mdPath), chartsDir)
	if err != nil {
		rel = chartsDir
	}
	var notes string
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(chartsDir), notesFileName)); err == nil {
		notes = string(b)
	}
	md := renderMarkdown(res, filepath.ToSlash(rel), charts, notes)
	return os.WriteFile(mdPath, []byte(md), 0o644)
}

// MetricOtherCPU is the CPU used on the machine during a run's window by
// everything but the proxy, the backend and the load generator, in % of
// one core: the noise of a shared machine.
const MetricOtherCPU = "other_cpu_pct"

// MetricWindowMissed marks an echo run whose CPU window missed the
// traffic (the proxy relayed messages but used no CPU in the window: the
// harness sampled late on a busy machine, before runs were redone for
// that). Its CPU figures are left out; its messages/s and latencies,
// measured by wsload itself, stand.
const MetricWindowMissed = "window_missed"

// derive computes the metrics that follow from the recorded ones.
func (res *Results) derive() {
	cpus := float64(max(res.Machine.CPUs, 1))
	for i := range res.Runs {
		m := res.Runs[i].Metrics
		if pc, ok := m[MetricProxyCPU]; ok && pc == 0 && m[MetricMsgsPerSec] > 0 {
			for _, k := range []string{MetricProxyCPU, MetricCPUPerMsg, MetricBackendCPU, MetricLoadCPU, MetricMachineBusy} {
				delete(m, k)
			}
			m[MetricWindowMissed] = 1
		}
		busy, ok := m[MetricMachineBusy]
		if !ok {
			continue
		}
		ours := m[MetricProxyCPU] + m[MetricBackendCPU] + m[MetricLoadCPU]
		m[MetricOtherCPU] = max(0, busy*cpus-ours)
	}
}

// fmtInt writes n with thousands separators.
func fmtInt(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

type mdTable struct {
	head []string
	rows [][]string
	left []int // columns aligned left besides the first
}

func (t *mdTable) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *mdTable) String() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n")
	seps := make([]string, len(t.head))
	for i := range seps {
		seps[i] = "---:"
		if i == 0 || slices.Contains(t.left, i) {
			seps[i] = "---"
		}
	}
	b.WriteString("| " + strings.Join(seps, " | ") + " |\n")
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// cell formats the median of a metric, or "—".
func (res *Results) cell(sc, target, metric string, format func(float64) string) string {
	v, ok := res.Median(sc, target, metric)
	if !ok {
		return "—"
	}
	return format(v)
}

// ratioCell formats the median per-round ratio against ref, or "—".
func (res *Results) ratioCell(sc, target, ref, metric string) string {
	if target == ref {
		return "1.00×"
	}
	v, ok := res.Ratio(sc, target, ref, metric)
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

func f0(v float64) string  { return fmtInt(v) }
func f1(v float64) string  { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string  { return fmt.Sprintf("%.3f", v) }
func ms(v float64) string  { return fmt.Sprintf("%.2f ms", v) }
func us(v float64) string  { return fmt.Sprintf("%.1f µs", v) }
func pct(v float64) string { return fmt.Sprintf("%.1f %%", v) }
func sec(v float64) string { return fmt.Sprintf("%.2f s", v) }

// perRound lists a metric of every round, for the noise to be seen.
func (res *Results) perRound(sc, target, metric string, format func(float64) string) string {
	var parts []string
	for _, run := range res.runs(sc, target) {
		if v, ok := run.Metrics[metric]; ok {
			parts = append(parts, format(v))
		}
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " / ")
}

func (res *Results) scenariosOf(kind string) []ScenarioInfo {
	var out []ScenarioInfo
	for _, s := range res.Scenarios {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func (res *Results) has(target string) bool { return slices.Contains(res.Targets, target) }

// goal is one line of the summary: a target of the issue and whether it
// was met.
type goal struct {
	what, measured, want string
	met                  *bool
}

func boolp(b bool) *bool { return &b }

func (g goal) status() string {
	switch {
	case g.met == nil:
		return "not measured"
	case *g.met:
		return "met"
	}
	return "**missed**"
}

// goals evaluates the targets for wsalive.
func (res *Results) goals() []goal {
	var out []goal
	for _, info := range res.scenariosOf(KindEcho) {
		sc := info.Name
		if !echoGoalScenario(sc) {
			continue
		}
		title := strings.TrimPrefix(info.Title, "Echo, ")
		g := goal{what: "messages/s vs nginx, " + title, want: fmt.Sprintf("≥ %.2f×", goalVsNginx)}
		if v, ok := res.Ratio(sc, TargetWsalive, referenceNginx, MetricMsgsPerSec); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v >= goalVsNginx)
		}
		out = append(out, g)
		g = goal{what: "messages/s vs direct, " + title, want: fmt.Sprintf("≥ %.2f×", goalVsDirect)}
		if v, ok := res.Ratio(sc, TargetWsalive, referenceDirect, MetricMsgsPerSec); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v >= goalVsDirect)
		}
		out = append(out, g)
	}
	for _, info := range res.scenariosOf(KindEcho) {
		title := strings.TrimPrefix(info.Title, "Echo, ")
		g := goal{what: "proxy CPU per message vs nginx, " + title, want: fmt.Sprintf("≤ %.2f×", goalCPUVsNginx)}
		if v, ok := res.Ratio(info.Name, TargetWsalive, referenceNginx, MetricCPUPerMsg); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v <= goalCPUVsNginx)
		}
		out = append(out, g)
	}
	for _, info := range res.scenariosOf(KindStorm) {
		sfx := clientSuffix(info)
		for _, ref := range []struct {
			target string
			want   float64
		}{{TargetHAProxy, goalStormVsHAProxy}, {TargetNginx, goalStormVsNginx}} {
			g := goal{what: "storm handshakes/s vs " + ref.target + sfx, want: fmt.Sprintf("≥ %.2f×", ref.want)}
			if v, ok := res.Ratio(info.Name, TargetWsalive, ref.target, MetricHSPerSec); ok {
				g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v >= ref.want)
			}
			out = append(out, g)
		}
		g := goal{what: "storm connect p99 vs nginx" + sfx, want: "≤ 1.00×"}
		if v, ok := res.Ratio(info.Name, TargetWsalive, TargetNginx, MetricHSP99); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v <= 1)
		}
		out = append(out, g)
		g = goal{what: "storm proxy CPU per handshake vs nginx" + sfx, want: fmt.Sprintf("≤ %.2f×", goalStormCPU)}
		if v, ok := res.Ratio(info.Name, TargetWsalive, TargetNginx, MetricCPUPerHS); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v <= goalStormCPU)
		}
		out = append(out, g)
	}
	for _, info := range res.scenariosOf(KindIdle) {
		g := goal{what: "heartbeat CPU per ping-pong vs a bare loopback write+read" + clientSuffix(info), want: fmt.Sprintf("≤ %.2f×", goalPingVsFloor)}
		if v, ok := res.Median(info.Name, TargetWsalive, MetricPingFloorX); ok {
			g.measured, g.met = fmt.Sprintf("%.2f×", v), boolp(v <= goalPingVsFloor)
		}
		out = append(out, g)
	}
	for _, info := range res.scenariosOf(KindIdle) {
		g := goal{what: "RSS per idle pair, heartbeats on (5 s both sides)" + clientSuffix(info), want: fmt.Sprintf("≤ %s B", fmtInt(goalRSSPerPair))}
		if v, ok := res.Median(info.Name, TargetWsalive, MetricRSSPerPair); ok {
			g.measured, g.met = fmtInt(v)+" B", boolp(v <= goalRSSPerPair)
		}
		out = append(out, g)
		g = goal{what: "heartbeat CPU at idle pairs, 5 s interval both sides" + clientSuffix(info), want: fmt.Sprintf("< %.0f %% of one core", goalHeartbeatCPU)}
		if v, ok := res.Median(info.Name, TargetWsalive, MetricIdleCPU); ok {
			g.measured, g.met = pct(v), boolp(v < goalHeartbeatCPU)
		}
		out = append(out, g)
	}
	for _, info := range res.scenariosOf(KindBlackhole) {
		g := goal{what: "blackholed " + strings.Replace(sideOf(info), "upstream", "backend", 1) + " detected within bound + 1 s (every pair, every round)",
			want: "all"}
		runs := res.runs(info.Name, TargetWsalive)
		if len(runs) > 0 {
			var bound, worst float64
			all, within := 0, 0
			for _, run := range runs {
				bound = run.Metrics[MetricBound]
				all += int(run.Metrics[MetricConnected] - run.Metrics[MetricEndedBefore])
				within += int(run.Metrics[MetricWithinBound1])
				worst = max(worst, run.Metrics[MetricDetectMax])
			}
			g.want = fmt.Sprintf("all ≤ %.0f s + 1 s", bound)
			g.measured = fmt.Sprintf("%s of %s (slowest %.2f s)", fmtInt(float64(within)), fmtInt(float64(all)), worst)
			g.met = boolp(bound > 0 && within == all && all > 0)
		}
		out = append(out, g)
	}
	return out
}

// echoGoalScenario reports whether the messages/s goals apply to the echo
// scenario named sc (its gorilla variant included): the loads issue 14
// names.
func echoGoalScenario(sc string) bool {
	for _, base := range []string{ScenarioEcho1K, ScenarioEcho64, ScenarioEcho64K} {
		if sc == base || strings.HasPrefix(sc, base+"+") {
			return true
		}
	}
	return false
}

// clientSuffix labels the goals of a scenario's gorilla variant.
func clientSuffix(info ScenarioInfo) string {
	if info.Client == "gorilla" {
		return " (gorilla clients)"
	}
	return ""
}

func sideOf(info ScenarioInfo) string {
	return strings.TrimPrefix(info.Name, "blackhole-")
}

func renderMarkdown(res *Results, chartsRel string, charts []string, notes string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	took := res.Finished.Sub(res.Started).Round(time.Second)

	w("# Benchmarks\n\n")
	if res.Short {
		w("> **This is a smoke run (`-short`): a handful of connections for a second or less. Its numbers mean nothing; it only shows that the harness works.**\n\n")
	}
	w("wsalive against what people put in front of a legacy WebSocket backend instead:\n")
	w("nginx, HAProxy and Caddy from Debian's packages, each with its standard WebSocket\n")
	w("configuration, and the backend reached directly, which is the physical limit of\n")
	w("this machine. Everything below was produced by one command, from the repository\n")
	w("root, as root (the blackhole scenarios create network namespaces):\n\n")
	w("```sh\n%s\n```\n\n", benchmarksCommand)
	w("It builds wsalive, the load generator (`bench/wsload`) and the legacy echo backend\n")
	w("(`examples/legacyecho`), installs the competitors with `apt-get` if they are missing,\n")
	w("runs every scenario, writes the raw results to `bench/out/results.json` (not\n")
	w("committed; logs and configurations of every run are beside it), and renders this\n")
	w("file and the charts in `%s/` from that file alone\n", chartsRel)
	w("(`%s -report-only` renders them again without running anything).\n", benchmarksCommand)
	w("The harness is `bench/harness`; `go test ./bench/...` runs a smoke of it.\n\n")
	if parts := res.parts(); len(parts) > 1 {
		w("This report combines %d runs of the harness, %s each (`-merge`); every scenario's\n", len(parts), pluralRounds(res.Reps))
		w("figures come from one of them:\n\n")
		for _, p := range parts {
			w("- started %s, %s", p.Started.UTC().Format("2006-01-02 15:04 UTC"), p.Finished.Sub(p.Started).Round(time.Second))
			if p.QuietWaitS >= 1 {
				w(" (%s waiting for quiet)", time.Duration(p.QuietWaitS*float64(time.Second)).Round(time.Second))
			}
			w(", commit `%s`, load average before %s, after %s: `%s`; scenarios %s\n",
				shortCommit(p.Machine.GitCommit), p.Machine.LoadBefore, p.Machine.LoadAfter, strings.TrimSpace(p.Command), strings.Join(p.Scenarios, ", "))
		}
		w("\n")
	} else {
		w("This run: %s, %s, started %s", took, pluralRounds(res.Reps), res.Started.UTC().Format("2006-01-02 15:04 UTC"))
		if res.QuietWaitS >= 1 {
			w(", of which %s waiting for the shared machine to quiet down before runs", time.Duration(res.QuietWaitS*float64(time.Second)).Round(time.Second))
		}
		w(".\n\n")
	}

	// Summary.
	if gs := res.goals(); len(gs) > 0 && res.has(TargetWsalive) {
		w("## wsalive against the issue's targets\n\n")
		w("Medians over the rounds; ratios are taken within each round (the same minutes of the\n")
		w("same machine), then their median.\n\n")
		t := mdTable{head: []string{"target", "wanted", "measured", ""}, left: []int{3}}
		for _, g := range gs {
			m := g.measured
			if m == "" {
				m = "—"
			}
			t.add(g.what, g.want, m, g.status())
		}
		w("%s\n", t.String())
	}

	// Machine.
	m := res.Machine
	w("## Machine and versions\n\n")
	w("- machine: %d × %s, %s MiB RAM, %s, kernel %s; open files: %s\n", m.CPUs, m.CPUModel, fmtInt(float64(m.MemMiB)), m.OS, m.Kernel, m.NoFileLimit)
	w("- load average (1/5/15 min) before: %s, after: %s\n", m.LoadBefore, m.LoadAfter)
	if m.Perf != "" {
		w("- perf: %s\n", m.Perf)
	}
	var keys []string
	for k := range res.Version {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w("- %s: %s\n", k, res.Version[k])
	}
	commit := m.GitCommit
	if commit == "" {
		commit = "unknown"
	}
	w("- wsalive, wsload and legacy-echo built from commit `%s`", commit)
	// Uncommitted changes that could be in the binaries (not the
	// benchmark's own files, nor documents).
	var dirty []string
	for _, d := range m.GitDirty {
		f := strings.Fields(d)
		if len(f) < 2 {
			continue
		}
		path := f[len(f)-1]
		if strings.HasPrefix(path, "bench/") || strings.HasSuffix(path, ".md") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, "/testdata/") {
			continue
		}
		dirty = append(dirty, "`"+path+"`")
	}
	if len(dirty) > 0 {
		w(", with uncommitted changes to %s", strings.Join(dirty, ", "))
	}
	if len(res.Parts) > 1 {
		w(" (the newest run; the list above names each run's)")
	}
	w("\n- command: `%s`\n\n", strings.TrimSpace(res.Command))

	w("## How it runs\n\n")
	w("- **Fair share of 2 cores.** The load generator, the backend and the proxy share the\n")
	w("  machine's two cores. Every proxy gets one core's worth of parallelism: nginx\n")
	w("  `worker_processes 1`, HAProxy `nbthread 1`, Caddy `GOMAXPROCS=1`, wsalive\n")
	w("  `GOMAXPROCS=1` and `engine { loops = 1 }`. The backend (legacy-echo, one goroutine per\n")
	w("  connection, never pings) and wsload keep Go's default (2).\n")
	w("- **Configurations** are committed in `bench/configs/`: nginx `proxy_http_version 1.1`,\n")
	w("  `Upgrade`/`Connection` headers and `proxy_read_timeout 3600s`; HAProxy `timeout tunnel 1h`;\n")
	w("  Caddy `reverse_proxy`; wsalive at default heartbeats (client 20 s, upstream 30 s) for\n")
	w("  traffic, 5 s both sides for the idle pairs. No proxy logs per connection (nginx\n")
	w("  `access_log off`, wsalive `-log-level warn`).\n")
	w("- **Fresh processes.** Every run starts its own backend and proxy on fresh loopback ports,\n")
	w("  in the foreground, with configuration, pid file, logs and temporary files in the run's\n")
	w("  directory, and stops them (by PID) afterwards. wsload spreads its source addresses\n")
	w("  over 127.0.0.2-250.\n")
	w("- **Alternation.** Each scenario runs %s; within a round the targets run one after\n", pluralRounds(res.Reps))
	w("  the other (%s), so slow drift of this shared machine hits\n", strings.Join(res.Targets, ", "))
	w("  every target alike. Tables give medians; ratios are per round, then the median.\n")
	w("- **CPU and memory from /proc**: utime + stime and VmRSS, summed over the proxy's\n")
	w("  processes (nginx: master and worker), sampled at the edges of the measured window.\n")
	w("  CPU per message is the proxy's CPU time over the window divided by the messages\n")
	w("  echoed in it; one message is one round trip, so two frames relayed.\n")
	w("- **A shared machine.** Before each run the harness waits (up to 15 s) until the rest of\n")
	w("  the machine uses less than a quarter of a core; the echo tables show what it used\n")
	w("  during each window anyway (\"other CPU\").\n")
	w("- **Two clients.** The echo, idle, storm and churn scenarios run twice: with wsload's own\n")
	w("  client (gobwas/ws, the library wsalive is built on) against legacy-echo, and, as the\n")
	w("  `+gorilla` variants, with gorilla/websocket clients against a gorilla/websocket echo\n")
	w("  backend (`bench/cmd/gorilla-echo`), so that no figure depends on sharing a library with\n")
	w("  the proxy. gorilla writes every message with one write, as the applications do.\n")
	w("- **Echo** messages are verified byte for byte; one message in flight per connection, so\n")
	w("  messages/s is bounded by round-trip latency under load.\n\n")

	if len(charts) > 0 {
		for _, c := range charts {
			w("![%s](%s/%s)\n\n", strings.TrimSuffix(c, ".png"), chartsRel, c)
		}
	}

	// Echo.
	for _, info := range res.scenariosOf(KindEcho) {
		w("## %s\n\n%s.\n\n", info.Title, info.Params)
		t := mdTable{head: []string{"target", "messages/s", "× nginx", "× direct", "RTT p50", "RTT p99",
			"RTT p99.9", "proxy CPU / msg", "CPU/msg × nginx", "proxy CPU", "other CPU", "messages/s by round"}}
		for _, tg := range info.Targets {
			t.add(tg,
				res.cell(info.Name, tg, MetricMsgsPerSec, f0),
				res.ratioCell(info.Name, tg, referenceNginx, MetricMsgsPerSec),
				res.ratioCell(info.Name, tg, referenceDirect, MetricMsgsPerSec),
				res.cell(info.Name, tg, MetricRTTP50, ms),
				res.cell(info.Name, tg, MetricRTTP99, ms),
				res.cell(info.Name, tg, MetricRTTP999, ms),
				res.cell(info.Name, tg, MetricCPUPerMsg, us),
				ratioOrDash(res, info.Name, tg, referenceNginx, MetricCPUPerMsg),
				res.cell(info.Name, tg, MetricProxyCPU, pct),
				res.cell(info.Name, tg, MetricOtherCPU, pct),
				res.perRound(info.Name, tg, MetricMsgsPerSec, f0),
			)
		}
		w("%s\n", t.String())
		w("Proxy CPU is in %% of one core. Other CPU is what the rest of the machine used during\n")
		w("the window (all CPU time but the proxy's, the backend's and wsload's, in %% of one core):\n")
		w("the noise of this shared machine.\n\n")
		writeFailures(&b, res, info)
	}

	// L4 floor.
	if res.has(TargetWsalive) && (res.has(TargetNginxL4) || res.has(TargetHAProxyL4)) {
		w("## L4 floor: wsalive against nginx and HAProxy relaying bare bytes\n\n")
		w("nginx's `stream` module and HAProxy in `mode tcp` relay the same echo traffic as bare TCP\n")
		w("bytes (the handshake included), knowing nothing of WebSocket: the cost of the extra hop\n")
		w("itself, one core each (`bench/configs/nginx-stream.conf.tmpl`, `haproxy-tcp.cfg.tmpl`).\n")
		w("Proxy CPU per echoed message, medians; ratios within rounds.\n\n")
		t := mdTable{head: []string{"scenario", "wsalive", TargetNginxL4, TargetHAProxyL4, "wsalive × nginx-l4", "wsalive × haproxy-l4", "wsalive × nginx (HTTP)"}, left: []int{0}}
		for _, info := range res.scenariosOf(KindEcho) {
			t.add(strings.TrimPrefix(info.Title, "Echo, "),
				res.cell(info.Name, TargetWsalive, MetricCPUPerMsg, us),
				res.cell(info.Name, TargetNginxL4, MetricCPUPerMsg, us),
				res.cell(info.Name, TargetHAProxyL4, MetricCPUPerMsg, us),
				ratioOrDash(res, info.Name, TargetWsalive, TargetNginxL4, MetricCPUPerMsg),
				ratioOrDash(res, info.Name, TargetWsalive, TargetHAProxyL4, MetricCPUPerMsg),
				ratioOrDash(res, info.Name, TargetWsalive, referenceNginx, MetricCPUPerMsg),
			)
		}
		w("%s\n", t.String())
	}

	// Storm.
	for _, info := range res.scenariosOf(KindStorm) {
		w("## %s\n\n%s.\n\n", info.Title, info.Params)
		t := mdTable{head: []string{"target", "handshakes/s", "× nginx", "× HAProxy", "connect p50", "p99", "p99.9",
			"p99 × nginx", "proxy CPU / handshake", "CPU/hs × nginx", "failed", "handshakes/s by round"}}
		for _, tg := range info.Targets {
			t.add(tg,
				res.cell(info.Name, tg, MetricHSPerSec, f0),
				res.ratioCell(info.Name, tg, referenceNginx, MetricHSPerSec),
				res.ratioCell(info.Name, tg, TargetHAProxy, MetricHSPerSec),
				res.cell(info.Name, tg, MetricHSP50, ms),
				res.cell(info.Name, tg, MetricHSP99, ms),
				res.cell(info.Name, tg, MetricHSP999, ms),
				res.ratioCell(info.Name, tg, referenceNginx, MetricHSP99),
				res.cell(info.Name, tg, MetricCPUPerHS, us),
				ratioOrDash(res, info.Name, tg, referenceNginx, MetricCPUPerHS),
				res.cell(info.Name, tg, MetricDialFailed, f0),
				res.perRound(info.Name, tg, MetricHSPerSec, f0),
			)
		}
		w("%s\n", t.String())
		w("Handshakes/s is the connections opened over the time from the first dial to the last\n")
		w("handshake; connect latency is TCP connect plus the WebSocket handshake, through the\n")
		w("proxy to the backend. Proxy CPU per handshake is its CPU over that dial phase divided by\n")
		w("the handshakes.\n\n")
		writeFailures(&b, res, info)
	}

	// Churn.
	for _, info := range res.scenariosOf(KindChurn) {
		w("## %s\n\n%s.\n\n", info.Title, info.Params)
		t := mdTable{head: []string{"target", "completed", "connections/s", "connect p50", "connect p99", "message RTT p50",
			"lifetime p50", "lifetime p99", "proxy CPU / connection", "× nginx", "proxy CPU"}}
		for _, tg := range info.Targets {
			t.add(tg,
				res.cell(info.Name, tg, MetricCompleted, f0),
				res.cell(info.Name, tg, MetricChurnPerSec, f0),
				res.cell(info.Name, tg, MetricHSP50, ms),
				res.cell(info.Name, tg, MetricHSP99, ms),
				res.cell(info.Name, tg, MetricRTTP50, ms),
				res.cell(info.Name, tg, MetricLifeP50, ms),
				res.cell(info.Name, tg, MetricLifeP99, ms),
				res.cell(info.Name, tg, MetricCPUPerConn, us),
				ratioOrDash(res, info.Name, tg, referenceNginx, MetricCPUPerConn),
				res.cell(info.Name, tg, MetricProxyCPU, pct),
			)
		}
		w("%s\n", t.String())
		w("Lifetime runs from the start of the dial to the end of the close handshake (the\n")
		w("server's FIN). Proxy CPU per connection covers its whole life: accept, both handshakes,\n")
		w("the message, the close.\n\n")
		writeFailures(&b, res, info)
	}

	// Handshake.
	for _, info := range res.scenariosOf(KindHandshake) {
		w("## %s\n\n%s.\n\n", info.Title, info.Params)
		t := mdTable{head: []string{"target", "p50", "p90", "p99", "mean", "p50 × nginx", "p50 × direct", "proxy CPU / connection"}}
		for _, tg := range info.Targets {
			t.add(tg,
				res.cell(info.Name, tg, MetricHSP50, ms),
				res.cell(info.Name, tg, MetricHSP90, ms),
				res.cell(info.Name, tg, MetricHSP99, ms),
				res.cell(info.Name, tg, MetricHSMean, ms),
				res.ratioCell(info.Name, tg, referenceNginx, MetricHSP50),
				res.ratioCell(info.Name, tg, referenceDirect, MetricHSP50),
				res.cell(info.Name, tg, MetricCPUPerConn, us),
			)
		}
		w("%s\n", t.String())
		w("Proxy CPU per connection covers its whole life: accept, both handshakes, the close.\n\n")
		writeFailures(&b, res, info)
	}

	// Idle.
	for _, info := range res.scenariosOf(KindIdle) {
		w("## %s\n\n%s.\n\n", info.Title, info.Params)
		t := mdTable{head: []string{"target", "pairs", "RSS at 0", "RSS at N", "peak (VmHWM)", "RSS per pair", "× nginx",
			"proxy CPU", "pings/s to clients", "RSS per pair by round"}}
		for _, tg := range info.Targets {
			t.add(tg,
				res.cell(info.Name, tg, MetricPairs, f0),
				res.cell(info.Name, tg, MetricRSS0, mib),
				res.cell(info.Name, tg, MetricRSS, mib),
				res.cell(info.Name, tg, MetricHWM, mib),
				res.cell(info.Name, tg, MetricRSSPerPair, bytesFmt),
				res.ratioCell(info.Name, tg, referenceNginx, MetricRSSPerPair),
				res.cell(info.Name, tg, MetricIdleCPU, func(v float64) string { return fmt.Sprintf("%.2f %%", v) }),
				res.cell(info.Name, tg, MetricPingsPerS, f0),
				res.perRound(info.Name, tg, MetricRSSPerPair, f0),
			)
		}
		w("%s\n", t.String())
		w("RSS per pair is (RSS at N − RSS at 0) / N, both summed over the proxy's processes;\n")
		w("RSS at N is read after the CPU window, so after the heartbeats have run. Proxy CPU is\n")
		w("over the window, in %% of one core: for wsalive it is the heartbeat's cost (pings to\n")
		w("both sides every 5 s, pongs absorbed); the others send nothing on idle pairs, which is\n")
		w("why they cannot notice a vanished peer (next section).\n\n")
		if _, ok := res.Median(info.Name, TargetWsalive, MetricCPUPerPing); ok {
			t := mdTable{head: []string{"", "ping-pong round trips/s", "proxy CPU", "CPU per round trip", "floor: write+read", "× floor", "by round"}, left: []int{0}}
			t.add("wsalive heartbeat",
				res.cell(info.Name, TargetWsalive, MetricPingRTPerS, f0),
				res.cell(info.Name, TargetWsalive, MetricIdleCPU, func(v float64) string { return fmt.Sprintf("%.2f %%", v) }),
				res.cell(info.Name, TargetWsalive, MetricCPUPerPing, func(v float64) string { return fmt.Sprintf("%.2f µs", v) }),
				res.cell(info.Name, TargetWsalive, MetricFloorUs, func(v float64) string { return fmt.Sprintf("%.2f µs", v) }),
				res.cell(info.Name, TargetWsalive, MetricPingFloorX, func(v float64) string { return fmt.Sprintf("%.2f×", v) }),
				res.perRound(info.Name, TargetWsalive, MetricPingFloorX, f2),
			)
			w("**Heartbeat per ping**\n\n%s\n", t.String())
			w("The same idle CPU per ping-pong round trip (pairs × 2 sides every 5 s), beside the floor\n")
			w("measured in the same run, while the pairs were held: `wsload -mode floor` on one core's\n")
			w("worth (GOMAXPROCS=1) writing a %d-byte ping frame and reading a %d-byte pong over loopback\n", pingFrameSize, pongFrameSize)
			w("TCP, CPU per write+read of one end. The proxy's round trip is that plus its timer, its\n")
			w("frame parsing and its event loop.\n\n")
		}
		writeFailures(&b, res, info)
	}

	// Blackhole.
	if bhs := res.scenariosOf(KindBlackhole); len(bhs) > 0 {
		w("## Blackhole detection: a peer that vanishes without FIN or RST\n\n")
		w("`wsload -mode blackhole-client` / `blackhole-upstream` put the clients (or the backend)\n")
		w("in a network namespace behind a veth pair, open the pairs through the proxy, then drop\n")
		w("every packet of the namespace with iptables: a pulled cable. The surviving side records\n")
		w("when the proxy closed each pair (close frame or EOF). wsalive runs with a heartbeat of\n")
		w("5 s / 3 s / max_missed 1 toward the vanishing side (`bench/configs/blackhole-*.hcl`), a\n")
		w("bound of 8 s; the others with their standard configurations above. The others run once\n")
		w("each, side by side and with fewer pairs, while wsalive's rounds run: waiting minutes for\n")
		w("each of them in turn would not fit the time budget.\n\n")
		t := mdTable{head: []string{"target", "side", "pairs", "detected", "undetected", "waited", "p50", "p99", "max", "within bound + 1 s", "closes seen"}, left: []int{1, 10}}
		for _, info := range bhs {
			for _, tg := range info.Targets {
				runs := res.runs(info.Name, tg)
				if len(runs) == 0 {
					t.add(tg, sideOf(info), "—", "—", "—", "—", "—", "—", "—", "—", "failed")
					continue
				}
				var n, det, und, within float64
				var pooled []float64
				closes := map[string]int{}
				var waited, bound float64
				for _, run := range runs {
					n += run.Metrics[MetricConnected]
					det += run.Metrics[MetricDetected]
					und += run.Metrics[MetricUndetected]
					within += run.Metrics[MetricWithinBound1]
					waited = max(waited, run.Metrics[MetricMaxWait])
					bound = run.Metrics[MetricBound]
					pooled = append(pooled, run.Detections...)
					for k, v := range run.Closes {
						closes[k] += v
					}
				}
				slices.Sort(pooled)
				q := func(f float64) string {
					if len(pooled) == 0 {
						return "—"
					}
					i := min(max(int(math.Ceil(f*float64(len(pooled))))-1, 0), len(pooled)-1)
					return sec(pooled[i])
				}
				mx := "—"
				if len(pooled) > 0 {
					mx = sec(pooled[len(pooled)-1])
				}
				wb := "—"
				if bound > 0 {
					wb = fmt.Sprintf("%s of %s (bound %.0f s)", fmtInt(within), fmtInt(n), bound)
				}
				label := sideOf(info)
				if label == "upstream" {
					label = "backend"
				}
				rounds := ""
				if len(runs) > 1 {
					rounds = fmt.Sprintf(" (%d rounds)", len(runs))
				}
				t.add(tg, label, fmtInt(n)+rounds, fmtInt(det), fmtInt(und), fmt.Sprintf("%.0f s", waited),
					q(0.5), q(0.99), mx, wb, closesText(closes))
			}
		}
		w("%s\n", t.String())
		w("Percentiles pool the pairs of every round (nearest rank). An undetected pair is one\n")
		w("the proxy still held open when the wait ended: its client (or backend) would wait on a\n")
		w("dead connection until its own timeouts, if it has any. nginx and HAProxy send nothing on\n")
		w("an idle tunnel, so they learn of the loss only at `proxy_read_timeout` or `timeout tunnel`\n")
		w("(an hour here). Caddy's ~151 s on the client side is consistent with Go's default TCP\n")
		w("keepalive on accepted connections (15 s idle, then 9 probes 15 s apart); toward the\n")
		w("backend its dialer's keepalive is longer, beyond the wait. It closes without a close frame.\n\n")
		for _, info := range bhs {
			writeFailures(&b, res, info)
		}
	}

	// Commands.
	w("## Exact commands\n\n")
	w("`$BIN` is `bench/out/bin` (built with `go build -o $BIN/ ./cmd/wsalive ./bench/cmd/wsload\n")
	w("./bench/cmd/gorilla-echo ./examples/legacyecho/cmd/legacy-echo`), `$RUN` the run's directory under `bench/out/runs/`,\n")
	w("where the expanded configuration files are kept (the blackhole runs' `*.tmpl` are copies of\n")
	w("the templates in `bench/configs/`, wsalive's being `blackhole-client.hcl` and\n")
	w("`blackhole-upstream.hcl`). Ports are fresh for every run. Round 1:\n\n")
	for _, info := range res.Scenarios {
		w("### %s\n\n```sh\n", info.Name)
		for _, tg := range info.Targets {
			var run *Run
			for i := range res.Runs {
				r := &res.Runs[i]
				if r.Scenario == info.Name && r.Target == tg && r.Round == 1 {
					run = r
					break
				}
			}
			if run == nil {
				continue
			}
			w("# %s\n", tg)
			for _, c := range run.Commands {
				w("%s\n", c)
			}
		}
		w("```\n\n")
	}

	if len(res.Notes) > 0 {
		w("## Notes from the run\n\n")
		for _, n := range res.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	if strings.TrimSpace(notes) != "" {
		w("%s\n", strings.TrimSpace(notes))
	}
	return b.String()
}

func ratioOrDash(res *Results, sc, target, ref, metric string) string {
	if _, ok := res.Median(sc, target, metric); !ok {
		return "—"
	}
	return res.ratioCell(sc, target, ref, metric)
}

func pluralRounds(n int) string {
	if n == 1 {
		return "1 round"
	}
	return fmt.Sprintf("%d rounds", n)
}

func mib(kib float64) string { return fmt.Sprintf("%.1f MiB", kib/1024) }

func bytesFmt(v float64) string { return fmtInt(v) + " B" }

func closesText(m map[string]int) string {
	if len(m) == 0 {
		return "—"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s × %s", fmtInt(float64(m[k])), k))
	}
	return strings.Join(parts, "; ")
}

// writeFailures lists the runs of a scenario that failed, and the load
// generator's error counts of the others.
func writeFailures(b *strings.Builder, res *Results, info ScenarioInfo) {
	var lines []string
	for _, tg := range info.Targets {
		for _, run := range res.failed(info.Name, tg) {
			msg, _, _ := strings.Cut(run.Error, "\n")
			lines = append(lines, fmt.Sprintf("- %s, round %d: failed: %s", tg, run.Round, msg))
		}
		for _, run := range res.runs(info.Name, tg) {
			if run.Metrics[MetricWindowMissed] == 1 {
				lines = append(lines, fmt.Sprintf("- %s, round %d: the CPU window missed the traffic (the proxy used no CPU while it relayed %s messages/s); its CPU figures are left out",
					tg, run.Round, fmtInt(run.Metrics[MetricMsgsPerSec])))
			}
			if len(run.LoadErrors) > 0 {
				lines = append(lines, fmt.Sprintf("- %s, round %d: wsload counted %s", tg, run.Round, closesText(run.LoadErrors)))
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(b, "Problems seen:\n\n%s\n\n", strings.Join(lines, "\n"))
	}
}

// renderCharts draws the charts there is data for, and returns their file
// names.
func renderCharts(res *Results, dir string) ([]string, error) {
	var out []string
	save := func(c *canvas, name string) error {
		if err := c.save(filepath.Join(dir, name)); err != nil {
			return err
		}
		out = append(out, name)
		return nil
	}
	echo := res.scenariosOf(KindEcho)
	if len(echo) > 0 {
		const pw, ph = 560, 440
		tc := newCanvas(pw*len(echo), ph+40)
		lc := newCanvas(pw*len(echo), ph+40)
		tc.textCentered(tc.img.Rect.Dx()/2, 8, "ECHO THROUGHPUT (MEDIAN; WHISKERS: MIN-MAX OF THE ROUNDS)", 2, colText)
		lc.textCentered(lc.img.Rect.Dx()/2, 8, "ECHO ROUND TRIP (MEDIAN OF THE ROUNDS)", 2, colText)
		for i, info := range echo {
			r := rect{i * pw, 40, (i + 1) * pw, ph + 40}
			var bars []bar
			var pairs []pairBar
			for _, tg := range info.Targets {
				v := res.values(info.Name, tg, MetricMsgsPerSec)
				b := bar{label: tg, value: math.NaN(), lo: math.NaN(), hi: math.NaN(), col: targetColor(tg)}
				if len(v) > 0 {
					b.value, b.lo, b.hi = median(v), slices.Min(v), slices.Max(v)
				}
				bars = append(bars, b)
				p50, ok1 := res.Median(info.Name, tg, MetricRTTP50)
				p99, ok2 := res.Median(info.Name, tg, MetricRTTP99)
				if !ok1 {
					p50 = math.NaN()
				}
				if !ok2 {
					p99 = math.NaN()
				}
				pairs = append(pairs, pairBar{label: tg, a: p50, b: p99, col: targetColor(tg)})
			}
			title := strings.ToUpper(strings.TrimPrefix(info.Title, "Echo, "))
			tc.barPanel(r, title, "MESSAGES/S", bars, 0, "")
			lc.pairPanel(r, title, "MILLISECONDS", "P50", "P99", pairs)
		}
		if err := save(tc, ChartThroughput); err != nil {
			return nil, err
		}
		if err := save(lc, ChartLatency); err != nil {
			return nil, err
		}
	}

	// Resources: RSS per idle pair, CPU per message, heartbeat CPU.
	type panel struct {
		title, y, sc, metric string
		goal                 float64
		goalLabel            string
	}
	var panels []panel
	for _, info := range res.scenariosOf(KindIdle) {
		panels = append(panels, panel{"RSS PER IDLE PAIR (BYTES)", "BYTES", info.Name, MetricRSSPerPair,
			goalRSSPerPair, fmt.Sprintf("GOAL %s B", fmtInt(goalRSSPerPair))})
	}
	for _, info := range echo {
		if info.Name == ScenarioEcho1K || len(echo) == 1 {
			p := panel{title: "PROXY CPU PER MESSAGE, " + strings.ToUpper(strings.TrimPrefix(info.Title, "Echo, ")),
				y: "MICROSECONDS", sc: info.Name, metric: MetricCPUPerMsg}
			if v, ok := res.Median(info.Name, referenceNginx, MetricCPUPerMsg); ok {
				p.goal, p.goalLabel = v*goalCPUVsNginx, fmt.Sprintf("GOAL %.1f × NGINX", goalCPUVsNginx)
			}
			panels = append(panels, p)
		}
	}
	for _, info := range res.scenariosOf(KindIdle) {
		panels = append(panels, panel{"PROXY CPU, IDLE PAIRS (% OF A CORE)", "% OF ONE CORE", info.Name, MetricIdleCPU,
			goalHeartbeatCPU, "GOAL 2 %"})
	}
	if len(panels) > 0 {
		const pw, ph = 560, 440
		c := newCanvas(pw*len(panels), ph+40)
		c.textCentered(c.img.Rect.Dx()/2, 8, "WHAT THE PROXY COSTS (MEDIANS OF THE ROUNDS)", 2, colText)
		for i, p := range panels {
			var bars []bar
			info, _ := res.scenario(p.sc)
			for _, tg := range info.Targets {
				if tg == TargetDirect {
					continue
				}
				b := bar{label: tg, value: math.NaN(), lo: math.NaN(), hi: math.NaN(), col: targetColor(tg)}
				if v, ok := res.Median(p.sc, tg, p.metric); ok {
					b.value = v
				}
				bars = append(bars, b)
			}
			c.barPanel(rect{i * pw, 40, (i + 1) * pw, ph + 40}, p.title, p.y, bars, p.goal, p.goalLabel)
		}
		if err := save(c, ChartResources); err != nil {
			return nil, err
		}
	}

	// Detection.
	bhs := res.scenariosOf(KindBlackhole)
	if len(bhs) > 0 {
		const pw, ph = 760, 480
		c := newCanvas(pw*2, ph+40)
		c.textCentered(c.img.Rect.Dx()/2, 8, "BLACKHOLE: TIME FROM THE DROP TO THE PROXY CLOSING THE PAIR (CUMULATIVE)", 2, colText)
		var zoom, full []cdfSeries
		var bound, maxWait float64
		for _, info := range bhs {
			dash := 0
			if sideOf(info) == "upstream" {
				dash = 10
			}
			for _, tg := range info.Targets {
				var vals []float64
				total := 0
				for _, run := range res.runs(info.Name, tg) {
					vals = append(vals, run.Detections...)
					total += int(run.Metrics[MetricConnected] - run.Metrics[MetricEndedBefore])
					maxWait = max(maxWait, run.Metrics[MetricMaxWait])
					if tg == TargetWsalive {
						bound = max(bound, run.Metrics[MetricBound])
					}
				}
				if total == 0 {
					continue
				}
				slices.Sort(vals)
				side := sideOf(info)
				if side == "upstream" {
					side = "backend"
				}
				s := cdfSeries{
					label:  fmt.Sprintf("%s, %s gone: %s/%s", tg, side, fmtInt(float64(len(vals))), fmtInt(float64(total))),
					values: vals, total: total, col: targetColor(tg), dash: dash,
				}
				full = append(full, s)
				if tg == TargetWsalive {
					zoom = append(zoom, s)
				}
			}
		}
		markers := map[string]float64{}
		zoomMax := 12.0
		if bound > 0 {
			markers[fmt.Sprintf("BOUND %.0fS", bound)] = bound
			markers["+1S"] = bound + 1
			zoomMax = math.Ceil(bound + 4)
		}
		c.cdfPanel(rect{0, 40, pw, ph + 40}, "WSALIVE (ALL ROUNDS)", "SECONDS AFTER THE DROP", zoomMax, zoom, markers, true)
		c.cdfPanel(rect{pw, 40, 2 * pw, ph + 40}, "EVERY PROXY (SOLID: CLIENT GONE, DASHED: BACKEND GONE)", "SECONDS AFTER THE DROP",
			max(maxWait, zoomMax), full, nil, false)
		if err := save(c, ChartDetection); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shortCommit is a commit hash as git abbreviates it.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	if c == "" {
		return "unknown"
	}
	return c
}
