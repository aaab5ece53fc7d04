package harness

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
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

// ownsListener reports whether a TCP socket listening on addr's port is
// held by pid or one of its descendants: /proc/net/tcp{,6} give the
// listening sockets' inodes, /proc/PID/fd the process's sockets.
func ownsListener(pid int, addr string) bool {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is HEXIP:HEXPORT; state 0A is LISTEN.
			if len(f) < 10 || f[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && p == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false
	}
	for _, q := range append([]int{pid}, descendants(pid)...) {
		fdDir := "/proc/" + strconv.Itoa(q) + "/fd"
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(fdDir + "/" + e.Name()); err == nil && inodes[l] {
				return true
			}
		}
	}
	return false
}
