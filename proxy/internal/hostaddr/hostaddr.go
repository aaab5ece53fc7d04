// Package hostaddr finds addresses of this machine for tests that need a
// peer outside loopback but still on the machine (the same kernel, an
// address a remote host could have).
package hostaddr

import (
	"net"
	"testing"
)

// IPv4 returns an IPv4 address of one of this machine's interfaces that
// is neither loopback nor link-local, and skips t when there is none.
func IPv4(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("listing the machine's addresses: %v", err)
	}
	for _, a := range addrs {
		if n, isNet := a.(*net.IPNet); isNet && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no IPv4 address outside loopback")
	return ""
}
