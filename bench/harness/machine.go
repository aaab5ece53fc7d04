package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// readMachine describes this machine and the tree the programs were built
// from.
func readMachine(root string) Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		LoadBefore: loadavg(),
	}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemMiB = kb / 1024
				}
			}
		}
	}
	m.NoFileLimit = noFileLimit()
	m.Perf = perfSupport()
	if out, err := cmdOut(root, "git", "rev-parse", "HEAD"); err == nil {
		m.GitCommit = strings.TrimSpace(out)
	}
	if out, err := cmdOut(root, "git", "status", "--porcelain"); err == nil {
		for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				m.GitDirty = append(m.GitDirty, line)
			}
		}
	}
	return m
}

// perfSupport says whether perf can count hardware events here.
func perfSupport() string {
	if _, err := exec.LookPath("perf"); err != nil {
		return "not installed"
	}
	out, _ := cmdOut("", "perf", "stat", "-e", "instructions", "true")
	if strings.Contains(out, "not supported") || strings.Contains(out, "<not counted>") {
		return "installed; hardware counters not supported (software events and sampling only)"
	}
	return "installed; hardware counters available"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// versions asks every program for its version.
func versions(b Binaries) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	first := func(s string) string {
		s = strings.TrimSpace(s)
		line, _, _ := strings.Cut(s, "\n")
		return strings.TrimSpace(line)
	}
	if out, err := cmdOut("", b.Wsalive, "version"); err == nil {
		v["wsalive"] = first(out)
	}
	if b.Nginx != "" {
		if out, err := cmdOut("", b.Nginx, "-v"); err == nil {
			v["nginx"] = strings.TrimPrefix(first(out), "nginx version: ")
		}
	}
	if b.HAProxy != "" {
		if out, err := cmdOut("", b.HAProxy, "-v"); err == nil {
			v["haproxy"] = first(out)
		}
	}
	if b.Caddy != "" {
		if out, err := cmdOut("", b.Caddy, "version"); err == nil {
			v["caddy"] = first(out)
		}
	}
	var pkgs []string
	for _, pkg := range []string{"nginx", "haproxy", "caddy"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output(); err == nil && len(out) > 0 {
			pkgs = append(pkgs, pkg+" "+strings.TrimSpace(string(out)))
		}
	}
	if len(pkgs) > 0 {
		v["debian packages"] = strings.Join(pkgs, ", ")
	}
	return v
}

// cmdOut runs a short command and returns its stdout and stderr together.
func cmdOut(dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.String(), err
}
