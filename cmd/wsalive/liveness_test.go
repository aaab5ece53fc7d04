package main

import "github.com/wsalive/wsalive/proxy/relay"

// The engine's loop probe is registered for /healthz only if the engine
// has the method engineLiveness names; a change of its signature would
// drop the check silently, so it is pinned here at compile time.
var _ engineLiveness = (*relay.Engine)(nil)
