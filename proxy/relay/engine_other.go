//go:build !linux

package relay

import (
	"net"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/liveness"
)

// epollDriver does not exist here: every pair runs on the net.Conn
// driver. Engine never calls these, as it holds no epollDriver.
type epollDriver struct{}

func newEpollDriver(*env) (*epollDriver, error) { return nil, nil }

func (*epollDriver) loopCounts() (int, int)                    { return 0, 0 }
func (*epollDriver) attach(uint64, *Handoff, *routeInfo) error { return ErrClosed }
func (*epollDriver) drain(*drainOrder)                         {}
func (*epollDriver) wait()                                     {}
func (*epollDriver) force()                                    {}
func (*epollDriver) closeFDs()                                 {}
func (*epollDriver) live(time.Duration) error                  { return nil }
func (*epollDriver) listener(ln net.Listener) net.Listener     { return ln }
func (*epollDriver) dialFunc(f DialFunc) DialFunc              { return f }

// connKeepalive applies k to the TCP socket under c (a TLS connection's
// too). TCP_USER_TIMEOUT is Linux's; elsewhere only keepalive probes are
// set.
func connKeepalive(c net.Conn, k *liveness.TCPKeepalive) error {
	if k == nil || k.Idle <= 0 {
		return nil
	}
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	return tcp.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: k.Idle, Interval: k.Interval, Count: k.Count})
}

// ListenControl returns nil here: whether an accepted socket inherits its
// listener's keepalive times is not checked on this system, so the relay
// sets them on every socket.
func ListenControl(liveness.TCPKeepalive) func(network, address string, c syscall.RawConn) error {
	return nil
}
