package configs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsalive/wsalive/config"
)

func expand(t *testing.T, name, dir string) string {
	t.Helper()
	return strings.NewReplacer(
		"{{listen}}", "127.0.0.1:18001",
		"{{listen_host}}", "127.0.0.1",
		"{{upstream}}", "ws://127.0.0.1:18002",
		"{{upstream_addr}}", "127.0.0.1:18002",
		"{{admin}}", "127.0.0.1:18003",
		"{{dir}}", dir,
	).Replace(Text(name))
}

// TestTemplates checks that every template has its placeholders and that
// wsalive's parse.
func TestTemplates(t *testing.T) {
	names := Names()
	for _, want := range []string{Nginx, HAProxy, Caddy, WsaliveThroughput, WsaliveHeartbeat, BlackholeClient, BlackholeUpstream} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("template %s is not embedded (have %v)", want, names)
		}
	}
	for _, name := range names {
		text := Text(name)
		if !strings.Contains(text, "{{listen}}") {
			t.Errorf("%s: no {{listen}}", name)
		}
		if !strings.Contains(text, "{{upstream}}") && !strings.Contains(text, "{{upstream_addr}}") {
			t.Errorf("%s: no upstream placeholder", name)
		}
		if strings.HasSuffix(name, ".hcl") {
			if _, err := config.Parse(name, []byte(expand(t, name, t.TempDir()))); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

// TestCompetitorConfigs has each installed competitor check its own
// configuration (skipped for those not installed).
func TestCompetitorConfigs(t *testing.T) {
	cases := []struct {
		name, bin, tmpl, file string
		args                  func(dir, cfg string) []string
	}{
		{"nginx", "nginx", Nginx, "nginx.conf", func(dir, cfg string) []string {
			return []string{"-t", "-q", "-p", dir, "-c", cfg, "-e", filepath.Join(dir, "error.log")}
		}},
		{"haproxy", "haproxy", HAProxy, "haproxy.cfg", func(dir, cfg string) []string { return []string{"-c", "-q", "-f", cfg} }},
		{"nginx-stream", "nginx", NginxStream, "nginx.conf", func(dir, cfg string) []string {
			return []string{"-t", "-q", "-p", dir, "-c", cfg, "-e", filepath.Join(dir, "error.log")}
		}},
		{"haproxy-tcp", "haproxy", HAProxyTCP, "haproxy.cfg", func(dir, cfg string) []string { return []string{"-c", "-q", "-f", cfg} }},
		{"caddy", "caddy", Caddy, "Caddyfile", func(dir, cfg string) []string {
			return []string{"adapt", "--config", cfg, "--adapter", "caddyfile"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin, err := exec.LookPath(c.bin)
			if err != nil {
				for _, d := range []string{"/usr/sbin", "/usr/bin"} {
					if _, err := os.Stat(filepath.Join(d, c.bin)); err == nil {
						bin = filepath.Join(d, c.bin)
					}
				}
			}
			if bin == "" {
				t.Skipf("%s is not installed", c.bin)
			}
			dir := t.TempDir()
			// The stream module's load_module line (see NginxStream).
			module := ""
			if c.tmpl == NginxStream {
				const so = "/usr/lib/nginx/modules/ngx_stream_module.so"
				if _, err := os.Stat(so); err != nil {
					t.Skipf("nginx's stream module is not installed (%v)", err)
				}
				module = "load_module " + so + ";\n"
			}
			if err := os.WriteFile(filepath.Join(dir, "stream-module.conf"), []byte(module), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, c.file)
			if err := os.WriteFile(cfg, []byte(expand(t, c.tmpl, dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, c.args(dir, cfg)...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s rejects its configuration: %v\n%s", c.bin, err, out)
			}
		})
	}
}
