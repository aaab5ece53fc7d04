package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/bench/wsload"
)

// proc is a child process the harness started: a backend, a proxy or a
// load generator. It dies with the harness (parent-death signal), and
// stop ends it and every process it started, by PID.
type proc struct {
	*wsload.Child
	name    string
	argv    []string
	env     []string // added to the harness's environment
	stopped bool
}

// startProc starts argv with env added to the environment, its stdout going
// to stdout (a file path, or "" for logPath) and its stderr to logPath.
func startProc(name string, argv, env []string, stdoutPath, logPath string) (*proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	out := logFile
	if stdoutPath != "" {
		f, err := os.OpenFile(stdoutPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = f
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = out
	cmd.Stderr = logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// The child dies with the harness even when the harness is killed
	// before it could stop it (on Linux; see dieWithParent).
	dieWithParent(cmd)
	child, err := wsload.StartChild(cmd, logPath)
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	return &proc{Child: child, name: name, argv: argv, env: env}, nil
}

func (p *proc) pid() int { return p.PID() }

// signal sends sig to the process itself.
func (p *proc) signal(sig syscall.Signal) {
	if !p.Exited() {
		p.Cmd.Process.Signal(sig)
	}
}

// stop sends sig (SIGTERM if 0), waits up to grace, then SIGKILLs what is
// left of the process and its descendants, each by its PID.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p.stopped {
		return
	}
	p.stopped = true
	defer p.Release()
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	kids := descendants(p.pid())
	p.signal(sig)
	if !p.WaitFor(grace) {
		kids = append(kids, descendants(p.pid())...)
		p.Cmd.Process.Kill()
		<-p.Done()
	}
	// Children a proxy left behind (nginx workers whose master was killed).
	for _, k := range kids {
		if !pidGone(k) {
			killPID(k)
		}
	}
}

// pidGone reports whether pid no longer runs (absent or a zombie).
func pidGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 0 {
			return f[0] == "Z" || f[0] == "X"
		}
	}
	return false
}

// descendants returns the PIDs of every live descendant of pid, read from
// /proc (the parent of each process is field 4 of /proc/PID/stat).
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], c)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// treeStats sums the resident memory (VmRSS, VmHWM) and CPU ticks of pid
// and its descendants (nginx: the master and its worker), and counts them.
type treeStats struct {
	At       time.Time
	Procs    int
	RSSBytes int64
	HWMBytes int64
	CPUTicks uint64
}

func readTree(pid int) (treeStats, error) {
	st := treeStats{At: time.Now()}
	for _, p := range append([]int{pid}, descendants(pid)...) {
		ps, err := wsload.ReadProcStats(p)
		if err != nil {
			if p == pid {
				return st, err
			}
			continue // a child that just ended
		}
		st.Procs++
		st.RSSBytes += ps.RSSBytes
		st.HWMBytes += ps.HWMBytes
		st.CPUTicks += ps.CPUTicks
	}
	return st, nil
}

// cpuSeconds is the CPU time between two snapshots.
func cpuSeconds(a, b treeStats) float64 {
	if b.CPUTicks < a.CPUTicks {
		return 0
	}
	return float64(b.CPUTicks-a.CPUTicks) / 100
}

// sysCPU is a snapshot of the machine's CPU time from /proc/stat, in
// ticks: busy (everything but idle and iowait) and total.
type sysCPU struct {
	busy, total uint64
}

func readSysCPU() sysCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return sysCPU{}
	}
	var s sysCPU
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// busyPct is the share of all CPUs busy between two snapshots, in percent
// of the whole machine (100 = every core busy).
func busyPct(a, b sysCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total) * 100
}
