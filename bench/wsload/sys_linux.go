package wsload

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialControl runs on every client socket before bind. With
// IP_BIND_ADDRESS_NO_PORT the kernel picks the local port at connect time,
// from the full 4-tuple, instead of reserving a port for the source address
// alone at bind time: binding to 127.0.0.X then costs no port of X that a
// connection to another destination could have used.
func dialControl(network, address string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		// The error is dropped on purpose: a kernel without the option
		// (before 4.2) still works, only with fewer ports.
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
}

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns both. Every connection is one descriptor, and the default soft
// limit of many systems (1024) would stop a run long before the hard limit
// does. (The Go runtime raises it at start too since Go 1.19; doing it here
// makes the limit explicit and lets the caller check N against it.)
func RaiseFileLimit() (soft, hard uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, err
		}
	}
	return lim.Cur, lim.Max, nil
}

// fileLimit returns the current soft RLIMIT_NOFILE.
func fileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// processCPU returns this process's CPU time, user plus system.
func processCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
