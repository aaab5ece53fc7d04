package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wsalive/wsalive/config"
)

// Resolver looks up a host name's addresses; *net.Resolver implements it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// DialFunc dials one address, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Options are a Pool's settings beyond its servers. The zero value is
// round robin with the real clock, resolver and dialer.
type Options struct {
	Balance config.Balance // "" means round robin
	HashKey config.HashKey // what Key reads for balance "hash"
	// DNSTTL is how long a name's addresses are reused; 0 resolves on
	// every dial.
	DNSTTL time.Duration
	// Now, Resolver and Dial stand in for time.Now, net.DefaultResolver
	// and a net.Dialer in tests.
	Now      func() time.Time
	Resolver Resolver
	Dial     DialFunc
	// Handshake, when set, runs on every new connection before Dial
	// returns it (the TLS handshake toward a wss:// server). Its failure
	// counts as a failed dial of that server, and the next one is tried,
	// as for a refused connection; conn is closed by the pool then.
	Handshake func(ctx context.Context, conn net.Conn, srv config.UpstreamServer) (net.Conn, error)
}

// minAttemptTimeout is the least time one server's dial gets when a
// deadline is shared among several servers (net.Dialer uses the same
// floor when it splits a deadline among addresses): a share smaller than
// a slow round trip would fail a healthy server.
const minAttemptTimeout = 2 * time.Second

// Pool is a route's set of upstream servers. Its methods are safe for
// concurrent use.
type Pool struct {
	balance  config.Balance
	hashKey  config.HashKey
	ttl      time.Duration
	now      func() time.Time
	resolver Resolver
	dial     DialFunc
	shake    func(ctx context.Context, conn net.Conn, srv config.UpstreamServer) (net.Conn, error)
	// weighted is set when some server's weight is not 1; the cheaper
	// unweighted orders are used otherwise.
	weighted bool

	mu      sync.Mutex
	servers []*server
	next    uint64 // round robin position
	// waiting, when set (by tests), is called by a dial that waits for
	// another's lookup of the same name.
	waiting func()

	// live counts the live pairs per upstream remote address and server
	// (two server names may resolve to the same address).
	live map[liveKey]int
}

type liveKey struct {
	remote string
	server *server
}

// server is one server and its state; the fields below cfg are guarded by
// Pool.mu.
type server struct {
	cfg        config.UpstreamServer
	host, port string
	literal    bool   // host is an IP address: nothing to resolve
	id         uint64 // hash of the address, for rendezvous hashing
	weight     int    // cfg.Weight, at least 1
	current    int    // smooth weighted round robin's running weight

	fails     int       // failed dials in the window that began at firstFail
	firstFail time.Time //
	downUntil time.Time // skipped before this
	lastErr   error
	pairs     int
	addrs     []string  // resolved addresses, when not literal
	expires   time.Time // when addrs are to be resolved again
	nextAddr  int       // rotates among addrs
	inflight  *lookup   // the lookup of host in progress, if any
}

// New returns a pool of servers, which must not be empty (the config
// package guarantees it for a route).
func New(servers []config.UpstreamServer, o Options) *Pool {
	p := &Pool{
		balance:  o.Balance,
		hashKey:  o.HashKey,
		ttl:      o.DNSTTL,
		now:      o.Now,
		resolver: o.Resolver,
		dial:     o.Dial,
		shake:    o.Handshake,
		live:     map[liveKey]int{},
	}
	if p.balance == "" {
		p.balance = config.BalanceRoundRobin
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if p.dial == nil {
		var d net.Dialer
		p.dial = d.DialContext
	}
	for _, cfg := range servers {
		s := &server{cfg: cfg, id: hashString(cfg.Address), weight: max(cfg.Weight, 1)}
		p.weighted = p.weighted || s.weight != 1
		s.host, s.port, _ = net.SplitHostPort(cfg.Address)
		_, err := netip.ParseAddr(s.host)
		s.literal = err == nil
		p.servers = append(p.servers, s)
	}
	return p
}

// Key returns what balance "hash" hashes for req: the configured header,
// cookie or query parameter, or clientIP (the client's trusted address).
// A request without the configured value falls back to clientIP, so that
// a client is still sticky before it has, say, its session cookie. With
// another balance Key returns "" without looking at req.
func (p *Pool) Key(req *http.Request, clientIP string) string {
	if p.balance != config.BalanceHash {
		return ""
	}
	var v string
	switch p.hashKey.Source {
	case config.HashHeader:
		v = req.Header.Get(p.hashKey.Name)
	case config.HashCookie:
		if c, err := req.Cookie(p.hashKey.Name); err == nil {
			v = c.Value
		}
	case config.HashQuery:
		if req.URL != nil {
			v = req.URL.Query().Get(p.hashKey.Name)
		}
	}
	if v == "" {
		return clientIP
	}
	return v
}

// DialError is a Dial that found no server to connect to. It unwraps to
// the last server's error, which decides what the client is told (a
// timeout or not).
type DialError struct {
	// Tried lists each server tried, in order, with its error.
	Tried []error
}

func (e *DialError) Error() string {
	if len(e.Tried) == 1 {
		return e.Tried[0].Error()
	}
	parts := make([]string, len(e.Tried))
	for i, err := range e.Tried {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("all %d servers failed: %s", len(e.Tried), strings.Join(parts, "; "))
}

func (e *DialError) Unwrap() error { return e.Tried[len(e.Tried)-1] }

// Picked is the server a Dial reached.
type Picked struct {
	// Server is the server's configuration; its Address is the host to
	// name in the request.
	Server config.UpstreamServer
	// Remote is the connection's remote address, as its RemoteAddr gives
	// it (and relay.PairStats.UpstreamAddr reports it): what Release takes.
	Remote string
}

// Dial connects to a server of the pool, chosen by the balance for key
// (see Key), within ctx. A server that cannot be resolved or connected to
// (refused, reset, unreachable, timed out) counts as a failed dial and the
// next one is tried; when ctx has a deadline, each try gets a fair share
// of what remains of it. Only connecting is retried: what happens on the
// connection afterwards, an HTTP answer in particular, is the caller's.
//
// On success it returns the connection and the server it reached. The
// connection counts as a live pair of that server until Release is called
// with Picked.Remote; the caller must do so exactly once, whether the pair
// is relayed or given up.
func (p *Pool) Dial(ctx context.Context, key string) (net.Conn, Picked, error) {
	order := p.order(key)
	var tried []error
	for i, s := range order {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok && i < len(order)-1 {
			actx, cancel = context.WithTimeout(ctx, AttemptTimeout(time.Until(deadline), len(order)-i))
		}
		conn, addr, err := p.dialServer(actx, s)
		cancel()
		if err == nil {
			remote := remoteString(conn, addr)
			p.connected(s, remote)
			return conn, Picked{Server: s.cfg, Remote: remote}, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// No time left for another server. Reported as ctx's error,
			// which tells a timeout (504) from a shutdown (503); only a
			// timeout is the server's fault.
			tried = append(tried, fmt.Errorf("%s: %w", s.cfg.Address, cerr))
			if errors.Is(cerr, context.DeadlineExceeded) {
				p.failed(s, err)
			}
			break
		}
		tried = append(tried, fmt.Errorf("%s: %w", s.cfg.Address, err))
		p.failed(s, err)
	}
	return nil, Picked{}, &DialError{Tried: tried}
}

// AttemptTimeout is the share of left, the time that remains of a dial's
// deadline, that the next of servers servers gets: an equal share, but no
// less than minAttemptTimeout (or all of left when less remains), so that
// a server that never answers cannot use up the time of the others while
// a slow but healthy one still gets a fair chance.
func AttemptTimeout(left time.Duration, servers int) time.Duration {
	return max(left/time.Duration(servers), min(left, minAttemptTimeout))
}

// dialServer connects to s; addr is the address it dialed.
func (p *Pool) dialServer(ctx context.Context, s *server) (conn net.Conn, addr string, err error) {
	addr, err = p.resolve(ctx, s)
	if err != nil {
		return nil, "", err
	}
	conn, err = p.dial(ctx, "tcp", addr)
	if err != nil || p.shake == nil {
		return conn, addr, err
	}
	tc, err := p.shake(ctx, conn, s.cfg)
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return tc, addr, nil
}

// remoteString is conn.RemoteAddr().String(), the key a pair is counted
// under, without formatting it anew on every dial: when the address
// dialed is already that string (an IP address and port in the form
// net.TCPAddr.String writes, the usual case), it is returned.
func remoteString(conn net.Conn, dialed string) string {
	ra := conn.RemoteAddr()
	ta, ok := ra.(*net.TCPAddr)
	if !ok || ta.Zone != "" {
		return ra.String()
	}
	ap, err := netip.ParseAddrPort(dialed)
	if err != nil || ap.Addr().Zone() != "" || ap.Addr().Is4In6() ||
		ap.Port() != uint16(ta.Port) || ap.Addr() != ta.AddrPort().Addr().Unmap() {
		return ra.String()
	}
	// net.TCPAddr.String writes the IP as net.IP.String does, which is
	// netip's form for a 4-byte or an unmapped 16-byte address; only a
	// dialed string in that exact form (no leading zeros, no upper-case
	// hex, brackets for IPv6) is the same string.
	var buf [64]byte
	if string(ap.AppendTo(buf[:0])) != dialed {
		return ra.String()
	}
	return dialed
}

// Pick returns the server a request with key (see Key) goes to when it
// does not dial through the pool: the first of the balance's order,
// skipping servers that failed recently as Dial does. Plain HTTP requests
// use it, so that they land where the same client's WebSocket does; their
// transport dials, and reports a failed dial with Failed.
func (p *Pool) Pick(key string) config.UpstreamServer {
	return p.order(key)[0].cfg
}

// PickOther returns the server a request with key goes to when the ones
// at tried failed their dials: the first of the balance's order (as Pick,
// skipped servers set apart) that is not among them. ok is false when
// there is no other server.
func (p *Pool) PickOther(key string, tried ...string) (srv config.UpstreamServer, ok bool) {
	// The request's turn was taken by Pick: this one does not move round
	// robin on, or a server that always fails would always be first.
	for _, s := range p.orderFor(key, false) {
		if !slices.Contains(tried, s.cfg.Address) {
			return s.cfg, true
		}
	}
	return config.UpstreamServer{}, false
}

// Release ends the live pair whose upstream connection's remote address
// is upstreamAddr. An address the pool does not know is ignored: a pair
// of another route's pool, or one already released.
func (p *Pool) Release(upstreamAddr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		k := liveKey{upstreamAddr, s}
		switch n := p.live[k]; n {
		case 0:
			continue
		case 1:
			delete(p.live, k)
		default:
			p.live[k] = n - 1
		}
		s.pairs--
		return
	}
}

// Failed records that the server at address (as Dial returned it) failed
// after the connection was made, without an HTTP answer: a handshake that
// timed out, was reset, or was not HTTP. It counts toward max_fails like a
// failed dial, but is not retried: the request has been sent. An answer
// of any status, and a handshake abandoned by the caller (shutdown), are
// not the server's failure and must not be reported.
func (p *Pool) Failed(address string, err error) {
	for _, s := range p.servers { // fixed after New
		if s.cfg.Address == address {
			p.failed(s, err)
			return
		}
	}
}

// connected records a successful dial to s: its failures are forgiven,
// and the connection counts as a live pair.
func (p *Pool) connected(s *server, remote string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.fails, s.lastErr = 0, nil
	s.pairs++
	p.live[liveKey{remote, s}]++
}

// failed records a failed dial to s. MaxFails failures within
// FailTimeout of the first get s skipped for FailTimeout.
func (p *Pool) failed(s *server, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.lastErr = err
	if s.cfg.MaxFails <= 0 {
		return
	}
	now := p.now()
	if s.fails > 0 && !now.Before(s.firstFail.Add(s.cfg.FailTimeout)) {
		s.fails = 0 // the window of the earlier failures has passed
	}
	if s.fails == 0 {
		s.firstFail = now
	}
	s.fails++
	if s.fails >= s.cfg.MaxFails {
		s.downUntil = now.Add(s.cfg.FailTimeout)
	}
}

// order returns the servers to try for key: the primaries that are not
// skipped, in the balance's order, then the backups that are not. When
// every server is skipped, all of them are tried in that order rather
// than none: failing every handshake until a timer runs out would turn a
// blip into an outage, and a single server is never skipped at all
// (nginx ignores max_fails for it too).
func (p *Pool) order(key string) []*server {
	return p.orderFor(key, true)
}

// orderFor is order; advance says whether this is a pick of its own, which
// moves round robin on (not a second choice for the same request).
func (p *Pool) orderFor(key string, advance bool) []*server {
	if len(p.servers) == 1 {
		return p.servers // nothing to choose, and never skipped
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	start := p.next
	if advance {
		p.next++
	}
	var up, skipped []*server
	for _, backup := range []bool{false, true} {
		var groupUp, groupSkipped []*server
		for _, s := range p.servers {
			switch {
			case s.cfg.Backup != backup:
			case now.Before(s.downUntil):
				groupSkipped = append(groupSkipped, s)
			default:
				groupUp = append(groupUp, s)
			}
		}
		// Sorted after the skipped ones are set apart, so that round
		// robin turns among the servers it may use and stays even.
		p.sort(groupUp, key, start, advance)
		p.sort(groupSkipped, key, start, false)
		up = append(up, groupUp...)
		skipped = append(skipped, groupSkipped...)
	}
	if len(up) == 0 {
		return skipped
	}
	return up
}

// sort puts group in the balance's order for key; start is the round
// robin position of this pick, and advance says whether this is the group
// the pick will be made from (smooth weighted round robin moves on then).
func (p *Pool) sort(group []*server, key string, start uint64, advance bool) {
	if len(group) < 2 {
		return
	}
	switch p.balance {
	case config.BalanceHash:
		k := hashString(key)
		if !p.weighted {
			slices.SortFunc(group, func(a, b *server) int {
				return cmp.Compare(score(k, b.id), score(k, a.id))
			})
			return
		}
		slices.SortFunc(group, func(a, b *server) int {
			return cmp.Compare(weightedScore(k, b), weightedScore(k, a))
		})
	case config.BalanceLeastPairs:
		// Rotated first, so that servers with equal loads take turns
		// instead of the first one taking every tie. A server's load is
		// its pairs over its weight, compared without dividing.
		rotate(group, start)
		slices.SortStableFunc(group, func(a, b *server) int {
			return cmp.Compare(a.pairs*b.weight, b.pairs*a.weight)
		})
	default:
		if !p.weighted || !advance {
			rotate(group, start)
			return
		}
		smoothWeighted(group)
	}
}

// smoothWeighted orders group by nginx's smooth weighted round robin: each
// pick adds every server's weight to its running weight, takes the server
// with the highest, and takes the group's total weight off it. Over any
// run of total-weight picks each server is taken exactly weight times,
// interleaved (5, 1, 1 gives a a b a c a a, not a a a a a b c). The other
// servers follow in order of their running weight: who would be next.
func smoothWeighted(group []*server) {
	total := 0
	for _, s := range group {
		s.current += s.weight
		total += s.weight
	}
	slices.SortStableFunc(group, func(a, b *server) int { return cmp.Compare(b.current, a.current) })
	group[0].current -= total
}

// weightedScore is s's weighted rendezvous score for key k: weight over
// -ln(u), with u the server's hash for the key taken to (0, 1). The
// server with the highest score wins a key with probability proportional
// to its weight, and a change of one server's weight moves only keys to
// or from that server.
func weightedScore(k uint64, s *server) float64 {
	u := (float64(score(k, s.id)>>11) + 0.5) / (1 << 53)
	return float64(s.weight) / -math.Log(u)
}

// rotate turns group left by start modulo its length.
func rotate(group []*server, start uint64) {
	n := int(start % uint64(len(group)))
	slices.Reverse(group[:n])
	slices.Reverse(group[n:])
	slices.Reverse(group)
}

// ForRoute returns the pool of route r: its Servers, balance, hash key and
// DNS TTL. A route built in code with only Upstream set (tests, callers
// that predate pools) gets a pool of that one server.
func ForRoute(r *config.Route, o Options) *Pool {
	o.Balance, o.HashKey, o.DNSTTL = r.Balance, r.HashKey, r.DNSTTL
	if o.HashKey.Source == "" {
		o.HashKey.Source = config.DefaultHashKey
	}
	servers := r.Servers
	if len(servers) == 0 {
		servers = []config.UpstreamServer{{
			Upstream:    r.Upstream,
			MaxFails:    config.DefaultMaxFails,
			FailTimeout: config.DefaultFailTimeout,
			Weight:      config.DefaultWeight,
		}}
	}
	return New(servers, o)
}
