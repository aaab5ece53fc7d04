package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

	"github.com/wsalive/wsalive/config"
)

// The three processes of TestDescriptorExhaustion, each the test binary:
// the test itself, the child that runs the proxy with a low
// RLIMIT_NOFILE (emfileChildEnv), and the flooder that opens silent
// connections to it (emfileFloodEnv: the proxy's address).
const (
	emfileChildEnv = "WSALIVE_EMFILE_CHILD"
	emfileFloodEnv = "WSALIVE_EMFILE_FLOOD"
)

const (
	// emfileSpare is how many descriptors the child's lowered limit
	// leaves it: the proxy accepts that many flood connections.
	emfileSpare = 8
	// emfileWaiting is how many flood connections then wait in the
	// listen queue, with no descriptor to accept them with.
	emfileWaiting = 8
	// emfileFlooded is the flooder's word that its connections are all
	// established (in the proxy's accept queue or accepted).
	emfileFlooded = "flooded"
)

// TestDescriptorExhaustion runs TestDescriptorExhaustionChild in a child
// process (the test binary again), because it lowers RLIMIT_NOFILE, which
// is process-wide. The child's log is checked here: the accept loop's
// EMFILE burst is logged once, then its recovery, and its retries span
// the held second.
func TestDescriptorExhaustion(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "" || os.Getenv(emfileFloodEnv) != "" {
		t.Skip("in the child or the flooder")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDescriptorExhaustionChild$", "-test.v", "-test.count=1",
		"-test.timeout="+(3*waitBound).String())
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	// The flooder writes to the child's stderr, this pipe: should it
	// outlive a killed child, Wait stops waiting for the pipe after this.
	cmd.WaitDelay = waitBound
	out, err := cmd.CombinedOutput()
	log := string(out)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, log)
	}
	if !strings.Contains(log, "--- PASS: TestDescriptorExhaustionChild") {
		t.Fatalf("child did not pass:\n%s", log)
	}
	// Only the child's descriptors run out, and nothing in it frees one
	// until the flooder is told to stop and the limit is raised back: one
	// burst, logged once each way, whose retries span the held second
	// (5 ms doubling: 8 retries in the first 635 ms).
	failing, recovered := strings.Count(log, "accept failing"), strings.Count(log, "accept recovered")
	if failing != 1 || recovered != 1 {
		t.Errorf("%d burst lines and %d recovery lines, want one of each:\n%s", failing, recovered, log)
	}
	m := regexp.MustCompile(`accept recovered.*failures=(\d+) took=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no failures= and took= in the recovery line:\n%s", log)
	}
	retries, _ := strconv.Atoi(m[1])
	took, err := time.ParseDuration(m[2])
	if err != nil {
		t.Fatalf("recovery line's took=%q: %v", m[2], err)
	}
	if retries < 5 {
		t.Errorf("the held burst had %d failed accepts, want the held second's retries (>= 5):\n%s", retries, log)
	}
	// Backing off, not spinning: after each failure the loop waits (5 ms
	// doubling to 1 s, timers never early), so the burst lasted at
	// least the sum of its waits.
	var least, delay time.Duration
	for range retries {
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		least += delay
	}
	if took < least {
		t.Errorf("the held burst had %d failed accepts in %v; backing off, they take at least %v:\n%s", retries, took, least, log)
	}
	t.Logf("held burst checked: %d failed accepts in %v", retries, took)
}

// TestDescriptorExhaustionChild exhausts the descriptors of its own
// process while pairs are live: existing pairs keep relaying, the accept
// loop backs off instead of spinning, and new clients are served once
// descriptors free up. The flood comes from another process, so that only
// this one runs out: nothing here frees a descriptor while it is held.
func TestDescriptorExhaustionChild(t *testing.T) {
	if os.Getenv(emfileChildEnv) == "" {
		t.Skip("runs as the child of TestDescriptorExhaustion")
	}
	f := newFixture(t, fixtureOptions{
		handler: echo,
		// The accepted flood connections are silent: none may reach its
		// handshake timeout (and free its descriptor) during the test.
		route: func(r *config.Route) { r.HandshakeTimeout = 10 * waitBound },
	})
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

	// The flooder starts now (its pipes and process handle are counted
	// below) and dials when told to, once the limit is low.
	fl := startFlooder(t, f.proxyAddr)

	// A limit that leaves emfileSpare descriptors free below it.
	limit, err := limitLeaving(emfileSpare)
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: limit, Max: old.Max}
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

	// Flood: the proxy accepts emfileSpare connections, which take this
	// process's last descriptors, and the rest wait in the listen queue,
	// where the kernel completed their handshakes.
	fl.flood(t, emfileSpare+emfileWaiting)
	waitQueue := func() int {
		t.Helper()
		deadline := time.Now().Add(waitBound)
		for {
			n := acceptQueue(t, f.listener)
			if n == emfileWaiting || time.Now().After(deadline) {
				return n
			}
			time.Sleep(time.Millisecond)
		}
	}
	if n := waitQueue(); n != emfileWaiting {
		t.Fatalf("%d connections wait in the accept queue, want %d (%d flooded, %d descriptors spare)",
			n, emfileWaiting, emfileSpare+emfileWaiting, emfileSpare)
	}

	// While accept fails: pairs relay, and the loop does not spin. No
	// descriptor frees in this process, so the waiting connections all
	// wait throughout.
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	start := time.Now()
	roundTrip("during")
	// Holding the flood for a second is the scenario itself: the accept
	// loop's retries and CPU are measured over it.
	time.Sleep(time.Second)
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	wall := time.Since(start)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	t.Logf("CPU during the flood: %v in %v", cpu, wall)
	if n := acceptQueue(t, f.listener); n != emfileWaiting {
		t.Fatalf("after the held second %d connections wait in the accept queue, want %d: one was accepted", n, emfileWaiting)
	}

	// Descriptors come back: the limit first, so that the accept loop's
	// next retry takes the queued connections in one go (were the flood
	// ended first, the loop could wake while only some of the accepted
	// flood connections had been closed, and start a second burst), then
	// the flood ends, and a new client gets a pair.
	restore()
	fl.stop(t)
	c, _ := f.dial(t, "/echo", nil)
	pairs = append(pairs, c)
	roundTrip("after")
}

// limitLeaving returns the RLIMIT_NOFILE under which this process has
// exactly spare descriptor numbers free. The kernel gives out the lowest
// free number below the limit; open descriptors above it (one inherited
// from whatever started the test, say) neither count nor block.
func limitLeaving(spare int) (uint64, error) {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	self := int(dir.Fd()) // listed, but closed again below
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return 0, err
	}
	open := map[int]bool{}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/fd lists %q", name)
		}
		if fd != self {
			open[fd] = true
		}
	}
	limit, free := 0, 0
	for ; free < spare; limit++ {
		if !open[limit] {
			free++
		}
	}
	return uint64(limit), nil
}

// flooder is the process holding TestDescriptorExhaustionChild's flood.
type flooder struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // closing it stops the flooder
	out    *bufio.Reader
	exited chan error // Wait's result
	done   bool
}

// startFlooder starts the flooder process for the proxy at addr; it waits
// for flood. It is stopped and reaped at the end of the test whatever
// happens, bounded in time.
func startFlooder(t *testing.T, addr string) *flooder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitBound)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDescriptorExhaustionFlooder$", "-test.count=1",
		"-test.timeout="+(3*waitBound).String())
	cmd.Env = append(os.Environ(), emfileFloodEnv+"="+addr)
	// Its stderr is this process's (no pipe to drain here).
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = waitBound
	in, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start the flooder: %v", err)
	}
	fl := &flooder{cmd: cmd, in: in, out: bufio.NewReader(out), exited: make(chan error, 1)}
	go func() { fl.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		defer cancel()
		fl.stop(t)
	})
	return fl
}

// flood tells the flooder to open n connections and waits until they are.
func (fl *flooder) flood(t *testing.T, n int) {
	t.Helper()
	if _, err := fmt.Fprintf(fl.in, "%d\n", n); err != nil {
		t.Fatalf("tell the flooder: %v", err)
	}
	// The flooder's context kills it (and so ends this read) if it hangs.
	line, err := fl.out.ReadString('\n')
	if want := fmt.Sprintf("%s %d\n", emfileFlooded, n); line != want {
		t.Fatalf("flooder said %q, %v; want %q", line, err, want)
	}
}

// stop closes the flooder's stdin, which makes it close its connections
// and exit, and reaps it; it is killed if it does not exit in time.
func (fl *flooder) stop(t *testing.T) {
	t.Helper()
	if fl.done {
		return
	}
	fl.done = true
	fl.in.Close()
	select {
	case err := <-fl.exited:
		if err != nil {
			t.Errorf("flooder: %v", err)
		}
	case <-time.After(waitBound):
		fl.cmd.Process.Kill()
		t.Errorf("flooder did not exit %v after its stdin closed: killed; Wait: %v", waitBound, <-fl.exited)
	}
}

// TestDescriptorExhaustionFlooder is the flooder: it reads a count on
// stdin, opens that many silent connections to the address in
// emfileFloodEnv, says so on stdout, and holds them until stdin ends. It
// runs with its own, normal descriptor limit.
func TestDescriptorExhaustionFlooder(t *testing.T) {
	addr := os.Getenv(emfileFloodEnv)
	if addr == "" {
		t.Skip("runs as the flooder of TestDescriptorExhaustionChild")
	}
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadString('\n')
	if err == io.EOF && line == "" {
		return // stopped before the flood (the child failed early)
	}
	if err != nil {
		t.Fatalf("read the count: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("count %q: %v", line, err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, waitBound)
		if err != nil {
			t.Fatalf("flood dial: %v", err)
		}
		conns = append(conns, c)
	}
	fmt.Printf("%s %d\n", emfileFlooded, n)
	// Hold until the child closes stdin (or dies); -test.timeout bounds
	// the wait should neither happen.
	io.Copy(io.Discard, in)
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
