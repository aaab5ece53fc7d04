// Command rssprobe reports the resident memory, threads, descriptors and
// CPU use of a process from /proc, to measure the proxy under load.
//
// Usage:
//
//	rssprobe -pid PID                         one snapshot
//	rssprobe -pid PID -interval 10s           also CPU % over 10 s
//	rssprobe -pid PID -interval 1s -count 30  30 samples, one per second
//	rssprobe -pid PID -baseline-kb 8200 -pairs 9000
//	                                          also (RSS - baseline) / pairs
//	rssprobe ... -json                        one JSON object per line
//
// "RSS growth per pair" is (RSS at N idle pairs - RSS at 0 pairs) / N: take
// a snapshot of the idle proxy first, pass its rss_kb as -baseline-kb, and
// probe again once wsload printed READY.
//
// CPU % is of one CPU: 200 means two cores busy. /proc counts CPU time in
// 10 ms ticks, so use intervals of a second or more.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

// sample is one line of output.
type sample struct {
	wsload.ProcStats
	RSSKB int64 `json:"rss_kb"`
	HWMKB int64 `json:"hwm_kb"`
	// CPUPercent is over the interval before At; absent without -interval.
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	// PerPairBytes is (RSS - baseline) / pairs; absent without -pairs.
	PerPairBytes *float64 `json:"per_pair_bytes,omitempty"`
}

func main() {
	pid := flag.Int("pid", 0, "process to probe (required)")
	interval := flag.Duration("interval", 0, "measure CPU % over this interval (0: snapshot only)")
	count := flag.Int("count", 1, "number of samples")
	baselineKB := flag.Int64("baseline-kb", 0, "RSS in kB at 0 pairs, for -pairs")
	pairs := flag.Int("pairs", 0, "pairs open now; with -baseline-kb prints RSS growth per pair")
	asJSON := flag.Bool("json", false, "print JSON lines instead of text")
	flag.Parse()
	if *pid <= 0 || *count < 1 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	prev, err := wsload.ReadProcStats(*pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rssprobe:", err)
		os.Exit(1)
	}
	for i := 0; i < *count && ctx.Err() == nil; i++ {
		s := sample{ProcStats: prev}
		if *interval > 0 {
			t := time.NewTimer(*interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			after, err := wsload.ReadProcStats(*pid)
			if err != nil {
				fmt.Fprintln(os.Stderr, "rssprobe:", err)
				os.Exit(1)
			}
			// Each sample's CPU runs from the previous one's end, so
			// consecutive samples cover the time without gaps.
			pct := wsload.CPUPercent(prev, after)
			s = sample{ProcStats: after, CPUPercent: &pct}
			prev = after
		}
		s.RSSKB = s.RSSBytes / 1024
		s.HWMKB = s.HWMBytes / 1024
		if *pairs > 0 {
			per := float64(s.RSSBytes-*baselineKB*1024) / float64(*pairs)
			s.PerPairBytes = &per
		}
		printSample(s, *asJSON)
	}
}

func printSample(s sample, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Printf("%s\n", b)
		return
	}
	line := fmt.Sprintf("pid %d  rss_kb %d  hwm_kb %d  threads %d  fds %d  cpu_s %.2f",
		s.PID, s.RSSKB, s.HWMKB, s.Threads, s.FDs, s.CPUSeconds())
	if s.CPUPercent != nil {
		line += fmt.Sprintf("  cpu %.1f%%", *s.CPUPercent)
	}
	if s.PerPairBytes != nil {
		line += fmt.Sprintf("  per_pair_bytes %.0f", *s.PerPairBytes)
	}
	fmt.Println(line)
}
