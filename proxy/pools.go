package proxy

import (
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// releasePool tells the route's upstream pool that a pair it counted has
// ended, so that balance "least_pairs" sees live counts (see PairClosed).
// The report is matched to the pool by route name and upstream address.
// A pair attached before SetRoutes is known to the new table's pool when
// its server kept its address (pool.Adopt); one whose server left the
// route, or that was in handshake during the reload, is ignored.
func (s *Server) releasePool(st relay.PairStats) {
	for route, rs := range s.table.Load().states {
		if route.Name == st.Route {
			rs.pool.Release(st.UpstreamAddr)
			return
		}
	}
}

// UpstreamStates returns the state of every route's upstream servers, by
// route name, for the admin endpoint's /stats.
func (s *Server) UpstreamStates() map[string][]pool.ServerState {
	states := s.table.Load().states
	out := make(map[string][]pool.ServerState, len(states))
	for route, rs := range states {
		out[route.Name] = rs.pool.States()
	}
	return out
}

// UpstreamServers returns the state of every route's upstream servers for
// the metrics (metrics.PrometheusOptions.UpstreamServers): the same
// figures as UpstreamStates, read at scrape time.
func (s *Server) UpstreamServers() []metrics.UpstreamServer {
	var out []metrics.UpstreamServer
	for route, rs := range s.table.Load().states {
		for _, st := range rs.pool.States() {
			out = append(out, metrics.UpstreamServer{
				Route: route.Name, Server: st.Address,
				Up: st.State == "up", Pairs: st.Pairs, Fails: st.Fails,
			})
		}
	}
	return out
}
