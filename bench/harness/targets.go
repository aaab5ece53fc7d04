package harness

import (
	"bufio"
	"context"
	"errors"
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
	// TargetNginxL4 and TargetHAProxyL4 are the L4 floor: nginx's stream
	// module and HAProxy in mode tcp relay the echo traffic as bare bytes,
	// knowing nothing of WebSocket. They run the echo scenarios only.
	TargetNginxL4   = "nginx-l4"
	TargetHAProxyL4 = "haproxy-l4"
)

// AllTargets lists every target in the order runs alternate through them.
var AllTargets = []string{TargetDirect, TargetNginx, TargetHAProxy, TargetCaddy, TargetNginxL4, TargetHAProxyL4, TargetWsalive}

// competitor is a target installed from Debian's packages: its binary and
// the packages that bring it.
type competitor struct {
	bin  string
	pkgs []string
}

// competitors are the targets that are not built here.
var competitors = map[string]competitor{
	TargetNginx:     {"nginx", []string{"nginx"}},
	TargetHAProxy:   {"haproxy", []string{"haproxy"}},
	TargetCaddy:     {"caddy", []string{"caddy"}},
	TargetNginxL4:   {"nginx", []string{"nginx", "libnginx-mod-stream"}},
	TargetHAProxyL4: {"haproxy", []string{"haproxy"}},
}

// Binaries are the programs a run uses. The competitors' paths are empty
// when they are not installed.
type Binaries struct {
	Dir     string // where the harness built its own programs
	Wsalive string
	Wsload  string
	Echo    string // examples/legacyecho/cmd/legacy-echo
	// GorillaEcho is bench/cmd/gorilla-echo, the independent backend.
	GorillaEcho string
	Nginx       string
	// NginxStreamModule is the load_module line nginx needs for its
	// stream module, empty when the module is built in.
	NginxStreamModule string
	HAProxy           string
	Caddy             string
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
	case TargetNginxL4:
		return proxySetup{
			ConfigName: "nginx.conf",
			Template:   configs.Text(configs.NginxStream),
			Argv:       []string{bins.Nginx, "-p", "{{dir}}", "-c", "{{config}}", "-e", "{{dir}}/error.log"},
		}
	case TargetHAProxyL4:
		return proxySetup{
			ConfigName: "haproxy.cfg",
			Template:   configs.Text(configs.HAProxyTCP),
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

// startAttempts is how often a proxy or backend is started on fresh ports
// before giving up: a port found free may be taken by another process
// before the child binds it (the machine is shared), and the child then
// fails to start, or another process answers on that port.
const startAttempts = 3

// startTarget starts the proxy of target in dir, in front of the backend
// at upstreamAddr, and waits until a WebSocket handshake through it
// succeeds on a listener the proxy owns. It returns nil for TargetDirect.
func startTarget(ctx context.Context, target string, bins Binaries, variant, dir, upstreamAddr string) (*proxyInst, error) {
	if target == TargetDirect {
		return nil, nil
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var px *proxyInst
		if px, err = startTargetOnce(ctx, target, bins, variant, dir, upstreamAddr); err == nil || ctx.Err() != nil {
			return px, err
		}
	}
	return nil, err
}

func startTargetOnce(ctx context.Context, target string, bins Binaries, variant, dir, upstreamAddr string) (*proxyInst, error) {
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
	if target == TargetNginxL4 {
		if err := os.WriteFile(filepath.Join(dir, "stream-module.conf"), []byte(bins.NginxStreamModule), 0o644); err != nil {
			return nil, err
		}
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
	if err := waitOwnWebSocket(ctx, p, listen, 15*time.Second); err != nil {
		p.stop(0, 5*time.Second)
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	return px, nil
}

// waitOwnWebSocket waits for a WebSocket handshake on listen, then checks
// that the listener belongs to p (or a process it started): a probe that
// succeeds may have reached another process that took the port first.
func waitOwnWebSocket(ctx context.Context, p *proc, listen string, limit time.Duration) error {
	if err := waitWebSocket(ctx, p, "ws://"+listen+"/", limit); err != nil {
		return err
	}
	if !ownsListener(p.pid(), listen) {
		return fmt.Errorf("%s answered, but it is not this process's listener (the port was taken); its log:\n%s", listen, p.LogTail(15))
	}
	return nil
}

func (px *proxyInst) stop() {
	if px != nil {
		px.p.stop(0, 10*time.Second)
	}
}

// Backends: legacy-echo (examples/legacyecho, on gobwas/ws) goes with
// wsload's own client, gorilla-echo (bench/cmd/gorilla-echo) with the
// gorilla client, so that no side of a gorilla run shares a WebSocket
// library with wsalive.
const (
	backendLegacy  = "legacy-echo"
	backendGorilla = "gorilla-echo"
)

// backendFor returns the backend that goes with client.
func backendFor(client string) string {
	if client == wsload.ClientGorilla {
		return backendGorilla
	}
	return backendLegacy
}

// startBackend starts the echo backend that goes with client on a loopback
// port and waits until it serves. gorilla-echo binds port 0 and reports the
// port it got, so it cannot race; legacy-echo is given a port found free
// and is started again on another if it loses it.
func startBackend(ctx context.Context, bins Binaries, dir, client string) (*proc, string, error) {
	if backendFor(client) == backendGorilla {
		return startGorillaBackend(ctx, bins, dir)
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var addr string
		if addr, err = freeAddr("127.0.0.1"); err != nil {
			return nil, "", err
		}
		p, err2 := startProc(backendLegacy, []string{bins.Echo, "-listen", addr}, nil, "", filepath.Join(dir, "legacy-echo.log"))
		if err2 != nil {
			return nil, "", err2
		}
		if err = waitOwnWebSocket(ctx, p, addr, 10*time.Second); err == nil {
			return p, addr, nil
		}
		p.stop(0, 5*time.Second)
		err = fmt.Errorf("backend: %w", err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", err
}

// startGorillaBackend starts gorilla-echo on 127.0.0.1:0 and reads back
// the address it bound.
func startGorillaBackend(ctx context.Context, bins Binaries, dir string) (*proc, string, error) {
	addrFile := filepath.Join(dir, "backend.addr")
	os.Remove(addrFile)
	p, err := startProc(backendGorilla, []string{bins.GorillaEcho, "-listen", "127.0.0.1:0", "-addr-file", addrFile},
		nil, "", filepath.Join(dir, "gorilla-echo.log"))
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			addr := strings.TrimSpace(string(b))
			if err := waitWebSocket(ctx, p, "ws://"+addr+"/", 10*time.Second); err != nil {
				p.stop(0, 5*time.Second)
				return nil, "", fmt.Errorf("backend: %w", err)
			}
			return p, addr, nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(0, 5*time.Second)
			return nil, "", fmt.Errorf("backend: gorilla-echo reported no address (%s):\n%s", p.ExitText(), p.LogTail(10))
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitWebSocket retries a WebSocket handshake to url until one succeeds
// (then closes it with a close handshake), p exits, or limit passes.
func waitWebSocket(ctx context.Context, p *proc, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		if last = probeWebSocket(ctx, url); last == nil {
			if p.Exited() {
				// Someone else answered: p lost its port and ended.
				return fmt.Errorf("%s answered, but the process exited (%s); its log:\n%s", url, p.ExitText(), p.LogTail(15))
			}
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

// lookCompetitor finds the binary of a competitor target; it returns ""
// when the target cannot run here (for nginx-l4, when nginx lacks its
// stream module).
func lookCompetitor(target string) string {
	bin := lookBinary(competitors[target].bin)
	if bin != "" && target == TargetNginxL4 {
		if _, err := nginxStreamModule(bin); err != nil {
			return ""
		}
	}
	return bin
}

// lookBinary finds name on PATH or in the usual sbin and bin directories
// (PATH may lack the sbin ones).
func lookBinary(name string) string {
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

// nginxStreamModule returns the line a configuration needs for nginx's
// stream module: "" when it is built in, a load_module line when it is a
// dynamic module that is installed, and an error otherwise.
func nginxStreamModule(nginx string) (string, error) {
	out, err := exec.Command(nginx, "-V").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s -V: %w", nginx, err)
	}
	return streamModuleLine(string(out), func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
}

// streamModuleLine reads nginx -V's configure arguments.
func streamModuleLine(v string, exists func(string) bool) (string, error) {
	modules := "/usr/lib/nginx/modules"
	for _, f := range strings.Fields(v) {
		if p, ok := strings.CutPrefix(f, "--modules-path="); ok {
			modules = p
		}
	}
	for _, f := range strings.Fields(v) {
		switch f {
		case "--with-stream":
			return "", nil
		case "--with-stream=dynamic":
			so := filepath.Join(modules, "ngx_stream_module.so")
			if !exists(so) {
				return "", fmt.Errorf("nginx's stream module is dynamic and %s is not installed (Debian: libnginx-mod-stream)", so)
			}
			return "load_module " + so + ";\n", nil
		}
	}
	return "", errors.New("nginx was built without the stream module")
}
