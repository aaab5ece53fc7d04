package relay

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/wsalive/wsalive/proxy/internal/hostaddr"

	"golang.org/x/sys/unix"

	"github.com/wsalive/wsalive/liveness"
)

// sockKeepalive reads the keepalive options of c's socket.
func sockKeepalive(t *testing.T, c net.Conn) (on int, k liveness.TCPKeepalive) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errs [5]error
	var idle, intvl, cnt, user int
	if err := raw.Control(func(fd uintptr) {
		f := int(fd)
		on, errs[0] = unix.GetsockoptInt(f, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, errs[1] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl, errs[2] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt, errs[3] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		user, errs[4] = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return on, liveness.TCPKeepalive{
		Idle:        time.Duration(idle) * time.Second,
		Interval:    time.Duration(intvl) * time.Second,
		Count:       cnt,
		UserTimeout: time.Duration(user) * time.Millisecond,
	}
}

// acceptOne listens with lc on loopback, dials it and returns the
// accepted connection.
func acceptOne(t *testing.T, lc net.ListenConfig) net.Conn {
	t.Helper()
	return acceptOneOn(t, lc, "127.0.0.1")
}

// acceptOneOn is acceptOne on host, an address of this machine.
func acceptOneOn(t *testing.T, lc net.ListenConfig, host string) net.Conn {
	t.Helper()
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
	cli, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestAcceptedSocketInheritsKeepalive: what ListenControl relies on, on
// the running kernel. A socket accepted from a listener opened with
// ListenControl(k) carries k (getsockopt on the accepted socket), and one
// from a listener opened without it does not: the relay may skip the
// client socket's setsockopt calls only because of the first.
func TestAcceptedSocketInheritsKeepalive(t *testing.T) {
	k := liveness.TCPKeepalive{Idle: 7 * time.Second, Interval: 3 * time.Second, Count: 4, UserTimeout: 19 * time.Second}

	plain := acceptOne(t, net.ListenConfig{KeepAlive: -1})
	if on, got := sockKeepalive(t, plain); on != 0 || got == k {
		t.Fatalf("without ListenControl: SO_KEEPALIVE %d, %+v; want 0 and the kernel's defaults", on, got)
	}

	inherited := acceptOne(t, net.ListenConfig{KeepAlive: -1, Control: ListenControl(k)})
	on, got := sockKeepalive(t, inherited)
	if on != 1 || got != k {
		t.Fatalf("accepted socket: SO_KEEPALIVE %d, %+v; want 1, %+v (inherited from the listener)", on, got, k)
	}

	// And it is what setKeepalive would have set on the socket itself.
	set := acceptOne(t, net.ListenConfig{KeepAlive: -1})
	if err := connKeepalive(set, &k); err != nil {
		t.Fatal(err)
	}
	if on2, got2 := sockKeepalive(t, set); on2 != on || got2 != got {
		t.Fatalf("set per socket: %d, %+v; inherited: %d, %+v", on2, got2, on, got)
	}

	if ListenControl(liveness.TCPKeepalive{}) != nil {
		t.Fatal("ListenControl of a zero keepalive: want nil (nothing to set)")
	}
}

// TestAttachSkipsInheritedClientKeepalive: with ClientKeepaliveSet the
// engine leaves the client socket's keepalive as it is (here: off, so
// that skipping shows), and sets the upstream's; without it, it sets
// both.
func TestAttachSkipsInheritedClientKeepalive(t *testing.T) {
	for _, tc := range []struct {
		name       string
		set, conns bool
	}{{"epoll/set-by-relay", false, false}, {"epoll/inherited", true, false}, {"conn/set-by-relay", false, true}, {"conn/inherited", true, true}} {
		set := tc.set
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Options{Loops: 1, ForceConnDriver: tc.conns})
			k := liveness.TCPKeepalive{Idle: 9 * time.Second, Interval: 2 * time.Second, Count: 3}
			pol := NewPolicy(PolicyConfig{Client: SidePolicy{Keepalive: k}, Upstream: SidePolicy{Keepalive: k}})
			cli := acceptOne(t, net.ListenConfig{KeepAlive: -1})
			ups := acceptOne(t, net.ListenConfig{KeepAlive: -1})
			cf, uf := dupSocket(t, cli), dupSocket(t, ups)
			if _, err := e.Attach(Handoff{Client: cli, Upstream: ups, Policy: pol, CloseTimeout: time.Second, ClientKeepaliveSet: set}); err != nil {
				t.Fatal(err)
			}
			opt := func(fd int) int {
				v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			wantCli := 1
			if set {
				wantCli = 0
			}
			if got := opt(cf); got != wantCli {
				t.Errorf("client SO_KEEPALIVE %d, want %d", got, wantCli)
			}
			if got := opt(uf); got != 1 {
				t.Errorf("upstream SO_KEEPALIVE %d, want 1", got)
			}
		})
	}
}

// TestAttachLoopbackKeepalive: with the heartbeat on, the relay leaves
// keepalive off a socket whose peer is on loopback, and sets it on one
// whose peer is at another address of the machine (the same kernel, but
// an address a remote host could have). Both drivers.
func TestAttachLoopbackKeepalive(t *testing.T) {
	for _, conns := range []bool{false, true} {
		for _, host := range []string{"127.0.0.1", "other"} {
			name := map[bool]string{false: "epoll", true: "conn"}[conns] + "/" + host
			t.Run(name, func(t *testing.T) {
				if host == "other" {
					host = hostaddr.IPv4(t)
				}
				e, _ := newTestEngine(t, Options{Loops: 1, ForceConnDriver: conns})
				k := liveness.TCPKeepalive{Idle: 9 * time.Second, Interval: 2 * time.Second, Count: 3}
				hb := liveness.Policy{Interval: 5 * time.Second, Timeout: 2 * time.Second, MaxMissed: 1}
				side := SidePolicy{Heartbeat: hb, Keepalive: k}
				pol := NewPolicy(PolicyConfig{Client: side, Upstream: side})
				// KeepAlive -1: net would set it on what it accepts.
				lc := net.ListenConfig{KeepAlive: -1}
				cli, ups := acceptOneOn(t, lc, host), acceptOneOn(t, lc, host)
				cf, uf := dupSocket(t, cli), dupSocket(t, ups)
				if _, err := e.Attach(Handoff{Client: cli, Upstream: ups, Policy: pol, CloseTimeout: time.Second}); err != nil {
					t.Fatal(err)
				}
				want := 1
				if host == "127.0.0.1" {
					want = 0
				}
				for _, fd := range []int{cf, uf} {
					v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
					if err != nil {
						t.Fatal(err)
					}
					if v != want {
						t.Errorf("SO_KEEPALIVE %d toward %s, want %d", v, host, want)
					}
				}
			})
		}
	}
}

// dupSocket returns a duplicate of c's socket, closed at the end of the
// test: it shares the socket and outlives the conn the engine takes.
// Not File(): that makes the socket blocking.
func dupSocket(t *testing.T, c net.Conn) int {
	t.Helper()
	var fd int
	var err error
	raw, _ := c.(syscall.Conn).SyscallConn()
	raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}
