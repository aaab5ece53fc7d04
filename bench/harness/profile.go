package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profileRound is the round number of the extra, unrecorded run that
// profiles wsalive (Options.Profile): its numbers would be skewed by the
// profiler, so they are not part of the results.
const profileRound = 0

// profiler captures, during a profile round's window, a CPU profile from
// wsalive's admin endpoint (pprof), and a perf recording of the process
// when perf is installed; at the end, a heap profile.
type profiler struct {
	dir, prefix string
	admin       string
	pid         int
	log         interface{ Info(string, ...any) }
	wg          sync.WaitGroup
	files       []string
	mu          sync.Mutex
}

// startProfile begins the captures for a window of d.
func (r *runner) startProfile(ctx context.Context, sc Scenario, px *proxyInst, d time.Duration) *profiler {
	dir := filepath.Join(r.opts.OutDir, "profiles")
	os.MkdirAll(dir, 0o755)
	p := &profiler{dir: dir, prefix: sc.Name + "-wsalive", admin: px.admin, pid: px.p.pid(), log: r.log}
	secs := max(int(d/time.Second)-1, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.fetch(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), p.prefix+"-cpu.pprof", time.Duration(secs+30)*time.Second)
	}()
	if perf, err := exec.LookPath("perf"); err == nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			out := filepath.Join(dir, p.prefix+"-perf.data")
			cmd := exec.CommandContext(ctx, perf, "record", "-q", "-e", "cpu-clock", "-F", "499", "-g",
				"-p", strconv.Itoa(p.pid), "-o", out, "--", "sleep", strconv.Itoa(secs))
			if b, err := cmd.CombinedOutput(); err != nil {
				r.log.Warn("perf record failed", "err", err, "out", string(b))
				return
			}
			p.add(out)
		}()
	}
	return p
}

func (p *profiler) add(f string) {
	p.mu.Lock()
	p.files = append(p.files, f)
	p.mu.Unlock()
}

// fetch saves an admin endpoint's answer to a file.
func (p *profiler) fetch(ctx context.Context, path, name string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.admin+path, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.log.Info("profile fetch failed", "path", path, "err", err)
		return
	}
	defer resp.Body.Close()
	out := filepath.Join(p.dir, name)
	f, err := os.Create(out)
	if err != nil {
		return
	}
	if _, err := io.Copy(f, resp.Body); err == nil && resp.StatusCode == http.StatusOK {
		p.add(out)
	}
	f.Close()
}

// finish waits for the captures, takes a heap profile (after a GC) and the
// engine's stats, and logs where everything went.
func (p *profiler) finish(ctx context.Context) {
	if p == nil {
		return
	}
	p.wg.Wait()
	p.fetch(ctx, "/debug/pprof/heap?gc=1", p.prefix+"-heap.pprof", 30*time.Second)
	p.fetch(ctx, "/debug/pprof/heap?debug=1", p.prefix+"-heap.txt", 30*time.Second)
	p.fetch(ctx, "/stats", p.prefix+"-stats.json", 10*time.Second)
	p.log.Info("profiles written", "files", p.files)
}
