package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsalive/wsalive/bench/wsload"
)

// The soak (issue 12): wsalive under an hour of everything a production
// day brings at once — steady echo traffic, connections opening and
// closing, idle pairs kept alive by heartbeats, clients that stop
// answering pings and are cut by the heartbeat, and bursts of idle
// connections — with its RSS, descriptors, goroutines and pairs sampled
// every minute. Under a steady load they must end where they started, and
// once the load is gone they must come back to the process at rest: a
// leak of a few bytes per connection, a descriptor per heartbeat timeout
// or a goroutine per flood shows as drift here long before production.
//
// The load runs in the harness's process (gorilla/websocket clients, not
// wsalive's gobwas/ws); the backend is legacy-echo and wsalive a child
// process with its own configuration (soakConfig), both started, sampled
// from /proc and stopped by PID like every other run's.

// SoakOptions configure Soak. Zero values take the defaults of the
// one-hour soak (DefaultSoak).
type SoakOptions struct {
	Root   string // the module's root; empty: found from the working directory
	OutDir string // receives bin/, soak/ (logs, configuration) and soak.json

	Duration time.Duration // of the load
	Sample   time.Duration // between two samples
	Warmup   time.Duration // from the load's start to the first steady sample

	EchoPairs   int           // connections echoing one message each EchoEvery
	EchoEvery   time.Duration //
	IdlePairs   int           // connections that only answer heartbeats
	ChurnPerSec float64       // connections opened, echoed once and closed, per second
	DeadEvery   time.Duration // a client that stops answering pings, cut by the heartbeat
	FloodEvery  time.Duration // a burst of FloodN idle connections, held a second
	FloodN      int

	// MaxRSSGrowth and MaxFDGrowth bound the drift that fails the soak:
	// steady end against steady start, and rest after against rest before.
	MaxRSSGrowth int64
	MaxFDGrowth  int
	// MaxGoroutineGrowth bounds the goroutines at rest after the load
	// against those before it.
	MaxGoroutineGrowth int

	Log *slog.Logger
}

// DefaultSoak is the one-hour soak of `wsbench -scenarios soak`.
func DefaultSoak() SoakOptions {
	return SoakOptions{
		Duration:           time.Hour,
		Sample:             time.Minute,
		Warmup:             30 * time.Second,
		EchoPairs:          50,
		EchoEvery:          100 * time.Millisecond,
		IdlePairs:          1000,
		ChurnPerSec:        20,
		DeadEvery:          10 * time.Second,
		FloodEvery:         5 * time.Minute,
		FloodN:             2000,
		MaxRSSGrowth:       32 << 20,
		MaxFDGrowth:        64,
		MaxGoroutineGrowth: 16,
	}
}

func (o *SoakOptions) fill() {
	d := DefaultSoak()
	orDefault(&o.Duration, d.Duration)
	orDefault(&o.Sample, d.Sample)
	orDefault(&o.Warmup, d.Warmup)
	orDefault(&o.EchoEvery, d.EchoEvery)
	orDefault(&o.DeadEvery, d.DeadEvery)
	orDefault(&o.FloodEvery, d.FloodEvery)
	orDefault(&o.EchoPairs, d.EchoPairs)
	orDefault(&o.IdlePairs, d.IdlePairs)
	orDefault(&o.FloodN, d.FloodN)
	orDefault(&o.MaxFDGrowth, d.MaxFDGrowth)
	orDefault(&o.MaxGoroutineGrowth, d.MaxGoroutineGrowth)
	if o.ChurnPerSec <= 0 {
		o.ChurnPerSec = d.ChurnPerSec
	}
	if o.MaxRSSGrowth <= 0 {
		o.MaxRSSGrowth = d.MaxRSSGrowth
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// SoakSample is one reading of wsalive and of the load's counters.
type SoakSample struct {
	Seconds    float64 `json:"s"` // since the load started (0 for the rest before it)
	RSSKiB     int64   `json:"rss_kib"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
	Pairs      int64   `json:"pairs"`
	// InFlood: a flood's connections were open, or closed too recently
	// for wsalive to have seen them go; such a sample is neither the
	// steady start nor the steady end.
	InFlood bool `json:"in_flood,omitempty"`
	SoakCounts
}

// SoakCounts are the load's running totals.
type SoakCounts struct {
	Echoes       int64 `json:"echoes"`
	Churned      int64 `json:"churned"`
	HeartbeatCut int64 `json:"heartbeat_cut"` // silent clients cut for not answering pings
	Floods       int64 `json:"floods"`
	Errors       int64 `json:"errors"`
}

// SoakReport is what a soak measured and whether it passed.
type SoakReport struct {
	Options     string       `json:"options"`
	Samples     []SoakSample `json:"samples"`
	RestBefore  SoakSample   `json:"rest_before"`
	SteadyStart SoakSample   `json:"steady_start"`
	SteadyEnd   SoakSample   `json:"steady_end"`
	RestAfter   SoakSample   `json:"rest_after"`
	FirstErrors []string     `json:"first_errors,omitempty"`
	Failures    []string     `json:"failures,omitempty"`
}

// Passed reports whether nothing drifted beyond its bound.
func (r *SoakReport) Passed() bool { return len(r.Failures) == 0 }

// Text renders the report: the samples as a table, then the drift.
func (r *SoakReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %s\n", r.Options)
	fmt.Fprintf(&b, "%8s %9s %6s %10s %6s %8s %8s %6s %6s %6s\n", "t_s", "rss_mib", "fds", "goroutines", "pairs", "echoes", "churned", "hb_cut", "floods", "errors")
	row := func(label string, s SoakSample) {
		fmt.Fprintf(&b, "%8s %9.1f %6d %10d %6d %8d %8d %6d %6d %6d\n", label, float64(s.RSSKiB)/1024, s.FDs, s.Goroutines, s.Pairs,
			s.Echoes, s.Churned, s.HeartbeatCut, s.Floods, s.Errors)
	}
	row("rest", r.RestBefore)
	for _, s := range r.Samples {
		label := fmt.Sprintf("%.0f", s.Seconds)
		if s.InFlood {
			label += "*"
		}
		row(label, s)
	}
	row("rest", r.RestAfter)
	b.WriteString("(* a flood's connections open or just closed: not a steady sample)\n")
	drift := func(name string, x, y SoakSample) {
		fmt.Fprintf(&b, "%s: RSS %+.1f MiB (%.1f → %.1f), fds %+d (%d → %d), goroutines %+d (%d → %d), pairs %d → %d\n", name,
			float64(y.RSSKiB-x.RSSKiB)/1024, float64(x.RSSKiB)/1024, float64(y.RSSKiB)/1024,
			y.FDs-x.FDs, x.FDs, y.FDs, y.Goroutines-x.Goroutines, x.Goroutines, y.Goroutines, x.Pairs, y.Pairs)
	}
	drift("drift under load (steady start → end)", r.SteadyStart, r.SteadyEnd)
	drift("drift at rest (before → after)", r.RestBefore, r.RestAfter)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	if r.Passed() {
		b.WriteString("PASS\n")
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAIL: %s\n", f)
	}
	return b.String()
}

// soakConfig is wsalive's configuration for the soak: heartbeats of 2 s +
// 2 s toward both sides (a silent client is cut within about 4 s), a 3 s
// handshake timeout, and handshake limits above the floods (this is about
// memory after them, not about refusing them).
const soakConfig = `listener {
  address = "{{listen}}"
}

admin {
  address = "{{admin}}"
}

limits {
  max_handshakes               = 20000
  max_handshakes_per_client_ip = 20000
}

route "soak" {
  upstream          = "{{upstream}}"
  handshake_timeout = "3s"
  close_timeout     = "2s"

  heartbeat "client" {
    interval   = "2s"
    timeout    = "2s"
    max_missed = 1
  }

  heartbeat "upstream" {
    interval   = "2s"
    timeout    = "2s"
    max_missed = 1
  }
}
`

// soakLoad is the load's state.
type soakLoad struct {
	url    string
	listen string
	counts struct {
		echoes, churned, hbCut, floods, errors atomic.Int64
	}
	// flooding counts the floods whose connections are open or closed
	// less than floodSettle ago.
	flooding atomic.Int32
	mu       sync.Mutex
	firstErr []string
}

// floodSettle is how long after a flood's connections closed a sample
// may still see some of them.
const floodSettle = 2 * time.Second

func (l *soakLoad) fail(what string, err error) {
	l.counts.errors.Add(1)
	l.mu.Lock()
	if len(l.firstErr) < 10 {
		l.firstErr = append(l.firstErr, fmt.Sprintf("%s: %v", what, err))
	}
	l.mu.Unlock()
}

func (l *soakLoad) snapshot() SoakCounts {
	return SoakCounts{
		Echoes: l.counts.echoes.Load(), Churned: l.counts.churned.Load(), HeartbeatCut: l.counts.hbCut.Load(),
		Floods: l.counts.floods.Load(), Errors: l.counts.errors.Load(),
	}
}

var soakDialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// Soak runs the soak and returns its report, also written to
// OutDir/soak.json. An error is a soak that could not run; a drift beyond
// the bounds is a report that did not pass.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	o.fill()
	if o.Root == "" {
		root, err := FindRoot()
		if err != nil {
			return nil, err
		}
		o.Root = root
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(o.Root, "bench", "out")
	}
	dir := filepath.Join(o.OutDir, "soak")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, _, err := wsload.RaiseFileLimit(); err != nil {
		o.Log.Warn("could not raise the open-files limit", "err", err)
	}
	o.Log.Info("building wsalive and legacy-echo", "into", filepath.Join(o.OutDir, "bin"))
	bins, err := Build(ctx, o.Root, filepath.Join(o.OutDir, "bin"))
	if err != nil {
		return nil, err
	}
	be, beAddr, err := startBackend(ctx, bins, dir, wsload.ClientGobwas)
	if err != nil {
		return nil, err
	}
	defer be.stop(0, 5*time.Second)
	px, err := startSoakProxy(ctx, bins, dir, beAddr)
	if err != nil {
		return nil, err
	}
	defer px.stop()

	rep := &SoakReport{Options: fmt.Sprintf("%v of load, a sample every %v: %d echo pairs (a message each %v), %d idle pairs, %.0f churned connections/s, a silent client every %v, %d idle connections every %v",
		o.Duration, o.Sample, o.EchoPairs, o.EchoEvery, o.IdlePairs, o.ChurnPerSec, o.DeadEvery, o.FloodN, o.FloodEvery)}
	load := &soakLoad{url: "ws://" + px.listen + "/", listen: px.listen}
	sample := func(start time.Time) (SoakSample, error) {
		s := SoakSample{Seconds: time.Since(start).Seconds(), SoakCounts: load.snapshot(), InFlood: load.flooding.Load() > 0}
		ps, err := wsload.ReadProcStats(px.p.pid())
		if err != nil {
			return s, err
		}
		s.RSSKiB, s.FDs = ps.RSSBytes/1024, ps.FDs
		s.Goroutines, s.Pairs, err = adminStats(ctx, px.admin)
		// A flood that began while the sample was taken taints it too.
		s.InFlood = s.InFlood || load.flooding.Load() > 0
		return s, err
	}

	// At rest, before: wsalive settled (its first second allocates).
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	start := time.Now()
	if rep.RestBefore, err = sample(start); err != nil {
		return nil, err
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	o.Log.Info("soak: opening the idle and echo pairs", "idle", o.IdlePairs, "echo", o.EchoPairs)
	for i := range o.IdlePairs {
		c, _, err := soakDialer.DialContext(loadCtx, load.url, nil)
		if err != nil {
			return nil, fmt.Errorf("idle pair %d: %w", i, err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); load.idle(loadCtx, c) }()
	}
	for range o.EchoPairs {
		wg.Add(1)
		go func() { defer wg.Done(); load.echo(loadCtx, o.EchoEvery) }()
	}
	wg.Add(3)
	go func() { defer wg.Done(); load.churn(loadCtx, o.ChurnPerSec) }()
	go func() { defer wg.Done(); load.silent(loadCtx, o.DeadEvery) }()
	go func() { defer wg.Done(); load.flood(loadCtx, o.FloodEvery, o.FloodN) }()

	start = time.Now()
	end := start.Add(o.Duration)
	next := start.Add(o.Warmup)
	for next.Before(end) || next.Equal(end) {
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			return nil, err
		}
		s, err := sample(start)
		if err != nil {
			return nil, fmt.Errorf("sampling wsalive: %w", err)
		}
		rep.Samples = append(rep.Samples, s)
		o.Log.Info("soak sample", "t", time.Since(start).Round(time.Second), "rss_mib", fmt.Sprintf("%.1f", float64(s.RSSKiB)/1024),
			"fds", s.FDs, "goroutines", s.Goroutines, "pairs", s.Pairs, "echoes", s.Echoes, "churned", s.Churned,
			"heartbeat_cut", s.HeartbeatCut, "floods", s.Floods, "errors", s.Errors)
		if px.p.Exited() {
			return nil, fmt.Errorf("wsalive exited during the soak (%s):\n%s", px.p.ExitText(), px.p.LogTail(15))
		}
		next = next.Add(o.Sample)
	}
	if len(rep.Samples) == 0 {
		return nil, fmt.Errorf("the soak's %v took no sample after its %v warmup", o.Duration, o.Warmup)
	}
	var steady []SoakSample
	for _, s := range rep.Samples {
		if !s.InFlood {
			steady = append(steady, s)
		}
	}
	if len(steady) == 0 {
		return nil, errors.New("every sample fell in a flood: sample at another period than the floods")
	}
	rep.SteadyStart, rep.SteadyEnd = steady[0], steady[len(steady)-1]

	o.Log.Info("soak: stopping the load")
	stopLoad()
	wg.Wait()
	// At rest, after: the pairs closed, the handshakes ended, the memory
	// handed back (cmd/wsalive/memory.go settles for seconds).
	restDeadline := time.Now().Add(30 * time.Second)
	for {
		s, err := sample(start)
		if err != nil {
			return nil, fmt.Errorf("sampling wsalive: %w", err)
		}
		rep.RestAfter = s
		settled := s.Pairs == 0 && s.Goroutines <= rep.RestBefore.Goroutines+o.MaxGoroutineGrowth &&
			int64(s.RSSKiB-rep.RestBefore.RSSKiB)*1024 <= o.MaxRSSGrowth && s.FDs <= rep.RestBefore.FDs+o.MaxFDGrowth
		if settled || time.Now().After(restDeadline) {
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	rep.FirstErrors = load.firstErr
	rep.judge(o)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.OutDir, "soak.json"), b, 0o644); err != nil {
		return rep, err
	}
	return rep, nil
}

// judge fills the report's failures from its drift.
func (r *SoakReport) judge(o SoakOptions) {
	check := func(name string, a, b SoakSample, goroutines bool) {
		if d := (b.RSSKiB - a.RSSKiB) * 1024; d > o.MaxRSSGrowth {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: RSS grew %.1f MiB, bound %.1f MiB", name, float64(d)/(1<<20), float64(o.MaxRSSGrowth)/(1<<20)))
		}
		if d := b.FDs - a.FDs; d > o.MaxFDGrowth {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: descriptors grew by %d, bound %d", name, d, o.MaxFDGrowth))
		}
		if d := b.Goroutines - a.Goroutines; goroutines && d > o.MaxGoroutineGrowth {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: goroutines grew by %d, bound %d", name, d, o.MaxGoroutineGrowth))
		}
	}
	check("under load", r.SteadyStart, r.SteadyEnd, false)
	check("at rest", r.RestBefore, r.RestAfter, true)
	if r.RestAfter.Pairs != 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("at rest: %d pairs left", r.RestAfter.Pairs))
	}
	// The load's totals: the last reading, taken after the load stopped.
	if e := r.RestAfter.Errors; e > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("the load met %d errors", e))
	}
	if r.RestAfter.HeartbeatCut == 0 {
		r.Failures = append(r.Failures, "no silent client was cut by the heartbeat")
	}
}

// startSoakProxy starts wsalive with soakConfig in front of upstreamAddr.
func startSoakProxy(ctx context.Context, bins Binaries, dir, upstreamAddr string) (*proxyInst, error) {
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var listen, admin string
		if listen, err = freeAddr("127.0.0.1"); err != nil {
			return nil, err
		}
		if admin, err = freeAddr("127.0.0.1"); err != nil {
			return nil, err
		}
		cfg := filepath.Join(dir, "wsalive.hcl")
		text := wsload.ExpandVars(soakConfig, wsload.TemplateVars{Listen: listen, Upstream: "ws://" + upstreamAddr, Admin: admin, Dir: dir})
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, err
		}
		argv := []string{bins.Wsalive, "run", "-config", cfg, "-log-level", "warn"}
		p, err2 := startProc(TargetWsalive, argv, nil, "", filepath.Join(dir, "wsalive.log"))
		if err2 != nil {
			return nil, err2
		}
		if err = waitOwnWebSocket(ctx, p, listen, 15*time.Second); err == nil {
			return &proxyInst{target: TargetWsalive, p: p, listen: listen, admin: admin, argv: argv}, nil
		}
		p.stop(0, 5*time.Second)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("wsalive: %w", err)
}

// adminStats reads goroutines and pairs from wsalive's /stats.
func adminStats(ctx context.Context, admin string) (goroutines int, pairs int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Goroutines int   `json:"goroutines"`
		Pairs      int64 `json:"pairs"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Goroutines, st.Pairs, err
}

// closeNormally sends a close and waits briefly for the connection to end.
func closeNormally(c *websocket.Conn) {
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()
}

// idle holds c, answering heartbeats (gorilla answers pings while it
// reads), until ctx ends.
func (l *soakLoad) idle(ctx context.Context, c *websocket.Conn) {
	ended := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		closeNormally(c)
		<-ended
	case err := <-ended:
		l.fail("an idle pair ended", err)
		c.Close()
	}
}

// echo keeps one connection echoing a message every every, reconnecting
// when it ends.
func (l *soakLoad) echo(ctx context.Context, every time.Duration) {
	msg := []byte(strings.Repeat("e", 64))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ctx.Err() == nil {
		c, _, err := soakDialer.DialContext(ctx, l.url, nil)
		if err != nil {
			if ctx.Err() == nil {
				l.fail("dialling an echo pair", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		for ctx.Err() == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				l.fail("echo write", err)
				break
			}
			_, got, err := c.ReadMessage()
			if err != nil {
				l.fail("echo read", err)
				break
			}
			if string(got) != string(msg) {
				l.fail("echo", fmt.Errorf("got %d bytes back, not the %d sent", len(got), len(msg)))
				break
			}
			l.counts.echoes.Add(1)
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		closeNormally(c)
	}
}

// churn opens perSec connections a second, each echoing one message and
// closing with a close handshake.
func (l *soakLoad) churn(ctx context.Context, perSec float64) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / perSec))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 64) // a stalled proxy must not pile up goroutines
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			l.fail("churn", errors.New("64 churned connections already in flight"))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := soakDialer.DialContext(ctx, l.url, nil)
			if err != nil {
				if ctx.Err() == nil {
					l.fail("churn dial", err)
				}
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, []byte("churn")); err != nil {
				l.fail("churn write", err)
				return
			}
			if _, _, err := c.ReadMessage(); err != nil {
				l.fail("churn read", err)
				return
			}
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
			// The close handshake: wsalive answers the close (echoed
			// through the upstream), then the connection ends.
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
						l.fail("churn close", err)
						return
					}
					break
				}
			}
			l.counts.churned.Add(1)
		}()
	}
}

// silent opens, every every, a client that reads but never answers a
// ping: wsalive's client heartbeat must declare it dead and close its
// connection (a dead side gets no close frame: the client sees the
// connection end, 1006), after the 2 s interval and the 2 s timeout.
func (l *soakLoad) silent(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		c, _, err := soakDialer.DialContext(ctx, l.url, nil)
		if err != nil {
			if ctx.Err() == nil {
				l.fail("dialling a silent client", err)
			}
			continue
		}
		c.SetPingHandler(func(string) error { return nil }) // no pong
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			began := time.Now()
			c.SetReadDeadline(began.Add(30 * time.Second))
			for {
				_, _, err := c.ReadMessage()
				if err == nil {
					continue
				}
				took := time.Since(began)
				switch {
				case ctx.Err() != nil: // the soak ended first
				case websocket.IsCloseError(err, websocket.CloseAbnormalClosure) && took >= 2*time.Second:
					l.counts.hbCut.Add(1)
				default:
					l.fail("a silent client", fmt.Errorf("ended with %v after %v, want its connection closed by the heartbeat after 2 to 4 s", err, took.Round(time.Millisecond)))
				}
				return
			}
		}()
	}
}

// flood opens n idle TCP connections (no request head) every every,
// holds them a second and closes them.
func (l *soakLoad) flood(ctx context.Context, every time.Duration, n int) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		l.flooding.Add(1)
		conns := make([]net.Conn, 0, n)
		d := net.Dialer{Timeout: 5 * time.Second}
		for range n {
			c, err := d.DialContext(ctx, "tcp", l.listen)
			if err != nil {
				if ctx.Err() == nil {
					l.fail("flood dial", err)
				}
				break
			}
			conns = append(conns, c)
		}
		sleepCtx(ctx, time.Second)
		for _, c := range conns {
			c.Close()
		}
		l.counts.floods.Add(1)
		time.AfterFunc(floodSettle, func() { l.flooding.Add(-1) })
	}
}

// orDefault sets *v to def unless it is already positive.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
