// Command wsbench runs wsalive's side-by-side benchmark and writes
// BENCHMARKS.md with its charts. See bench/README.md.
//
// Usage (from the repository root, as root for the blackhole scenarios):
//
//	go run ./bench/cmd/wsbench                # the full run, about 17 minutes
//	go run ./bench/cmd/wsbench -report-only   # re-render from bench/out/results.json
//	go run ./bench/cmd/wsbench -short         # a smoke run of seconds
//	go run ./bench/cmd/wsbench -scenarios soak -duration 1h   # the soak, alone
//
// The soak (harness.Soak) is not part of the comparison: it runs wsalive
// alone under steady echo, churn, idle pairs with heartbeats, silent
// clients and floods, samples its RSS, descriptors, goroutines and pairs
// every -sample, writes OUT/soak.json, prints the samples and the drift,
// and exits 1 when RSS, descriptors or goroutines grew beyond their bounds.
//
// Flags: -reps 3, -targets direct,nginx,haproxy,caddy,nginx-l4,haproxy-l4,wsalive,
// -scenarios (names, comma-separated), -clients gobwas,gorilla, -storm-n
// 9000, -storm-inflight 256, -out bench/out, -md BENCHMARKS.md, -charts
// bench/charts, -install (apt-get install missing competitors, as root),
// -profile (pprof and perf profiles of wsalive into OUT/profiles).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/bench/harness"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		short      = flag.Bool("short", false, "smoke run: every scenario with a handful of connections, seconds in all")
		reps       = flag.Int("reps", 3, "rounds of every scenario (targets alternate within a round)")
		targets    = flag.String("targets", strings.Join(harness.AllTargets, ","), "targets, comma-separated")
		scenarios  = flag.String("scenarios", "", "only these scenarios, comma-separated (default: all)")
		clients    = flag.String("clients", "gobwas,gorilla", "clients of the echo, idle, storm and churn scenarios: gobwas (wsload's own, legacy-echo backend), gorilla (gorilla/websocket clients and backend)")
		stormN     = flag.Int("storm-n", 0, "storm: clients connecting at once (default 9000; -short: 50)")
		stormIn    = flag.Int("storm-inflight", 0, "storm: handshakes in flight (default 256; -short: 16)")
		out        = flag.String("out", "", "directory for results.json, logs and binaries (default ROOT/bench/out)")
		md         = flag.String("md", "", "the report to write (default ROOT/BENCHMARKS.md)")
		charts     = flag.String("charts", "", "directory for the PNG charts (default ROOT/bench/charts)")
		reportOnly = flag.Bool("report-only", false, "render the report from OUT/results.json without running anything")
		merge      = flag.String("merge", "", "a results.json of an earlier run: its scenarios that this run did not run are kept, and the merged results are written to OUT/results.json and reported")
		install    = flag.Bool("install", true, "apt-get install nginx, haproxy and caddy when missing (root only)")
		profile    = flag.Bool("profile", false, "after each echo and idle scenario, one more (unrecorded) wsalive run that saves pprof CPU and heap profiles (and perf data) to OUT/profiles")
		verbose    = flag.Bool("v", false, "debug logging")
		soakFor    = flag.Duration("duration", time.Hour, "soak: how long the load runs")
		soakSample = flag.Duration("sample", time.Minute, "soak: time between two samples")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wsbench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := harness.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "out")
	}
	if *md == "" {
		*md = filepath.Join(root, "BENCHMARKS.md")
	}
	if *charts == "" {
		*charts = filepath.Join(root, "bench", "charts")
	}
	resPath := filepath.Join(*out, "results.json")

	if strings.TrimSpace(*scenarios) == "soak" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		o := harness.DefaultSoak()
		o.Root, o.OutDir, o.Log = root, *out, log
		o.Duration, o.Sample = *soakFor, *soakSample
		// A shorter soak keeps its shape: a steady start, and floods
		// between samples.
		o.Warmup = min(o.Warmup, *soakFor/4)
		o.FloodEvery = min(o.FloodEvery, *soakFor/4)
		rep, err := harness.Soak(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsbench: soak:", err)
			return 1
		}
		fmt.Print(rep.Text())
		if !rep.Passed() {
			return 1
		}
		return 0
	}

	if !*reportOnly {
		plan := harness.FullPlan()
		if *short {
			plan = harness.ShortPlan()
		}
		if *scenarios != "" {
			// In the plan's order; a name that is no scenario is an error,
			// not a scenario silently left out of a long run.
			want := map[string]bool{}
			for w := range strings.SplitSeq(*scenarios, ",") {
				want[strings.TrimSpace(w)] = true
			}
			var keep []harness.Scenario
			for _, sc := range plan {
				if want[sc.Name] {
					keep = append(keep, sc)
					delete(want, sc.Name)
				}
			}
			if len(want) > 0 {
				var names []string
				for _, sc := range plan {
					names = append(names, sc.Name)
				}
				fmt.Fprintf(os.Stderr, "wsbench: no scenario %q (the scenarios: %s)\n", slices.Sorted(maps.Keys(want)), strings.Join(names, ", "))
				return 2
			}
			plan = keep
		}
		for i := range plan {
			if plan[i].Kind == harness.KindStorm {
				if *stormN > 0 {
					plan[i].N = *stormN
					plan[i].Title = fmt.Sprintf("Reconnect storm, %s clients at once", thousands(*stormN))
				}
				if *stormIn > 0 {
					plan[i].DialConcurrency = *stormIn
				}
			}
		}
		var cs []string
		for c := range strings.SplitSeq(*clients, ",") {
			if c = strings.TrimSpace(c); c != "" {
				cs = append(cs, c)
			}
		}
		var ts []string
		for t := range strings.SplitSeq(*targets, ",") {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		_, err := harness.Bench(ctx, harness.Options{
			Root:    root,
			OutDir:  *out,
			Targets: ts,
			Reps:    *reps,
			Plan:    plan,
			Clients: cs,
			Short:   *short,
			Install: *install,
			Profile: *profile,
			Command: "go run ./bench/cmd/wsbench " + strings.Join(os.Args[1:], " "),
			Log:     log,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsbench:", err)
			if ctx.Err() != nil {
				return 1
			}
			return 1
		}
	}
	res, err := harness.LoadResults(resPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		return 1
	}
	if *merge != "" {
		base, err := harness.LoadResults(*merge)
		if err == nil {
			res, err = harness.Merge(base, res)
		}
		if err == nil {
			err = res.Save(resPath)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsbench: -merge:", err)
			return 1
		}
	}
	if err := harness.Render(res, *md, *charts); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench: rendering the report:", err)
		return 1
	}
	log.Info("report written", "md", *md, "charts", *charts, "results", resPath)
	return 0
}

// thousands writes n with thousands separators, as the report does.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
