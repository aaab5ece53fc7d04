package proxy

import (
	"github.com/wsalive/wsalive/proxy/pool"
	"github.com/wsalive/wsalive/proxy/relay"
)

// PairClosed tells the route's upstream pool that a pair it counted has
// ended, so that balance "least_pairs" sees live counts. Give it every
// report of the relay engine (relay.Options.OnClose): the engine only
// reports what happened, and the server matches the report to its pool by
// route name and upstream address.
func (s *Server) PairClosed(st relay.PairStats) {
	for route, rs := range s.routes {
		if route.Name == st.Route {
			rs.pool.Release(st.UpstreamAddr)
			return
		}
	}
}

// UpstreamStates returns the state of every route's upstream servers, by
// route name, for the admin endpoint's /stats.
func (s *Server) UpstreamStates() map[string][]pool.ServerState {
	out := make(map[string][]pool.ServerState, len(s.routes))
	for route, rs := range s.routes {
		out[route.Name] = rs.pool.States()
	}
	return out
}
