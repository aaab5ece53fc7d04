//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// procCPU is a process's user + system CPU time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which may hold spaces: state
	// is the first, utime the 12th, stime the 13th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(u+s) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

func countFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// TestFaultDescriptorExhaustionProcess: a wsalive process with a low
// RLIMIT_NOFILE (set on it from outside with prlimit) is flooded with
// idle connections until accept fails with EMFILE. Its live pairs keep
// relaying, its accept loop backs off (little CPU, one log line for the
// burst), and once the flood is gone and the limit restored a new client
// is served, the recovery is logged and RSS is back near its baseline
// (not checked under the race detector).
func TestFaultDescriptorExhaustionProcess(t *testing.T) {
	const (
		pairs    = 5
		headroom = 1500 // descriptors above those open at rest
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bln := startEcho(t)
	listen, admin := freeAddr(t), freeAddr(t)
	// The flood's connections stay in handshake for the whole test (60 s
	// head timeout) and are not refused by the handshake limits: the
	// descriptors, not a limit of wsalive's, must run out.
	p := startWsalive(t, ctx, fmt.Sprintf(`listener {
  address = %q
}
admin {
  address = %q
}
drain {
  delay  = "0s"
  window = "0s"
}
limits {
  max_handshakes               = 10000
  max_handshakes_per_client_ip = 10000
}
route "default" {
  upstream          = "ws://%s"
  handshake_timeout = "60s"
}
`, listen, admin, bln))
	var failing, recovered atomic.Int32
	var recoveredLine atomic.Value
	go func() {
		for l := range p.lines {
			switch {
			case strings.Contains(l, "accept failing"):
				failing.Add(1)
			case strings.Contains(l, "accept recovered"):
				recoveredLine.Store(l)
				recovered.Add(1)
			}
		}
	}()
	pid := p.cmd.Process.Pid
	var live []*websocket.Conn
	for range pairs {
		c, err := dialEcho(ctx, "ws://"+listen+"/")
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		live = append(live, c)
	}
	roundTrips := func(what string) {
		t.Helper()
		for i, c := range live {
			if err := roundTrip(ctx, c, what); err != nil {
				t.Fatalf("pair %d %s: %v", i, what, err)
			}
		}
	}
	roundTrips("before")
	baseline, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}

	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	limit := uint64(countFDs(pid) + headroom)
	if limit > old.Cur {
		t.Skipf("wsalive's descriptor limit %d is below %d", old.Cur, limit)
	}
	low := unix.Rlimit{Cur: limit, Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Skipf("cannot lower the child's RLIMIT_NOFILE: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
				t.Errorf("restoring wsalive's RLIMIT_NOFILE: %v", err)
			}
		}
	}
	defer restore()

	// The flood: more connections than wsalive has descriptors left; the
	// kernel completes them all (the listen queue), wsalive accepts until
	// EMFILE.
	var flood []net.Conn
	closeFlood := func() {
		for _, c := range flood {
			c.Close()
		}
		flood = nil
	}
	defer closeFlood()
	for range headroom + 50 {
		c, err := net.DialTimeout("tcp", listen, 10*time.Second)
		if err != nil {
			break // the listen queue is full: enough
		}
		flood = append(flood, c)
	}
	for failing.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("no \"accept failing\" log line; wsalive holds %d descriptors of %d", countFDs(pid), limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("flood: %d connections; wsalive holds %d descriptors of its %d", len(flood), countFDs(pid), limit)

	// While accept fails: the pairs relay, and the loop does not spin.
	cpu0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	roundTrips("during")
	// The CPU window itself, as in proxy/e2e's in-process test: holding
	// the flood for a second is the scenario.
	time.Sleep(time.Second)
	cpu1, _ := procCPU(pid)
	wall := time.Since(start)
	t.Logf("wsalive's CPU during EMFILE: %v in %v", cpu1-cpu0, wall.Round(time.Millisecond))
	if cpu1-cpu0 > wall/4 {
		t.Errorf("wsalive used %v of CPU in %v during EMFILE: the accept loop spins", cpu1-cpu0, wall)
	}
	if n := failing.Load(); n > 2 {
		t.Errorf("%d \"accept failing\" lines, want one per burst", n)
	}

	closeFlood()
	restore()
	ended := time.Now()
	c, err := dialEcho(ctx, "ws://"+listen+"/")
	if err != nil {
		t.Fatalf("a new client after the flood: %v", err)
	}
	defer c.CloseNow()
	live = append(live, c)
	roundTrips("after")
	for recovered.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no \"accept recovered\" log line")
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("wsalive: %s", recoveredLine.Load())
	// Under the race detector, whose shadow memory is never handed back,
	// RSS is not the product's figure (TestFloodMemoryReturns runs
	// without it in .ci/run).
	if !raceEnabled {
		var rss uint64
		for {
			if rss, err = vmRSS(pid); err != nil {
				t.Fatal(err)
			}
			if rss <= baseline+32<<20 || time.Since(ended) > 15*time.Second {
				break
			}
			time.Sleep(250 * time.Millisecond) // polling /proc, not synchronisation
		}
		t.Logf("RSS: baseline %.1f MiB, %.1f MiB %s after the flood", float64(baseline)/(1<<20), float64(rss)/(1<<20), time.Since(ended).Round(100*time.Millisecond))
		if rss > baseline+32<<20 {
			t.Errorf("RSS %.1f MiB 15 s after the flood, want within 32 MiB of %.1f MiB", float64(rss)/(1<<20), float64(baseline)/(1<<20))
		}
	}
	for _, c := range live {
		readUntilEnd(ctx, c, make(chan clientClose, 1))
	}
	p.stop(t, ctx)
}
