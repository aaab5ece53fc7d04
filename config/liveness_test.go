package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// defaultClientHeartbeat is the documented client policy, written out
// rather than taken from the constants, so that a changed constant shows.
func defaultClientHeartbeat() Heartbeat {
	return Heartbeat{
		Enabled:   true,
		Interval:  20 * time.Second,
		Timeout:   10 * time.Second,
		MaxMissed: 2,
		// bound = 20s + 10s × 2 = 40s
		TCP: liveness.TCPKeepalive{Idle: 40 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 40 * time.Second},
	}
}

// defaultUpstreamHeartbeat is the documented upstream policy.
func defaultUpstreamHeartbeat() Heartbeat {
	return Heartbeat{
		Enabled:   true,
		Interval:  30 * time.Second,
		Timeout:   10 * time.Second,
		MaxMissed: 1,
		// bound = 30s + 10s × 1 = 40s
		TCP: liveness.TCPKeepalive{Idle: 40 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 40 * time.Second},
	}
}

const up = `upstream = "ws://127.0.0.1:3000"`

// heartbeatSrc returns a file whose route has a heartbeat block for side
// with the given body lines: the block header is on line 6 (column 3) and
// its first body line on line 7, indented by four spaces.
func heartbeatSrc(side string, lines ...string) string {
	body := []string{up, fmt.Sprintf("heartbeat %q {", side)}
	for _, l := range lines {
		body = append(body, "  "+l)
	}
	return routeSrc(append(body, "}")...)
}

// withNAT adds setting to src's route on the line after upstream (line 6),
// moving everything below it down a line.
func withNAT(src, setting string) string {
	return strings.Replace(src, up, up+"\n  "+setting, 1)
}

// The route from the issue; it must work exactly as written.
const issueSrc = `listener {
  address = "127.0.0.1:8080"
}
route "default" {
  upstream = "ws://127.0.0.1:3000"
  heartbeat "client" {
    interval   = "20s"
    timeout    = "10s"
    max_missed = 2
  }
  heartbeat "upstream" {
    interval   = "30s"
    timeout    = "10s"
    max_missed = 1
  }
}
`

func TestHeartbeatIssueShape(t *testing.T) {
	r := mustParse(t, issueSrc).Routes[0]
	if !reflect.DeepEqual(r.ClientHeartbeat, defaultClientHeartbeat()) {
		t.Errorf("ClientHeartbeat = %+v, want %+v", r.ClientHeartbeat, defaultClientHeartbeat())
	}
	if !reflect.DeepEqual(r.UpstreamHeartbeat, defaultUpstreamHeartbeat()) {
		t.Errorf("UpstreamHeartbeat = %+v, want %+v", r.UpstreamHeartbeat, defaultUpstreamHeartbeat())
	}
	// The issue's values are the defaults, so the whole route is.
	if !reflect.DeepEqual(r, defaultRoute()) {
		t.Errorf("got\n%+v\nwant\n%+v", r, defaultRoute())
	}
}

func TestLivenessDefaults(t *testing.T) {
	check := func(t *testing.T, r *Route) {
		t.Helper()
		if !reflect.DeepEqual(r.ClientHeartbeat, defaultClientHeartbeat()) {
			t.Errorf("ClientHeartbeat = %+v, want %+v", r.ClientHeartbeat, defaultClientHeartbeat())
		}
		if !reflect.DeepEqual(r.UpstreamHeartbeat, defaultUpstreamHeartbeat()) {
			t.Errorf("UpstreamHeartbeat = %+v, want %+v", r.UpstreamHeartbeat, defaultUpstreamHeartbeat())
		}
		if r.NATIdleTimeout != 0 || r.NATProfile != "" || r.IdleTimeout != 0 || r.MaxLifetime != 0 || r.MaxLifetimeJitter != 0 || r.AppPing != nil {
			t.Errorf("route liveness not off by default: %+v", r)
		}
	}
	t.Run("file", func(t *testing.T) {
		check(t, mustParse(t, minimalSrc).Routes[0])
	})
	t.Run("Minimal", func(t *testing.T) {
		cfg, err := Minimal("127.0.0.1:8080", "ws://127.0.0.1:3000")
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg.Routes[0])
	})
	t.Run("empty blocks", func(t *testing.T) {
		check(t, mustParse(t, routeSrc(up, `heartbeat "client" {}`, `heartbeat "upstream" {}`)).Routes[0])
	})
	t.Run("null settings", func(t *testing.T) {
		src := heartbeatSrc("client", "enabled = null", "interval = null", "timeout = null", "max_missed = null",
			"min_interval = null", "max_interval = null", "answer_pings = null",
			"tcp_keepalive_idle = null", "tcp_keepalive_interval = null", "tcp_keepalive_count = null", "tcp_user_timeout = null")
		src = withNAT(src, "nat_idle_timeout = null\n  nat_profile = null\n  idle_timeout = null\n  max_lifetime = null\n  max_lifetime_jitter = null")
		check(t, mustParse(t, src).Routes[0])
	})
}

func TestHeartbeatSettings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want func() (client, upstream Heartbeat)
	}{
		{
			name: "partial block keeps the side's other defaults",
			src:  heartbeatSrc("client", `timeout = "5s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.Timeout = 5 * time.Second
				// bound = 20s + 5s × 2 = 30s
				c.TCP = liveness.TCPKeepalive{Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 2, UserTimeout: 30 * time.Second}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "partial upstream block keeps upstream defaults, not client ones",
			src:  heartbeatSrc("upstream", `max_missed = 3`),
			want: func() (Heartbeat, Heartbeat) {
				u := defaultUpstreamHeartbeat()
				u.MaxMissed = 3
				// bound = 30s + 10s × 3 = 60s
				u.TCP = liveness.TCPKeepalive{Idle: 60 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 60 * time.Second}
				return defaultClientHeartbeat(), u
			},
		},
		{
			name: "every setting",
			src: heartbeatSrc("client", `enabled = true`, `interval = "25s"`, `timeout = "4s"`, `max_missed = 3`,
				`min_interval = "10s"`, `max_interval = "50s"`, `answer_pings = true`,
				`tcp_keepalive_idle = "40s"`, `tcp_keepalive_interval = "7s"`, `tcp_keepalive_count = 4`, `tcp_user_timeout = "45s"`),
			want: func() (Heartbeat, Heartbeat) {
				return Heartbeat{
					Enabled: true, Interval: 25 * time.Second, Timeout: 4 * time.Second, MaxMissed: 3,
					MinInterval: 10 * time.Second, MaxInterval: 50 * time.Second, AnswerPings: true,
					TCP: liveness.TCPKeepalive{Idle: 40 * time.Second, Interval: 7 * time.Second, Count: 4, UserTimeout: 45 * time.Second},
				}, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "adaptive bound uses max_interval",
			src:  heartbeatSrc("client", `min_interval = "10s"`, `max_interval = "50s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.MinInterval, c.MaxInterval = 10*time.Second, 50*time.Second
				// bound = 50s + 10s × 2 = 70s
				c.TCP = liveness.TCPKeepalive{Idle: 70 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 70 * time.Second}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "adaptive with interval at a bound",
			src:  heartbeatSrc("client", `interval = "10s"`, `min_interval = "10s"`, `max_interval = "11s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.Interval, c.MinInterval, c.MaxInterval = 10*time.Second, 10*time.Second, 11*time.Second
				c.TCP = liveness.TCPKeepalive{Idle: 31 * time.Second, Interval: 10 * time.Second, Count: 2, UserTimeout: 31 * time.Second}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "disabled derives keepalive on its own",
			src:  heartbeatSrc("upstream", `enabled = false`),
			want: func() (Heartbeat, Heartbeat) {
				u := defaultUpstreamHeartbeat()
				u.Enabled = false
				u.TCP = liveness.TCPKeepalive{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3, UserTimeout: 60 * time.Second}
				return defaultClientHeartbeat(), u
			},
		},
		{
			name: "disabled accepts a zero interval and timeout",
			src:  heartbeatSrc("client", `enabled = false`, `interval = "0s"`, `timeout = "0s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := Heartbeat{MaxMissed: 2,
					TCP: liveness.TCPKeepalive{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3, UserTimeout: 60 * time.Second}}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "disabled user timeout follows the keepalive values set",
			src:  heartbeatSrc("client", `enabled = false`, `tcp_keepalive_idle = "45s"`, `tcp_keepalive_count = 5`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.Enabled = false
				// user_timeout = 45s + 10s × 5 = 95s
				c.TCP = liveness.TCPKeepalive{Idle: 45 * time.Second, Interval: 10 * time.Second, Count: 5, UserTimeout: 95 * time.Second}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "enabled user timeout stays the heartbeat bound when keepalive is set",
			src:  heartbeatSrc("client", `tcp_keepalive_idle = "15s"`, `tcp_keepalive_interval = "5s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.TCP = liveness.TCPKeepalive{Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 2, UserTimeout: 40 * time.Second}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "user timeout 0 turns it off",
			src:  heartbeatSrc("client", `tcp_user_timeout = "0s"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.TCP.UserTimeout = 0
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "derived values are clamped to their limits",
			src:  heartbeatSrc("client", `interval = "24h"`, `timeout = "24h"`, `max_missed = 100`),
			want: func() (Heartbeat, Heartbeat) {
				c := Heartbeat{Enabled: true, Interval: 24 * time.Hour, Timeout: 24 * time.Hour, MaxMissed: 100,
					TCP: liveness.TCPKeepalive{Idle: 2 * time.Hour, Interval: 2 * time.Hour, Count: 2, UserTimeout: 24 * time.Hour}}
				return c, defaultUpstreamHeartbeat()
			},
		},
		{
			name: "a short timeout keeps the keepalive interval at a second",
			src:  heartbeatSrc("client", `timeout = "300ms"`),
			want: func() (Heartbeat, Heartbeat) {
				c := defaultClientHeartbeat()
				c.Timeout = 300 * time.Millisecond
				c.TCP = liveness.TCPKeepalive{Idle: 20600 * time.Millisecond, Interval: time.Second, Count: 2, UserTimeout: 20600 * time.Millisecond}
				return c, defaultUpstreamHeartbeat()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.src).Routes[0]
			client, upstream := tt.want()
			if !reflect.DeepEqual(r.ClientHeartbeat, client) {
				t.Errorf("ClientHeartbeat\n got  %+v\n want %+v", r.ClientHeartbeat, client)
			}
			if !reflect.DeepEqual(r.UpstreamHeartbeat, upstream) {
				t.Errorf("UpstreamHeartbeat\n got  %+v\n want %+v", r.UpstreamHeartbeat, upstream)
			}
		})
	}
}

func TestNATProfiles(t *testing.T) {
	want := map[string]time.Duration{
		"aws-alb":           60 * time.Second,
		"aws-nlb":           350 * time.Second,
		"aws-nat-gateway":   350 * time.Second,
		"azure-lb":          4 * time.Minute,
		"azure-nat-gateway": 4 * time.Minute,
		"gcp-cloud-nat":     20 * time.Minute,
		"cloudflare":        100 * time.Second,
		"nginx":             60 * time.Second,
	}
	profiles := NATProfiles()
	if len(profiles) != len(want) {
		t.Errorf("%d profiles, want %d", len(profiles), len(want))
	}
	for i, p := range profiles {
		if w, ok := want[p.Name]; !ok || p.Limit != w {
			t.Errorf("profile %q: limit %s, want %s (known: %t)", p.Name, p.Limit, w, ok)
		}
		if p.Device == "" || p.Source == "" {
			t.Errorf("profile %q lacks its device or source", p.Name)
		}
		if i > 0 && profiles[i-1].Name >= p.Name {
			t.Errorf("profiles not sorted: %q before %q", profiles[i-1].Name, p.Name)
		}
	}
	profiles[0].Limit = time.Hour
	if NATProfiles()[0].Limit == time.Hour {
		t.Error("NATProfiles returned the table itself, not a copy")
	}
}

// TestNATCheckAccepts runs the configurations the NAT check must let
// through.
func TestNATCheckAccepts(t *testing.T) {
	// The default client policy suits every known profile: the
	// strictest limit is 60 s and a frame crosses every 20 s.
	for _, p := range NATProfiles() {
		t.Run("default policy with "+p.Name, func(t *testing.T) {
			r := mustParse(t, routeSrc(up, fmt.Sprintf("nat_profile = %q", p.Name))).Routes[0]
			if r.NATProfile != p.Name || r.NATIdleTimeout != p.Limit {
				t.Errorf("NATProfile = %q, NATIdleTimeout = %s; want %q, %s", r.NATProfile, r.NATIdleTimeout, p.Name, p.Limit)
			}
		})
	}
	tests := []struct {
		name  string
		src   string
		limit time.Duration
	}{
		{"interval just under aws-alb", withNAT(heartbeatSrc("client", `interval = "59s"`), `nat_profile = "aws-alb"`), 60 * time.Second},
		{"interval just under nginx", withNAT(heartbeatSrc("client", `interval = "59s"`), `nat_profile = "nginx"`), 60 * time.Second},
		{"adaptive max_interval under the limit", withNAT(heartbeatSrc("client", `min_interval = "5s"`, `max_interval = "59s"`), `nat_profile = "aws-alb"`), 60 * time.Second},
		{"nat_idle_timeout above the default interval", routeSrc(up, `nat_idle_timeout = "21s"`), 21 * time.Second},
		{"upstream heartbeat off does not matter", withNAT(heartbeatSrc("upstream", `enabled = false`), `nat_profile = "aws-alb"`), 60 * time.Second},
		{"client heartbeat with a long timeout", withNAT(heartbeatSrc("client", `timeout = "5m"`, `max_missed = 5`), `nat_profile = "aws-alb"`), 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.src).Routes[0]
			if r.NATIdleTimeout != tt.limit {
				t.Errorf("NATIdleTimeout = %s, want %s", r.NATIdleTimeout, tt.limit)
			}
		})
	}
	t.Run("nat_idle_timeout", func(t *testing.T) {
		r := mustParse(t, routeSrc(up, `nat_idle_timeout = "350s"`)).Routes[0]
		if r.NATIdleTimeout != 350*time.Second || r.NATProfile != "" {
			t.Errorf("NATIdleTimeout = %s, NATProfile = %q", r.NATIdleTimeout, r.NATProfile)
		}
	})
}

func TestRouteLivenessSettings(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		check func(t *testing.T, r *Route)
	}{
		{"idle_timeout", []string{`idle_timeout = "1h"`}, func(t *testing.T, r *Route) {
			if r.IdleTimeout != time.Hour {
				t.Errorf("IdleTimeout = %s", r.IdleTimeout)
			}
		}},
		{"idle_timeout 0s is off", []string{`idle_timeout = "0s"`}, func(t *testing.T, r *Route) {
			if r.IdleTimeout != 0 {
				t.Errorf("IdleTimeout = %s", r.IdleTimeout)
			}
		}},
		{"max_lifetime with default jitter", []string{`max_lifetime = "24h"`}, func(t *testing.T, r *Route) {
			if r.MaxLifetime != 24*time.Hour || r.MaxLifetimeJitter != 144*time.Minute {
				t.Errorf("MaxLifetime = %s, MaxLifetimeJitter = %s; want 24h, 2h24m (10%%)", r.MaxLifetime, r.MaxLifetimeJitter)
			}
		}},
		{"max_lifetime with jitter", []string{`max_lifetime = "24h"`, `max_lifetime_jitter = "1h"`}, func(t *testing.T, r *Route) {
			if r.MaxLifetime != 24*time.Hour || r.MaxLifetimeJitter != time.Hour {
				t.Errorf("MaxLifetime = %s, MaxLifetimeJitter = %s", r.MaxLifetime, r.MaxLifetimeJitter)
			}
		}},
		{"max_lifetime with no jitter", []string{`max_lifetime = "24h"`, `max_lifetime_jitter = "0s"`}, func(t *testing.T, r *Route) {
			if r.MaxLifetimeJitter != 0 {
				t.Errorf("MaxLifetimeJitter = %s", r.MaxLifetimeJitter)
			}
		}},
		{"max_lifetime 0s is off", []string{`max_lifetime = "0s"`}, func(t *testing.T, r *Route) {
			if r.MaxLifetime != 0 || r.MaxLifetimeJitter != 0 {
				t.Errorf("MaxLifetime = %s, MaxLifetimeJitter = %s", r.MaxLifetime, r.MaxLifetimeJitter)
			}
		}},
		{"app_ping", []string{`app_ping {`, `  match = "{\"type\":\"ping\"}"`, `  reply = "{\"type\":\"pong\"}"`, `}`}, func(t *testing.T, r *Route) {
			want := &AppPing{Match: `{"type":"ping"}`, Reply: `{"type":"pong"}`}
			if !reflect.DeepEqual(r.AppPing, want) {
				t.Errorf("AppPing = %+v, want %+v", r.AppPing, want)
			}
		}},
		{"app_ping at its limits", []string{`app_ping {`, `  match = "` + strings.Repeat("m", 125) + `"`, `  reply = "` + strings.Repeat("r", 4096) + `"`, `}`}, func(t *testing.T, r *Route) {
			if r.AppPing == nil || len(r.AppPing.Match) != 125 || len(r.AppPing.Reply) != 4096 {
				t.Errorf("AppPing = %+v", r.AppPing)
			}
		}},
		{"app_ping with an empty reply", []string{`app_ping {`, `  match = "ping"`, `  reply = ""`, `}`}, func(t *testing.T, r *Route) {
			if r.AppPing == nil || r.AppPing.Match != "ping" || r.AppPing.Reply != "" {
				t.Errorf("AppPing = %+v", r.AppPing)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, routeSrc(append([]string{up}, tt.lines...)...)).Routes[0])
		})
	}
}

// TestLivenessErrors pins each problem's message and place. Route body
// lines start on line 5 (see routeSrc); in heartbeatSrc the block header is
// line 6, column 3, and its settings start on line 7, column 5.
func TestLivenessErrors(t *testing.T) {
	const client = `route "default": heartbeat "client": `
	tests := []struct {
		name string
		src  string
		want []wantDiag
	}{
		// heartbeat blocks
		{"bad label", routeSrc(up, `heartbeat "server" {`, `}`),
			[]wantDiag{{6, 13, `route "default": heartbeat: unknown side "server": the label must be "client" or "upstream"`}}},
		{"misspelled label", routeSrc(up, `heartbeat "clinet" {`, `}`),
			[]wantDiag{{6, 13, `route "default": heartbeat: unknown side "clinet": the label must be "client" or "upstream"; did you mean "client"?`}}},
		{"missing label", routeSrc(up, `heartbeat {`, `}`),
			[]wantDiag{{6, 13, `Missing side for heartbeat`}}},
		{"duplicate client block", routeSrc(up, `heartbeat "client" {`, `}`, `heartbeat "client" {`, `  interval = "5s"`, `}`),
			[]wantDiag{{8, 3, `route "default": heartbeat "client": duplicate block: a route has at most one heartbeat "client" block, the first is on line 6`}}},
		{"unknown setting", heartbeatSrc("client", `intervall = "5s"`),
			[]wantDiag{{7, 5, `Unsupported argument`}}},

		// heartbeat values
		{"enabled as string", heartbeatSrc("client", `enabled = "false"`),
			[]wantDiag{{7, 15, client + `enabled: must be true or false, got string`}}},
		{"zero interval while enabled", heartbeatSrc("client", `interval = "0s"`),
			[]wantDiag{{7, 16, client + `interval: must be greater than 0 while the heartbeat is enabled, got 0s`}}},
		{"zero timeout while enabled", heartbeatSrc("upstream", `timeout = "0s"`),
			[]wantDiag{{7, 15, `route "default": heartbeat "upstream": timeout: must be greater than 0 while the heartbeat is enabled, got 0s`}}},
		{"negative timeout", heartbeatSrc("client", `enabled = false`, `timeout = "-1s"`),
			[]wantDiag{{8, 15, client + `timeout: must not be negative, got -1s`}}},
		{"interval over a day", heartbeatSrc("client", `interval = "25h"`),
			[]wantDiag{{7, 16, client + `interval: must be at most 24h0m0s, got 25h0m0s`}}},
		{"interval bare number", heartbeatSrc("client", `interval = 20`),
			[]wantDiag{{7, 16, client + `interval: a duration needs a unit, got the bare number 20`}}},
		{"max_missed zero", heartbeatSrc("client", `max_missed = 0`),
			[]wantDiag{{7, 18, client + `max_missed: must be between 1 and 100, got 0`}}},
		{"max_missed over 100", heartbeatSrc("client", `max_missed = 101`),
			[]wantDiag{{7, 18, client + `max_missed: must be between 1 and 100, got 101`}}},
		{"answer_pings as number", heartbeatSrc("client", `answer_pings = 1`),
			[]wantDiag{{7, 20, client + `answer_pings: must be true or false, got number`}}},

		// adaptive interval
		{"min_interval alone", heartbeatSrc("client", `min_interval = "10s"`),
			[]wantDiag{{7, 5, client + `min_interval: set without max_interval: an adaptive interval needs both bounds`}}},
		{"max_interval alone", heartbeatSrc("client", `max_interval = "50s"`),
			[]wantDiag{{7, 5, client + `max_interval: set without min_interval: an adaptive interval needs both bounds`}}},
		{"max_interval alone and zero", heartbeatSrc("client", `max_interval = "0s"`),
			[]wantDiag{
				{7, 5, client + `max_interval: set without min_interval: an adaptive interval needs both bounds`},
				{7, 20, client + `max_interval: must be greater than 0, got 0s`},
			}},
		{"min_interval above interval", heartbeatSrc("client", `interval = "20s"`, `min_interval = "30s"`, `max_interval = "50s"`),
			[]wantDiag{{8, 20, client + `min_interval (30s) must not be longer than interval (20s)`}}},
		{"min_interval above the default interval", heartbeatSrc("client", `min_interval = "30s"`, `max_interval = "50s"`),
			[]wantDiag{{7, 20, client + `min_interval (30s) must not be longer than interval (20s, the default)`}}},
		{"max_interval below interval", heartbeatSrc("client", `min_interval = "5s"`, `max_interval = "15s"`),
			[]wantDiag{{8, 20, client + `max_interval (15s) must not be shorter than interval (20s, the default)`}}},
		{"min_interval equal to max_interval", heartbeatSrc("client", `min_interval = "20s"`, `max_interval = "20s"`),
			[]wantDiag{{8, 20, client + `max_interval (20s) must be longer than min_interval (20s)`}}},
		{"zero min_interval", heartbeatSrc("client", `min_interval = "0s"`, `max_interval = "50s"`),
			[]wantDiag{{7, 20, client + `min_interval: must be greater than 0, got 0s`}}},
		{"bad interval skips the order check", heartbeatSrc("client", `interval = "x"`, `min_interval = "30s"`, `max_interval = "50s"`),
			[]wantDiag{{7, 16, client + `interval: invalid duration "x": want a number with a unit, such as "5s"`}}},

		// TCP keepalive
		{"keepalive idle under a second", heartbeatSrc("client", `tcp_keepalive_idle = "500ms"`),
			[]wantDiag{{7, 26, client + `tcp_keepalive_idle: must be at least 1s, got 500ms`}}},
		{"keepalive idle over 2h", heartbeatSrc("client", `tcp_keepalive_idle = "3h"`),
			[]wantDiag{{7, 26, client + `tcp_keepalive_idle: must be at most 2h0m0s, got 3h0m0s`}}},
		{"keepalive interval zero", heartbeatSrc("client", `tcp_keepalive_interval = "0s"`),
			[]wantDiag{{7, 30, client + `tcp_keepalive_interval: must be at least 1s, got 0s`}}},
		{"keepalive count zero", heartbeatSrc("client", `tcp_keepalive_count = 0`),
			[]wantDiag{{7, 27, client + `tcp_keepalive_count: must be between 1 and 50, got 0`}}},
		{"keepalive count over 50", heartbeatSrc("client", `tcp_keepalive_count = 51`),
			[]wantDiag{{7, 27, client + `tcp_keepalive_count: must be between 1 and 50, got 51`}}},
		{"user timeout under a second", heartbeatSrc("client", `tcp_user_timeout = "500ms"`),
			[]wantDiag{{7, 24, client + `tcp_user_timeout: must be 0 (off) or at least 1s, got 500ms`}}},
		{"user timeout negative", heartbeatSrc("client", `tcp_user_timeout = "-1s"`),
			[]wantDiag{{7, 24, client + `tcp_user_timeout: must not be negative, got -1s`}}},
		{"user timeout over a day", heartbeatSrc("client", `tcp_user_timeout = "25h"`),
			[]wantDiag{{7, 24, client + `tcp_user_timeout: must be at most 24h0m0s, got 25h0m0s`}}},

		// NAT limit declarations
		{"nat_profile after nat_idle_timeout", routeSrc(up, `nat_idle_timeout = "350s"`, `nat_profile = "aws-nlb"`),
			[]wantDiag{{7, 3, `route "default": nat_profile: conflicts with nat_idle_timeout on line 6: set one or the other`}}},
		{"nat_idle_timeout after nat_profile", routeSrc(up, `nat_profile = "aws-nlb"`, `nat_idle_timeout = "350s"`),
			[]wantDiag{{7, 3, `route "default": nat_idle_timeout: conflicts with nat_profile on line 6: set one or the other`}}},
		{"zero nat_idle_timeout", routeSrc(up, `nat_idle_timeout = "0s"`),
			[]wantDiag{{6, 22, `route "default": nat_idle_timeout: must be greater than 0, got 0s`}}},
		{"unknown profile, misspelled", routeSrc(up, `nat_profile = "aws-nbl"`),
			[]wantDiag{{6, 17, `route "default": nat_profile: unknown profile "aws-nbl": want one of "aws-alb", "aws-nat-gateway", "aws-nlb", "azure-lb", "azure-nat-gateway", "cloudflare", "gcp-cloud-nat", "nginx"; did you mean "aws-nlb"?`}}},
		{"unknown profile, partial", routeSrc(up, `nat_profile = "cloud-nat"`),
			[]wantDiag{{6, 17, `route "default": nat_profile: unknown profile "cloud-nat": want one of "aws-alb", "aws-nat-gateway", "aws-nlb", "azure-lb", "azure-nat-gateway", "cloudflare", "gcp-cloud-nat", "nginx"; did you mean "gcp-cloud-nat"?`}}},
		{"unknown profile, upper case", routeSrc(up, `nat_profile = "NGINX"`),
			[]wantDiag{{6, 17, `route "default": nat_profile: unknown profile "NGINX": want one of "aws-alb", "aws-nat-gateway", "aws-nlb", "azure-lb", "azure-nat-gateway", "cloudflare", "gcp-cloud-nat", "nginx"; did you mean "nginx"?`}}},
		{"unknown profile, ambiguous", routeSrc(up, `nat_profile = "aws"`),
			[]wantDiag{{6, 17, `route "default": nat_profile: unknown profile "aws": want one of "aws-alb", "aws-nat-gateway", "aws-nlb", "azure-lb", "azure-nat-gateway", "cloudflare", "gcp-cloud-nat", "nginx"`}}},

		// the NAT check
		{"interval at the aws-alb limit", withNAT(heartbeatSrc("client", `interval = "60s"`), `nat_profile = "aws-alb"`),
			[]wantDiag{{8, 16, client + `interval (1m0s) must be shorter than nat_profile "aws-alb" (60s): a silent client could go 1m0s without a frame crossing the AWS Application Load Balancer, which drops idle connections after 60s`}}},
		{"interval longer than aws-nlb", withNAT(heartbeatSrc("client", `interval = "6m"`), `nat_profile = "aws-nlb"`),
			[]wantDiag{{8, 16, client + `interval (6m0s) must be shorter than nat_profile "aws-nlb" (350s): a silent client could go 6m0s without a frame crossing the AWS Network Load Balancer, which drops idle connections after 350s`}}},
		{"adaptive max_interval at the nginx limit", withNAT(heartbeatSrc("client", `min_interval = "10s"`, `max_interval = "60s"`), `nat_profile = "nginx"`),
			[]wantDiag{{9, 20, client + `max_interval (1m0s) must be shorter than nat_profile "nginx" (60s): a silent client could go 1m0s without a frame crossing the nginx proxy, which drops idle connections after 60s`}}},
		{"heartbeat disabled with a profile", withNAT(heartbeatSrc("client", `enabled = false`), `nat_profile = "azure-lb"`),
			[]wantDiag{{8, 5, client + `enabled = false leaves nat_profile "azure-lb" (240s) unguarded: a silent client would send no frame across the Azure Load Balancer, which drops idle connections after 240s`}}},
		{"default interval against nat_idle_timeout, no block", routeSrc(up, `nat_idle_timeout = "15s"`),
			[]wantDiag{{4, 1, client + `interval (20s, the default) must be shorter than nat_idle_timeout (15s): a silent client could go 20s without a frame crossing the NAT or load balancer in front of wsalive, which drops idle connections after 15s`}}},
		{"default interval against nat_idle_timeout, with block", withNAT(heartbeatSrc("client", `timeout = "5s"`), `nat_idle_timeout = "20s"`),
			[]wantDiag{{7, 3, client + `interval (20s, the default) must be shorter than nat_idle_timeout (20s): a silent client could go 20s without a frame crossing the NAT or load balancer in front of wsalive, which drops idle connections after 20s`}}},
		{"null interval is the default", withNAT(heartbeatSrc("client", `interval = null`), `nat_idle_timeout = "20s"`),
			[]wantDiag{{7, 3, client + `interval (20s, the default) must be shorter than nat_idle_timeout (20s): a silent client could go 20s without a frame crossing the NAT or load balancer in front of wsalive, which drops idle connections after 20s`}}},
		{"bad heartbeat is not checked against the limit", withNAT(heartbeatSrc("client", `interval = "5m"`, `max_missed = 0`), `nat_profile = "aws-alb"`),
			[]wantDiag{{9, 18, client + `max_missed: must be between 1 and 100, got 0`}}},

		// idle and lifetime
		{"negative idle_timeout", routeSrc(up, `idle_timeout = "-1s"`),
			[]wantDiag{{6, 18, `route "default": idle_timeout: must not be negative, got -1s`}}},
		{"jitter without max_lifetime", routeSrc(up, `max_lifetime_jitter = "1h"`),
			[]wantDiag{{6, 3, `route "default": max_lifetime_jitter: set without max_lifetime: the jitter only spreads the closes that max_lifetime makes`}}},
		{"jitter with max_lifetime off", routeSrc(up, `max_lifetime = "0s"`, `max_lifetime_jitter = "1h"`),
			[]wantDiag{{7, 3, `route "default": max_lifetime_jitter: set while max_lifetime is 0 (off): the jitter only spreads the closes that max_lifetime makes`}}},
		{"jitter as long as max_lifetime", routeSrc(up, `max_lifetime = "1h"`, `max_lifetime_jitter = "60m"`),
			[]wantDiag{{7, 25, `route "default": max_lifetime_jitter (1h0m0s) must be shorter than max_lifetime (1h0m0s)`}}},
		{"bad max_lifetime skips the jitter check", routeSrc(up, `max_lifetime = "1d"`, `max_lifetime_jitter = "1h"`),
			[]wantDiag{{6, 18, `route "default": max_lifetime: invalid duration "1d": want a number with a unit, such as "5s"`}}},

		// app_ping
		{"app_ping without match", routeSrc(up, `app_ping {`, `  reply = "pong"`, `}`),
			[]wantDiag{{6, 3, `route "default": app_ping: match: required setting is missing`}}},
		{"app_ping without reply", routeSrc(up, `app_ping {`, `  match = "ping"`, `}`),
			[]wantDiag{{6, 3, `route "default": app_ping: reply: required setting is missing`}}},
		{"app_ping empty match", routeSrc(up, `app_ping {`, `  match = ""`, `  reply = "pong"`, `}`),
			[]wantDiag{{7, 13, `route "default": app_ping: match: must be 1 to 125 bytes long, got 0`}}},
		{"app_ping long match", routeSrc(up, `app_ping {`, `  match = "`+strings.Repeat("é", 63)+`"`, `  reply = "pong"`, `}`),
			[]wantDiag{{7, 13, `route "default": app_ping: match: must be 1 to 125 bytes long, got 126`}}},
		{"app_ping long reply", routeSrc(up, `app_ping {`, `  match = "ping"`, `  reply = "`+strings.Repeat("r", 4097)+`"`, `}`),
			[]wantDiag{{8, 13, `route "default": app_ping: reply: must be 0 to 4096 bytes long, got 4097`}}},
		{"app_ping match as number", routeSrc(up, `app_ping {`, `  match = 1`, `  reply = "pong"`, `}`),
			[]wantDiag{{7, 13, `route "default": app_ping: match: must be a string, got number`}}},
		{"two app_ping blocks", routeSrc(up, `app_ping {`, `  match = "a"`, `  reply = "b"`, `}`, `app_ping {`, `}`),
			[]wantDiag{{10, 3, `route "default": app_ping: duplicate block: a route has at most one app_ping block, the first is on line 6`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("test.hcl", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %s", dump(cfg))
			}
			checkDiags(t, err, tt.want)
		})
	}
}

// TestNATCheckDetail checks what the NAT check tells the user beyond its
// summary: where the limit was set, and a fix.
func TestNATCheckDetail(t *testing.T) {
	src := withNAT(heartbeatSrc("client", `interval = "6m"`), `nat_profile = "aws-nlb"`)
	_, err := Parse("test.hcl", []byte(src))
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Diagnostics()) != 1 {
		t.Fatalf("err = %v, want one problem", err)
	}
	d := cerr.Diagnostics()[0]
	for _, want := range []string{`interval = "175s"`, "nat_profile is set on line 6."} {
		if !strings.Contains(d.Detail, want) {
			t.Errorf("Detail lacks %q: %s", want, d.Detail)
		}
	}
	if d.Subject == nil || d.Subject.Start.Line != 8 {
		t.Errorf("Subject = %v, want the interval on line 8", d.Subject)
	}
}

func TestSuggest(t *testing.T) {
	candidates := []string{"aws-alb", "aws-nat-gateway", "aws-nlb", "nginx"}
	tests := []struct{ in, want string }{
		{"aws-nbl", "aws-nlb"},
		{"AWS-ALB", "aws-alb"},
		{"nginx1", "nginx"},
		{"nat-gateway", "aws-nat-gateway"},
		{"aws", ""},
		{"haproxy", ""},
		{"ng", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, candidates); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"aws-nlb", "aws-nbl", 2},
		{"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
