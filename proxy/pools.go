package proxy

import (
	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// releasePool tells the route's upstream pool that a pair it counted has
// ended, so that balance "least_pairs" sees live counts (see PairClosed).
// The report is matched to the pool by route name and upstream address. A
// pair attached before SetRoutes was counted by the old table's pool; the
// new pool does not know its address and ignores it.
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
