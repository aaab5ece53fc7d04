package wsload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	cmd     *exec.Cmd
	logPath string
	log     *slog.Logger
	done    chan struct{} // closed when the process has been reaped
	waitErr error
	release chan struct{} // ends the thread that started the process
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
	p := &proxyProc{
		cmd:     exec.Command(bin, argv[1:]...),
		logPath: spec.logPath,
		log:     log,
		done:    make(chan struct{}),
		release: make(chan struct{}),
	}
	if len(spec.env) > 0 {
		p.cmd.Env = os.Environ()
		for _, e := range spec.env {
			p.cmd.Env = append(p.cmd.Env, subst.Replace(e))
		}
	}
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	p.cmd.SysProcAttr = proxySysProcAttr()

	// The parent-death signal is tied to the thread that forks the child,
	// so fork from a thread that stays until the proxy is gone.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = p.cmd.Wait()
		close(p.done)
		<-p.release
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting the proxy %s: %w", bin, err)
	}
	log.Info("proxy started", "pid", p.cmd.Process.Pid, "cmd", strings.Join(argv, " "), "config", cfgPath, "log", spec.logPath)
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
		case <-p.done:
			return fmt.Errorf("the proxy exited before accepting on %s (%v); its log:\n%s", addr, p.waitErr, p.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy does not accept on %s after %v (%v); its log:\n%s", addr, proxyStartTimeout, err, p.logTail(20))
		}
	}
}

// exited reports whether the proxy ended on its own, and how.
func (p *proxyProc) exited() (bool, error) {
	select {
	case <-p.done:
		return !p.stopped, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM, then SIGKILL after proxyStopTimeout, and reaps the
// process. Only this PID is signalled.
func (p *proxyProc) stop() {
	if p.stopped {
		return
	}
	defer close(p.release)
	select {
	case <-p.done:
		p.stopped = true
		return
	default:
	}
	p.stopped = true
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn("SIGTERM to the proxy", "pid", pid, "err", err)
	}
	t := time.NewTimer(proxyStopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		p.log.Info("proxy stopped", "pid", pid, "status", exitText(p.waitErr))
	case <-t.C:
		p.log.Warn("proxy still running after SIGTERM; killing it", "pid", pid, "after", proxyStopTimeout)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the last n lines of the proxy's log.
func (p *proxyProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
