// Package harness is wsalive's side-by-side benchmark: it runs the load
// generator (bench/wsload) against an echo backend directly and through
// nginx, HAProxy, Caddy, the L4 floor (nginx stream, HAProxy mode tcp) and
// wsalive, with two clients (wsload's own on gobwas/ws with legacy-echo,
// and gorilla/websocket clients with gorilla-echo), alternating the
// targets round by round, samples the proxy's CPU and memory from /proc, records
// everything in results.json, and renders BENCHMARKS.md with PNG charts
// from it. The command is bench/cmd/wsbench.
//
// Every process the harness starts (backend, proxy, load generator) is its
// child, in the foreground, with its configuration, pid file, logs and
// temporary files in the run's own directory; it dies with the harness
// (parent-death signal) and is stopped by its PID.
package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

// Options configure a benchmark run.
type Options struct {
	// Root is the module's root directory; empty means found from the
	// working directory.
	Root string
	// OutDir receives results.json and the runs' directories; empty means
	// Root/bench/out.
	OutDir string
	// BinDir receives the binaries the harness builds; empty means
	// OutDir/bin.
	BinDir string
	// Targets to run, a subset of AllTargets in any order (runs follow
	// the order of AllTargets); empty means all.
	Targets []string
	// Reps is the number of rounds of each scenario; 0 means 3.
	Reps int
	// Plan is the scenarios; nil means FullPlan, or ShortPlan when Short.
	Plan []Scenario
	// Clients are the WebSocket clients the echo, idle, storm and churn
	// scenarios run with, each a variant of the scenario (see
	// WithClients); nil means both, wsload's own (gobwas) and gorilla.
	Clients []string
	Short   bool
	// Install lets the harness apt-get install the competitors that are
	// missing (as root only).
	Install bool
	// Profile adds, after the rounds of every echo and idle scenario, one
	// more run of wsalive alone that captures a CPU profile (pprof, and
	// perf when installed) over its window and a heap profile at its end,
	// into OutDir/profiles. That run is not part of the results.
	Profile bool
	// QuietWait is the longest wait, before each run, for the rest of the
	// machine to use less than QuietBelow of CPU (this machine is shared);
	// the wait over the whole benchmark is capped at 10 × QuietWait. 0
	// means 15 s; negative means no wait.
	QuietWait time.Duration
	// QuietBelow is the CPU, in % of one core, under which the machine
	// counts as quiet; 0 means 25.
	QuietBelow float64
	// Command is the command line to record in the results.
	Command string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// runner is the state of one benchmark run.
type runner struct {
	opts    Options
	log     *slog.Logger
	bins    Binaries
	res     *Results
	resPath string
	runsDir string
	// quietLeft is what remains of the benchmark's budget of quiet waits.
	quietLeft time.Duration
}

// waitQuiet waits, at most opts.QuietWait (and what is left of the
// budget), until the machine's CPU use over half a second is below
// opts.QuietBelow % of one core; none of the harness's children run at
// that moment, so what is measured is everyone else. It returns the last
// reading.
func (r *runner) waitQuiet(ctx context.Context) float64 {
	if r.opts.QuietWait < 0 {
		return 0
	}
	cpus := float64(max(runtime.NumCPU(), 1))
	start := time.Now()
	limit := min(r.opts.QuietWait, r.quietLeft)
	var last float64
	for {
		a := readSysCPU()
		if sleepCtx(ctx, 500*time.Millisecond) != nil {
			return last
		}
		last = busyPct(a, readSysCPU()) * cpus
		waited := time.Since(start)
		if last < r.opts.QuietBelow || waited >= limit {
			r.quietLeft -= waited
			r.res.QuietWaitS += waited.Seconds()
			if waited > 2*time.Second {
				r.log.Info("waited for a quieter machine", "waited", waited.Round(100*time.Millisecond),
					"other_cpu_pct", fmt.Sprintf("%.0f", last))
			}
			return last
		}
	}
}

// Bench runs the benchmark and returns its results, which it also keeps
// writing to OutDir/results.json as runs complete.
func Bench(ctx context.Context, opts Options) (*Results, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Reps <= 0 {
		opts.Reps = 3
	}
	if opts.QuietWait == 0 {
		opts.QuietWait = 15 * time.Second
	}
	if opts.QuietBelow <= 0 {
		opts.QuietBelow = 25
	}
	if opts.Plan == nil {
		opts.Plan = FullPlan()
		if opts.Short {
			opts.Plan = ShortPlan()
		}
	}
	if opts.Clients == nil {
		opts.Clients = []string{wsload.ClientGobwas, wsload.ClientGorilla}
	}
	plan, err := WithClients(opts.Plan, opts.Clients)
	if err != nil {
		return nil, err
	}
	opts.Plan = plan
	if opts.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return nil, err
		}
		opts.Root = root
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(opts.Root, "bench", "out")
	}
	if opts.BinDir == "" {
		opts.BinDir = filepath.Join(opts.OutDir, "bin")
	}
	targets, err := orderTargets(opts.Targets)
	if err != nil {
		return nil, err
	}
	if _, _, err := wsload.RaiseFileLimit(); err != nil {
		opts.Log.Warn("could not raise the open-files limit", "err", err)
	}

	r := &runner{
		quietLeft: max(10*opts.QuietWait, 0),
		opts:      opts,
		log:       opts.Log,
		resPath:   filepath.Join(opts.OutDir, "results.json"),
		runsDir:   filepath.Join(opts.OutDir, "runs"),
		res: &Results{
			Started: time.Now(),
			Short:   opts.Short,
			Reps:    opts.Reps,
			Command: opts.Command,
			Version: map[string]string{},
		},
	}
	if err := os.RemoveAll(r.runsDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.runsDir, 0o755); err != nil {
		return nil, err
	}
	r.log.Info("building wsalive, wsload, gorilla-echo and legacy-echo", "into", opts.BinDir)
	if r.bins, err = Build(ctx, opts.Root, opts.BinDir); err != nil {
		return nil, err
	}
	r.res.Targets = r.checkCompetitors(ctx, targets)
	r.res.Machine = readMachine(opts.Root)
	r.res.Version = versions(r.bins)
	for _, sc := range opts.Plan {
		var ts []string
		for _, t := range r.res.Targets {
			if sc.appliesTo(t) {
				ts = append(ts, t)
			}
		}
		r.res.Scenarios = append(r.res.Scenarios, ScenarioInfo{
			Name: sc.Name, Kind: sc.Kind, Title: sc.Title, Params: sc.params(), Targets: ts, Client: sc.client(),
		})
	}
	r.save()

	var blackholes []Scenario
	for _, sc := range opts.Plan {
		if sc.Kind == KindBlackhole {
			blackholes = append(blackholes, sc)
			continue
		}
		for round := 1; round <= opts.Reps; round++ {
			for _, t := range r.res.Targets {
				if !sc.appliesTo(t) {
					continue
				}
				if ctx.Err() != nil {
					return r.finish(ctx.Err())
				}
				r.record(r.runOne(ctx, sc, t, round))
			}
		}
		if r.opts.Profile && (sc.Kind == KindEcho || sc.Kind == KindIdle) && slices.Contains(r.res.Targets, TargetWsalive) {
			r.log.Info("profile run (not recorded)", "scenario", sc.Name)
			if run := r.runOne(ctx, sc, TargetWsalive, profileRound); run.Error != "" {
				r.log.Error("profile run failed", "scenario", sc.Name, "err", run.Error)
			} else {
				r.log.Info("profile run done", "scenario", sc.Name, "metrics", brief(run.Metrics))
			}
		}
	}
	if len(blackholes) > 0 {
		if err := wsload.NetnsSupport(); err != nil {
			r.note(fmt.Sprintf("The blackhole scenarios were skipped: they need root, ip and iptables (%v).", err))
		} else {
			r.runBlackholes(ctx, blackholes)
		}
	}
	return r.finish(ctx.Err())
}

func (r *runner) finish(err error) (*Results, error) {
	r.res.Finished = time.Now()
	r.res.Machine.LoadAfter = loadavg()
	r.save()
	return r.res, err
}

func (r *runner) save() {
	if err := r.res.Save(r.resPath); err != nil {
		r.log.Error("saving results", "path", r.resPath, "err", err)
	}
}

func (r *runner) note(s string) {
	r.log.Warn(s)
	r.res.Notes = append(r.res.Notes, s)
}

func (r *runner) record(run Run) {
	if run.Error != "" {
		r.log.Error("run failed", "scenario", run.Scenario, "target", run.Target, "round", run.Round, "err", run.Error)
	} else {
		r.log.Info("run done", "scenario", run.Scenario, "target", run.Target, "round", run.Round,
			"took", time.Duration(run.Seconds*float64(time.Second)).Round(time.Millisecond), "metrics", brief(run.Metrics))
	}
	r.res.Runs = append(r.res.Runs, run)
	r.save()
}

// brief picks the headline metrics of a run for the progress log.
func brief(m map[string]float64) string {
	var parts []string
	for _, k := range []string{MetricMsgsPerSec, MetricRTTP50, MetricCPUPerMsg, MetricHSPerSec, MetricChurnPerSec, MetricHSP50,
		MetricHSP99, MetricCPUPerHS, MetricCPUPerConn, MetricRSSPerPair, MetricIdleCPU, MetricCPUPerPing, MetricPingFloorX,
		MetricDetected, MetricUndetected, MetricDetectP50, MetricDetectMax} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, v))
		}
	}
	return strings.Join(parts, " ")
}

// orderTargets validates targets and puts them in the order of AllTargets.
func orderTargets(targets []string) ([]string, error) {
	if len(targets) == 0 {
		return slices.Clone(AllTargets), nil
	}
	var out []string
	for _, t := range AllTargets {
		if slices.Contains(targets, t) {
			out = append(out, t)
		}
	}
	for _, t := range targets {
		if !slices.Contains(AllTargets, t) {
			return nil, fmt.Errorf("unknown target %q (want some of %s)", t, strings.Join(AllTargets, ", "))
		}
	}
	return out, nil
}

// checkCompetitors finds the competitors' binaries, installs the missing
// ones when allowed, and returns the targets that can run.
func (r *runner) checkCompetitors(ctx context.Context, targets []string) []string {
	var missing []string
	for _, t := range targets {
		if c, ok := competitors[t]; ok && lookCompetitor(t) == "" {
			for _, p := range c.pkgs {
				if !slices.Contains(missing, p) {
					missing = append(missing, p)
				}
			}
		}
	}
	if len(missing) > 0 && r.opts.Install {
		if os.Geteuid() != 0 {
			r.log.Warn("cannot install as a non-root user", "packages", missing)
		} else if err := aptInstall(ctx, r.log, missing); err != nil {
			r.log.Error("apt-get install failed", "packages", missing, "err", err)
		}
	}
	var out []string
	for _, t := range targets {
		if c, ok := competitors[t]; ok {
			bin := lookCompetitor(t)
			if bin == "" {
				pkgs := strings.Join(c.pkgs, " ")
				r.note(fmt.Sprintf("Target %s was skipped: %s is not installed (as root: apt-get install -y %s).",
					t, pkgs, pkgs))
				continue
			}
			switch t {
			case TargetNginx:
				r.bins.Nginx = bin
			case TargetNginxL4:
				r.bins.Nginx = bin
				r.bins.NginxStreamModule, _ = nginxStreamModule(bin) // checked by lookCompetitor
			case TargetHAProxy, TargetHAProxyL4:
				r.bins.HAProxy = bin
			case TargetCaddy:
				r.bins.Caddy = bin
			}
		}
		out = append(out, t)
	}
	return out
}

// aptInstall installs Debian packages without letting their maintainer
// scripts start system services: the benchmark runs each proxy itself, in
// the foreground, with its own configuration. (A policy-rc.d that denies
// every start is put in place for the install when there is none.)
func aptInstall(ctx context.Context, log *slog.Logger, pkgs []string) error {
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# wsbench: no service starts during its apt-get install\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	log.Info("installing the competitors from Debian's packages", "packages", pkgs)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 10))
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FindRoot returns the root of the wsalive module, searched upward from
// the working directory.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/wsalive/wsalive\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the wsalive module (no go.mod of github.com/wsalive/wsalive above the working directory)")
		}
		dir = parent
	}
}

// Build builds wsalive, wsload, gorilla-echo and legacy-echo from the module at root into
// dir.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("go is needed to build the benchmark's programs: %w", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", dir+string(filepath.Separator),
		"./cmd/wsalive", "./bench/cmd/wsload", "./bench/cmd/gorilla-echo", "./examples/legacyecho/cmd/legacy-echo")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Binaries{}, err
	}
	return Binaries{
		Dir:         abs,
		Wsalive:     filepath.Join(abs, "wsalive"),
		Wsload:      filepath.Join(abs, "wsload"),
		Echo:        filepath.Join(abs, "legacy-echo"),
		GorillaEcho: filepath.Join(abs, "gorilla-echo"),
	}, nil
}
