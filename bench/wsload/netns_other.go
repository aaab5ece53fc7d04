//go:build !linux

package wsload

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

var errNoNetns = errors.New("the blackhole modes need Linux network namespaces")

// NetnsSupport reports that network namespaces exist only on Linux.
func NetnsSupport() error { return errNoNetns }

type netns struct {
	name          string
	hostIf        string
	hostIP, nsIP  net.IP
	blackholeTook time.Duration
}

func newNetns(*slog.Logger) (*netns, error) { return nil, errNoNetns }
func (n *netns) do(func() error) error      { return errNoNetns }
func (n *netns) blackhole() error           { return errNoNetns }
func (n *netns) unblackhole() error         { return nil }
func (n *netns) close() error               { return nil }
func cleanupStale(*slog.Logger)             {}
func proxySysProcAttr() *syscall.SysProcAttr {
	return nil
}

func (n *netns) pool(int) (func(func()) error, func(), error) {
	return nil, nil, errNoNetns
}
