package wsload

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. The kernel
// exports these in USER_HZ, which is 100 on every Linux architecture Go
// supports, whatever the kernel's own HZ; reading it from sysconf would
// need cgo.
const userHZ = 100

// ProcStats is a snapshot of a process from /proc.
type ProcStats struct {
	PID int `json:"pid"`
	// RSSBytes is VmRSS: resident memory now. HWMBytes is VmHWM: its peak.
	RSSBytes int64 `json:"rss_bytes"`
	HWMBytes int64 `json:"hwm_bytes"`
	// Threads is the number of OS threads.
	Threads int `json:"threads"`
	// FDs is the number of open file descriptors, -1 when not readable.
	FDs int `json:"fds"`
	// CPUTicks is utime plus stime, in USER_HZ ticks (1/100 s).
	CPUTicks uint64 `json:"cpu_ticks"`
	// At is when the snapshot was taken.
	At time.Time `json:"at"`
}

// CPUSeconds returns the CPU time used, user plus system.
func (p ProcStats) CPUSeconds() float64 { return float64(p.CPUTicks) / userHZ }

// ReadProcStats reads /proc/PID/status, /proc/PID/stat and /proc/PID/fd.
func ReadProcStats(pid int) (ProcStats, error) {
	st := ProcStats{PID: pid, At: time.Now(), FDs: -1}
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return st, err
	}
	if err := parseStatus(status, &st); err != nil {
		return st, fmt.Errorf("%s/status: %w", dir, err)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return st, err
	}
	if st.CPUTicks, err = parseStatCPU(stat); err != nil {
		return st, fmt.Errorf("%s/stat: %w", dir, err)
	}
	if fds, err := os.ReadDir(dir + "/fd"); err == nil {
		st.FDs = len(fds)
	}
	return st, nil
}

// parseStatus reads VmRSS, VmHWM and Threads from /proc/PID/status.
func parseStatus(b []byte, st *ProcStats) error {
	var sawRSS bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			st.RSSBytes = n * 1024 // the unit is always kB
			sawRSS = true
		case "VmHWM":
			st.HWMBytes = n * 1024
		case "Threads":
			st.Threads = int(n)
		}
	}
	if !sawRSS {
		// Kernel threads and zombies have no VmRSS line.
		return fmt.Errorf("no VmRSS line (kernel thread or zombie?)")
	}
	return sc.Err()
}

// parseStatCPU returns utime+stime from /proc/PID/stat. The command name
// (field 2) is in parentheses and may itself hold spaces and parentheses,
// so fields are counted from the last ')'.
func parseStatCPU(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' after the command name")
	}
	// After ')' come field 3 (state) onwards; utime and stime are fields
	// 14 and 15 of proc(5), that is 11 and 12 here.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// CPUPercent returns the CPU used between two snapshots of one process, in
// percent of one CPU (200 means two cores busy).
func CPUPercent(before, after ProcStats) float64 {
	wall := after.At.Sub(before.At).Seconds()
	if wall <= 0 {
		return 0
	}
	return (after.CPUSeconds() - before.CPUSeconds()) / wall * 100
}

// SampleCPU snapshots pid, waits interval (or until ctx is done), snapshots
// it again and returns both with the CPU percent in between. The tick
// resolution is 10 ms, so intervals under a second are coarse.
func SampleCPU(ctx context.Context, pid int, interval time.Duration) (before, after ProcStats, pct float64, err error) {
	before, err = ReadProcStats(pid)
	if err != nil {
		return before, after, 0, err
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	after, err = ReadProcStats(pid)
	if err != nil {
		return before, after, 0, err
	}
	return before, after, CPUPercent(before, after), nil
}
