// Package wsload is the load generator of wsalive's benchmarks: it opens
// many WebSocket client connections to a URL and either holds them idle or
// keeps verified echo traffic on them, and reports what it saw. The binary
// is bench/cmd/wsload; this package holds its logic so that tests can drive
// it against an in-process server.
//
// Load modes:
//
//   - idle: open N connections (rate-limited, with a bounded number of
//     dials in flight), report handshake latency and failures, then hold
//     them without traffic, answering any ping, until a hold time elapses or
//     the run is interrupted; then close them all with a close handshake.
//     This is the scenario of "memory per idle pair" and of heartbeats at
//     scale, where the proxy is what is measured.
//
//   - echo: open N connections, keep K binary messages of a given size in
//     flight on each, check every echo byte for byte, and report messages
//     per second and round-trip percentiles.
//
//   - churn: open N connections at a steady rate, each exchanging one
//     verified message and closing with a close handshake at once: the cost
//     of connection setup and teardown (churn.go).
//
//   - floor: no target; bare loopback write+read round trips in this
//     process, the CPU floor a proxy's ping-pong is compared to (floor.go).
//
// Idle, echo and churn run on wsload's own client (gobwas/ws) or, with
// Config.Client = ClientGorilla, on gorilla/websocket's (gorilla.go), so
// that a result can be checked with a client that shares nothing with the
// proxy.
//
// Two more modes measure liveness rather than load (Linux, root; see
// blackhole.go):
//
//   - blackhole-client: start the proxy under test (-proxy-bin, with a
//     configuration template), put N clients in a network namespace behind
//     a veth pair, and once every pair is up drop all traffic of the
//     namespace with iptables: the clients vanish without FIN or RST. A
//     backend that records every close frame it gets reports when, after
//     the blackhole, the proxy closed each pair and with which code.
//   - blackhole-upstream: the mirror, with the backend in the namespace
//     and the clients recording what the proxy sends them.
//
// Limits of one process. Every connection is one file descriptor. Run
// raises the soft RLIMIT_NOFILE to the hard limit (RaiseFileLimit) and
// refuses an N that cannot fit under it; on the benchmark machines the hard
// limit is 20,000 per process, so N above about 18,000 needs several wsload
// processes, each with its share of connections. Ephemeral ports are the
// other limit: about 28,000 per source address toward one destination, so
// toward a loopback target each connection binds a different 127.0.0.X
// (see ParseSrcIPs).
//
// The load tool runs one goroutine per connection (two in echo mode). That
// costs it memory, not the system under test; what is measured is the
// proxy, in its own process.
package wsload
