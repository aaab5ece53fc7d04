//go:build !linux

package harness

import (
	"os"
	"syscall"
)

// childAttr has no parent-death signal to set outside Linux: the harness
// stops its children itself, and a killed harness leaves them behind.
func childAttr() *syscall.SysProcAttr { return nil }

// killPID kills pid.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// noFileLimit is not read outside Linux.
func noFileLimit() string { return "" }

// ownsListener cannot tell outside Linux; it trusts the probe.
func ownsListener(pid int, addr string) bool { return true }
