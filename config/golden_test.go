package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden pins the parser end to end: each testdata/*.hcl is loaded and
// the result, a dump of the Config or the rendered error text, must equal
// the .golden file next to it. Run `go test ./config -run TestGolden
// -update` after an intended change, and review the diff.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/*.hcl files")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".hcl")
		t.Run(name, func(t *testing.T) {
			// Slashes keep the golden text the same on every platform.
			cfg, err := Load(filepath.ToSlash(in))
			var got string
			if err != nil {
				got = "error:\n" + err.Error() + "\n"
			} else {
				got = dump(cfg)
			}

			golden := strings.TrimSuffix(in, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// dump writes cfg one block a line, every field named, so that a golden
// file shows what each setting became.
func dump(cfg *Config) string {
	var b strings.Builder
	for _, l := range cfg.Listeners {
		fmt.Fprintf(&b, "listener address=%q max_header_bytes=%d\n", l.Address, l.MaxHeaderBytes)
		fmt.Fprintf(&b, "  trusted_proxies=%v forwarded_proto=%q max_connections=%d http_idle_timeout=%s max_header_lines=%d\n",
			l.TrustedProxies, l.ForwardedProto, l.MaxConnections, l.HTTPIdleTimeout, l.MaxHeaderLines)
		dumpListenerTLS(&b, l.TLS)
	}
	fmt.Fprintf(&b, "limits max_handshakes=%d max_handshakes_per_client_ip=%d resume_memory=%d\n", cfg.Limits.MaxHandshakes, cfg.Limits.MaxHandshakesPerClientIP, cfg.Limits.ResumeMemory)
	if cfg.Admin != nil {
		fmt.Fprintf(&b, "admin address=%q pprof=%t\n", cfg.Admin.Address, cfg.Admin.Pprof)
	} else {
		fmt.Fprintf(&b, "admin none\n")
	}
	fmt.Fprintf(&b, "engine loops=%d io_uring=%v\n", cfg.Engine.Loops, cfg.Engine.IOUring)
	fmt.Fprintf(&b, "drain delay=%s window=%s close_code=%d\n", cfg.Drain.Delay, cfg.Drain.Window, cfg.Drain.CloseCode)
	fmt.Fprintf(&b, "log_level=%s\n", cfg.LogLevel)
	for _, r := range cfg.Routes {
		fmt.Fprintf(&b, "route %q host=%q path_prefix=%q upstream={raw=%q address=%q path=%q} max_frame_size=%d handshake_timeout=%s close_timeout=%s\n",
			r.Name, r.Host, r.PathPrefix, r.Upstream.Raw, r.Upstream.Address, r.Upstream.Path,
			r.MaxFrameSize, r.HandshakeTimeout, r.CloseTimeout)
		dumpUpstreamTLS(&b, r.UpstreamTLS)
		fmt.Fprintf(&b, "  pool balance=%s hash_key=%s dns_ttl=%s\n", r.Balance, r.HashKey, r.DNSTTL)
		for _, srv := range r.Servers {
			fmt.Fprintf(&b, "    server raw=%q address=%q path=%q weight=%d backup=%t max_fails=%d fail_timeout=%s\n",
				srv.Raw, srv.Address, srv.Path, srv.Weight, srv.Backup, srv.MaxFails, srv.FailTimeout)
		}
		dumpHeartbeat(&b, sideClient, r.ClientHeartbeat)
		dumpHeartbeat(&b, sideUpstream, r.UpstreamHeartbeat)
		fmt.Fprintf(&b, "  nat_idle_timeout=%s nat_profile=%q idle_timeout=%s max_lifetime=%s max_lifetime_jitter=%s\n",
			r.NATIdleTimeout, r.NATProfile, r.IdleTimeout, r.MaxLifetime, r.MaxLifetimeJitter)
		fmt.Fprintf(&b, "  http=%q max_body_size=%d allowed_origins=%v require_origin=%t max_pairs=%d max_pairs_per_client_ip=%d\n",
			r.HTTP, r.MaxBodySize, r.AllowedOrigins, r.RequireOrigin, r.MaxPairs, r.MaxPairsPerClientIP)
		if r.AppPing != nil {
			fmt.Fprintf(&b, "  app_ping match=%q reply=%q\n", r.AppPing.Match, r.AppPing.Reply)
		}
		if r.Resume != nil {
			fmt.Fprintf(&b, "  resume window=%s buffer=%d\n", r.Resume.Window, r.Resume.Buffer)
		}
	}
	return b.String()
}

func dumpHeartbeat(b *strings.Builder, side string, h Heartbeat) {
	fmt.Fprintf(b, "  heartbeat %q enabled=%t interval=%s timeout=%s max_missed=%d min_interval=%s max_interval=%s answer_pings=%t\n",
		side, h.Enabled, h.Interval, h.Timeout, h.MaxMissed, h.MinInterval, h.MaxInterval, h.AnswerPings)
	fmt.Fprintf(b, "    tcp keepalive_idle=%s keepalive_interval=%s keepalive_count=%d user_timeout=%s\n",
		h.TCP.Idle, h.TCP.Interval, h.TCP.Count, h.TCP.UserTimeout)
}

func dumpListenerTLS(b *strings.Builder, t *ListenerTLS) {
	if t == nil {
		return
	}
	fmt.Fprintf(b, "  tls min_version=%s client_ca_file=%q\n", tlsVersionName(t.MinVersion), t.ClientCAFile)
	for i, c := range t.Certificates {
		fmt.Fprintf(b, "    certificate %d cert_file=%q key_file=%q\n", i, c.CertFile, c.KeyFile)
	}
}

func dumpUpstreamTLS(b *strings.Builder, t *UpstreamTLS) {
	if t == nil {
		return
	}
	fmt.Fprintf(b, "  upstream_tls ca_file=%q server_name=%q insecure_skip_verify=%t", t.CAFile, t.ServerName, t.InsecureSkipVerify)
	if t.ClientCert != nil {
		fmt.Fprintf(b, " cert_file=%q key_file=%q", t.ClientCert.CertFile, t.ClientCert.KeyFile)
	}
	b.WriteString("\n")
}

func tlsVersionName(v uint16) string {
	for name, ver := range tlsVersions {
		if ver == v {
			return name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}
