// Package pool picks the upstream server of a route for each handshake,
// dials it, and fails over to the next server when the dial fails.
//
// A Pool holds a route's servers and what it has learned about them: the
// failed dials that get a server skipped (passive health, as nginx's
// max_fails and fail_timeout), the number of live pairs each one relays
// (for balance "least_pairs"), and the addresses its name resolved to (a
// bounded DNS cache). Dial tries the servers in the order the balance
// gives, primaries first, then backups, all within the caller's deadline.
//
// The pool does not know about pairs by itself: the caller reports each
// pair's end with Release, passing the upstream address the relay engine
// reports (relay.PairStats.UpstreamAddr, the connection's remote address),
// so that the engine never calls into the proxy.
//
// Hashing is rendezvous (highest random weight) hashing: each server's
// score for a key is a hash of the key and the server's address, and the
// servers are tried from the highest score down. Adding a server moves
// exactly the keys it now wins, about 1/N of them; removing or skipping
// one moves only its own keys, each to its second choice. Unlike a hash
// ring it needs no virtual nodes to spread keys evenly, holds no table,
// and gives the failover order for free. Its cost, one hash per server per
// pick, is nothing next to a TCP dial for the few servers a route has.
// With weights the score is weight / -ln(u), u the hash taken to (0, 1),
// which gives each server keys in proportion to its weight. Round robin
// with weights is nginx's smooth weighted round robin.
package pool
