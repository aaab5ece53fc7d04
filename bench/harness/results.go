package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Results is everything a benchmark run measured; it is written to
// results.json as the run goes, and the report is rendered from it alone.
type Results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Short is set for the smoke run of the tests (tiny N, seconds).
	Short   bool              `json:"short"`
	Reps    int               `json:"reps"`
	Targets []string          `json:"targets"`
	Machine Machine           `json:"machine"`
	Version map[string]string `json:"versions"`
	// Command is the command line that produced the results.
	Command   string         `json:"command"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	Runs      []Run          `json:"runs"`
	// QuietWaitS is how long the harness waited, in all, for the rest of
	// the machine to quiet down before runs.
	QuietWaitS float64 `json:"quiet_wait_s"`
	// Notes are things the report must say: skipped targets or
	// scenarios, and why.
	Notes []string `json:"notes,omitempty"`
	// Parts are the invocations a merged report combines (see Merge);
	// empty for a single run.
	Parts []Part `json:"parts,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Hostname    string   `json:"hostname"`
	Kernel      string   `json:"kernel"`
	OS          string   `json:"os"`
	CPUModel    string   `json:"cpu_model"`
	CPUs        int      `json:"cpus"`
	MemMiB      int64    `json:"mem_mib"`
	NoFileLimit string   `json:"nofile_limit"`
	LoadBefore  string   `json:"loadavg_before"`
	LoadAfter   string   `json:"loadavg_after"`
	Perf        string   `json:"perf,omitempty"`
	GoVersion   string   `json:"go"`
	GitCommit   string   `json:"git_commit"`
	GitDirty    []string `json:"git_dirty,omitempty"`
}

// ScenarioInfo is one scenario as it was run.
type ScenarioInfo struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// Params are the scenario's parameters, for the report.
	Params string `json:"params"`
	// Targets are the targets it was run against.
	Targets []string `json:"targets"`
	// Client is the WebSocket client of the load ("gobwas": wsload's
	// own, with legacy-echo; "gorilla": gorilla clients and backend).
	Client string `json:"client,omitempty"`
}

// Run is one run of one scenario against one target.
type Run struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Round    int       `json:"round"`
	Start    time.Time `json:"start"`
	Seconds  float64   `json:"seconds"`
	// Error is set when the run could not be measured.
	Error string `json:"error,omitempty"`
	// Metrics are the numbers measured; see the metric names in
	// scenarios.go.
	Metrics map[string]float64 `json:"metrics"`
	// LoadErrors are the failures the load generator counted, by kind.
	LoadErrors map[string]int `json:"load_errors,omitempty"`
	// Closes are, for the blackhole scenarios, how the detected pairs
	// ended as the surviving side saw them.
	Closes map[string]int `json:"closes,omitempty"`
	// Detections are, for the blackhole scenarios, the detection times in
	// seconds, fastest first.
	Detections []float64 `json:"detections,omitempty"`
	// Commands are the exact command lines of the run (proxy, backend,
	// load generator), with $BIN and $RUN for the binary and run
	// directories.
	Commands []string `json:"commands"`
	// Dir is where the run's logs and configuration were kept.
	Dir string `json:"dir"`
}

// LoadResults reads a results.json.
func LoadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Save writes r to path atomically.
func (r *Results) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// scenario returns the info of the scenario called name.
func (r *Results) scenario(name string) (ScenarioInfo, bool) {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return ScenarioInfo{}, false
}

// runs returns the successful runs of scenario against target, by round.
func (r *Results) runs(scenario, target string) []Run {
	var out []Run
	for _, run := range r.Runs {
		if run.Scenario == scenario && run.Target == target && run.Error == "" {
			out = append(out, run)
		}
	}
	slices.SortFunc(out, func(a, b Run) int { return a.Round - b.Round })
	return out
}

// failed returns the runs of scenario against target that failed.
func (r *Results) failed(scenario, target string) []Run {
	var out []Run
	for _, run := range r.Runs {
		if run.Scenario == scenario && run.Target == target && run.Error != "" {
			out = append(out, run)
		}
	}
	return out
}

// values returns metric of every successful run of scenario × target.
func (r *Results) values(scenario, target, metric string) []float64 {
	var v []float64
	for _, run := range r.runs(scenario, target) {
		if x, ok := run.Metrics[metric]; ok && !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	return v
}

// Median returns the median of metric over the rounds of scenario ×
// target, and whether there was any value.
func (r *Results) Median(scenario, target, metric string) (float64, bool) {
	v := r.values(scenario, target, metric)
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

// Ratio returns the median over rounds of metric(target) / metric(ref),
// each ratio taken within one round (the same minutes of the same noisy
// machine), and whether any round had both.
func (r *Results) Ratio(scenario, target, ref, metric string) (float64, bool) {
	byRound := map[int]float64{}
	for _, run := range r.runs(scenario, ref) {
		if x, ok := run.Metrics[metric]; ok && x != 0 {
			byRound[run.Round] = x
		}
	}
	var ratios []float64
	for _, run := range r.runs(scenario, target) {
		x, ok := run.Metrics[metric]
		d, ok2 := byRound[run.Round]
		if ok && ok2 {
			ratios = append(ratios, x/d)
		}
	}
	if len(ratios) == 0 {
		return 0, false
	}
	return median(ratios), true
}

// median of v (the mean of the middle two for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
