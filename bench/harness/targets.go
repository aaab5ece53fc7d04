package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/bench/configs"
	"github.com/wsalive/wsalive/bench/wsload"
)

// The targets: what the load generator connects to.
const (
	// TargetDirect is the backend itself, no proxy: the physical limit.
	TargetDirect  = "direct"
	TargetNginx   = "nginx"
	TargetHAProxy = "haproxy"
	TargetCaddy   = "caddy"
	TargetWsalive = "wsalive"
)

// AllTargets lists every target in the order runs alternate through them.
var AllTargets = []string{TargetDirect, TargetNginx, TargetHAProxy, TargetCaddy, TargetWsalive}

// competitors are the targets installed from Debian's packages, with the
// package that brings each.
var competitors = map[string]string{
	TargetNginx:   "nginx",
	TargetHAProxy: "haproxy",
	TargetCaddy:   "caddy",
}

// Binaries are the programs a run uses. The competitors' paths are empty
// when they are not installed.
type Binaries struct {
	Dir     string // where the harness built its own programs
	Wsalive string
	Wsload  string
	Echo    string // examples/legacyecho/cmd/legacy-echo
	Nginx   string
	HAProxy string
	Caddy   string
}

// Variants of wsalive's configuration.
const (
	variantThroughput = "throughput"
	variantHeartbeat  = "heartbeat"
)

// proxySetup is how to run one proxy: its configuration template and file
// name, command line and environment, with the placeholders of package
// bench/configs ({{dir}} and {{config}} included).
type proxySetup struct {
	ConfigName string
	Template   string
	Argv       []string
	Env        []string
}

// setupFor returns how to run target; variant picks wsalive's
// configuration.
func setupFor(target string, bins Binaries, variant string) proxySetup {
	switch target {
	case TargetNginx:
		return proxySetup{
			ConfigName: "nginx.conf",
			Template:   configs.Text(configs.Nginx),
			Argv:       []string{bins.Nginx, "-p", "{{dir}}", "-c", "{{config}}", "-e", "{{dir}}/error.log"},
		}
	case TargetHAProxy:
		return proxySetup{
			ConfigName: "haproxy.cfg",
			Template:   configs.Text(configs.HAProxy),
			Argv:       []string{bins.HAProxy, "-f", "{{config}}", "-db"},
		}
	case TargetCaddy:
		return proxySetup{
			ConfigName: "Caddyfile",
			Template:   configs.Text(configs.Caddy),
			Argv:       []string{bins.Caddy, "run", "--config", "{{config}}", "--adapter", "caddyfile"},
			Env: []string{"GOMAXPROCS=1", "HOME={{dir}}", "XDG_DATA_HOME={{dir}}/data",
				"XDG_CONFIG_HOME={{dir}}/config"},
		}
	case TargetWsalive:
		tmpl := configs.WsaliveThroughput
		if variant == variantHeartbeat {
			tmpl = configs.WsaliveHeartbeat
		}
		return proxySetup{
			ConfigName: "wsalive.hcl",
			Template:   configs.Text(tmpl),
			Argv:       []string{bins.Wsalive, "run", "-config", "{{config}}", "-log-level", "warn"},
			Env:        []string{"GOMAXPROCS=1"},
		}
	}
	panic("no proxy setup for target " + target)
}

// proxyInst is a running proxy.
type proxyInst struct {
	target string
	p      *proc
	listen string
	admin  string
	argv   []string
	env    []string
}

// startTarget starts the proxy of target in dir, in front of the backend
// at upstreamAddr, and waits until a WebSocket handshake through it
// succeeds. It returns nil for TargetDirect.
func startTarget(ctx context.Context, target string, bins Binaries, variant, dir, upstreamAddr string) (*proxyInst, error) {
	if target == TargetDirect {
		return nil, nil
	}
	setup := setupFor(target, bins, variant)
	listen, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, err
	}
	text := wsload.ExpandVars(setup.Template, wsload.TemplateVars{
		Listen:   listen,
		Upstream: "ws://" + upstreamAddr,
		Admin:    admin,
		Dir:      dir,
	})
	cfgPath := filepath.Join(dir, setup.ConfigName)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return nil, err
	}
	subst := strings.NewReplacer("{{config}}", cfgPath, "{{dir}}", dir)
	var argv, env []string
	for _, a := range setup.Argv {
		argv = append(argv, subst.Replace(a))
	}
	for _, e := range setup.Env {
		env = append(env, subst.Replace(e))
	}
	p, err := startProc(target, argv, env, "", filepath.Join(dir, target+".log"))
	if err != nil {
		return nil, err
	}
	px := &proxyInst{target: target, p: p, listen: listen, admin: admin, argv: argv, env: env}
	if err := waitWebSocket(ctx, p, "ws://"+listen+"/", 15*time.Second); err != nil {
		p.stop(0, 5*time.Second)
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	return px, nil
}

func (px *proxyInst) stop() {
	if px != nil {
		px.p.stop(0, 10*time.Second)
	}
}

// startBackend starts the legacy echo server on a free loopback port.
func startBackend(ctx context.Context, bins Binaries, dir string) (*proc, string, error) {
	addr, err := freeAddr("127.0.0.1")
	if err != nil {
		return nil, "", err
	}
	p, err := startProc("legacy-echo", []string{bins.Echo, "-listen", addr}, nil, "", filepath.Join(dir, "legacy-echo.log"))
	if err != nil {
		return nil, "", err
	}
	if err := waitWebSocket(ctx, p, "ws://"+addr+"/", 10*time.Second); err != nil {
		p.stop(0, 5*time.Second)
		return nil, "", fmt.Errorf("backend: %w", err)
	}
	return p, addr, nil
}

// waitWebSocket retries a WebSocket handshake to url until one succeeds
// (then closes it with a close handshake), p exits, or limit passes.
func waitWebSocket(ctx context.Context, p *proc, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		if last = probeWebSocket(ctx, url); last == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("exited before serving (%s); its log:\n%s", p.ExitText(), p.LogTail(15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no WebSocket handshake through %s after %v (%v); its log:\n%s", url, limit, last, p.LogTail(15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probeWebSocket opens one WebSocket connection to url and closes it with
// a close handshake.
func probeWebSocket(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{Timeout: 2 * time.Second}.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	if br != nil {
		ws.PutReader(br)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	f := ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if err := ws.WriteFrame(conn, f); err != nil {
		return err
	}
	rd := bufio.NewReader(conn)
	for {
		h, err := ws.ReadHeader(rd)
		if err != nil {
			return nil // the server closed TCP: done
		}
		if _, err := rd.Discard(int(h.Length)); err != nil {
			return nil
		}
		if h.OpCode == ws.OpClose {
			return nil
		}
	}
}

// freeAddr returns ip:port with a port that was free a moment ago.
func freeAddr(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("finding a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// lookCompetitor finds the binary of a competitor target.
func lookCompetitor(target string) string {
	name := competitors[target]
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
