package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/bench/configs"
	"github.com/wsalive/wsalive/bench/wsload"
	"github.com/wsalive/wsalive/liveness"
)

// Metric names of Run.Metrics.
const (
	// Echo.
	MetricMsgsPerSec  = "msgs_per_s"        // verified echoes per second
	MetricRTTP50      = "rtt_p50_ms"        // round trip of one message
	MetricRTTP90      = "rtt_p90_ms"        //
	MetricRTTP99      = "rtt_p99_ms"        //
	MetricRTTP999     = "rtt_p99_9_ms"      //
	MetricRTTMean     = "rtt_mean_ms"       //
	MetricProxyCPU    = "proxy_cpu_pct"     // proxy CPU over the window, % of one core
	MetricCPUPerMsg   = "cpu_per_msg_us"    // proxy CPU per echoed message (two frames relayed)
	MetricBackendCPU  = "backend_cpu_pct"   // backend CPU, % of one core
	MetricLoadCPU     = "load_cpu_pct"      // load generator CPU, % of one core
	MetricMachineBusy = "machine_busy_pct"  // all CPUs busy, % of the machine
	MetricWindow      = "window_s"          // the measured window
	MetricProxyRSS    = "proxy_rss_kib"     // proxy RSS at the end of the window
	MetricLoadErrors  = "load_errors"       // failures the load generator counted
	MetricPreOtherCPU = "pre_other_cpu_pct" // the machine's CPU use just before the run, % of one core

	// Handshake.
	MetricHSP50       = "hs_p50_ms"
	MetricHSP90       = "hs_p90_ms"
	MetricHSP99       = "hs_p99_ms"
	MetricHSMean      = "hs_mean_ms"
	MetricCPUPerConn  = "cpu_per_conn_us" // proxy CPU per connection, open and close
	MetricConnsOpened = "opened"

	// Idle.
	MetricPairs      = "pairs"
	MetricRSS0       = "rss0_kib"        // proxy RSS before the first pair
	MetricRSSSettled = "rss_settled_kib" // after the dial phase and Settle
	MetricRSS        = "rss_kib"         // after the CPU window
	MetricHWM        = "hwm_kib"         // peak RSS (VmHWM), summed over the processes
	MetricRSSPerPair = "rss_per_pair_b"  // (RSS − RSS0) / pairs
	MetricIdleCPU    = "idle_cpu_pct"    // proxy CPU over the window, % of one core
	MetricPingsPerS  = "client_pings_per_s"
	MetricProcs      = "proxy_procs"
	// Heartbeat per ping (wsalive): the idle CPU as CPU per ping-pong
	// round trip, beside the floor measured in the same run.
	MetricPingRTPerS = "ping_round_trips_per_s" // pairs × sides / interval
	MetricCPUPerPing = "cpu_per_ping_us"        // proxy CPU over the window / round trips in it
	MetricFloorUs    = "floor_write_read_us"    // bare loopback write+read of a ping and a pong
	MetricPingFloorX = "ping_vs_floor"          // cpu_per_ping_us / floor_write_read_us

	// Storm.
	MetricHSPerSec   = "handshakes_per_s" // opened / time from first dial to last handshake
	MetricHSP999     = "hs_p99_9_ms"
	MetricCPUPerHS   = "cpu_per_handshake_us" // proxy CPU over the dial phase / handshakes
	MetricStormSecs  = "dial_s"
	MetricDialFailed = "dial_failed"

	// Churn.
	MetricChurnPerSec = "conns_per_s" // connections completed per second
	MetricLifeP50     = "life_p50_ms" // dial start to close done
	MetricLifeP99     = "life_p99_ms"
	MetricCompleted   = "completed"

	// Blackhole.
	MetricBHN          = "n"
	MetricConnected    = "connected"
	MetricDetected     = "detected"
	MetricUndetected   = "undetected"
	MetricDetectP50    = "detect_p50_s"
	MetricDetectP90    = "detect_p90_s"
	MetricDetectP99    = "detect_p99_s"
	MetricDetectMax    = "detect_max_s"
	MetricDetectMin    = "detect_min_s"
	MetricBound        = "bound_s"
	MetricWithinBound1 = "within_bound_plus_1s" // detections within the bound + 1 s
	MetricMaxWait      = "max_wait_s"
	MetricEndedBefore  = "ended_before"
)

// Time limits of the pieces of a run.
const (
	readyTimeout  = 120 * time.Second
	loadExitSlack = 60 * time.Second
	wsloadGrace   = 30 * time.Second // after SIGINT: close handshakes, netns cleanup
)

// newRun prepares the run's record and directory.
func (r *runner) newRun(sc Scenario, target string, round int) (Run, error) {
	dir := filepath.Join(r.runsDir, sc.Name, fmt.Sprintf("r%d-%s", round, target))
	os.RemoveAll(dir) // a run done again
	run := Run{
		Scenario: sc.Name,
		Target:   target,
		Round:    round,
		Start:    time.Now(),
		Metrics:  map[string]float64{},
		Dir:      dir,
	}
	if err := os.MkdirAll(run.Dir, 0o755); err != nil {
		return run, err
	}
	return run, nil
}

// command renders argv with env for the report, with $BIN and $RUN.
func (r *runner) command(env, argv []string, runDir string) string {
	s := strings.TrimSpace(strings.Join(env, " ") + " " + strings.Join(quoteArgs(argv), " "))
	s = strings.ReplaceAll(s, runDir, "$RUN")
	return strings.ReplaceAll(s, r.bins.Dir, "$BIN")
}

func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"$;") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

// runOne runs one non-blackhole scenario against one target.
func (r *runner) runOne(ctx context.Context, sc Scenario, target string, round int) Run {
	for attempt := 1; ; attempt++ {
		run := r.runOnce(ctx, sc, target, round)
		var late *lateError
		if attempt < 3 && ctx.Err() == nil && errors.As(run.err, &late) {
			r.log.Warn("the measured window missed the start of the traffic; running again",
				"scenario", sc.Name, "target", target, "round", round, "lag", late.lag)
			continue
		}
		return run.Run
	}
}

// lateError says that the harness took its first sample too long after
// the load generator started its traffic (a stalled harness on a busy
// machine): the window would not match the traffic, so the run is redone.
type lateError struct{ lag time.Duration }

func (e *lateError) Error() string {
	return fmt.Sprintf("the measured window began %v after the traffic", e.lag.Round(time.Millisecond))
}

// maxWindowLag is how late the first sample may come after READY.
const maxWindowLag = 500 * time.Millisecond

// checkLag returns a lateError when the ready file was written more than
// maxWindowLag ago.
func checkLag(ready string) error {
	fi, err := os.Stat(ready)
	if err != nil {
		return err
	}
	if lag := time.Since(fi.ModTime()); lag > maxWindowLag {
		return &lateError{lag: lag}
	}
	return nil
}

// attempt is a run with the error that ended it.
type attempt struct {
	Run
	err error
}

func (r *runner) runOnce(ctx context.Context, sc Scenario, target string, round int) attempt {
	run, err := r.newRun(sc, target, round)
	if err == nil {
		run.Metrics[MetricPreOtherCPU] = r.waitQuiet(ctx)
		run.Start = time.Now()
		r.log.Info("run", "scenario", sc.Name, "target", target, "round", round)
		switch sc.Kind {
		case KindEcho:
			err = r.runEcho(ctx, sc, target, &run)
		case KindHandshake:
			err = r.runHandshake(ctx, sc, target, &run)
		case KindIdle:
			err = r.runIdle(ctx, sc, target, &run)
		case KindStorm:
			err = r.runStorm(ctx, sc, target, &run)
		case KindChurn:
			err = r.runChurn(ctx, sc, target, &run)
		default:
			err = fmt.Errorf("unknown scenario kind %q", sc.Kind)
		}
	}
	if err != nil {
		run.Error = err.Error()
	}
	run.Seconds = time.Since(run.Start).Seconds()
	return attempt{Run: run, err: err}
}

// stage is a backend with the target's proxy in front of it.
type stage struct {
	backend *proc
	proxy   *proxyInst // nil for direct
	url     string
}

func (s *stage) stop() {
	s.proxy.stop()
	if s.backend != nil {
		s.backend.stop(0, 5*time.Second)
	}
}

// setUp starts the backend that goes with client and the target's proxy,
// and records their commands.
func (r *runner) setUp(ctx context.Context, target, variant, client string, run *Run) (*stage, error) {
	be, beAddr, err := startBackend(ctx, r.bins, run.Dir, client)
	if err != nil {
		return nil, err
	}
	st := &stage{backend: be, url: "ws://" + beAddr + "/"}
	run.Commands = append(run.Commands, r.command(nil, be.argv, run.Dir))
	px, err := startTarget(ctx, target, r.bins, variant, run.Dir, beAddr)
	if err != nil {
		st.stop()
		return nil, err
	}
	if px != nil {
		st.proxy = px
		st.url = "ws://" + px.listen + "/"
		run.Commands = append(run.Commands, r.command(px.env, px.argv, run.Dir))
	}
	return st, nil
}

// snapshot is what a run samples at the edges of its window.
type snapshot struct {
	proxy   treeStats
	backend treeStats
	load    []treeStats
	sys     sysCPU
}

func (r *runner) sample(st *stage, loads []*proc) (snapshot, error) {
	var s snapshot
	var err error
	if st.proxy != nil {
		if s.proxy, err = readTree(st.proxy.p.pid()); err != nil {
			return s, fmt.Errorf("reading the proxy's /proc: %w", err)
		}
	}
	s.backend, _ = readTree(st.backend.pid())
	for _, l := range loads {
		ls, _ := readTree(l.pid())
		s.load = append(s.load, ls)
	}
	s.sys = readSysCPU()
	return s, nil
}

// window fills the CPU metrics measured between two snapshots.
func windowMetrics(m map[string]float64, a, b snapshot, proxied bool) float64 {
	wall := b.sys.total - a.sys.total
	secs := b.backend.At.Sub(a.backend.At).Seconds()
	m[MetricWindow] = secs
	if secs <= 0 {
		return 0
	}
	var proxyCPU float64
	if proxied {
		proxyCPU = cpuSeconds(a.proxy, b.proxy)
		m[MetricProxyCPU] = proxyCPU / secs * 100
		m[MetricProxyRSS] = float64(b.proxy.RSSBytes) / 1024
	}
	m[MetricBackendCPU] = cpuSeconds(a.backend, b.backend) / secs * 100
	var load float64
	for i := range min(len(a.load), len(b.load)) {
		load += cpuSeconds(a.load[i], b.load[i])
	}
	m[MetricLoadCPU] = load / secs * 100
	if wall > 0 {
		m[MetricMachineBusy] = busyPct(a.sys, b.sys)
	}
	return proxyCPU
}

// startLoad starts one wsload process.
func (r *runner) startLoad(run *Run, name string, args []string) (*proc, string, error) {
	return r.startLoadEnv(run, name, nil, args)
}

// startLoadEnv starts one wsload process with env added.
func (r *runner) startLoadEnv(run *Run, name string, env, args []string) (*proc, string, error) {
	argv := append([]string{r.bins.Wsload}, args...)
	out := filepath.Join(run.Dir, name+".out")
	p, err := startProc(name, argv, env, out, filepath.Join(run.Dir, name+".err"))
	if err != nil {
		return nil, "", err
	}
	run.Commands = append(run.Commands, r.command(env, argv, run.Dir))
	return p, out, nil
}

// waitReady waits for the ready file of a wsload process (or its early
// exit).
func waitReady(ctx context.Context, p *proc, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("wsload exited before READY (%s):\n%s", p.ExitText(), p.LogTail(10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wsload not READY after %v:\n%s", limit, p.LogTail(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finishLoad waits up to limit for a wsload process to end (SIGINT then
// SIGKILL when it does not) and returns its summary.
func finishLoad(p *proc, out string, limit time.Duration) (*wsload.Summary, error) {
	if !p.WaitFor(limit) {
		p.stop(syscall.SIGINT, wsloadGrace)
	} else {
		p.stop(0, 0) // reaped already; releases the thread
	}
	return readSummary(out)
}

// readSummary reads the JSON summary wsload prints last.
func readSummary(path string) (*wsload.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "{") {
			last = line
		}
	}
	if last == "" {
		return nil, fmt.Errorf("no JSON summary in %s", path)
	}
	var s wsload.Summary
	if err := json.Unmarshal([]byte(last), &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

func loadErrors(run *Run, s *wsload.Summary) {
	run.Metrics[MetricLoadErrors] = float64(s.Errors)
	if s.Errors > 0 {
		run.LoadErrors = s.ErrorKinds
	}
}

func dur(d time.Duration) string { return d.String() }

func (r *runner) runEcho(ctx context.Context, sc Scenario, target string, run *Run) error {
	st, err := r.setUp(ctx, target, variantThroughput, sc.client(), run)
	if err != nil {
		return err
	}
	defer st.stop()
	ready := filepath.Join(run.Dir, "ready")
	lp, out, err := r.startLoad(run, "wsload", []string{"-mode", "echo", "-client", sc.client(),
		"-n", strconv.Itoa(sc.N), "-size", strconv.Itoa(sc.Size), "-inflight", strconv.Itoa(sc.Inflight),
		"-duration", dur(sc.Duration), "-rate", fmt.Sprint(sc.Rate), "-url", st.url, "-ready-file", ready})
	if err != nil {
		return err
	}
	defer lp.stop(syscall.SIGINT, wsloadGrace)
	if err := waitReady(ctx, lp, ready, readyTimeout); err != nil {
		return err
	}
	a, err := r.sample(st, []*proc{lp})
	if err != nil {
		return err
	}
	if err := checkLag(ready); err != nil {
		return err
	}
	var prof *profiler
	if run.Round == profileRound && st.proxy != nil {
		prof = r.startProfile(ctx, sc, st.proxy, sc.Duration)
	}
	// The CPU window closes before wsload's traffic ends: sampled later,
	// wsload may already have exited (its CPU then read as zero, and the
	// machine's "other CPU" as everything it used), and the proxy's CPU
	// would include closing every pair.
	if err := sleepCtx(ctx, sc.Duration*9/10); err != nil {
		return err
	}
	b, err := r.sample(st, []*proc{lp})
	if err != nil {
		return err
	}
	prof.finish(ctx)
	proxyCPU := windowMetrics(run.Metrics, a, b, st.proxy != nil)
	sum, err := finishLoad(lp, out, sc.Duration+loadExitSlack)
	if err != nil {
		return err
	}
	loadErrors(run, sum)
	if sum.Echo == nil || sum.Echo.Messages == 0 {
		return fmt.Errorf("no echo verified (errors: %v)", sum.ErrorKinds)
	}
	e := sum.Echo
	m := run.Metrics
	m[MetricMsgsPerSec] = e.MessagesPerSec
	m[MetricRTTP50] = e.RTT.P50Ms
	m[MetricRTTP90] = e.RTT.P90Ms
	m[MetricRTTP99] = e.RTT.P99Ms
	m[MetricRTTP999] = e.RTT.P999Ms
	m[MetricRTTMean] = e.RTT.MeanMs
	if st.proxy != nil && e.MessagesPerSec > 0 {
		msgs := e.MessagesPerSec * m[MetricWindow]
		m[MetricCPUPerMsg] = proxyCPU / msgs * 1e6
	}
	return nil
}

func (r *runner) runHandshake(ctx context.Context, sc Scenario, target string, run *Run) error {
	st, err := r.setUp(ctx, target, variantThroughput, sc.client(), run)
	if err != nil {
		return err
	}
	defer st.stop()
	a, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	lp, out, err := r.startLoad(run, "wsload", []string{"-mode", "idle",
		"-n", strconv.Itoa(sc.N), "-rate", fmt.Sprint(sc.Rate), "-hold", "100ms", "-url", st.url})
	if err != nil {
		return err
	}
	limit := time.Duration(float64(sc.N)/max(sc.Rate, 1)*float64(time.Second)) + loadExitSlack
	sum, err := finishLoad(lp, out, limit)
	if err != nil {
		return err
	}
	b, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	loadErrors(run, sum)
	if sum.Opened == 0 {
		return fmt.Errorf("no connection opened (errors: %v)", sum.ErrorKinds)
	}
	m := run.Metrics
	m[MetricConnsOpened] = float64(sum.Opened)
	m[MetricHSP50] = sum.Handshake.P50Ms
	m[MetricHSP90] = sum.Handshake.P90Ms
	m[MetricHSP99] = sum.Handshake.P99Ms
	m[MetricHSMean] = sum.Handshake.MeanMs
	if st.proxy != nil {
		m[MetricCPUPerConn] = cpuSeconds(a.proxy, b.proxy) / float64(sum.Opened) * 1e6
	}
	return nil
}

// srcRanges splits the source addresses 127.0.0.2-250 into k disjoint
// ranges, one per wsload process, so that their ports never collide.
func srcRanges(k int) []string {
	const first, last = 2, 250
	n := last - first + 1
	var out []string
	for i := range k {
		lo := first + i*n/k
		hi := first + (i+1)*n/k - 1
		out = append(out, fmt.Sprintf("%d-%d", lo, hi))
	}
	return out
}

func (r *runner) runIdle(ctx context.Context, sc Scenario, target string, run *Run) error {
	st, err := r.setUp(ctx, target, variantHeartbeat, sc.client(), run)
	if err != nil {
		return err
	}
	defer st.stop()
	// The baseline: the proxy after start and one probe connection.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	base, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	procs := max(sc.Procs, 1)
	ranges := srcRanges(procs)
	var loads []*proc
	var outs, readies []string
	defer func() {
		for _, lp := range loads {
			lp.stop(syscall.SIGINT, wsloadGrace)
		}
	}()
	for i := range procs {
		n := sc.N / procs
		if i == procs-1 {
			n = sc.N - n*(procs-1)
		}
		ready := filepath.Join(run.Dir, fmt.Sprintf("ready%d", i+1))
		lp, out, err := r.startLoad(run, fmt.Sprintf("wsload%d", i+1), []string{"-mode", "idle", "-client", sc.client(),
			"-n", strconv.Itoa(n), "-rate", fmt.Sprint(sc.Rate / float64(procs)), "-src-ips", ranges[i],
			"-hold", "30m", "-url", st.url, "-ready-file", ready})
		if err != nil {
			return err
		}
		loads = append(loads, lp)
		outs = append(outs, out)
		readies = append(readies, ready)
	}
	for i, lp := range loads {
		if err := waitReady(ctx, lp, readies[i], readyTimeout); err != nil {
			return err
		}
	}
	if err := sleepCtx(ctx, sc.Settle); err != nil {
		return err
	}
	a, err := r.sample(st, loads)
	if err != nil {
		return err
	}
	var prof *profiler
	if run.Round == profileRound && target == TargetWsalive {
		prof = r.startProfile(ctx, sc, st.proxy, sc.Duration)
	}
	if err := sleepCtx(ctx, sc.Duration); err != nil {
		return err
	}
	b, err := r.sample(st, loads)
	if err != nil {
		return err
	}
	prof.finish(ctx)
	windowMetrics(run.Metrics, a, b, true)
	if target == TargetWsalive {
		// The floor, in the same run, while the pairs are still held:
		// bare loopback round trips of a ping's and a pong's size.
		floor, err := r.runFloor(ctx, run)
		if err != nil {
			return err
		}
		run.Metrics[MetricFloorUs] = floor
	}
	// The end: every wsload closes its connections cleanly on SIGINT.
	var pairs, pings int64
	var held float64
	errKinds := map[string]int{}
	var errs int
	for i, lp := range loads {
		lp.signal(syscall.SIGINT)
		sum, err := finishLoad(lp, outs[i], loadExitSlack)
		if err != nil {
			return err
		}
		pairs += int64(sum.Opened)
		if sum.Idle != nil {
			pings += sum.Idle.PingsAnswered
			held = max(held, sum.Idle.HeldSeconds)
		}
		errs += sum.Errors
		for k, v := range sum.ErrorKinds {
			errKinds[k] += v
		}
	}
	if pairs == 0 {
		return fmt.Errorf("no pair opened (errors: %v)", errKinds)
	}
	m := run.Metrics
	m[MetricLoadErrors] = float64(errs)
	if errs > 0 {
		run.LoadErrors = errKinds
	}
	m[MetricPairs] = float64(pairs)
	m[MetricProcs] = float64(b.proxy.Procs)
	m[MetricRSS0] = float64(base.proxy.RSSBytes) / 1024
	m[MetricRSSSettled] = float64(a.proxy.RSSBytes) / 1024
	m[MetricRSS] = float64(b.proxy.RSSBytes) / 1024
	m[MetricHWM] = float64(b.proxy.HWMBytes) / 1024
	m[MetricRSSPerPair] = float64(b.proxy.RSSBytes-base.proxy.RSSBytes) / float64(pairs)
	m[MetricIdleCPU] = m[MetricProxyCPU]
	if held > 0 {
		m[MetricPingsPerS] = float64(pings) / held
	}
	if target == TargetWsalive {
		heartbeatPerPing(m, pairs)
	}
	return nil
}

// The heartbeat of configs.WsaliveHeartbeat: a ping every 5 s toward both
// sides of every pair (TestHeartbeatTemplate checks the template says so).
const (
	heartbeatInterval = 5 * time.Second
	heartbeatSides    = 2
)

// Frames of one heartbeat round trip: wsalive's ping payload is
// liveness.PingPayloadSize bytes; unmasked toward the client (2-byte
// header), masked toward the backend (6), and the pong the other way.
const (
	pingFrameSize = 2 + liveness.PingPayloadSize
	pongFrameSize = 6 + liveness.PingPayloadSize
)

// heartbeatPerPing expresses the idle CPU of an idle run as CPU per
// ping-pong round trip: an idle pair sends nothing, so the heartbeat's
// round trips, pairs × sides per interval, are all the proxy does.
func heartbeatPerPing(m map[string]float64, pairs int64) {
	rate := float64(pairs) * heartbeatSides / heartbeatInterval.Seconds()
	m[MetricPingRTPerS] = rate
	cpu := m[MetricProxyCPU] / 100 * m[MetricWindow]
	if rate <= 0 || m[MetricWindow] <= 0 {
		return
	}
	m[MetricCPUPerPing] = cpu / (rate * m[MetricWindow]) * 1e6
	if f := m[MetricFloorUs]; f > 0 {
		m[MetricPingFloorX] = m[MetricCPUPerPing] / f
	}
}

// floorDuration is how long the floor is measured; the smoke run takes
// shortFloorDuration (its figures mean nothing anyway).
const (
	floorDuration      = 2 * time.Second
	shortFloorDuration = 300 * time.Millisecond
)

// runFloor measures, with wsload -mode floor on one core's worth of
// parallelism (like the proxy), the CPU of a bare loopback write of a
// ping frame and read of a pong frame, in µs.
func (r *runner) runFloor(ctx context.Context, run *Run) (float64, error) {
	d := floorDuration
	if r.opts.Short {
		d = shortFloorDuration
	}
	lp, out, err := r.startLoadEnv(run, "floor", []string{"GOMAXPROCS=1"}, []string{"-mode", "floor",
		"-size", strconv.Itoa(pingFrameSize), "-reply-size", strconv.Itoa(pongFrameSize), "-duration", dur(d)})
	if err != nil {
		return 0, err
	}
	sum, err := finishLoad(lp, out, d+loadExitSlack)
	if err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	if sum.Floor == nil || sum.Floor.RoundTrips == 0 {
		return 0, fmt.Errorf("floor: no round trip measured")
	}
	return sum.Floor.CPUPerWriteReadUs, nil
}

// runStorm opens sc.N connections at once, sc.DialConcurrency in flight,
// and measures the handshakes: their rate, latency, and the proxy's CPU
// over the dial phase (from before the first dial to READY).
func (r *runner) runStorm(ctx context.Context, sc Scenario, target string, run *Run) error {
	st, err := r.setUp(ctx, target, variantThroughput, sc.client(), run)
	if err != nil {
		return err
	}
	defer st.stop()
	a, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	ready := filepath.Join(run.Dir, "ready")
	lp, out, err := r.startLoad(run, "wsload", []string{"-mode", "idle", "-client", sc.client(),
		"-n", strconv.Itoa(sc.N), "-rate", "-1", "-dial-concurrency", strconv.Itoa(sc.DialConcurrency),
		"-hold", "30m", "-url", st.url, "-ready-file", ready})
	if err != nil {
		return err
	}
	defer lp.stop(syscall.SIGINT, wsloadGrace)
	if err := waitReady(ctx, lp, ready, readyTimeout); err != nil {
		return err
	}
	b, err := r.sample(st, []*proc{lp})
	if err != nil {
		return err
	}
	lp.signal(syscall.SIGINT)
	sum, err := finishLoad(lp, out, loadExitSlack)
	if err != nil {
		return err
	}
	loadErrors(run, sum)
	if sum.Opened == 0 {
		return fmt.Errorf("no connection opened (errors: %v)", sum.ErrorKinds)
	}
	m := run.Metrics
	m[MetricConnsOpened] = float64(sum.Opened)
	m[MetricDialFailed] = float64(sum.DialFailed)
	m[MetricStormSecs] = sum.DialSeconds
	m[MetricHSPerSec] = sum.DialRate
	m[MetricHSP50] = sum.Handshake.P50Ms
	m[MetricHSP90] = sum.Handshake.P90Ms
	m[MetricHSP99] = sum.Handshake.P99Ms
	m[MetricHSP999] = sum.Handshake.P999Ms
	m[MetricHSMean] = sum.Handshake.MeanMs
	if st.proxy != nil {
		cpu := cpuSeconds(a.proxy, b.proxy)
		m[MetricCPUPerHS] = cpu / float64(sum.Opened) * 1e6
		if secs := b.proxy.At.Sub(a.proxy.At).Seconds(); secs > 0 {
			m[MetricProxyCPU] = cpu / secs * 100
		}
	}
	return nil
}

// runChurn opens sc.Rate connections a second for sc.Duration, each
// echoing one message and closing, and measures the proxy's CPU per
// connection over the whole run.
func (r *runner) runChurn(ctx context.Context, sc Scenario, target string, run *Run) error {
	st, err := r.setUp(ctx, target, variantThroughput, sc.client(), run)
	if err != nil {
		return err
	}
	defer st.stop()
	n := max(int(sc.Rate*sc.Duration.Seconds()), 1)
	a, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	lp, out, err := r.startLoad(run, "wsload", []string{"-mode", "churn", "-client", sc.client(),
		"-n", strconv.Itoa(n), "-rate", fmt.Sprint(sc.Rate), "-dial-concurrency", strconv.Itoa(sc.DialConcurrency),
		"-size", strconv.Itoa(sc.Size), "-url", st.url})
	if err != nil {
		return err
	}
	sum, err := finishLoad(lp, out, sc.Duration+loadExitSlack)
	if err != nil {
		return err
	}
	b, err := r.sample(st, nil)
	if err != nil {
		return err
	}
	loadErrors(run, sum)
	c := sum.Churn
	if c == nil || c.Completed == 0 {
		return fmt.Errorf("no connection completed (errors: %v)", sum.ErrorKinds)
	}
	m := run.Metrics
	m[MetricConnsOpened] = float64(sum.Opened)
	m[MetricCompleted] = float64(c.Completed)
	m[MetricChurnPerSec] = c.ConnsPerSec
	m[MetricHSP50] = sum.Handshake.P50Ms
	m[MetricHSP99] = sum.Handshake.P99Ms
	m[MetricRTTP50] = c.RTT.P50Ms
	m[MetricRTTP99] = c.RTT.P99Ms
	m[MetricLifeP50] = c.Lifetime.P50Ms
	m[MetricLifeP99] = c.Lifetime.P99Ms
	if st.proxy != nil {
		cpu := cpuSeconds(a.proxy, b.proxy)
		m[MetricCPUPerConn] = cpu / float64(c.Completed) * 1e6
		if secs := b.proxy.At.Sub(a.proxy.At).Seconds(); secs > 0 {
			m[MetricProxyCPU] = cpu / secs * 100
		}
	}
	return nil
}

// bhJob is one blackhole run in flight.
type bhJob struct {
	sc    Scenario
	run   Run
	p     *proc
	out   string
	ready string
	csv   string
	limit time.Duration
	err   error
}

// runBlackholes runs the blackhole scenarios. Nothing but wsalive notices
// a vanished peer within a minute, and waiting minutes for each of the
// others in turn would not fit the time budget; so the other proxies run
// once, all at the same time (each in its own network namespace, with its
// own backend), and wsalive's rounds run one after the other while they
// wait. Their dial phases are over before wsalive's first round starts.
func (r *runner) runBlackholes(ctx context.Context, scs []Scenario) {
	var others []*bhJob
	r.waitQuiet(ctx)
	for _, sc := range scs {
		for _, t := range r.res.Targets {
			if t == TargetWsalive || !sc.appliesTo(t) {
				continue
			}
			job, err := r.startBlackhole(sc, t, 1)
			if err != nil {
				job.run.Error = err.Error()
				job.run.Seconds = time.Since(job.run.Start).Seconds()
				r.record(job.run)
				continue
			}
			others = append(others, job)
		}
	}
	for _, job := range others {
		if err := waitReady(ctx, job.p, job.ready, readyTimeout); err != nil {
			job.err = err
		}
	}
	if slices.Contains(r.res.Targets, TargetWsalive) {
		for round := 1; round <= r.opts.Reps && ctx.Err() == nil; round++ {
			for _, sc := range scs {
				if ctx.Err() != nil {
					break
				}
				pre := r.waitQuiet(ctx)
				job, err := r.startBlackhole(sc, TargetWsalive, round)
				job.run.Metrics[MetricPreOtherCPU] = pre
				if err == nil {
					r.finishBlackhole(ctx, job)
				} else {
					job.run.Error = err.Error()
					job.run.Seconds = time.Since(job.run.Start).Seconds()
					r.record(job.run)
				}
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, job := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := r.collectBlackhole(ctx, job)
			mu.Lock()
			r.record(run)
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// startBlackhole starts the wsload blackhole run of sc against target.
func (r *runner) startBlackhole(sc Scenario, target string, round int) (*bhJob, error) {
	run, err := r.newRun(sc, target, round)
	job := &bhJob{sc: sc, run: run}
	if err != nil {
		return job, err
	}
	n, maxWait := sc.N, sc.MaxWait
	if target != TargetWsalive {
		n, maxWait = sc.CompetitorN, sc.CompetitorMaxWait
	}
	job.ready = filepath.Join(run.Dir, "ready")
	job.csv = filepath.Join(run.Dir, "detections.csv")
	job.limit = maxWait + readyTimeout + loadExitSlack
	args := []string{"-mode", "blackhole-" + sc.Side, "-n", strconv.Itoa(n), "-max-wait", dur(maxWait),
		"-csv", job.csv, "-ready-file", job.ready, "-proxy-log", filepath.Join(run.Dir, target+".log")}
	tmplPath := ""
	if target == TargetWsalive {
		tmpl := sc.WsaliveTemplate
		if tmpl == "" {
			name := configs.BlackholeClient
			if sc.Side == "upstream" {
				name = configs.BlackholeUpstream
			}
			tmpl = configs.Text(name)
		}
		tmplPath = filepath.Join(run.Dir, "wsalive.hcl.tmpl")
		if err := os.WriteFile(tmplPath, []byte(tmpl), 0o644); err != nil {
			return job, err
		}
		args = append(args, "-proxy-bin", r.bins.Wsalive, "-proxy-config", tmplPath, "-proxy-env", "GOMAXPROCS=1")
	} else {
		setup := setupFor(target, r.bins, "")
		tmplPath = filepath.Join(run.Dir, setup.ConfigName+".tmpl")
		if err := os.WriteFile(tmplPath, []byte(setup.Template), 0o644); err != nil {
			return job, err
		}
		args = append(args, "-proxy-cmd", strings.Join(setup.Argv, " "), "-proxy-config", tmplPath,
			"-proxy-config-name", setup.ConfigName)
		if len(setup.Env) > 0 {
			args = append(args, "-proxy-env", strings.Join(setup.Env, ","))
		}
	}
	r.log.Info("blackhole run", "side", sc.Side, "target", target, "round", round, "n", n, "max_wait", maxWait)
	job.p, job.out, err = r.startLoad(&job.run, "wsload", args)
	return job, err
}

// finishBlackhole waits for a blackhole run and records it.
func (r *runner) finishBlackhole(ctx context.Context, job *bhJob) {
	r.record(r.collectBlackhole(ctx, job))
}

func (r *runner) collectBlackhole(ctx context.Context, job *bhJob) (run Run) {
	run = job.run
	defer func() { run.Seconds = time.Since(run.Start).Seconds() }()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// wsload tears its namespace down on SIGINT.
			job.p.signal(syscall.SIGINT)
		case <-done:
		}
	}()
	sum, err := finishLoad(job.p, job.out, job.limit)
	close(done)
	if err == nil && job.err != nil {
		err = job.err
	}
	if err != nil {
		run.Error = err.Error()
		return run
	}
	bh := sum.Blackhole
	if bh == nil {
		run.Error = fmt.Sprintf("no blackhole result (errors: %v)", sum.ErrorKinds)
		return run
	}
	m := run.Metrics
	m[MetricBHN] = float64(sum.N)
	m[MetricConnected] = float64(bh.Connected)
	m[MetricDetected] = float64(bh.Detected)
	m[MetricUndetected] = float64(bh.Undetected)
	m[MetricEndedBefore] = float64(bh.EndedBefore)
	m[MetricMaxWait] = bh.MaxWaitS
	if bh.BoundS > 0 {
		m[MetricBound] = bh.BoundS
	}
	if bh.Detected > 0 {
		m[MetricDetectMin] = bh.MinS
		m[MetricDetectP50] = bh.P50S
		m[MetricDetectP90] = bh.P90S
		m[MetricDetectP99] = bh.P99S
		m[MetricDetectMax] = bh.MaxS
	}
	run.Closes = bh.Closes
	run.Detections, _ = readDetections(job.csv)
	if bh.BoundS > 0 {
		within := 0
		for _, d := range run.Detections {
			if d <= bh.BoundS+1 {
				within++
			}
		}
		m[MetricWithinBound1] = float64(within)
	}
	// Undetected pairs are the finding here, not a failure of the run.
	errs := maps.Clone(sum.ErrorKinds)
	delete(errs, "not detected within max-wait")
	total := 0
	for _, v := range errs {
		total += v
	}
	m[MetricLoadErrors] = float64(total)
	if total > 0 {
		run.LoadErrors = errs
	}
	if bh.Connected == 0 {
		run.Error = fmt.Sprintf("no pair connected (errors: %v)", sum.ErrorKinds)
	}
	return run
}

// readDetections reads the detection times of wsload's CSV.
func readDetections(path string) ([]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []float64
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i == 0 || line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out = append(out, v)
		}
	}
	return out, nil
}
