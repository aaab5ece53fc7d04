package wsload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Names: see netnsPrefix.
// netnsCmdTimeout bounds every ip and iptables command.
const netnsCmdTimeout = 10 * time.Second

var netnsSeq atomic.Int64

// Linux capability numbers (capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// NetnsSupport reports why this process cannot create network namespaces,
// veth pairs and iptables rules, or nil when it can: it must run as root
// with CAP_SYS_ADMIN and CAP_NET_ADMIN, and find ip (iproute2) and
// iptables.
func NetnsSupport() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: %w", tool, err)
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return fmt.Errorf("CapEff %q: %w", hex, err)
		}
		for _, c := range []struct {
			bit  uint
			name string
		}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
			if caps&(1<<c.bit) == 0 {
				return fmt.Errorf("no %s", c.name)
			}
		}
		return nil
	}
	return errors.New("no CapEff line in /proc/self/status")
}

// netns is a network namespace joined to the root namespace by a veth
// pair: hostIP on the host side, nsIP inside, in one /30 of 10.213.0.0/16.
// Its iptables rules can make everything inside vanish without FIN or RST.
type netns struct {
	name           string
	hostIf, nsIf   string
	hostIP, nsIP   net.IP
	log            *slog.Logger
	fd             int // open handle of the namespace, for setns
	createdNS      bool
	createdLink    bool
	mu             sync.Mutex
	rules          []string // chains with our DROP rule, in order added
	closeOnce      sync.Once
	closeErr       error
	blackholeTook  time.Duration
	blackholeStart time.Time
}

// newNetns creates a namespace and its veth pair. On error, whatever was
// created is removed again.
func newNetns(log *slog.Logger) (_ *netns, err error) {
	if err := NetnsSupport(); err != nil {
		return nil, err
	}
	// One subnet per namespace: choosing it and taking it must not race
	// with another wsload doing the same.
	unlock, err := lockFile(os.TempDir())
	if err != nil {
		return nil, err
	}
	defer unlock()
	x, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	pid, seq := os.Getpid(), netnsSeq.Add(1)-1
	n := &netns{
		name:   fmt.Sprintf("%s-%d-%d", netnsPrefix, pid, seq),
		hostIf: fmt.Sprintf("%s%dh%d", netnsPrefix, pid, seq),
		nsIf:   fmt.Sprintf("%s%dn%d", netnsPrefix, pid, seq),
		hostIP: net.IPv4(10, 213, byte(x), 1).To4(),
		nsIP:   net.IPv4(10, 213, byte(x), 2).To4(),
		log:    log,
		fd:     -1,
	}
	if len(n.hostIf) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("interface name %q is too long", n.hostIf)
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if err := runCmd("ip", "netns", "add", n.name); err != nil {
		return nil, err
	}
	n.createdNS = true
	if err := runCmd("ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf, "netns", n.name); err != nil {
		return nil, err
	}
	n.createdLink = true
	steps := [][]string{
		{"ip", "addr", "add", n.hostIP.String() + "/30", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
		{"ip", "-n", n.name, "addr", "add", n.nsIP.String() + "/30", "dev", n.nsIf},
		{"ip", "-n", n.name, "link", "set", n.nsIf, "up"},
		{"ip", "-n", n.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := runCmd(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	if n.fd, err = unix.Open("/var/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("opening the namespace %s: %w", n.name, err)
	}
	// A SYN sent before the veth has carrier is lost and retried a second
	// later; wait for the link instead.
	if err := waitOperUp(n.hostIf, 3*time.Second); err != nil {
		return nil, err
	}
	log.Info("network namespace ready", "netns", n.name, "host", n.hostIf+" "+n.hostIP.String(),
		"inside", n.nsIf+" "+n.nsIP.String())
	return n, nil
}

// do runs f on an OS thread inside the namespace, and returns its error.
// Sockets (and listeners) f creates belong to the namespace and may then be
// used from any goroutine. The thread is never unlocked: it ends with its
// goroutine, so no other goroutine ever runs inside the namespace.
func (n *netns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// pool starts k goroutines locked to OS threads inside the namespace. run
// executes f on one of them and waits for it; stop ends them, and their
// threads with them (they are never unlocked). Dialing through a pool
// keeps the cost of a thread and a setns per dial out of the handshake
// latency.
func (n *netns) pool(k int) (run func(f func()) error, stop func(), err error) {
	jobs := make(chan func())
	ready := make(chan error, k)
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
				ready <- fmt.Errorf("setns %s: %w", n.name, err)
				return
			}
			ready <- nil
			for f := range jobs {
				f()
			}
		}()
	}
	var errs []error
	for range k {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() { close(jobs) })
		wg.Wait()
	}
	if len(errs) > 0 {
		stop()
		return nil, nil, errs[0]
	}
	run = func(f func()) error {
		done := make(chan struct{})
		jobs <- func() {
			defer close(done)
			f()
		}
		<-done
		return nil
	}
	return run, stop, nil
}

// blackhole drops every packet in and out of the namespace: its peers on
// the host see silence, not FIN or RST.
func (n *netns) blackhole() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blackholeStart = time.Now()
	// INPUT first: from then on nothing reaches the sockets inside, so
	// nothing inside answers while OUTPUT is being closed.
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		if err := runCmd("ip", "netns", "exec", n.name, "iptables", "-w", "5", "-A", chain, "-j", "DROP"); err != nil {
			return err
		}
		n.rules = append(n.rules, chain)
	}
	n.blackholeTook = time.Since(n.blackholeStart)
	return nil
}

// unblackhole removes the DROP rules again, newest first.
func (n *netns) unblackhole() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for i := len(n.rules) - 1; i >= 0; i-- {
		if err := runCmd("ip", "netns", "exec", n.name, "iptables", "-w", "5", "-D", n.rules[i], "-j", "DROP"); err != nil {
			errs = append(errs, err)
		}
	}
	n.rules = nil
	return errors.Join(errs...)
}

// close removes the rules, the veth pair and the namespace. It is safe to
// call more than once and on a half-built netns.
func (n *netns) close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.createdNS {
			errs = append(errs, n.unblackhole())
		}
		if n.fd >= 0 {
			unix.Close(n.fd)
			n.fd = -1
		}
		if n.createdLink {
			// Deleting one end deletes both.
			if err := runCmd("ip", "link", "del", n.hostIf); err != nil && linkExists(n.hostIf) {
				errs = append(errs, err)
			}
		}
		if n.createdNS {
			errs = append(errs, runCmd("ip", "netns", "del", n.name))
		}
		n.closeErr = errors.Join(errs...)
		if n.closeErr != nil {
			n.log.Error("removing the network namespace", "netns", n.name, "err", n.closeErr)
		} else {
			n.log.Info("network namespace removed", "netns", n.name, "veth", n.hostIf)
		}
	})
	return n.closeErr
}

// runCmd runs one ip or iptables command, bounded by netnsCmdTimeout. It does
// not take the run's context: cleanup must work after an interrupt too.
func runCmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), netnsCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func cmdOutput(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), netnsCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func waitOperUp(ifname string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile("/sys/class/net/" + ifname + "/operstate")
		if err == nil && strings.TrimSpace(string(b)) == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after %v (operstate %q, %v)", ifname, limit, bytes.TrimSpace(b), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockFile takes an exclusive flock on path (here a directory that always
// exists, so that no lock file is left behind).
func lockFile(path string) (unlock func(), err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return func() { unix.Close(fd) }, nil
}

var subnetRE = regexp.MustCompile(`\binet 10\.213\.(\d+)\.`)

// freeSubnet returns an X such that no interface holds an address in
// 10.213.X.0/24, starting from one that depends on the PID so that
// concurrent runs start apart.
func freeSubnet() (int, error) {
	out, err := cmdOutput("ip", "-o", "-4", "addr", "show")
	if err != nil {
		return 0, err
	}
	used := make(map[int]bool)
	for _, m := range subnetRE.FindAllSubmatch(out, -1) {
		x, _ := strconv.Atoi(string(m[1]))
		used[x] = true
	}
	start := os.Getpid() % 256
	for i := range 256 {
		if x := (start + i) % 256; !used[x] {
			return x, nil
		}
	}
	return 0, errors.New("every 10.213.X.0/24 is in use")
}

var (
	staleNetnsRE = regexp.MustCompile(`^` + netnsPrefix + `-(\d+)-\d+$`)
	staleLinkRE  = regexp.MustCompile(`^` + netnsPrefix + `(\d+)[hn]\d+$`)
)

// cleanupStale removes namespaces and veth pairs that a wsload killed
// before its cleanup left behind: those named with our prefix whose PID no
// longer exists. Errors are logged, not returned.
func cleanupStale(log *slog.Logger) {
	dead := func(pidStr string) bool {
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			return false
		}
		return pidDead(pid)
	}
	if out, err := cmdOutput("ip", "-o", "link", "show"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			// "7: wsab123h0@if6: <...>"
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if m := staleLinkRE.FindStringSubmatch(name); m != nil && dead(m[1]) {
				log.Warn("removing a veth left behind by a killed run", "link", name)
				if err := runCmd("ip", "link", "del", name); err != nil {
					log.Warn("removing stale veth", "err", err)
				}
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), netnsPrefix+"-*-*"))
	for _, d := range dirs {
		// $TMPDIR/wsab-<pid>-<random>: the proxy configuration and log.
		f := strings.Split(filepath.Base(d), "-")
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && len(f) == 3 && dead(f[1]) {
			os.RemoveAll(d)
		}
	}
	if out, err := cmdOutput("ip", "netns", "list"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text()) // "wsab-123-0 (id: 3)"
			if len(f) == 0 {
				continue
			}
			if m := staleNetnsRE.FindStringSubmatch(f[0]); m != nil && dead(m[1]) {
				log.Warn("removing a network namespace left behind by a killed run", "netns", f[0])
				if err := runCmd("ip", "netns", "del", f[0]); err != nil {
					log.Warn("removing stale netns", "err", err)
				}
			}
		}
	}
}

// pidDead reports whether no live process has pid: none exists, or it is
// a zombie (a killed wsload whose parent does not reap it).
func pidDead(pid int) bool {
	if unix.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 0 {
			return f[0] == "Z" || f[0] == "X"
		}
	}
	return false
}

// proxySysProcAttr makes the proxy die with this process, even when it is
// killed before its cleanup could stop the proxy. (Pdeathsig fires when
// the thread that started the child ends, so startProxy starts it from a
// thread that lives as long as the proxy.)
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
