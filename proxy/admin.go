package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// EngineStats is what /stats reads from the relay engine; *relay.Engine
// implements it.
type EngineStats interface {
	Stats() relay.Stats
	Closed(relay.Reason) uint64
}

// AdminOptions says what the admin endpoint serves. Every field is
// optional; an endpoint whose source is nil answers 404.
type AdminOptions struct {
	// Engine feeds /stats.
	Engine EngineStats
	// Metrics serves /metrics (the Prometheus handler).
	Metrics http.Handler
	// Ready decides /readyz: nil error is 200, else 503 with the error's
	// text. It follows the process's state: not ready while starting or
	// draining.
	Ready func() error
	// Live decides /healthz: nil error is 200, else 503. It fails when the
	// process is stuck (an event loop that stopped turning), which is what
	// a liveness probe restarts a container for; draining is not a
	// liveness failure.
	Live func() error
	// Drain starts the process's drain (or joins the one under way) and
	// returns when it is complete, with a summary to answer. It serves
	// POST /drain, and GET /drain too: a Kubernetes preStop httpGet hook
	// can only send GET.
	Drain func(ctx context.Context) (any, error)
	// Upstreams, when set, adds each route's upstream servers to /stats.
	Upstreams func() map[string][]pool.ServerState
	// Pprof adds Go's profiles under /debug/pprof/. Off by default: a
	// profile exposes memory contents and costs CPU, which is not for a
	// listener reachable from the pod network.
	Pprof bool
}

// AdminHandler serves the admin endpoint: /readyz and /healthz for probes,
// /metrics for Prometheus, /stats with the engine's gauges as JSON, /drain,
// and pprof when enabled. It is meant for a loopback or otherwise private
// address.
func AdminHandler(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", probe(o.Live))
	mux.HandleFunc("GET /readyz", probe(o.Ready))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Drain != nil {
		drain := func(w http.ResponseWriter, r *http.Request) {
			report, err := o.Drain(r.Context())
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				json.NewEncoder(w).Encode(struct {
					Error  string `json:"error"`
					Report any    `json:"report,omitempty"`
				}{err.Error(), report})
				return
			}
			json.NewEncoder(w).Encode(report)
		}
		mux.HandleFunc("POST /drain", drain)
		mux.HandleFunc("GET /drain", drain)
	}
	if e := o.Engine; e != nil {
		mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
			st := e.Stats()
			closed := map[string]uint64{}
			for _, rs := range relay.Reasons() {
				closed[rs.String()] = e.Closed(rs)
			}
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			var upstreams map[string][]pool.ServerState
			if o.Upstreams != nil {
				upstreams = o.Upstreams()
			}
			enc.Encode(struct {
				Pairs         int64             `json:"pairs"`
				BufferedBytes int64             `json:"buffered_bytes"`
				Goroutines    int               `json:"goroutines"`
				Loops         int               `json:"loops"`
				IOUringLoops  int               `json:"io_uring_loops"`
				ClosedPairs   map[string]uint64 `json:"closed_pairs"`
				// Upstreams holds each route's servers, by route name.
				Upstreams map[string][]pool.ServerState `json:"upstreams,omitempty"`
			}{st.Pairs, st.BufferedBytes, runtime.NumGoroutine(), st.Loops, st.IOUringLoops, closed, upstreams})
		})
	}
	if o.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// probe answers 200 "ok" when check passes (or is nil), else 503 with the
// reason, so that `curl` and a probe's event log say why.
func probe(check func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if check != nil {
			if err := check(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(err.Error() + "\n"))
				return
			}
		}
		w.Write([]byte("ok\n"))
	}
}
