package relay

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/wsalive/wsalive/liveness"
)

// The epoll driver: a few event loops, each with an epoll set, the pairs
// pinned to it, a timer wheel and the buffers it reuses. It runs plain TCP
// pairs on Linux on raw non-blocking descriptors, with no goroutine per
// pair; a round's reads and writes go to the kernel in batches (io_uring,
// see stage_linux.go and readbatch_linux.go). What a pair decides is the
// pair state machine's (pair.go); the loop only moves bytes and time.

const (
	// maxEvents is how many epoll events one wait returns at most.
	maxEvents = 256
	// yieldBelow: after a wait that returned this many events or fewer,
	// the loop yields the CPU before the next (see yield).
	yieldBelow = 8
	// yieldTooLong is a yield during which something else ran for a good
	// part of a time slice; if little came of it, yielding stops for
	// yieldBackoff.
	yieldTooLong = time.Millisecond
	yieldBackoff = time.Second
	// iovMax is Linux's IOV_MAX.
	iovMax     = 1024
	wheelSlots = 4096
	// epollFlags: edge-triggered, so a socket is registered once and never
	// modified; readiness is tracked in endpoint.readable/writable.
	epollFlags = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// endpoint is one socket of an epoll pair.
type endpoint struct {
	pending *bytebufferpool.ByteBuffer // bytes toward it its socket did not take yet
	pendOff int32                      // int32s keep a pair in a smaller allocation class
	fd      int32
	// addr is the socket's remote address, for the pair's account; with
	// the flags below it fills what was a string header and padding.
	addr     peerAddr
	readable bool // edge-triggered readiness, cleared by EAGAIN
	writable bool
	hangup   bool // the peer closed or the socket failed: read to the end
	// staged: bytes for it wait in the loop's stage for the end of the
	// round (see stage_linux.go).
	staged bool
	// bulk: its last read filled the buffer; it is read alone, with a full
	// buffer, rather than in the round's batch of small reads.
	bulk bool
	// ready: the pair is in the loop's ready list (the client endpoint's
	// only, where the flag costs no space).
	ready bool
}

// sock returns the socket's descriptor for system calls.
func (e *endpoint) sock() int { return int(e.fd) }

func (e *endpoint) pendingLen() int {
	if e.pending == nil {
		return 0
	}
	return len(e.pending.B) - int(e.pendOff)
}

// epair is a pair as the epoll driver runs it: the state machine, its two
// sockets and its timer. All of its fields are owned by its loop.
type epair struct {
	pair
	ep    [2]endpoint
	timer liveness.Timer[*epair]
}

// addrs returns the sockets' remote addresses as text.
func (p *epair) addrs() [2]string {
	return [2]string{p.addrString(client, p.ep[client].addr), p.addrString(upstream, p.ep[upstream].addr)}
}

// busy reports, per side, whether the loop still holds bytes toward it.
func (p *epair) busy() [2]bool {
	return [2]bool{
		p.ep[client].staged || p.ep[client].pending != nil,
		p.ep[upstream].staged || p.ep[upstream].pending != nil,
	}
}

// loop is one event loop. Only its goroutine touches its pairs.
type loop struct {
	env    *env
	poll   *poller
	wakefd int // eventfd that Attach and Drain use to wake the loop

	mu       sync.Mutex
	incoming []attachment
	orders   []*drainOrder // drains not yet applied
	stopping bool          // no new pairs: exit when none is left
	forced   bool          // close every pair now
	// probed, when not nil, is closed at the loop's next turn: Live's
	// question whether the loop still turns. Probes that arrive before
	// that turn share it.
	probed chan struct{}
	// waiting holds the Sockets that wait for readiness in this loop's
	// epoll set during their handshakes (socket_linux.go), by descriptor.
	waiting map[int32]*Socket
	// exited: the loop has stopped; a Socket can no longer wait in it.
	exited bool

	order *drainOrder // the drain being run; nil when serving

	byFD   []*epair
	npairs int
	ready  []*epair
	served []*epair
	events []unix.EpollEvent
	fx     effects // what the pair being handled asks for
	wheel  *liveness.Wheel[*epair]
	rng    *rand.ChaCha8
	now    int64
	done   chan struct{}
	// forwarded: this round relayed bytes between peers, or passed an
	// edge on to a Socket's goroutine, not only handled wsalive's own
	// control frames (see yield). A yield after waking a handshake's
	// goroutine would hold back that very goroutine: it runs on the
	// processor the loop's thread keeps while it yields.
	forwarded bool
	// yieldTook is how long the last yield took (0: none since the last
	// wait); after one that did not pay, none until noYieldUntil.
	yieldTook    int64
	noYieldUntil int64

	// The round's reads land in the arena, and its writes wait in the
	// stage until the round ends (see stage_linux.go); injected frames
	// are built in fx.ctl, which also stays until then.
	slotSize int    // carryRoom + read size
	arena    []byte // reads land in arena[used:], and stay until the flush
	used     int
	stage    []stagedWrite
	stageIov []unix.Iovec
	spare    struct {
		stage []stagedWrite
		iov   []unix.Iovec
	}
	results []int32
	msgs    []unix.Msghdr
	reads   []batchedRead // the round's batched reads (readbatch_linux.go)
	readRes []int32
	ring    *ring // nil: one system call per read and per write
	ringErr error
	// ringOn mirrors ring != nil for Stats, which reads it from other
	// goroutines (ring itself belongs to the loop's goroutine).
	ringOn  atomic.Bool
	discard []byte // what discardUnread throws away
}

func newLoop(e *env, readSize int, useRing bool, seed [32]byte) (*loop, error) {
	poll, err := newPoller()
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		poll.close()
		return nil, err
	}
	if err := poll.add(wakefd, unix.EPOLLIN|unix.EPOLLET); err != nil {
		poll.close()
		unix.Close(wakefd)
		return nil, err
	}
	l := &loop{
		env:      e,
		poll:     poll,
		wakefd:   wakefd,
		events:   make([]unix.EpollEvent, maxEvents),
		rng:      rand.NewChaCha8(seed),
		done:     make(chan struct{}),
		slotSize: carryRoom + readSize,
		arena:    make([]byte, max(arenaSlots*(carryRoom+readSize), minArena)),
		results:  make([]int32, 0, ringEntries),
		reads:    make([]batchedRead, 0, ringEntries),
		readRes:  make([]int32, ringEntries),
		// Fixed capacity: the ring holds their addresses until submit, so
		// they must never move.
		msgs:    make([]unix.Msghdr, 0, ringEntries),
		discard: make([]byte, discardSize),
	}
	l.fx.rng = l.rng
	l.fx.ctl = make([]byte, 0, ctlChunk)
	if useRing {
		l.ring, l.ringErr = newRing(ringEntries)
		l.ringOn.Store(l.ring != nil)
	}
	l.now = e.clock()
	l.wheel = liveness.NewWheel[*epair](wheelTick, wheelSlots, l.now)
	return l, nil
}

// wake interrupts epoll_wait from another goroutine.
func (l *loop) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	// Under the lock: closeFDs must not close the descriptor (and the
	// kernel reuse its number) between the check and the write.
	l.mu.Lock()
	if l.wakefd >= 0 {
		sysWrite(l.wakefd, one[:])
	}
	l.mu.Unlock()
}

// attachment is a pair on its way to a loop, with the bytes its
// handshakes had read past their heads (relayed first). They travel beside
// the pair so that the pair itself does not carry them for its lifetime.
type attachment struct {
	p       *epair
	initial [2][]byte
	// watched: the side's socket is in the loop's epoll set already (a
	// Socket that waited in this loop during its handshake).
	watched [2]bool
}

// post hands a pair to the loop.
func (l *loop) post(a attachment) error {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return ErrClosed
	}
	// A queue that was not empty has its wake pending already: the loop
	// has not taken the queue since the write that came with its first
	// pair, and takes all of it at once. In a reconnect storm this spares
	// one eventfd write per handshake.
	first := len(l.incoming) == 0
	l.incoming = append(l.incoming, a)
	l.mu.Unlock()
	if first {
		l.wake()
	}
	return nil
}

// postDrain hands the loop a drain order; from now on it takes no new
// pairs and exits when it has none left.
func (l *loop) postDrain(o *drainOrder) {
	l.mu.Lock()
	l.stopping = true
	l.orders = append(l.orders, o)
	l.mu.Unlock()
	l.wake()
}

// probe returns a channel the loop closes at the start of its next turn,
// and wakes the loop if no probe was pending already.
func (l *loop) probe() <-chan struct{} {
	l.mu.Lock()
	ch := l.probed
	pending := ch != nil
	if !pending {
		ch = make(chan struct{})
		l.probed = ch
	}
	l.mu.Unlock()
	if !pending {
		l.wake()
	}
	return ch
}

// force makes the loop cut every pair it still has, and exit.
func (l *loop) force() {
	l.mu.Lock()
	l.forced = true
	l.mu.Unlock()
	l.wake()
}

func (l *loop) run() {
	defer close(l.done)
	defer l.releaseWaiting()
	last := maxEvents // events of the last wait
	for {
		var n int
		var err error
		if l.wantsYield(last) {
			l.yield()
		}
		l.forwarded = false
		if len(l.ready) > 0 {
			n, err = l.poll.poll(l.events) // work is waiting: never park
		} else {
			n, err = l.poll.wait(l.events, l.nextDeadline())
		}
		if err != nil {
			l.env.logger.Error("relay: waiting for events failed; loop stops", "err", err)
			l.closeAll()
			return
		}
		l.now = l.env.clock()
		last = n
		if l.yieldTook > 0 {
			l.yielded(n)
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.wakefd {
				var buf [8]byte
				sysRead(l.wakefd, buf[:])
				if l.takeIncoming() {
					return
				}
				continue
			}
			if fd >= len(l.byFD) || l.byFD[fd] == nil {
				l.notifyWaiting(fd, ev.Events)
				continue
			}
			p := l.byFD[fd]
			ep := &p.ep[client]
			if p.ep[upstream].sock() == fd {
				ep = &p.ep[upstream]
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				ep.readable = true
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				ep.hangup = true
			}
			if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				ep.writable = true
			}
			l.enqueue(p)
		}
		l.serveReady()
		l.wheel.Advance(l.now, l.onTimer)
		l.flushStage()
		if l.order != nil && l.npairs == 0 {
			return
		}
	}
}

// wantsYield reports whether, after a wait that returned events, the
// round that followed was one to yield after (see yield).
func (l *loop) wantsYield(events int) bool {
	return events <= yieldBelow && !l.forwarded && len(l.ready) == 0
}

// yield gives the CPU to whatever else is runnable on it before the loop
// looks for events again, after a round that found only a few events and
// relayed nothing between the peers: typically a heartbeat round, a few
// pongs absorbed. The peers that are still answering pings get to write
// more of their pongs first, the next round absorbs more with the same
// system calls, and the loop parks and wakes less: at 9,000 idle pairs
// with 5 s heartbeats both sides, a quarter less CPU (bench/notes.md).
//
// A round that relayed application bytes never yields: yielding there
// also saved CPU on the benchmark machine, where the proxy shares its
// cores with its own clients and backend, but next to anything CPU-bound
// it cost up to a time slice per round, and halved echo throughput with
// a busy loop pinned on the proxy's core. Data latency is not traded for
// CPU. A long yield after which there is still little to do turns
// yielding off for yieldBackoff (see yielded).
func (l *loop) yield() {
	if l.now < l.noYieldUntil {
		return
	}
	before := l.env.clock()
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	l.yieldTook = l.env.clock() - before
}

// yielded judges the last yield by what the wait after it found.
func (l *loop) yielded(events int) {
	if l.yieldTook > int64(yieldTooLong) && events <= yieldBelow {
		l.noYieldUntil = l.now + int64(yieldBackoff)
	}
	l.yieldTook = 0
}

// nextDeadline is when the timer wheel next needs the loop; zero when no
// timer is armed.
func (l *loop) nextDeadline() time.Time {
	if at, ok := l.wheel.NextTick(); ok {
		return l.env.start.Add(time.Duration(at))
	}
	return time.Time{}
}

// takeIncoming starts posted pairs and applies drain orders and a forced
// stop. It reports whether the loop should exit.
func (l *loop) takeIncoming() bool {
	l.mu.Lock()
	in := l.incoming
	l.incoming = nil
	orders := l.orders
	l.orders = nil
	forced := l.forced
	probed := l.probed
	l.probed = nil
	l.mu.Unlock()
	if probed != nil {
		close(probed) // the loop turns
	}
	for _, a := range in {
		l.start(a)
		if l.order != nil {
			// Attached while a drain runs: it gets a moment too.
			l.event(a.p).drainBy(l.order, &l.fx)
			l.apply(a.p)
		}
	}
	if forced {
		l.closeAll()
		return true
	}
	for _, o := range orders {
		l.order = o
		l.eachPair(func(p *epair) {
			l.event(p).drainBy(o, &l.fx)
			l.apply(p)
		})
	}
	return false
}

func (l *loop) eachPair(f func(*epair)) {
	for fd, p := range l.byFD {
		if p != nil && p.ep[client].sock() == fd {
			f(p)
		}
	}
}

// closeAll cuts every pair: the loop is stopping now.
func (l *loop) closeAll() {
	l.eachPair(func(p *epair) {
		p.countDrain(true)
		p.drain = nil
		r := ReasonShutdown
		if l.order != nil {
			r = l.order.reason
		}
		l.event(p).cut(r, &l.fx)
		l.apply(p)
	})
	l.mu.Lock()
	in := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, a := range in {
		p := a.p
		p.setReason(ReasonShutdown)
		sysClose(p.ep[client].sock())
		sysClose(p.ep[upstream].sock())
		l.env.pairs.Add(-1)
		l.env.report(p.stats(l.now, p.addrs()))
	}
}

func (l *loop) start(a attachment) {
	p := a.p
	p.timer.Value = p
	failed := false
	for s := range p.ep {
		ep := &p.ep[s]
		// A socket that waited in this loop is registered already, with
		// the same flags; the edges it had went to its handshake, and the
		// read and write below find out the rest.
		if !a.watched[s] {
			if err := l.poll.add(ep.sock(), epollFlags); err != nil {
				l.env.logger.Error("relay: epoll_ctl add failed", "err", err, "pair", p.id)
				failed = true
				continue
			}
		}
		for ep.sock() >= len(l.byFD) {
			l.byFD = append(l.byFD, make([]*epair, len(l.byFD)+64)...)
		}
		l.byFD[ep.sock()] = p
		// A fresh socket is writable; reading once finds out if bytes
		// arrived before it was registered.
		ep.readable, ep.writable = true, true
	}
	l.npairs++
	l.event(p).start(&l.fx)
	if failed {
		p.cut(ReasonShutdown, &l.fx)
		l.apply(p)
		return
	}
	for s := client; s <= upstream; s++ {
		l.feedBuffered(p, s, a.initial[s])
	}
	l.event(p).timerFired(&l.fx)
	l.apply(p)
	l.enqueue(p)
}

// event prepares the loop's effects for an event of p and returns p's
// state machine.
func (l *loop) event(p *epair) *pair {
	l.fx.now = l.now
	return &p.pair
}

// apply carries out what the event just handled asked for (see effects),
// then ends p if its close is complete.
func (l *loop) apply(p *epair) {
	fx := &l.fx
	for to := client; to <= upstream; to++ {
		if fx.gone[to] {
			l.dropPending(p, to)
		}
		if b := p.outgoing(to, fx); b != nil {
			l.send(p, to, b)
		}
	}
	if fx.arm != 0 && !fx.done {
		l.wheel.Schedule(&p.timer, fx.arm)
	}
	if !fx.done && p.closing {
		p.settle(p.busy(), fx)
	}
	if fx.done {
		l.teardown(p)
	}
	fx.reset()
}

// feedBuffered relays bytes a handshake reader had already taken from a
// socket, before anything read later.
func (l *loop) feedBuffered(p *epair, s side, b []byte) {
	for len(b) > 0 && !p.done {
		l.reserveSlots(1)
		slot := l.slot()
		n := copy(slot[carryRoom:], b)
		b = b[n:]
		l.used += carryRoom + n
		l.event(p).read(s, slot, n, &l.fx)
		l.apply(p)
	}
}

func (l *loop) enqueue(p *epair) {
	if !p.ep[client].ready && !p.done {
		p.ep[client].ready = true
		l.ready = append(l.ready, p)
	}
}

func (l *loop) serveReady() {
	batch := l.ready
	l.ready = l.served[:0]
	l.readBatch(batch)
	for i, p := range batch {
		batch[i] = nil
		p.ep[client].ready = false
		if !p.done {
			l.service(p)
			p.reportRelayed()
		}
	}
	l.served = batch[:0]
}

// service moves what can move in both directions of p.
func (l *loop) service(p *epair) {
	// Each direction reads at most once per round: room for both reads is
	// made now, where flushing the round so far is safe.
	l.reserveSlots(2)
	if p.done {
		return
	}
	more := false
	for s := client; s <= upstream; s++ {
		if l.pump(p, s) {
			more = true
		}
		if p.done {
			return
		}
	}
	if p.closing {
		l.event(p).settle(p.busy(), &l.fx)
		l.apply(p)
		if p.done {
			return
		}
	}
	if more {
		l.enqueue(p)
	}
}

// pump relays from side s to its other side: first what is pending, then
// one fresh read, whose bytes go out with the round's other writes. It
// reports whether s has more to read: one read per round keeps one fast
// stream from starving the rest.
func (l *loop) pump(p *epair, s side) bool {
	src, to := &p.ep[s], s.other()
	sink := &p.ep[to]
	if sink.pending != nil {
		if !sink.writable {
			return false
		}
		l.flush(p, to)
		if sink.pending != nil || p.done {
			return false
		}
	}
	if sink.staged {
		// Bytes toward the sink already wait for this round's flush (a
		// batched read's, or injected frames): read after it, so that a
		// blocked sink leaves at most one read's worth pending.
		return src.readable && !p.side[s].dead
	}
	for {
		if !src.readable || p.side[s].dead {
			return false
		}
		slot := l.slot()
		n, err := sysRead(src.sock(), slot[carryRoom:])
		switch {
		case err == unix.EAGAIN:
			src.readable = false
			return false
		case err == unix.EINTR:
			continue
		case err != nil || n == 0:
			l.event(p).readEnded(s, &l.fx)
			l.apply(p)
			return false
		}
		l.used += carryRoom + n
		l.gotBytes(p, s, slot, n)
		return src.readable && !p.side[s].dead && !p.done && sink.pending == nil
	}
}

// gotBytes handles n bytes read from side s into slot[carryRoom:].
func (l *loop) gotBytes(p *epair, s side, slot []byte, n int) {
	src := &p.ep[s]
	src.bulk = n == len(slot)-carryRoom
	if !src.bulk && !src.hangup {
		// A short read drained the socket. Edge-triggered epoll reports
		// every later arrival, so the read that would only return EAGAIN
		// is skipped: it was half the syscalls of an idle pair's
		// heartbeat. After a hangup the EOF is still to be read and no
		// new edge will come, so then we read on.
		src.readable = false
	}
	l.event(p).read(s, slot, n, &l.fx)
	if l.fx.send[s.other()].total > 0 {
		l.forwarded = true
	}
	l.apply(p)
}

// send queues b for side to: with the round's other writes when the way
// is clear, else behind the bytes already waiting for the socket.
func (l *loop) send(p *epair, to side, b *batch) {
	dst := &p.ep[to]
	if dst.pending == nil && dst.writable {
		l.stageWrite(p, to, b.segs, b.total)
		return
	}
	l.holdPending(p, to)
	for _, seg := range b.segs {
		dst.pending.B = append(dst.pending.B, seg...)
	}
	l.env.buffered.Add(int64(b.total))
	// pump writes it, not send: send also runs in the middle of a round
	// where a failed write would end the pair there and then.
	if dst.writable {
		l.enqueue(p)
	}
}

// holdPending makes sure the socket toward side to has a pending buffer,
// and tells the pair its sink is blocked.
func (l *loop) holdPending(p *epair, to side) {
	dst := &p.ep[to]
	if dst.pending == nil {
		dst.pending = bytebufferpool.Get()
		dst.pendOff = 0
		p.writeBlocked(to)
	}
}

// flush writes pending bytes toward side to until done or EAGAIN.
func (l *loop) flush(p *epair, to side) {
	dst := &p.ep[to]
	for dst.pending != nil && dst.writable {
		n, err := sysWrite(dst.sock(), dst.pending.B[dst.pendOff:])
		switch {
		case err == unix.EAGAIN:
			dst.writable = false
			return
		case err == unix.EINTR:
			continue
		case err != nil:
			l.event(p).writeFailed(to, &l.fx)
			l.apply(p)
			return
		}
		dst.pendOff += int32(n)
		l.env.buffered.Add(int64(-n))
		if int(dst.pendOff) == len(dst.pending.B) {
			l.dropPending(p, to)
			// The sink took everything: the answers held back go now.
			l.event(p).writeDone(to, &l.fx)
			l.apply(p)
		}
	}
}

func (l *loop) dropPending(p *epair, to side) {
	dst := &p.ep[to]
	if dst.pending == nil {
		return
	}
	l.env.buffered.Add(int64(-dst.pendingLen()))
	bytebufferpool.Put(dst.pending)
	dst.pending = nil
	dst.pendOff = 0
}

func (l *loop) onTimer(t *liveness.Timer[*epair]) {
	p := t.Value
	pp := l.event(p)
	for s := client; s <= upstream; s++ {
		// Reading s is paused while bytes from it wait for the other
		// side's socket; readable says more of them are there.
		l.fx.unread[s] = p.ep[s.other()].pending != nil && p.ep[s].readable
	}
	pp.timerFired(&l.fx)
	l.apply(p)
}

// teardown releases everything of p the loop holds: sockets, buffers,
// timer. The state machine has already ended it.
func (l *loop) teardown(p *epair) {
	l.wheel.Stop(&p.timer)
	l.writeStagedNow(p)
	for s := range p.ep {
		ep := &p.ep[s]
		if ep.sock() >= 0 {
			if ep.sock() < len(l.byFD) && l.byFD[ep.sock()] == p {
				l.byFD[ep.sock()] = nil
			}
			if !p.side[s].dead {
				l.discardUnread(ep)
			}
			sysClose(ep.sock())
			ep.fd = -1
		}
	}
	for s := client; s <= upstream; s++ {
		l.dropPending(p, s)
	}
	p.reportRelayed()
	p.countDrain(false)
	l.npairs--
	l.env.pairs.Add(-1)
	l.env.report(p.stats(l.now, p.addrs()))
}

// discardUnread throws away what a socket still has to read before it is
// closed: a socket closed with unread data sends RST, which can destroy
// the close frame just written to it before the peer reads it.
func (l *loop) discardUnread(ep *endpoint) {
	for range 4 {
		n, err := sysRead(ep.sock(), l.discard)
		if n <= 0 || errors.Is(err, unix.EAGAIN) {
			return
		}
	}
}

// The loop as the waitSet of Sockets (socket_linux.go).

// watch registers s's descriptor in the loop's epoll set; the loop then
// passes its edges to s until unwatch.
func (l *loop) watch(fd int, s *Socket) error {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.waiting == nil {
		l.waiting = make(map[int32]*Socket)
	}
	l.waiting[int32(fd)] = s
	l.mu.Unlock()
	if err := l.poll.add(fd, epollFlags); err != nil {
		l.unwatch(fd, s)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// forget takes fd out of the loop's epoll set.
func (l *loop) forget(fd int) error {
	if err := l.poll.del(fd); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// unwatch forgets s; its descriptor leaves the epoll set when it is
// closed, or is the loop's own pair's from now on.
func (l *loop) unwatch(fd int, s *Socket) {
	l.mu.Lock()
	if l.waiting[int32(fd)] == s {
		delete(l.waiting, int32(fd))
	}
	l.mu.Unlock()
}

// notifyWaiting passes an event on a descriptor that is no pair's to the
// Socket waiting on it, if any (none: an event for a pair not started yet,
// whose start reads and writes once anyway, or a stale one).
func (l *loop) notifyWaiting(fd int, events uint32) {
	l.mu.Lock()
	s := l.waiting[int32(fd)]
	l.mu.Unlock()
	if s != nil {
		s.edge(events)
		l.forwarded = true
	}
}

// releaseWaiting runs when the loop exits: sockets that wait in it are
// woken, and later waits fail (ErrClosed) instead of waiting for edges no
// one will pass on.
func (l *loop) releaseWaiting() {
	l.mu.Lock()
	l.exited = true
	waiting := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	for _, s := range waiting {
		s.exitedLoop()
	}
}
