//go:build !linux

package harness

import (
	"os"
	"os/exec"
)

// dieWithParent does nothing here: the parent-death signal is Linux's,
// and the benchmark runs on Linux. The package builds elsewhere so that
// the module does.
func dieWithParent(*exec.Cmd) {}

// killPID kills pid.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// noFileLimit is not reported here.
func noFileLimit() string { return "" }
