package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// retryAfter is the Retry-After, in seconds, of a 503 for a full route:
// long enough that a crowd of reconnecting clients does not hammer it,
// short enough that a client retries once a pair has ended.
const retryAfter = 5

// busy is the answer to a handshake a limit refused.
func busy(msg string) *rejection {
	return &rejection{
		status: http.StatusServiceUnavailable,
		header: http.Header{"Retry-After": {strconv.Itoa(retryAfter)}},
		msg:    msg,
	}
}

// connSlot is one client connection counted against its listener's
// max_connections. It is released exactly once, by whoever owns the
// connection when it ends: the handshake that fails, the HTTP server's
// connection, or the pair (through Server.PairClosed). A nil slot counts
// nothing (no bound configured).
type connSlot struct {
	live     *atomic.Int64
	released atomic.Bool
}

func (s *connSlot) release() {
	if s != nil && s.released.CompareAndSwap(false, true) {
		s.live.Add(-1)
	}
}

// connLimit is a listener's max_connections.
type connLimit struct {
	max  int64
	live atomic.Int64
}

// acquire takes a slot, or reports that the listener is full. With no
// bound it returns nil, true.
func (l *connLimit) acquire() (*connSlot, bool) {
	if l.max <= 0 {
		return nil, true
	}
	if l.live.Add(1) > l.max {
		l.live.Add(-1)
		return nil, false
	}
	return &connSlot{live: &l.live}, true
}

// handshakeLimit bounds the connections that have not finished their
// first request head: a slowloris client holds a goroutine, a descriptor
// and a head buffer for each (issue 12). The per-client bound is on the
// peer's address: nothing of the head, so no forwarded address, is known
// yet.
type handshakeLimit struct {
	max, perIP int
	mu         sync.Mutex
	n          int
	byIP       map[string]int
}

func newHandshakeLimit(l config.Limits) *handshakeLimit {
	if l.MaxHandshakes <= 0 {
		l.MaxHandshakes = config.DefaultMaxHandshakes
	}
	if l.MaxHandshakesPerClientIP <= 0 {
		l.MaxHandshakesPerClientIP = config.DefaultMaxHandshakesPerClientIP
	}
	return &handshakeLimit{max: l.MaxHandshakes, perIP: l.MaxHandshakesPerClientIP, byIP: map[string]int{}}
}

// acquire counts a connection from ip in handshake; the reason is "" on
// success.
func (h *handshakeLimit) acquire(ip string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n >= h.max {
		return "too many connections in handshake"
	}
	if h.byIP[ip] >= h.perIP {
		return "too many connections in handshake from this address"
	}
	h.n++
	h.byIP[ip]++
	return ""
}

func (h *handshakeLimit) release(ip string) {
	h.mu.Lock()
	h.n--
	if n := h.byIP[ip] - 1; n > 0 {
		h.byIP[ip] = n
	} else {
		delete(h.byIP, ip)
	}
	h.mu.Unlock()
}

// inHandshake returns how many connections are in handshake.
func (h *handshakeLimit) inHandshake() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// pairCounter counts live pairs per route and per route and client IP,
// for max_pairs and max_pairs_per_client_ip. A handshake reserves its
// place before it dials (so that concurrent handshakes cannot overshoot),
// records the pair before handing it to the relay, and the relay's report
// of the pair's end (relay.Options.OnClose, wired by the owner to
// Server.PairClosed) gives the place back. The engine never calls into
// the proxy: it reports what happened, and its owner passes it on.
//
// Pairs are found again by route and client address, the two things
// PairStats carries that the handoff fixed; the address is unique among
// live connections. A resumable session's pair is different: its client
// connection changes when it resumes, and while it waits for its client
// the address it had may be reused by another connection. So once the
// relay has given it an ID, it is found by that ID alone.
//
// An entry is held for every idle pair, so it is kept small and holds no
// allocation of its own (issue 14): the route is an index, the address a
// value. Most pairs are plain: their client IP is their address's own
// text and their connection holds no listener slot, so nothing but the
// key needs keeping, and the key has no pointer: plain holds them, 20
// bytes a slot, which the collector does not scan. live holds the others
// (a forwarded client's IP, a slot, a zoned address).
type pairCounter struct {
	mu     sync.Mutex
	routes map[string]*routePairs
	plain  map[plainKey]struct{}
	live   map[pairKey]livePair
	// sessions holds the pairs of resumable sessions by pair ID.
	sessions map[uint64]livePair
}

type routePairs struct {
	n    int
	byIP map[string]int
	// index stands for the route name in pairKey; routePairs are never
	// removed, so it stays unique.
	index uint32
}

// pairKey finds a live pair again: the route's index and the client's
// address (unmapped, with its zone), 32 bytes. The address is kept as a
// value, not as text: formatting it per handshake would cost two
// allocations, while parsing PairStats.ClientAddr happens once per pair,
// off the hot path.
type pairKey struct {
	ip    netip.Addr
	port  uint16
	route uint32
}

// plainKey is a pairKey without a zone, in 20 bytes with no pointer.
type plainKey struct {
	ip    [16]byte // As16 of an unmapped address: IPv4 and IPv6 stay apart
	port  uint16
	route uint16
}

// plain returns k as a plainKey, unless k has a zone, a large index, or
// an IPv4-mapped address (callers unmap; its As16 would be an IPv4's).
func (k pairKey) plain() (plainKey, bool) {
	if k.ip.Zone() != "" || !k.ip.IsValid() || k.ip.Is4In6() || k.route > 0xffff {
		return plainKey{}, false
	}
	return plainKey{ip: k.ip.As16(), port: k.port, route: uint16(k.route)}, true
}

// addrPortOf returns c's remote address as a comparable value.
func addrPortOf(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

type livePair struct {
	// clientIP is the text the pair was reserved under; "" when it is
	// the text of its key's address, as it is for every client not
	// forwarded by a trusted proxy.
	clientIP string
	slot     *connSlot
}

func newPairCounter() *pairCounter {
	return &pairCounter{
		routes:   map[string]*routePairs{},
		plain:    map[plainKey]struct{}{},
		live:     map[pairKey]livePair{},
		sessions: map[uint64]livePair{},
	}
}

// reserve counts one more pair of route from ip, unless a limit is
// reached: the reason is then the 503's message.
func (pc *pairCounter) reserve(route *config.Route, ip string) string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	rp := pc.routes[route.Name]
	if rp == nil {
		rp = &routePairs{byIP: map[string]int{}, index: uint32(len(pc.routes))}
		pc.routes[route.Name] = rp
	}
	if route.MaxPairs > 0 && rp.n >= route.MaxPairs {
		return "route at its max_pairs"
	}
	if route.MaxPairsPerClientIP > 0 && rp.byIP[ip] >= route.MaxPairsPerClientIP {
		return "too many pairs from this client address"
	}
	rp.n++
	rp.byIP[ip]++
	return ""
}

// unreserve gives back a reservation whose handshake failed.
func (pc *pairCounter) unreserve(route, ip string) {
	pc.mu.Lock()
	pc.unreserveLocked(pc.routes[route], ip)
	pc.mu.Unlock()
}

func (pc *pairCounter) unreserveLocked(rp *routePairs, ip string) {
	if rp == nil {
		return
	}
	rp.n--
	if n := rp.byIP[ip] - 1; n > 0 {
		rp.byIP[ip] = n
	} else {
		delete(rp.byIP, ip)
	}
	// rp stays when it reaches zero: recreating it (and its map) for the
	// next handshake would cost two allocations each time a route goes
	// idle and back; there is one per route name ever served.
}

// key returns the key of route's pair from clientAddr; ok is false when
// route has no reservation at all. pc.mu is held.
func (pc *pairCounter) key(route string, clientAddr netip.AddrPort) (pairKey, *routePairs, bool) {
	rp := pc.routes[route]
	if rp == nil {
		return pairKey{}, nil, false
	}
	return pairKey{ip: clientAddr.Addr(), port: clientAddr.Port(), route: rp.index}, rp, true
}

// isAddrText reports whether ip is exactly the text of a, without
// formatting a on the heap.
func isAddrText(ip string, a netip.Addr) bool {
	var buf [64]byte
	return string(a.AppendTo(buf[:0])) == ip
}

// ipOf returns the client IP p was reserved under.
func (p livePair) ipOf(k pairKey) string {
	if p.clientIP != "" {
		return p.clientIP
	}
	return k.ip.String()
}

// attach records a reserved pair about to be handed to the relay, with
// the listener slot its client connection holds.
func (pc *pairCounter) attach(route string, clientAddr netip.AddrPort, ip string, slot *connSlot) {
	pc.mu.Lock()
	if k, _, ok := pc.key(route, clientAddr); ok {
		if isAddrText(ip, k.ip) {
			ip = "" // not kept for the pair's life: it is the key's
		}
		if pk, ok := k.plain(); ok && ip == "" && slot == nil {
			pc.plain[pk] = struct{}{}
		} else {
			pc.live[k] = livePair{clientIP: ip, slot: slot}
		}
	}
	pc.mu.Unlock()
}

// take removes the pair recorded under k and returns it. pc.mu is held.
func (pc *pairCounter) take(k pairKey) (livePair, bool) {
	if pk, ok := k.plain(); ok {
		if _, ok := pc.plain[pk]; ok {
			delete(pc.plain, pk)
			return livePair{}, true
		}
	}
	p, ok := pc.live[k]
	if ok {
		delete(pc.live, k)
	}
	return p, ok
}

// identify moves the pair of a resumable session, attached with
// clientAddr, to the sessions found by ID, unless it has ended already.
func (pc *pairCounter) identify(route string, clientAddr netip.AddrPort, id uint64) {
	pc.mu.Lock()
	if k, _, ok := pc.key(route, clientAddr); ok {
		if p, ok := pc.take(k); ok {
			// Its client address changes when it resumes.
			p.clientIP = p.ipOf(k)
			pc.sessions[id] = p
		}
	}
	pc.mu.Unlock()
}

// resumed records that the session's pair id now runs with a client
// connection holding slot: the pair keeps its place against max_pairs,
// and the new connection's slot replaces the old one's, which is given
// back. A pair that ended meanwhile gives back the new slot instead.
func (pc *pairCounter) resumed(id uint64, slot *connSlot) {
	pc.mu.Lock()
	p, ok := pc.sessions[id]
	if ok {
		old := p.slot
		p.slot = slot
		pc.sessions[id] = p
		slot = old
	}
	pc.mu.Unlock()
	slot.release()
}

// closed ends a recorded pair, a session's found by its ID, any other by
// its client address: its reservation and its slot are given back. It
// reports whether the pair was known.
func (pc *pairCounter) closed(route string, clientAddr netip.AddrPort, id uint64) bool {
	pc.mu.Lock()
	p, ok := pc.sessions[id]
	rp := pc.routes[route]
	ip := p.clientIP
	if ok {
		delete(pc.sessions, id)
	} else if k, _, known := pc.key(route, clientAddr); known {
		if p, ok = pc.take(k); ok {
			ip = p.ipOf(k)
		}
	}
	if ok {
		pc.unreserveLocked(rp, ip)
	}
	pc.mu.Unlock()
	if ok {
		p.slot.release()
	}
	return ok
}

// count returns the live (or reserved) pairs of route, and of route from ip.
func (pc *pairCounter) count(route, ip string) (int, int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	rp := pc.routes[route]
	if rp == nil {
		return 0, 0
	}
	return rp.n, rp.byIP[ip]
}

// PairClosed gives back what a pair held against the route's max_pairs,
// max_pairs_per_client_ip and its listener's max_connections. The owner
// calls it from relay.Options.OnClose for every pair the engine ends.
func (s *Server) PairClosed(st relay.PairStats) {
	s.releasePool(st)
	// A session's pair is found by ID, whatever its address.
	ap, _ := netip.ParseAddrPort(st.ClientAddr)
	s.pairs.closed(st.Route, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), st.ID)
}

// acceptGate keeps the accept loops from running ahead of the
// handshakes they started. A connection the kernel holds in its accept
// queue costs the process nothing; one accepted costs a goroutine, a
// head buffer, and later an upstream dial, and when the CPUs are the
// bottleneck of a burst of handshakes (a storm, a ramp of reconnecting
// clients) accepting faster only moves the queue into the process: the
// goroutines, their stacks and the heap they grow stay allocated after
// the burst (Go keeps a peak's goroutine structs and spans), some
// 50-200 B per idle pair at 9,000 pairs (bench/notes.md, "Memory per
// idle pair, session 8").
//
// What the gate counts is the handshakes in their upstream phase (the
// connect and the upstream's 101) toward a route whose servers are all
// on loopback: in a burst that is where the handshakes pile up, 455 of
// 519 goroutines at the peak of a 9,000-pair ramp, and a loopback
// upstream's pace is this machine's CPU, so more of them in flight
// only queue. The rest is not counted:
//   - the wait for a client's request head is the client's pace:
//     counted, 64 slow or silent clients (slowloris) would hold accept
//     shut for everybody; handshakeLimit and the head timeout bound them
//     instead;
//   - a distant upstream's handshake time is mostly the network's, and
//     Little's law needs that many handshakes in flight for the rate:
//     counted, 64 per CPU over a 50 ms upstream would cap a storm at
//     1,280 handshakes a second.
//
// An upstream that does not answer at all would keep its handshakes
// counted until their timeout. So when the gate stays shut for
// acceptGateWait, the loop stops waiting on it until the count has
// fallen below the bound again: a stuck upstream costs one pause of
// acceptGateWait, then accept runs ungated as it did before the gate.
type acceptGate struct {
	// max shuts the gate; a loop waiting at it goes on at low.
	max, low int64
	// maxWait is acceptGateWait but in tests.
	maxWait time.Duration
	busy    atomic.Int64
	// waiting counts the accept loops waiting; put wakes them through
	// their channels only then.
	waiting atomic.Int32
	mu      sync.Mutex
	wakes   []chan struct{}
}

// acceptGateMax is the gate's bound per CPU (GOMAXPROCS): enough
// handshakes to keep a CPU busy while others wait for a loopback
// upstream, whose handshake takes well under 5 ms when it keeps up:
// 64 over 5 ms is 12,800 a second per CPU, more than a CPU does here
// (5,000-7,000).
const acceptGateMax = 64

// acceptGateWait is the longest an accept loop waits for the gate: long
// enough that a burst on a loaded machine (where no handshake may end
// for a hundred milliseconds) does not open it, short enough to be a
// pause rather than an outage when the counted handshakes are stuck.
const acceptGateWait = time.Second

func newAcceptGate(max int) *acceptGate {
	return &acceptGate{max: int64(max), low: int64(max / 2), maxWait: acceptGateWait}
}

func (g *acceptGate) take() { g.busy.Add(1) }

func (g *acceptGate) put() {
	if g.busy.Add(-1) <= g.low && g.waiting.Load() > 0 {
		g.mu.Lock()
		for _, w := range g.wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
		g.mu.Unlock()
	}
}

// counted returns how many handshakes the gate counts.
func (g *acceptGate) counted() int { return int(g.busy.Load()) }

// gateWaiter is one accept loop's wait on the gate.
type gateWaiter struct {
	g    *acceptGate
	wake chan struct{}
	t    *time.Timer
	// open: a wait timed out; the loop does not wait again until the
	// count is below the bound.
	open bool
}

func (g *acceptGate) waiter() *gateWaiter {
	return &gateWaiter{g: g, wake: make(chan struct{}, 1)}
}

// wait returns once the gate has room, after acceptGateWait, or when
// done closes (false).
func (w *gateWaiter) wait(done <-chan struct{}) bool {
	g := w.g
	if g.busy.Load() < g.max {
		w.open = false
		return true
	}
	if w.open {
		return true
	}
	g.mu.Lock()
	g.wakes = append(g.wakes, w.wake)
	g.waiting.Add(1)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting.Add(-1)
		for i, c := range g.wakes {
			if c == w.wake {
				g.wakes = append(g.wakes[:i], g.wakes[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
	}()
	if w.t == nil {
		w.t = time.NewTimer(g.maxWait)
	} else {
		w.t.Reset(g.maxWait)
	}
	defer w.t.Stop()
	// Shut at max, open again at low: the loop then accepts a batch
	// back to back instead of one connection per wake.
	for g.busy.Load() > g.low {
		select {
		case <-w.wake:
		case <-w.t.C:
			w.open = true
			return true
		case <-done:
			return false
		}
	}
	return true
}

// gateTicket is one handshake's place at the gate: counted between
// count and uncount (its upstream phase), never again after end.
type gateTicket struct {
	g     *acceptGate
	state atomic.Int32 // ticketIdle, ticketCounted or ticketEnded
}

const (
	ticketIdle int32 = iota
	ticketCounted
	ticketEnded
)

// ticket returns a ticket for a handshake just accepted, not counted.
func (g *acceptGate) ticket() *gateTicket { return &gateTicket{g: g} }

// count counts the handshake until uncount or end. A nil ticket counts
// nothing (an upgrade on a plain HTTP connection: the gate let it in
// long ago).
func (t *gateTicket) count() {
	if t != nil && t.state.CompareAndSwap(ticketIdle, ticketCounted) {
		t.g.take()
	}
}

// uncount stops counting the handshake; it may be counted again.
func (t *gateTicket) uncount() {
	if t != nil && t.state.CompareAndSwap(ticketCounted, ticketIdle) {
		t.g.put()
	}
}

// end stops counting the handshake for good; later calls do nothing.
func (t *gateTicket) end() {
	if t != nil && t.state.Swap(ticketEnded) == ticketCounted {
		t.g.put()
	}
}
