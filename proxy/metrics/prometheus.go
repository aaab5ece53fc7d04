package metrics

import (
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric wsalive registers.
const Namespace = "wsalive"

// Label names. Each one's values are bounded: see the package doc.
const (
	labelRoute     = "route"
	labelReason    = "reason"
	labelResult    = "result"
	labelSide      = "side"
	labelDirection = "direction"
	labelCode      = "code"
	labelServer    = "server"
)

// PrometheusOptions are the figures a Prometheus is fed from outside the
// Metrics interface.
type PrometheusOptions struct {
	// Version and Revision label wsalive_build_info.
	Version, Revision string
	// BufferedBytes, when set, is read at scrape time for
	// wsalive_buffered_bytes (the engine's bytes held for slow sinks).
	BufferedBytes func() float64
	// ResumeSessions and ResumeReplayBytes, when set, are read at scrape
	// time for wsalive_resume_sessions (live resumable sessions, by
	// whether their client is attached or away) and
	// wsalive_resume_replay_bytes.
	ResumeSessions    func() (attached, parked float64)
	ResumeReplayBytes func() float64
}

// Prometheus is the Metrics that production runs on. It registers on a
// registry of its own, never on the client library's global one, so two
// instances (two tests, or an app embedding wsalive) never collide.
type Prometheus struct {
	reg *prometheus.Registry

	pairsOpen     *prometheus.GaugeVec
	pairsClosed   *prometheus.CounterVec
	handshakes    *prometheus.CounterVec
	handshakeTime *prometheus.HistogramVec
	httpRequests  *prometheus.CounterVec
	pings         *prometheus.CounterVec
	pongs         *prometheus.CounterVec
	misses        *prometheus.CounterVec
	rtt           *prometheus.HistogramVec
	relayedBytes  *prometheus.CounterVec
	relayedFrames *prometheus.CounterVec
	draining      prometheus.Gauge
	reloads       *prometheus.CounterVec
	upstreamUp    *prometheus.GaugeVec
	resumes       *prometheus.CounterVec

	names []string // wsalive's own metric names, sorted

	mu     sync.Mutex
	routes map[string]*promRoute
}

var (
	_ Metrics       = (*Prometheus)(nil)
	_ ResumeCounter = (*Prometheus)(nil)
)

// Buckets. Handshakes on a LAN take a millisecond or less, across a WAN
// or to a slow upstream up to the 10 s handshake timeout. Heartbeat RTTs
// go from sub-millisecond (upstream on the same host) to seconds (a mobile
// radio waking up) and up to the 10 s default heartbeat timeout.
var (
	handshakeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	rttBuckets       = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// NewPrometheus returns a Prometheus with every wsalive metric, the Go
// runtime collector and the process collector registered.
func NewPrometheus(opts PrometheusOptions) *Prometheus {
	p := &Prometheus{reg: prometheus.NewRegistry(), routes: map[string]*promRoute{}}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		p.names = append(p.names, Namespace+"_"+name)
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		p.names = append(p.names, Namespace+"_"+name)
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		p.names = append(p.names, Namespace+"_"+name)
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	p.pairsOpen = gauge("pairs_open", "Live pairs (client and upstream both connected and relayed).", labelRoute)
	p.pairsClosed = counter("pairs_closed_total", "Pairs ended, by the one reason each pair ends with.", labelRoute, labelReason)
	p.handshakes = counter("handshakes_total",
		`WebSocket handshakes ended, by result: "ok" (101 both ways) or the HTTP status answered to the client.`, labelRoute, labelResult)
	p.handshakeTime = histogram("handshake_duration_seconds", "Time from a client's request head to its 101 or error answer.",
		handshakeBuckets, labelRoute)
	p.httpRequests = counter("http_requests_total", "Plain HTTP requests passed through, by status code answered.", labelRoute, labelCode)
	p.pings = counter("heartbeat_pings_total", "Heartbeat pings wsalive sent toward a side.", labelRoute, labelSide)
	p.pongs = counter("heartbeat_pongs_total", "Pongs to wsalive's own pings received from a side.", labelRoute, labelSide)
	p.misses = counter("heartbeat_misses_total", "Heartbeat pings left unanswered within their timeout.", labelRoute, labelSide)
	p.rtt = histogram("heartbeat_rtt_seconds", "Round-trip time of wsalive's heartbeat pings.", rttBuckets, labelRoute, labelSide)
	p.relayedBytes = counter("relayed_bytes_total", "Bytes written toward a side, injected frames included.", labelRoute, labelDirection)
	p.relayedFrames = counter("relayed_frames_total", "Frames received from the opposite side and relayed toward a side.", labelRoute, labelDirection)
	draining := gauge("draining", "1 while the process drains (readiness is off), else 0.")
	p.draining = draining.WithLabelValues()
	p.reloads = counter("config_reloads_total", `Configuration reload attempts, by result: "ok" or "error".`, labelResult)
	p.upstreamUp = gauge("upstream_server_up", "1 when an upstream server of a route's pool is in rotation, 0 when it is out.",
		labelRoute, labelServer)
	buildInfo := gauge("build_info", "Always 1; the labels say which build runs.", "version", "revision", "goversion")
	buildInfo.WithLabelValues(opts.Version, opts.Revision, runtime.Version()).Set(1)
	buffered := opts.BufferedBytes
	if buffered == nil {
		buffered = func() float64 { return 0 }
	}
	p.resumes = counter("resumes_total", `Resumes of resumable sessions, by result: "resumed" or "refused_<close code>".`, labelResult)
	for _, r := range ResumeResults {
		p.resumes.WithLabelValues(r)
	}
	sessions, replayBytes := opts.ResumeSessions, opts.ResumeReplayBytes
	if sessions == nil {
		sessions = func() (float64, float64) { return 0, 0 }
	}
	if replayBytes == nil {
		replayBytes = func() float64 { return 0 }
	}
	p.names = append(p.names, Namespace+"_buffered_bytes", Namespace+"_resume_sessions", Namespace+"_resume_replay_bytes")
	sessionsHelp := "Live resumable sessions, by state: attached (client connected) or parked (waiting for its client)."
	p.reg.MustRegister(
		p.resumes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "resume_sessions", Help: sessionsHelp,
			ConstLabels: prometheus.Labels{"state": "attached"}}, func() float64 { a, _ := sessions(); return a }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "resume_sessions", Help: sessionsHelp,
			ConstLabels: prometheus.Labels{"state": "parked"}}, func() float64 { _, p := sessions(); return p }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "resume_replay_bytes",
			Help: "Bytes held in resumable sessions' replay buffers."}, replayBytes),
	)
	p.reg.MustRegister(
		p.pairsOpen, p.pairsClosed, p.handshakes, p.handshakeTime, p.httpRequests,
		p.pings, p.pongs, p.misses, p.rtt, p.relayedBytes, p.relayedFrames,
		draining, p.reloads, p.upstreamUp, buildInfo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "buffered_bytes",
			Help: "Bytes held in pairs' write buffers for sinks that are not keeping up."}, buffered),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	sort.Strings(p.names)
	// Both results exist from the start, so that a rate over them is 0
	// rather than absent before the first reload.
	p.reloads.WithLabelValues("ok")
	p.reloads.WithLabelValues("error")
	return p
}

// Names lists the names of the metrics wsalive itself registers (the Go
// and process collectors' go_* and process_* come on top), sorted. Tests
// check dashboards and documents against it.
func (p *Prometheus) Names() []string { return append([]string(nil), p.names...) }

// Registry is the registry every metric is on.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{
		// A collector that fails (the process collector on a platform
		// without /proc) must not take the others down.
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          p.reg,
		EnableOpenMetrics: true,
	})
}

// ConfigReload counts a reload attempt.
func (p *Prometheus) ConfigReload(ok bool) {
	if ok {
		p.reloads.WithLabelValues("ok").Inc()
	} else {
		p.reloads.WithLabelValues("error").Inc()
	}
}

// Draining sets wsalive_draining.
func (p *Prometheus) Draining(on bool) {
	if on {
		p.draining.Set(1)
	} else {
		p.draining.Set(0)
	}
}

// Resume counts a resume attempt by result (see ResumeCounter).
func (p *Prometheus) Resume(result string) { p.resumes.WithLabelValues(result).Inc() }

// UpstreamServerUp is the hook for upstream pools: it sets whether server
// (an address from the configuration, so the label stays bounded) of
// route's pool is in rotation. Nothing calls it until pools exist.
func (p *Prometheus) UpstreamServerUp(route, server string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	p.upstreamUp.WithLabelValues(route, server).Set(v)
}

// Route returns route's handle, creating it on first use. Every child
// metric whose labels are known in advance is resolved here, so the
// handle's per-pair and per-round methods do no label lookup.
func (p *Prometheus) Route(name string) Route {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.routes[name]; ok {
		return r
	}
	r := &promRoute{
		p:             p,
		name:          name,
		pairsOpen:     p.pairsOpen.WithLabelValues(name),
		handshakeTime: p.handshakeTime.WithLabelValues(name),
		closed:        map[string]prometheus.Counter{},
		results:       map[string]prometheus.Counter{},
		codes:         map[int]prometheus.Counter{},
	}
	for _, s := range []Side{Client, Upstream} {
		r.pings[s] = p.pings.WithLabelValues(name, s.String())
		r.pongs[s] = p.pongs.WithLabelValues(name, s.String())
		r.misses[s] = p.misses.WithLabelValues(name, s.String())
		r.rtt[s] = p.rtt.WithLabelValues(name, s.String())
	}
	for _, d := range []Direction{ToUpstream, ToClient} {
		r.bytes[d] = p.relayedBytes.WithLabelValues(name, d.String())
		r.frames[d] = p.relayedFrames.WithLabelValues(name, d.String())
	}
	p.routes[name] = r
	return r
}

// promRoute is one route's handle. The children keyed by a value only
// known at call time (a close reason, a handshake result, an HTTP code)
// are cached per handle on first use; each of those sets is small and
// closed, so the caches stay small.
type promRoute struct {
	p    *Prometheus
	name string

	pairsOpen     prometheus.Gauge
	handshakeTime prometheus.Observer
	pings         [2]prometheus.Counter
	pongs         [2]prometheus.Counter
	misses        [2]prometheus.Counter
	rtt           [2]prometheus.Observer
	bytes         [2]prometheus.Counter
	frames        [2]prometheus.Counter

	// mu guards the caches below; they are read far more than written.
	mu      sync.RWMutex
	closed  map[string]prometheus.Counter // by close reason
	results map[string]prometheus.Counter // by handshake result
	codes   map[int]prometheus.Counter    // by HTTP status code
}

func (r *promRoute) Handshake(result string, took time.Duration) {
	cachedCounter(&r.mu, r.results, result, func() prometheus.Counter {
		return r.p.handshakes.WithLabelValues(r.name, result)
	}).Inc()
	r.handshakeTime.Observe(took.Seconds())
}

func (r *promRoute) HTTPRequest(code int) {
	cachedCounter(&r.mu, r.codes, code, func() prometheus.Counter {
		return r.p.httpRequests.WithLabelValues(r.name, strconv.Itoa(code))
	}).Inc()
}

func (r *promRoute) PairOpened() { r.pairsOpen.Inc() }

func (r *promRoute) PairClosed(reason string) {
	r.pairsOpen.Dec()
	cachedCounter(&r.mu, r.closed, reason, func() prometheus.Counter {
		return r.p.pairsClosed.WithLabelValues(r.name, reason)
	}).Inc()
}

func (r *promRoute) Relayed(dir Direction, bytes, frames uint64) {
	// Whole numbers take the counter's integer path: one atomic add each.
	if bytes > 0 {
		r.bytes[dir&1].Add(float64(bytes))
	}
	if frames > 0 {
		r.frames[dir&1].Add(float64(frames))
	}
}

func (r *promRoute) Ping(side Side) { r.pings[side&1].Inc() }

func (r *promRoute) Pong(side Side, rtt time.Duration) {
	r.pongs[side&1].Inc()
	r.rtt[side&1].Observe(rtt.Seconds())
}

func (r *promRoute) Miss(side Side) { r.misses[side&1].Inc() }

// cachedCounter returns cache[key], resolving it with resolve and storing
// it on first use. A map lookup under a read lock allocates nothing, where
// a sync.Map would box every string key.
func cachedCounter[K comparable](mu *sync.RWMutex, cache map[K]prometheus.Counter, key K, resolve func() prometheus.Counter) prometheus.Counter {
	mu.RLock()
	c, ok := cache[key]
	mu.RUnlock()
	if ok {
		return c
	}
	mu.Lock()
	defer mu.Unlock()
	if c, ok := cache[key]; ok {
		return c
	}
	c = resolve()
	cache[key] = c
	return c
}
