package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/relay"
)

// The blackhole tests make a peer vanish the way a pulled cable, a
// sleeping laptop or a NAT that forgot the mapping does: no FIN, no RST,
// not even an ACK. The peer lives in a network namespace the test creates,
// joined to the host by a veth pair; iptables inside the namespace then
// drops every packet in and out. Only loopback and that veth pair carry
// traffic, in 10.214.0.0/16.
//
// Everything is named after the test process, so that leftovers of a
// killed run can be told apart (and are removed by the next run):
//
//	network namespace  wsah-<pid>-<seq>
//	veth, host side    wsah<pid>h<seq>   (interface names are at most 15
//	veth, netns side   wsah<pid>n<seq>    bytes, hence no dashes)

// requireNetnsEnv, set to 1 (as CI does), turns a missing netns setup
// (not root, no ip or iptables) into a failure instead of a skip.
const requireNetnsEnv = "WSALIVE_REQUIRE_NETNS"

const nsPrefix = "wsah"

// nsCmdTimeout bounds every ip and iptables command.
const nsCmdTimeout = 10 * time.Second

var nsSeq atomic.Int64

// requireNetns skips the test unless it can create namespaces, veth pairs
// and iptables rules; with WSALIVE_REQUIRE_NETNS=1 it fails it instead.
func requireNetns(t *testing.T) {
	t.Helper()
	err := netnsSupport()
	if err == nil {
		return
	}
	if os.Getenv(requireNetnsEnv) == "1" {
		t.Fatalf("network namespaces unavailable and %s=1: %v", requireNetnsEnv, err)
	}
	t.Skipf("skipping, network namespaces unavailable: %v (needs root, ip and iptables; set %s=1 to fail instead)", err, requireNetnsEnv)
}

func netnsSupport() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH: %w", tool, err)
		}
	}
	return nil
}

// netns is a network namespace joined to the host by a veth pair: hostIP
// on the host side, nsIP inside, in one /30 of 10.214.0.0/16.
type netns struct {
	name, hostIf, nsIf string
	hostIP, nsIP       string
}

// newNetns creates a namespace and its veth pair; cleanup removes both,
// whatever happened.
func newNetns(t *testing.T) *netns {
	t.Helper()
	requireNetns(t)
	removeStaleNetns(t)
	pid, seq := os.Getpid(), nsSeq.Add(1)-1
	n := &netns{
		name:   fmt.Sprintf("%s-%d-%d", nsPrefix, pid, seq),
		hostIf: fmt.Sprintf("%s%dh%d", nsPrefix, pid, seq),
		nsIf:   fmt.Sprintf("%s%dn%d", nsPrefix, pid, seq),
	}
	if len(n.hostIf) > unix.IFNAMSIZ-1 {
		t.Fatalf("interface name %q is too long", n.hostIf)
	}
	n.hostIP, n.nsIP = freeSubnet(t, pid, int(seq))

	t.Cleanup(func() {
		// Deleting one end of a veth pair deletes both; deleting the
		// namespace too would, but asynchronously.
		if _, err := nsCmd("ip", "link", "show", n.hostIf); err == nil {
			if out, err := nsCmd("ip", "link", "del", n.hostIf); err != nil {
				t.Errorf("remove veth %s: %v: %s", n.hostIf, err, out)
			}
		}
		if out, err := nsCmd("ip", "netns", "del", n.name); err != nil {
			t.Errorf("remove netns %s: %v: %s", n.name, err, out)
		}
	})
	failed := func(err error, out string) {
		if os.Getenv(requireNetnsEnv) == "1" {
			t.Fatalf("setting up netns %s: %v: %s", n.name, err, out)
		}
		t.Skipf("skipping, cannot set up a network namespace (%v: %s); set %s=1 to fail instead", err, out, requireNetnsEnv)
	}
	if out, err := nsCmd("ip", "netns", "add", n.name); err != nil {
		failed(err, out)
	}
	for _, args := range [][]string{
		{"ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf, "netns", n.name},
		{"ip", "addr", "add", n.hostIP + "/30", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
		{"ip", "-n", n.name, "addr", "add", n.nsIP + "/30", "dev", n.nsIf},
		{"ip", "-n", n.name, "link", "set", n.nsIf, "up"},
		{"ip", "-n", n.name, "link", "set", "lo", "up"},
	} {
		if out, err := nsCmd(args[0], args[1:]...); err != nil {
			failed(err, out)
		}
	}
	return n
}

func nsCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), nsCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// freeSubnet picks a /30 of 10.214.0.0/16 that no interface uses, starting
// from one derived from pid and seq so that concurrent runs rarely meet.
func freeSubnet(t *testing.T, pid, seq int) (hostIP, nsIP string) {
	t.Helper()
	used, err := nsCmd("ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Fatalf("ip addr show: %v: %s", err, used)
	}
	const subnets = 1 << 14 // /30s in a /16
	start := (pid*7 + seq) % subnets
	for i := range subnets {
		x := (start + i) % subnets * 4
		prefix := fmt.Sprintf("10.214.%d.", x>>8)
		taken := false
		for host := x & 0xff; host < x&0xff+4; host++ {
			if strings.Contains(used, fmt.Sprintf(" %s%d/", prefix, host)) {
				taken = true
			}
		}
		if !taken {
			return fmt.Sprintf("%s%d", prefix, x&0xff+1), fmt.Sprintf("%s%d", prefix, x&0xff+2)
		}
	}
	t.Fatal("no free /30 in 10.214.0.0/16")
	return "", ""
}

// removeStaleNetns removes the namespaces (and their veths) that earlier
// runs of this test left behind when they were killed: ours by name, and
// whose process is gone.
func removeStaleNetns(t *testing.T) {
	out, err := nsCmd("ip", "netns", "list")
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		parts := strings.Split(name, "-")
		if len(parts) != 3 || parts[0] != nsPrefix {
			continue
		}
		pid, err1 := strconv.Atoi(parts[1])
		seq, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // still running
		}
		hostIf := fmt.Sprintf("%s%dh%d", nsPrefix, pid, seq)
		if _, err := nsCmd("ip", "link", "show", hostIf); err == nil {
			_, _ = nsCmd("ip", "link", "del", hostIf)
		}
		if out, err := nsCmd("ip", "netns", "del", name); err != nil {
			t.Logf("removing stale netns %s: %v: %s", name, err, out)
		} else {
			t.Logf("removed stale netns %s", name)
		}
	}
}

// inside runs fn on an OS thread that has joined the namespace, so that
// the sockets fn creates live there. The thread is never unlocked: when
// the goroutine ends, the runtime discards the thread rather than reuse it
// in the wrong namespace.
func (n *netns) inside(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// blackhole drops every packet in and out of the namespace: its peers
// vanish without a FIN, a RST or an ACK. It returns when the rules are in
// place.
func (n *netns) blackhole(t *testing.T) {
	t.Helper()
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		if out, err := nsCmd("ip", "netns", "exec", n.name, "iptables", "-w", "-I", chain, "-j", "DROP"); err != nil {
			t.Fatalf("iptables %s DROP in %s: %v: %s", chain, n.name, err, out)
		}
	}
}

// listenOnHost makes the fixture's server also accept on the host side of
// the veth pair, and returns that address.
func listenOnHost(t *testing.T, f *fixture, n *netns) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.server.Serve(ln, config.Listener{MaxHeaderBytes: config.DefaultMaxHeaderBytes}) }()
	t.Cleanup(func() {
		_ = ln.Close()
		select {
		case err := <-served:
			if err == nil {
				t.Errorf("Serve on %s returned nil", ln.Addr())
			}
		case <-time.After(waitBound):
			t.Errorf("Serve on %s did not return after its listener closed", ln.Addr())
		}
	})
	return ln.Addr().String()
}

// dialFromNetns connects a raw client from inside the namespace to addr
// and upgrades it for path.
func dialFromNetns(t *testing.T, n *netns, addr, path string) *framePeer {
	t.Helper()
	var conn net.Conn
	err := n.inside(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, waitBound)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from netns %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	br := handshakeOn(t, conn, addr, path)
	return clientPeer(t, conn, br, true)
}

// TestBlackhole makes each side of a live pair vanish and measures how
// long wsalive takes to tell the other side.
func TestBlackhole(t *testing.T) {
	const (
		interval  = 300 * time.Millisecond
		timeout   = 250 * time.Millisecond
		maxMissed = 2
	)
	pol := liveness.Policy{Interval: interval, Timeout: timeout, MaxMissed: maxMissed}
	bound := pol.DetectionBound()

	t.Run("vanished-client", func(t *testing.T) {
		n := newNetns(t)
		ended := make(chan endEvent, 1)
		f := newFixture(t, fixtureOptions{
			handler: endingEcho(ended),
			route:   withLiveness(t, heartbeatHCL("client", interval, timeout, maxMissed)),
		})
		addr := listenOnHost(t, f, n)
		cli := dialFromNetns(t, n, addr, "/vanished-client")
		// A round trip just before the blackhole: the client was heard
		// from then.
		cli.mustSend(t, ws.OpText, true, "before the blackhole")
		cli.expect(t, ws.OpText, "before the blackhole")
		n.blackhole(t)
		gone := time.Now()

		ev := recv(t, ended, "end of the upstream's connection")
		took := ev.at.Sub(gone)
		t.Logf("upstream told after %v (bound %v)", took.Round(time.Millisecond), bound)
		expectGoingAway(t, "upstream", ev, "client heartbeat timeout")
		if took > bound+timingSlack {
			t.Errorf("upstream told after %v, want at most the bound %v + %v", took, bound, timingSlack)
		}
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonClientHeartbeatTimeout {
			t.Errorf("pair ended with %v, want client_heartbeat_timeout", st.Reason)
		}
		if st.ClientHeartbeat.Missed != maxMissed {
			t.Errorf("client heartbeat %+v, want %d misses", st.ClientHeartbeat, maxMissed)
		}
	})

	t.Run("vanished-upstream", func(t *testing.T) {
		n := newNetns(t)
		var ln net.Listener
		if err := n.inside(func() error {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(n.nsIP, "0"))
			return err
		}); err != nil {
			t.Fatalf("listen in netns %s: %v", n.name, err)
		}
		srv := serveRaw(t, ln, true)
		f := newFixture(t, fixtureOptions{
			routes: map[string]string{"/netns": srv.addr()},
			route:  withLiveness(t, heartbeatHCL("upstream", interval, timeout, maxMissed)),
		})
		c, _ := f.dial(t, "/netns/vanished-upstream", nil)
		rd := readCoder(t, c)
		up := srv.next(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("before the blackhole")); err != nil {
			t.Fatalf("write: %v", err)
		}
		up.expect(t, ws.OpText, "before the blackhole")
		up.mustSend(t, ws.OpText, true, "answer")
		if got := recv(t, rd.msgs, "the upstream's answer"); string(got) != "answer" {
			t.Fatalf("client read %q, want the upstream's answer", got)
		}
		n.blackhole(t)
		gone := time.Now()

		ev := recv(t, rd.ended, "end of the client's connection")
		took := ev.at.Sub(gone)
		t.Logf("client told after %v (bound %v)", took.Round(time.Millisecond), bound)
		expectGoingAway(t, "client", ev, "upstream heartbeat timeout")
		if took > bound+timingSlack {
			t.Errorf("client told after %v, want at most the bound %v + %v", took, bound, timingSlack)
		}
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonUpstreamHeartbeatTimeout {
			t.Errorf("pair ended with %v, want upstream_heartbeat_timeout", st.Reason)
		}
		if st.UpstreamHeartbeat.Missed != maxMissed {
			t.Errorf("upstream heartbeat %+v, want %d misses", st.UpstreamHeartbeat, maxMissed)
		}
	})

	t.Run("tcp-user-timeout", func(t *testing.T) {
		// No heartbeat toward the client, and keepalive far off: what
		// notices the vanished client is TCP_USER_TIMEOUT, once the
		// upstream's data toward it stays unacknowledged for a second.
		// Without it Linux retransmits for about 15 minutes.
		const userTimeout = time.Second
		n := newNetns(t)
		ended := make(chan endEvent, 1)
		start := make(chan struct{})
		var sent atomic.Int64
		f := newFixture(t, fixtureOptions{
			handler: streamOnSignal(start, ended, &sent),
			route: withLiveness(t, fmt.Sprintf(`heartbeat "client" {
  enabled            = false
  tcp_keepalive_idle = "1h"
  tcp_user_timeout   = %q
}`, userTimeout)),
		})
		addr := listenOnHost(t, f, n)
		cli := dialFromNetns(t, n, addr, "/tcp-user-timeout")
		cli.mustSend(t, ws.OpText, true, "before the blackhole")
		cli.expect(t, ws.OpText, "before the blackhole")
		n.blackhole(t)
		gone := time.Now()
		close(start)

		ev := recv(t, ended, "end of the upstream's connection")
		took := ev.at.Sub(gone)
		t.Logf("upstream told after %v (TCP_USER_TIMEOUT %v; %d messages sent into the blackhole)",
			took.Round(time.Millisecond), userTimeout, sent.Load())
		expectGoingAway(t, "upstream", ev, "client gone")
		if took < userTimeout-50*time.Millisecond || took > userTimeout+4*time.Second {
			t.Errorf("upstream told after %v, want about the TCP user timeout %v (at most a few seconds more)", took, userTimeout)
		}
		st := f.nextClosed(t)
		if st.Reason != relay.ReasonClientGone {
			t.Errorf("pair ended with %v, want client_gone", st.Reason)
		}
		if st.ClientHeartbeat.PingsSent != 0 {
			t.Errorf("client heartbeat %+v, want no ping: it is off", st.ClientHeartbeat)
		}
	})
}

// streamOnSignal is an upstream handler that echoes the first message,
// then, once start is closed, sends a message every 20 ms while it keeps
// reading, until its connection ends; the end is reported on ended.
func streamOnSignal(start <-chan struct{}, ended chan<- endEvent, sent *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := accept(w, r, nil)
		if c == nil {
			return
		}
		defer c.CloseNow()
		f := upstreamOf(r)
		typ, msg, err := c.Read(r.Context())
		if err == nil {
			err = c.Write(r.Context(), typ, msg)
		}
		if err != nil {
			f.reportf("%s: first message: %v", r.URL.Path, err)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if err := c.Write(ctx, websocket.MessageBinary, make([]byte, 1024)); err != nil {
					return
				}
				sent.Add(1)
				select {
				case <-tick.C: // paces the stream
				case <-ctx.Done():
					return
				}
			}
		}()
		go func() {
			// A blackholed peer never ends the read by itself.
			select {
			case <-f.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, _, err = c.Read(ctx)
		at := time.Now()
		cancel()
		wg.Wait()
		select {
		case ended <- endEvent{err, at}:
		case <-f.done:
		}
	}
}
