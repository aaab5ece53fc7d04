package main

import (
	"os"
	"syscall"
)

// Windows has no SIGHUP: reload with -watch-config there.
var (
	stopSignals   = []os.Signal{os.Interrupt, syscall.SIGTERM}
	reloadSignals []os.Signal
)

func isReloadSignal(os.Signal) bool { return false }
