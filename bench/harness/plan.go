package harness

import (
	"fmt"
	"slices"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

// Kinds of scenario.
const (
	KindEcho      = "echo"
	KindHandshake = "handshake"
	KindIdle      = "idle"
	KindBlackhole = "blackhole"
	// KindStorm: N clients connect at once, DialConcurrency handshakes in
	// flight: a reconnect storm after a deploy or a failover.
	KindStorm = "storm"
	// KindChurn: connections open at a steady Rate, exchange one message
	// and close, for Duration.
	KindChurn = "churn"
)

// Scenario is one measurement, run against every target it applies to.
type Scenario struct {
	Name  string
	Kind  string
	Title string

	// N is the number of connections (pairs through a proxy); churn
	// opens Rate × Duration instead.
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
	// DialConcurrency bounds the handshakes in flight (storm, churn).
	DialConcurrency int
	// Client is the WebSocket client of the load: wsload.ClientGobwas
	// (the default; legacy-echo backend) or wsload.ClientGorilla
	// (gorilla-echo backend). See WithClients.
	Client string
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
	if target == TargetNginxL4 || target == TargetHAProxyL4 {
		// The L4 floor is about relaying messages.
		return s.Kind == KindEcho
	}
	switch s.Kind {
	case KindIdle, KindBlackhole:
		return target != TargetDirect
	}
	return true
}

// client returns the scenario's client, the default filled in.
func (s Scenario) client() string {
	if s.Client == "" {
		return wsload.ClientGobwas
	}
	return s.Client
}

// clientKinds are the kinds of scenario run with every client.
var clientKinds = []string{KindEcho, KindIdle, KindStorm, KindChurn}

// WithClients returns plan with every echo, idle, storm and churn scenario
// once per client: wsload's own client keeps the scenario's name, the
// gorilla variant is named NAME+gorilla and runs gorilla clients against
// the gorilla backend, so that no figure depends on sharing gobwas/ws
// with wsalive. The variants follow each other, so that a scenario's
// variants run minutes apart, not a whole plan apart.
func WithClients(plan []Scenario, clients []string) ([]Scenario, error) {
	if len(clients) == 0 {
		return nil, fmt.Errorf("no client")
	}
	for _, c := range clients {
		if c != wsload.ClientGobwas && c != wsload.ClientGorilla {
			return nil, fmt.Errorf("unknown client %q (want %s or %s)", c, wsload.ClientGobwas, wsload.ClientGorilla)
		}
	}
	var out []Scenario
	for _, sc := range plan {
		if !slices.Contains(clientKinds, sc.Kind) || sc.Client != "" {
			out = append(out, sc)
			continue
		}
		for _, c := range clients {
			v := sc
			v.Client = c
			if c == wsload.ClientGorilla {
				v.Name += "+gorilla"
				v.Title += " (gorilla clients and backend)"
			}
			out = append(out, v)
		}
	}
	return out, nil
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
	case KindStorm:
		return fmt.Sprintf("%s clients connect at once, %d handshakes in flight (%s); proxy CPU over the dial phase",
			fmtInt(float64(s.N)), s.DialConcurrency, clientText(s.client()))
	case KindChurn:
		return fmt.Sprintf("%s connections/s for %v, each opening, echoing one %d B message and closing with a close handshake, at most %d at a time (%s)",
			fmtInt(s.Rate), s.Duration, s.Size, s.DialConcurrency, clientText(s.client()))
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
	ScenarioEcho64K      = "echo-50x64k"
	ScenarioHandshake    = "handshake"
	ScenarioIdle         = "idle-9000"
	ScenarioBlackholeCli = "blackhole-client"
	ScenarioBlackholeUp  = "blackhole-upstream"
	ScenarioStorm        = "storm-9000"
	ScenarioChurn        = "churn-1000"
)

// clientText names a client and its backend for the report.
func clientText(client string) string {
	if client == wsload.ClientGorilla {
		return "gorilla/websocket clients, gorilla-echo backend"
	}
	return "wsload's gobwas/ws clients, legacy-echo backend"
}

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
		{Name: ScenarioEcho64K, Kind: KindEcho, Title: "Echo, 50 connections × 64 KiB",
			N: 50, Size: 64 << 10, Inflight: 1, Duration: 6 * time.Second, Rate: -1},
		{Name: ScenarioHandshake, Kind: KindHandshake, Title: "Handshake latency",
			N: 1000, Rate: 1000},
		{Name: ScenarioIdle, Kind: KindIdle, Title: "9,000 idle pairs: RSS per pair and heartbeat CPU",
			N: 9000, Procs: 2, Rate: 3000, Settle: 5 * time.Second, Duration: 10 * time.Second},
		{Name: ScenarioStorm, Kind: KindStorm, Title: "Reconnect storm, 9,000 clients at once",
			N: 9000, DialConcurrency: 256, Rate: -1},
		{Name: ScenarioChurn, Kind: KindChurn, Title: "Churn, 1,000 connections/s",
			Rate: 1000, Duration: 20 * time.Second, Size: 64, DialConcurrency: 256},
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
		{Name: ScenarioStorm, Kind: KindStorm, Title: "Reconnect storm (smoke)",
			N: 50, DialConcurrency: 16, Rate: -1},
		{Name: ScenarioChurn, Kind: KindChurn, Title: "Churn (smoke)",
			Rate: 100, Duration: 400 * time.Millisecond, Size: 64, DialConcurrency: 16},
		{Name: ScenarioBlackholeCli, Kind: KindBlackhole, Title: "Blackholed client (smoke)",
			Side: "client", N: 3, MaxWait: 4 * time.Second, CompetitorN: 2, CompetitorMaxWait: time.Second,
			WsaliveTemplate: fast("client")},
		{Name: ScenarioBlackholeUp, Kind: KindBlackhole, Title: "Blackholed backend (smoke)",
			Side: "upstream", N: 3, MaxWait: 4 * time.Second, CompetitorN: 2, CompetitorMaxWait: time.Second,
			WsaliveTemplate: fast("upstream")},
	}
}
