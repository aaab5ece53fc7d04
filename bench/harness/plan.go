package harness

import (
	"fmt"
	"time"
)

// Kinds of scenario.
const (
	KindEcho      = "echo"
	KindHandshake = "handshake"
	KindIdle      = "idle"
	KindBlackhole = "blackhole"
)

// Scenario is one measurement, run against every target it applies to.
type Scenario struct {
	Name  string
	Kind  string
	Title string

	// N is the number of connections (pairs through a proxy).
	N int
	// Size and Inflight: echo payload bytes and messages in flight per
	// connection.
	Size     int
	Inflight int
	// Duration is the echo traffic time, or the CPU window of idle.
	Duration time.Duration
	// Rate is the dial rate (connections per second; negative: no limit).
	Rate float64
	// Procs is the number of wsload processes holding the idle pairs.
	Procs int
	// Settle is the wait, in idle, between the last dial and the RSS
	// reading (and the start of the CPU window).
	Settle time.Duration

	// Blackhole: Side is "client" or "upstream"; MaxWait bounds the wait
	// for detection of wsalive, CompetitorMaxWait and CompetitorN those of
	// the other proxies, which run once, side by side, during wsalive's
	// rounds. WsaliveTemplate, when set, replaces the configuration of
	// bench/configs (the tests use a 1 s heartbeat).
	Side              string
	MaxWait           time.Duration
	CompetitorN       int
	CompetitorMaxWait time.Duration
	WsaliveTemplate   string
}

// appliesTo reports whether the scenario measures target: the idle and
// blackhole scenarios measure a proxy, so direct has nothing to show there.
func (s Scenario) appliesTo(target string) bool {
	switch s.Kind {
	case KindIdle, KindBlackhole:
		return target != TargetDirect
	}
	return true
}

// params describes the parameters for the report.
func (s Scenario) params() string {
	switch s.Kind {
	case KindEcho:
		return fmt.Sprintf("%d connections, %d B binary messages, %d in flight per connection, %v of traffic, verified byte for byte",
			s.N, s.Size, s.Inflight, s.Duration)
	case KindHandshake:
		return fmt.Sprintf("%d connections opened at %.0f/s (connect + WebSocket handshake, through the proxy to the backend), then closed",
			s.N, s.Rate)
	case KindIdle:
		return fmt.Sprintf("%d idle pairs from %d wsload processes at %.0f/s in all; RSS read %v after the last dial and again after a %v CPU window",
			s.N, s.Procs, s.Rate, s.Settle, s.Duration)
	case KindBlackhole:
		return fmt.Sprintf("%s side vanishes (iptables DROP in its network namespace); wsalive: %d pairs, max wait %v; others: %d pairs, max wait %v",
			s.Side, s.N, s.MaxWait, s.CompetitorN, s.CompetitorMaxWait)
	}
	return ""
}

// Scenario names.
const (
	ScenarioEcho1K       = "echo-200x1k"
	ScenarioEcho64       = "echo-1000x64"
	ScenarioEcho16K      = "echo-1000x16k"
	ScenarioHandshake    = "handshake"
	ScenarioIdle         = "idle-9000"
	ScenarioBlackholeCli = "blackhole-client"
	ScenarioBlackholeUp  = "blackhole-upstream"
)

// FullPlan is the benchmark of BENCHMARKS.md: about 17 minutes with 3
// rounds and five targets on a 2-core machine.
func FullPlan() []Scenario {
	return []Scenario{
		{Name: ScenarioEcho1K, Kind: KindEcho, Title: "Echo, 200 connections × 1 KiB",
			N: 200, Size: 1024, Inflight: 1, Duration: 6 * time.Second, Rate: -1},
		{Name: ScenarioEcho64, Kind: KindEcho, Title: "Echo, 1,000 connections × 64 B",
			N: 1000, Size: 64, Inflight: 1, Duration: 6 * time.Second, Rate: -1},
		{Name: ScenarioEcho16K, Kind: KindEcho, Title: "Echo, 1,000 connections × 16 KiB",
			N: 1000, Size: 16 << 10, Inflight: 1, Duration: 6 * time.Second, Rate: -1},
		{Name: ScenarioHandshake, Kind: KindHandshake, Title: "Handshake latency",
			N: 1000, Rate: 1000},
		{Name: ScenarioIdle, Kind: KindIdle, Title: "9,000 idle pairs: RSS per pair and heartbeat CPU",
			N: 9000, Procs: 2, Rate: 3000, Settle: 5 * time.Second, Duration: 10 * time.Second},
		{Name: ScenarioBlackholeCli, Kind: KindBlackhole, Title: "Blackholed client: time to detect",
			Side: "client", N: 1000, MaxWait: 30 * time.Second, CompetitorN: 200, CompetitorMaxWait: 160 * time.Second},
		{Name: ScenarioBlackholeUp, Kind: KindBlackhole, Title: "Blackholed backend: time to detect",
			Side: "upstream", N: 1000, MaxWait: 30 * time.Second, CompetitorN: 200, CompetitorMaxWait: 160 * time.Second},
	}
}

// ShortPlan is the smoke run of the tests: every scenario with a handful
// of connections and sub-second windows, so that the harness cannot rot.
func ShortPlan() []Scenario {
	fast := func(side string) string {
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
	return []Scenario{
		{Name: ScenarioEcho1K, Kind: KindEcho, Title: "Echo, 4 connections × 1 KiB (smoke)",
			N: 4, Size: 1024, Inflight: 1, Duration: 500 * time.Millisecond, Rate: -1},
		{Name: ScenarioHandshake, Kind: KindHandshake, Title: "Handshake latency (smoke)",
			N: 10, Rate: 200},
		{Name: ScenarioIdle, Kind: KindIdle, Title: "Idle pairs (smoke)",
			N: 20, Procs: 2, Rate: 1000, Settle: 200 * time.Millisecond, Duration: 500 * time.Millisecond},
		{Name: ScenarioBlackholeCli, Kind: KindBlackhole, Title: "Blackholed client (smoke)",
			Side: "client", N: 3, MaxWait: 4 * time.Second, CompetitorN: 2, CompetitorMaxWait: time.Second,
			WsaliveTemplate: fast("client")},
		{Name: ScenarioBlackholeUp, Kind: KindBlackhole, Title: "Blackholed backend (smoke)",
			Side: "upstream", N: 3, MaxWait: 4 * time.Second, CompetitorN: 2, CompetitorMaxWait: time.Second,
			WsaliveTemplate: fast("upstream")},
	}
}
