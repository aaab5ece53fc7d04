package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// AdminHandler serves the admin endpoint: /healthz for liveness probes,
// /stats with the engine's gauges and, when s is not nil, the state of
// every route's upstream servers as JSON, and Go's pprof profiles under
// /debug/pprof/. It is meant for a loopback or otherwise private address.
func AdminHandler(e *relay.Engine, s *Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
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
		if s != nil {
			upstreams = s.UpstreamStates()
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
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
