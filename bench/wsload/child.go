package wsload

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Child is a process a bench tool started and must reap. The parent-death
// signal (set by the caller in cmd.SysProcAttr) is tied to the thread that
// forks, so the process is forked from a locked thread that stays until
// Release, and dies with the tool even if the tool is killed first.
type Child struct {
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{} // closed when the process has been reaped
	waitErr error
	release chan struct{} // ends the thread that started the process
}

// StartChild starts cmd; logPath names the file its output goes to, for
// LogTail. Call Release once the process has ended.
func StartChild(cmd *exec.Cmd, logPath string) (*Child, error) {
	c := &Child{Cmd: cmd, LogPath: logPath, done: make(chan struct{}), release: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.done)
		<-c.release
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

// PID is the process's id.
func (c *Child) PID() int { return c.Cmd.Process.Pid }

// Done is closed when the process has ended and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// WaitFor waits up to d for the process to end; it reports whether it did.
func (c *Child) WaitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// Err is how the process ended (nil for exit 0); valid once Done is closed.
func (c *Child) Err() error { return c.waitErr }

// ExitText describes how the process ended.
func (c *Child) ExitText() string { return exitText(c.waitErr) }

// Release lets the forking thread go; call it once, after the end.
func (c *Child) Release() { close(c.release) }

// LogTail returns the last n lines of the process's log.
func (c *Child) LogTail(n int) string {
	b, err := os.ReadFile(c.LogPath)
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
