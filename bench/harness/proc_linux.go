package harness

import (
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// dieWithParent makes the kernel kill cmd's process when the harness dies
// (parent-death signal).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// killPID sends SIGKILL to pid.
func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// noFileLimit describes the open-file limit.
func noFileLimit() string {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return ""
	}
	return fmt.Sprintf("soft %d, hard %d", lim.Cur, lim.Max)
}
