package wsload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bounds of the proxy's life cycle.
const (
	// proxyStartTimeout bounds the wait for the proxy to accept.
	proxyStartTimeout = 15 * time.Second
	// proxyStopTimeout is how long the proxy gets after SIGTERM before
	// SIGKILL. wsalive drains within its longest close_timeout plus a
	// second; by then the run has reset every dead socket, so the drain is
	// quick.
	proxyStopTimeout = 10 * time.Second
)

// proxyProc is the proxy under test, a child process.
type proxyProc struct {
	*Child
	log     *slog.Logger
	stopped bool
}

// proxySpec is how to start the proxy under test.
type proxySpec struct {
	// argv is its command line; {{config}} and {{dir}} are substituted.
	argv []string
	// env adds NAME=VALUE pairs to the environment; {{dir}} is
	// substituted.
	env []string
	// dir is the run's temporary directory; the configuration is
	// written to dir/cfgName.
	dir, cfgName, cfgText string
	// logPath receives the proxy's stdout and stderr.
	logPath string
}

// startProxy writes the configuration to dir/cfgName and starts the
// proxy's command line (by default `wsalive run -config dir/wsalive.hcl`),
// its output going to logPath.
func startProxy(spec proxySpec, log *slog.Logger) (*proxyProc, error) {
	cfgPath := filepath.Join(spec.dir, spec.cfgName)
	if err := os.WriteFile(cfgPath, []byte(spec.cfgText), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(spec.logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own copy

	subst := strings.NewReplacer(placeholderConfig, cfgPath, placeholderDir, spec.dir)
	argv := make([]string, len(spec.argv))
	for i, a := range spec.argv {
		argv[i] = subst.Replace(a)
	}
	if len(argv) == 0 {
		return nil, errors.New("empty proxy command")
	}
	bin := argv[0]
	cmd := exec.Command(bin, argv[1:]...)
	if len(spec.env) > 0 {
		cmd.Env = os.Environ()
		for _, e := range spec.env {
			cmd.Env = append(cmd.Env, subst.Replace(e))
		}
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = proxySysProcAttr()
	child, err := StartChild(cmd, spec.logPath)
	if err != nil {
		return nil, fmt.Errorf("starting the proxy %s: %w", bin, err)
	}
	p := &proxyProc{Child: child, log: log}
	log.Info("proxy started", "pid", p.PID(), "cmd", strings.Join(argv, " "), "config", cfgPath, "log", spec.logPath)
	return p, nil
}

// waitAccepting retries a TCP connect to addr until the proxy accepts, the
// proxy exits, ctx ends or proxyStartTimeout passes.
func (p *proxyProc) waitAccepting(ctx context.Context, addr string) error {
	deadline := time.Now().Add(proxyStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("the proxy exited before accepting on %s (%v); its log:\n%s", addr, p.Err(), p.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy does not accept on %s after %v (%v); its log:\n%s", addr, proxyStartTimeout, err, p.LogTail(20))
		}
	}
}

// exited reports whether the proxy ended on its own, and how.
func (p *proxyProc) exited() (bool, error) {
	if !p.Exited() {
		return false, nil
	}
	return !p.stopped, p.Err()
}

// stop sends SIGTERM, then SIGKILL after proxyStopTimeout, and reaps the
// process. Only this PID is signalled.
func (p *proxyProc) stop() {
	if p.stopped {
		return
	}
	defer p.Release()
	p.stopped = true
	if p.Exited() {
		return
	}
	pid := p.PID()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn("SIGTERM to the proxy", "pid", pid, "err", err)
	}
	if p.WaitFor(proxyStopTimeout) {
		p.log.Info("proxy stopped", "pid", pid, "status", p.ExitText())
		return
	}
	p.log.Warn("proxy still running after SIGTERM; killing it", "pid", pid, "after", proxyStopTimeout)
	p.Cmd.Process.Kill()
	<-p.Done()
}
