package harness

import (
	"fmt"
	"slices"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

// Part is one invocation of the harness among those a report combines.
type Part struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Command    string    `json:"command"`
	Machine    Machine   `json:"machine"`
	QuietWaitS float64   `json:"quiet_wait_s"`
	// Scenarios are the scenarios whose runs in the report come from
	// this invocation.
	Scenarios []string `json:"scenarios"`
}

// parts returns the invocations behind r: the recorded ones, or r itself
// when it came from a single run.
func (r *Results) parts() []Part {
	if len(r.Parts) > 0 {
		return r.Parts
	}
	return []Part{r.asPart()}
}

func (r *Results) asPart() Part {
	p := Part{Started: r.Started, Finished: r.Finished, Command: r.Command, Machine: r.Machine, QuietWaitS: r.QuietWaitS}
	for _, s := range r.Scenarios {
		p.Scenarios = append(p.Scenarios, s.Name)
	}
	return p
}

// Merge returns the results of base with the scenarios newer ran put in
// their place: a scenario newer ran replaces base's runs of it, the others
// keep base's. Splitting a benchmark lets the slow scenarios that a change
// cannot move (the blackholes wait minutes for competitors that never
// notice) run apart from the ones it does; the report then names, for
// every scenario, the invocation, commit and command it came from. Both
// must have the same rounds per scenario and be full runs, not smokes.
func Merge(base, newer *Results) (*Results, error) {
	if base.Short != newer.Short {
		return nil, fmt.Errorf("cannot merge a smoke run (-short) with a full one")
	}
	if base.Reps != newer.Reps {
		return nil, fmt.Errorf("cannot merge runs of %d and %d rounds", base.Reps, newer.Reps)
	}
	replaced := map[string]bool{}
	for _, s := range newer.Scenarios {
		replaced[s.Name] = true
	}
	out := *newer
	out.Scenarios, out.Runs, out.Parts, out.Notes = nil, nil, nil, nil
	for _, p := range base.parts() {
		p.Scenarios = slices.DeleteFunc(slices.Clone(p.Scenarios), func(s string) bool { return replaced[s] })
		if len(p.Scenarios) > 0 {
			out.Parts = append(out.Parts, p)
		}
	}
	out.Parts = append(out.Parts, newer.parts()...)
	// The plan's order, as the full run would have it.
	from := func(name string) *Results {
		if replaced[name] {
			return newer
		}
		return base
	}
	for _, sc := range FullPlanWithClients() {
		if s, ok := from(sc.Name).scenario(sc.Name); ok {
			out.Scenarios = append(out.Scenarios, s)
		}
	}
	for _, r := range []*Results{base, newer} {
		for _, s := range r.Scenarios {
			if _, ok := out.scenario(s.Name); !ok && from(s.Name) == r {
				out.Scenarios = append(out.Scenarios, s)
			}
		}
	}
	for _, run := range base.Runs {
		if !replaced[run.Scenario] {
			out.Runs = append(out.Runs, run)
		}
	}
	out.Runs = append(out.Runs, newer.Runs...)
	var targets []string
	for _, t := range AllTargets {
		if slices.Contains(base.Targets, t) || slices.Contains(newer.Targets, t) {
			targets = append(targets, t)
		}
	}
	out.Targets = targets
	out.Notes = append(slices.Clone(base.Notes), newer.Notes...)
	out.Started = base.Started
	if newer.Started.Before(out.Started) {
		out.Started = newer.Started
	}
	out.Finished = newer.Finished
	if base.Finished.After(out.Finished) {
		out.Finished = base.Finished
	}
	out.QuietWaitS = base.QuietWaitS + newer.QuietWaitS
	return &out, nil
}

// FullPlanWithClients is the full plan with both clients' variants, in the
// order a full run takes them.
func FullPlanWithClients() []Scenario {
	plan, _ := WithClients(FullPlan(), []string{wsload.ClientGobwas, wsload.ClientGorilla})
	return plan
}
