//go:build !windows

package main

import (
	"os"
	"syscall"
)

var (
	stopSignals   = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	reloadSignals = []os.Signal{syscall.SIGHUP}
)

func isReloadSignal(s os.Signal) bool { return s == syscall.SIGHUP }
