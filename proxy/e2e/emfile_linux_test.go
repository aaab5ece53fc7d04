package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// emfileChildEnv marks the child process of TestDescriptorExhaustion.
const emfileChildEnv = "WSALIVE_EMFILE_CHILD"

// notHeld is the child's word that no connection waited in the listen
// queue throughout its held second (see acceptQueue).
const notHeld = "no connection waited in accept throughout the held second"

// TestDescriptorExhaustion runs TestDescriptorExhaustionChild in a child
// process (the test binary again), because it lowers RLIMIT_NOFILE, which
// is process-wide. The child's log is checked here: the accept loop's
// EMFILE burst is logged once, then its recovery.
func TestDescriptorExhaustion(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "" {
		t.Skip("in the child")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDescriptorExhaustionChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	log := string(out)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, log)
	}
	if !strings.Contains(log, "--- PASS: TestDescriptorExhaustionChild") {
		t.Fatalf("child did not pass:\n%s", log)
	}
	// Every burst is logged once when it starts and once when it ends.
	// The flood's edge makes short bursts of their own (an accept slips
	// in whenever a descriptor frees, one failure each), so their number
	// is not the test; the held second is: many retries, one burst, one
	// line each way (its failures= count below).
	failing, recovered := strings.Count(log, "accept failing"), strings.Count(log, "accept recovered")
	if failing == 0 || recovered != failing {
		t.Errorf("%d burst lines and %d recovery lines, want as many of each, at least one:\n%s", failing, recovered, log)
	}
	retries := 0
	for _, m := range regexp.MustCompile(`accept recovered.*failures=(\d+)`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		retries = max(retries, n)
	}
	if strings.Contains(log, notHeld) {
		// The proxy, which shares the process's descriptors with the
		// flooding client, got one and accepted the waiting connection:
		// accept did not fail throughout, so there is no held burst to
		// check (the rest of the scenario was).
		t.Logf("accept did not fail throughout the held second: its burst is not checked")
		return
	}
	if retries < 5 {
		t.Errorf("longest burst had %d failed accepts, want the held second's retries (>= 5) in one burst:\n%s", retries, log)
	}
}

// TestDescriptorExhaustionChild exhausts the descriptors of its own
// process while pairs are live: existing pairs keep relaying, the accept
// loop backs off instead of spinning, and new clients are served once
// descriptors free up.
func TestDescriptorExhaustionChild(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "" {
		t.Skip("runs as the child of TestDescriptorExhaustion")
	}
	f := newFixture(t, fixtureOptions{handler: echo})
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	var pairs []*websocket.Conn
	for range 3 {
		c, _ := f.dial(t, "/echo", nil)
		pairs = append(pairs, c)
	}
	roundTrip := func(what string) {
		t.Helper()
		for i, c := range pairs {
			if err := c.Write(ctx, websocket.MessageText, []byte(what)); err != nil {
				t.Fatalf("pair %d, %s: write: %v", i, what, err)
			}
			if _, got, err := c.Read(ctx); err != nil || string(got) != what {
				t.Fatalf("pair %d, %s: read %q, %v", i, what, got, err)
			}
		}
	}
	roundTrip("before")

	// A limit a little above what is open now.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(len(entries) + 24), Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
				t.Errorf("restore RLIMIT_NOFILE: %v", err)
			}
		}
	}
	defer restore()

	// Flood: silent connections until this process has no descriptor
	// left (each costs one here and one in the proxy).
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for {
		c, err := net.DialTimeout("tcp", f.proxyAddr, waitBound)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				t.Fatalf("flood dial: %v", err)
			}
			break
		}
		flood = append(flood, c)
		if len(flood) > 1000 {
			t.Fatal("the descriptor limit did not bite")
		}
	}
	// One more connection reaches the listen queue: free one descriptor
	// for its client side; the proxy has none left to accept it with.
	// The proxy's accept loop keeps retrying meanwhile and may take the
	// freed descriptor first (accepting a queued flood connection, which
	// ends its burst): then free another.
	var pending net.Conn
	for freed := 1; ; freed++ {
		flood[len(flood)-1].Close()
		flood = flood[:len(flood)-1]
		if pending, err = net.DialTimeout("tcp", f.proxyAddr, waitBound); err == nil {
			t.Logf("descriptors freed for the pending dial: %d", freed)
			break
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) || freed == 5 {
			t.Fatalf("pending dial: %v", err)
		}
	}
	defer pending.Close()

	// While accept fails: pairs relay, and the loop does not spin. It
	// fails only while a connection waits in the listen queue, which
	// the kernel tells (TCP_INFO of a listener: its queue length).
	held := acceptQueue(t, f.listener) > 0
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	start := time.Now()
	roundTrip("during")
	// Holding the flood for a second is the scenario itself: the accept
	// loop's CPU is measured over it.
	time.Sleep(time.Second)
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	wall := time.Since(start)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	t.Logf("CPU during the flood: %v in %v", cpu, wall)
	if !held || acceptQueue(t, f.listener) == 0 {
		t.Log(notHeld)
	}

	// Descriptors come back: the pending connection is accepted (and,
	// silent, times out), and a new client gets a pair.
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	restore()
	c, _ := f.dial(t, "/echo", nil)
	pairs = append(pairs, c)
	roundTrip("after")
}

// acceptQueue returns how many connections wait in ln's accept queue.
func acceptQueue(t *testing.T, ln net.Listener) int {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || serr != nil {
		t.Fatalf("TCP_INFO of the listener: %v %v", err, serr)
	}
	// For a listening socket the kernel reports its accept queue's
	// length in tcpi_unacked.
	return int(info.Unacked)
}
