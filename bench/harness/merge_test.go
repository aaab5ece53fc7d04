package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMerge checks that a second run's scenarios replace the first's,
// the first's others stay, and the report names both runs.
func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	run := func(sc string, x float64) Run {
		return Run{Scenario: sc, Target: TargetWsalive, Round: 1, Metrics: map[string]float64{MetricMsgsPerSec: x}}
	}
	info := func(name string) ScenarioInfo {
		return ScenarioInfo{Name: name, Kind: KindEcho, Targets: []string{TargetWsalive}}
	}
	base := &Results{
		Started: t0, Finished: t0.Add(30 * time.Minute), Reps: 1, Command: "wsbench -scenarios a",
		Targets:   []string{TargetNginx, TargetWsalive},
		Machine:   Machine{GitCommit: "1111111111111111", LoadBefore: "0.1", LoadAfter: "0.2"},
		Scenarios: []ScenarioInfo{info(ScenarioEcho1K), info(ScenarioBlackholeCli)},
		Runs:      []Run{run(ScenarioEcho1K, 1), run(ScenarioBlackholeCli, 2)},
		Notes:     []string{"first"},
	}
	newer := &Results{
		Started: t0.Add(time.Hour), Finished: t0.Add(90 * time.Minute), Reps: 1, Command: "wsbench -scenarios b",
		Targets:   []string{TargetDirect, TargetWsalive},
		Machine:   Machine{GitCommit: "2222222222222222", LoadBefore: "0.3", LoadAfter: "0.4"},
		Scenarios: []ScenarioInfo{info(ScenarioEcho1K), info(ScenarioIdle)},
		Runs:      []Run{run(ScenarioEcho1K, 3), run(ScenarioIdle, 4)},
	}
	m, err := Merge(base, newer)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Median(ScenarioEcho1K, TargetWsalive, MetricMsgsPerSec); got != 3 {
		t.Errorf("echo: %v, want the newer run's 3", got)
	}
	if got, _ := m.Median(ScenarioBlackholeCli, TargetWsalive, MetricMsgsPerSec); got != 2 {
		t.Errorf("blackhole: %v, want the first run's 2", got)
	}
	if len(m.Runs) != 3 {
		t.Errorf("%d runs, want 3", len(m.Runs))
	}
	var names []string
	for _, s := range m.Scenarios {
		names = append(names, s.Name)
	}
	// The full plan's order: echo, idle, ..., blackholes last.
	if got, want := strings.Join(names, ","), ScenarioEcho1K+","+ScenarioIdle+","+ScenarioBlackholeCli; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
	if got, want := strings.Join(m.Targets, ","), TargetDirect+","+TargetNginx+","+TargetWsalive; got != want {
		t.Errorf("targets %s, want %s", got, want)
	}
	if len(m.Parts) != 2 || strings.Join(m.Parts[0].Scenarios, ",") != ScenarioBlackholeCli ||
		strings.Join(m.Parts[1].Scenarios, ",") != ScenarioEcho1K+","+ScenarioIdle {
		t.Errorf("parts %+v", m.Parts)
	}
	if !m.Started.Equal(t0) || !m.Finished.Equal(t0.Add(90*time.Minute)) {
		t.Errorf("span %v-%v", m.Started, m.Finished)
	}

	// Merging the merged results again with the newer run changes nothing.
	again, err := Merge(m, newer)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Parts) != 2 || len(again.Runs) != 3 {
		t.Errorf("merged twice: %d parts, %d runs", len(again.Parts), len(again.Runs))
	}

	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := Render(m, md, filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	for _, want := range []string{
		"This report combines 2 runs of the harness",
		"commit `111111111111`, load average before 0.1, after 0.2: `wsbench -scenarios a`; scenarios " + ScenarioBlackholeCli,
		"commit `222222222222`, load average before 0.3, after 0.4: `wsbench -scenarios b`; scenarios " + ScenarioEcho1K + ", " + ScenarioIdle,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the report lacks %q", want)
		}
	}

	if _, err := Merge(base, &Results{Reps: 3}); err == nil {
		t.Error("runs of 1 and 3 rounds merged")
	}
}
