//go:build !linux

package wsload

import (
	"errors"
	"math"
	"syscall"
	"time"
)

// dialControl has nothing to set outside Linux.
func dialControl(network, address string, c syscall.RawConn) error { return nil }

// RaiseFileLimit is a no-op outside Linux; it reports no limit.
func RaiseFileLimit() (soft, hard uint64, err error) {
	return math.MaxUint64, math.MaxUint64, nil
}

// fileLimit reports no limit outside Linux.
func fileLimit() (uint64, error) { return math.MaxUint64, nil }

// processCPU is not read outside Linux.
func processCPU() (time.Duration, error) {
	return 0, errors.New("the process's CPU time is read on Linux only")
}
