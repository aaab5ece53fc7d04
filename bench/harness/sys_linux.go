package harness

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr makes a child die with the harness (parent-death signal), even
// when the harness is killed before it could stop the child.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// killPID sends SIGKILL to pid.
func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// noFileLimit describes this process's RLIMIT_NOFILE.
func noFileLimit() string {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return ""
	}
	return fmt.Sprintf("soft %d, hard %d", lim.Cur, lim.Max)
}
