package relay

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/wsalive/wsalive/liveness"
)

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
	iovMax = 1024
	// wheelTick is the timer resolution; close deadlines and heartbeats
	// are seconds long, so 100 ms is plenty and keeps wakeups rare.
	wheelTick  = 100 * time.Millisecond
	wheelSlots = 4096
	// epollFlags: edge-triggered, so a socket is registered once and never
	// modified; readiness is tracked in endpoint.readable/writable.
	epollFlags = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// loop is one event loop: an epoll set, the pairs pinned to it, a timer
// wheel and the buffers it reuses. Only its goroutine touches its pairs.
type loop struct {
	e      *Engine
	poll   *poller
	wakefd int // eventfd that Attach and Close use to wake the loop

	mu       sync.Mutex
	incoming []attachment
	stopping bool // graceful: close every pair, exit when none is left
	forced   bool // close every pair now

	draining bool // the loop has seen stopping

	byFD   []*pair
	npairs int
	ready  []*pair
	served []*pair
	events []unix.EpollEvent
	out    batch // what a read produces
	inj    batch // what an injection produces
	wheel  *liveness.Wheel[*pair]
	rng    *rand.ChaCha8
	now    int64
	done   chan struct{}
	// forwarded: this round relayed bytes between peers, not only
	// wsalive's own control frames (see yield).
	forwarded bool
	// yieldTook is how long the last yield took (0: none since the last
	// wait); after one that did not pay, none until noYieldUntil.
	yieldTook    int64
	noYieldUntil int64

	// The round's reads land in the arena, and its writes wait in the
	// stage until the round ends (see stage_linux.go).
	slotSize int    // carryRoom + read size
	arena    []byte // reads land in arena[used:], and stay until the flush
	used     int
	ctl      []byte // frames wsalive injects this round (pings, pongs, closes)
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
	discard []byte // what drain throws away
}

func newLoop(e *Engine, readSize int, useRing bool, seed [32]byte) (*loop, error) {
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
		e:        e,
		poll:     poll,
		wakefd:   wakefd,
		events:   make([]unix.EpollEvent, maxEvents),
		rng:      rand.NewChaCha8(seed),
		done:     make(chan struct{}),
		slotSize: carryRoom + readSize,
		arena:    make([]byte, max(arenaSlots*(carryRoom+readSize), minArena)),
		ctl:      make([]byte, 0, ctlChunk),
		results:  make([]int32, 0, ringEntries),
		reads:    make([]batchedRead, 0, ringEntries),
		readRes:  make([]int32, ringEntries),
		// Fixed capacity: the ring holds their addresses until submit, so
		// they must never move.
		msgs:    make([]unix.Msghdr, 0, ringEntries),
		discard: make([]byte, discardSize),
	}
	if useRing {
		l.ring, l.ringErr = newRing(ringEntries)
	}
	l.now = e.clock()
	l.wheel = liveness.NewWheel[*pair](wheelTick, wheelSlots, l.now)
	return l, nil
}

// wake interrupts epoll_wait from another goroutine.
func (l *loop) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(l.wakefd, one[:])
}

// attachment is a pair on its way to a loop, with the bytes its
// handshakes had read past their heads (relayed first). They travel beside
// the pair so that the pair itself does not carry them for its lifetime.
type attachment struct {
	p       *pair
	initial [2][]byte
}

// post hands a pair to the loop.
func (l *loop) post(a attachment) error {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return ErrClosed
	}
	l.incoming = append(l.incoming, a)
	l.mu.Unlock()
	l.wake()
	return nil
}

func (l *loop) run() {
	defer close(l.done)
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
			l.e.logger.Error("relay: waiting for events failed; loop stops", "err", err)
			l.closeAll()
			return
		}
		l.now = l.e.clock()
		last = n
		if l.yieldTook > 0 {
			l.yielded(n)
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.wakefd {
				var buf [8]byte
				unix.Read(l.wakefd, buf[:])
				if l.takeIncoming() {
					return
				}
				continue
			}
			if fd >= len(l.byFD) || l.byFD[fd] == nil {
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
		if l.draining && l.npairs == 0 {
			return
		}
	}
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
// wantsYield reports whether, after a wait that returned events, the
// round that followed was one to yield after.
func (l *loop) wantsYield(events int) bool {
	return events <= yieldBelow && !l.forwarded && len(l.ready) == 0
}

func (l *loop) yield() {
	if l.now < l.noYieldUntil {
		return
	}
	before := l.e.clock()
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	l.yieldTook = l.e.clock() - before
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
		return l.e.start.Add(time.Duration(at))
	}
	return time.Time{}
}

// takeIncoming starts posted pairs and applies stop requests. It reports
// whether the loop should exit.
func (l *loop) takeIncoming() bool {
	l.mu.Lock()
	in := l.incoming
	l.incoming = nil
	stopping, forced := l.stopping, l.forced
	l.mu.Unlock()
	for _, a := range in {
		l.start(a)
	}
	if forced {
		l.closeAll()
		return true
	}
	if stopping && !l.draining {
		l.draining = true
		l.eachPair(l.shutdown)
	}
	if l.draining {
		// Pairs attached while draining are closed as soon as they start.
		for _, a := range in {
			l.shutdown(a.p)
		}
	}
	return false
}

// shutdown starts closing p because wsalive is stopping: both sides get
// 1001 and the close handshake gets its usual time.
func (l *loop) shutdown(p *pair) {
	if !p.done {
		l.expire(p, ReasonShutdown, "going away")
	}
}

func (l *loop) eachPair(f func(*pair)) {
	for fd, p := range l.byFD {
		if p != nil && p.ep[client].sock() == fd {
			f(p)
		}
	}
}

func (l *loop) closeAll() {
	l.eachPair(func(p *pair) {
		p.setReason(ReasonShutdown)
		l.teardown(p)
	})
	l.mu.Lock()
	in := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, a := range in {
		p := a.p
		p.setReason(ReasonShutdown)
		unix.Close(p.ep[client].sock())
		unix.Close(p.ep[upstream].sock())
		l.e.pairs.Add(-1)
		l.e.report(p.stats(l.now))
	}
}

func (l *loop) start(a attachment) {
	p := a.p
	p.loop = l
	p.opened = l.now
	p.timer.Value = p
	for s := range p.ep {
		ep := &p.ep[s]
		if err := l.poll.add(ep.sock(), epollFlags); err != nil {
			l.e.logger.Error("relay: epoll_ctl add failed", "err", err, "pair", p.id)
			ep.dead = true
			continue
		}
		for ep.sock() >= len(l.byFD) {
			l.byFD = append(l.byFD, make([]*pair, len(l.byFD)+64)...)
		}
		l.byFD[ep.sock()] = p
		// A fresh socket is writable; reading once finds out if bytes
		// arrived before it was registered.
		ep.readable, ep.writable = true, true
	}
	l.npairs++
	if p.ep[client].dead || p.ep[upstream].dead {
		p.setReason(ReasonShutdown)
		l.teardown(p)
		return
	}
	p.lastData = l.now
	for s := client; s <= upstream; s++ {
		p.hb[s].Start(&p.pol.side[s].Heartbeat, l.now)
	}
	if p.pol.lifetime > 0 {
		jitter := int64(0)
		if p.pol.jitter > 0 {
			jitter = int64(l.rng.Uint64() % uint64(p.pol.jitter))
		}
		p.lifetimeAt = l.now + p.pol.lifetime - jitter
	}
	for s := client; s <= upstream; s++ {
		l.feedBuffered(p, s, a.initial[s])
	}
	l.check(p)
	l.enqueue(p)
}

// feedBuffered relays bytes a handshake reader had already taken from a
// socket, before anything read later.
func (l *loop) feedBuffered(p *pair, s side, b []byte) {
	for len(b) > 0 && !p.done {
		l.reserveSlots(1)
		slot := l.slot()
		n := copy(slot[carryRoom:], b)
		b = b[n:]
		l.used += carryRoom + n
		l.feed(p, s, p.dir[s].withCarry(slot, carryRoom, n))
	}
}

func (l *loop) enqueue(p *pair) {
	if !p.ready && !p.done {
		p.ready = true
		l.ready = append(l.ready, p)
	}
}

func (l *loop) serveReady() {
	batch := l.ready
	l.ready = l.served[:0]
	l.readBatch(batch)
	for i, p := range batch {
		batch[i] = nil
		p.ready = false
		if !p.done {
			l.service(p)
		}
	}
	l.served = batch[:0]
}

// service moves what can move in both directions of p.
func (l *loop) service(p *pair) {
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
		l.maybeFinish(p)
	}
	if more {
		l.enqueue(p)
	}
}

// pump relays from side s to its other side: first what is pending, then
// one fresh read, whose bytes go out with the round's other writes. It
// reports whether s has more to read: one read per round keeps one fast
// stream from starving the rest.
func (l *loop) pump(p *pair, s side) bool {
	d, src, to := &p.dir[s], &p.ep[s], s.other()
	if d.pending != nil {
		if !p.ep[to].writable {
			return false
		}
		l.flush(p, to)
		if d.pending != nil || p.done {
			return false
		}
	}
	if p.ep[to].staged {
		// Bytes toward the sink already wait for this round's flush (a
		// batched read's, or injected frames): read after it, so that a
		// blocked sink leaves at most one read's worth pending.
		return src.readable && !src.dead
	}
	for {
		if !src.readable || src.dead {
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
			l.lost(p, s)
			return false
		}
		l.used += carryRoom + n
		l.gotBytes(p, s, slot, n)
		return src.readable && !src.dead && !p.done && d.pending == nil
	}
}

// gotBytes handles n bytes read from side s into slot[carryRoom:].
func (l *loop) gotBytes(p *pair, s side, slot []byte, n int) {
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
	p.hb[s].Received(l.now)
	l.feed(p, s, p.dir[s].withCarry(slot, carryRoom, n))
}

// feed runs bytes from side s through its stream and sends the result on.
func (l *loop) feed(p *pair, s side, buf []byte) {
	d := &p.dir[s]
	if d.remaining > 0 && !d.dropping {
		// The payload of a data frame is still arriving: the pair is in
		// use even though no new frame header passes (idle timeout).
		p.lastData = l.now
	}
	l.out.reset()
	v := d.process(buf, &l.out, p)
	if l.out.total > 0 {
		l.forwarded = true
	}
	l.send(p, s.other(), &l.out)
	if !v.ok() {
		l.violation(p, s, v)
		return
	}
	if p.recheck && !p.done {
		// A pong moved a heartbeat deadline earlier than the armed timer
		// (a timeout longer than the interval): re-arm now, outside
		// process, where injecting frames is safe.
		p.recheck = false
		l.check(p)
	}
}

// send queues b for side to: with the round's other writes when the way
// is clear, else behind the bytes already waiting for the socket.
func (l *loop) send(p *pair, to side, b *batch) {
	if b.total == 0 {
		return
	}
	d, dst := &p.dir[to.other()], &p.ep[to]
	if dst.dead || dst.abort {
		return
	}
	d.bytes += uint64(b.total)
	if d.pending == nil && dst.writable {
		l.stageWrite(p, to, b.segs, b.total)
		return
	}
	if d.pending == nil {
		d.pending = bytebufferpool.Get()
		d.pendOff = 0
	}
	for _, seg := range b.segs {
		d.pending.B = append(d.pending.B, seg...)
	}
	l.e.buffered.Add(int64(b.total))
	// pump writes it, not send: send also runs in the middle of parsing
	// a stream (a pong answering a ping), where a failed write would end
	// the pair there and then, and its close frame toward the other side
	// would overtake the data frames parsed before the ping.
	if dst.writable {
		l.enqueue(p)
	}
}

// flush writes pending bytes toward side to until done or EAGAIN.
func (l *loop) flush(p *pair, to side) {
	d, dst := &p.dir[to.other()], &p.ep[to]
	for d.pending != nil && dst.writable {
		n, err := sysWrite(dst.sock(), d.pending.B[d.pendOff:])
		switch {
		case err == unix.EAGAIN:
			dst.writable = false
			return
		case err == unix.EINTR:
			continue
		case err != nil:
			l.broken(p, to)
			return
		}
		d.pendOff += n
		l.e.buffered.Add(int64(-n))
		if d.pendOff == len(d.pending.B) {
			l.dropPending(d)
			l.releaseHeld(p, to)
		}
	}
}

// releaseHeld sends the answers held back while the sink toward side to
// was blocked (see injectFrame), now that it has taken everything else.
func (l *loop) releaseHeld(p *pair, to side) {
	d := &p.dir[to.other()]
	if !d.hasQueued() || !d.atBoundary() {
		return // a frame is on its way: its end releases them
	}
	l.inj.reset()
	d.emitQueued(&l.inj)
	l.send(p, to, &l.inj)
	l.inj.reset()
}

func (l *loop) dropPending(d *direction) {
	if d.pending == nil {
		return
	}
	l.e.buffered.Add(int64(-d.pendingLen()))
	bytebufferpool.Put(d.pending)
	d.pending = nil
	d.pendOff = 0
}

// lost handles EOF or a read error on side s.
func (l *loop) lost(p *pair, s side) {
	if p.ep[s].closeRecv {
		// The orderly end: it closed TCP after its close frame.
		l.kill(p, s, ReasonNone, "")
	} else {
		l.kill(p, s, goneReason(s), s.String()+" gone")
	}
}

// broken handles a failed write toward side s.
func (l *loop) broken(p *pair, s side) {
	l.lost(p, s)
}

// kill marks side s gone: nothing more goes to it, and the other side is
// told with a 1001 close frame with text as its reason, unless it already
// has a close.
func (l *loop) kill(p *pair, s side, r Reason, text string) {
	ep := &p.ep[s]
	if ep.dead {
		return
	}
	ep.dead = true
	p.setReason(r)
	toward := &p.dir[s.other()]
	l.dropPending(toward)
	toward.sinkClosed = true
	toward.queued = nil
	o := s.other()
	oe := &p.ep[o]
	from := &p.dir[s]
	switch {
	case !oe.dead && !oe.closeSent:
		code := ws.StatusGoingAway
		if oe.closeRecv {
			// It started the close handshake and s died before
			// answering: answer in s's place, echoing its code.
			code, text = oe.closeCode, ""
		}
		l.sendClose(p, o, code, text)
	case oe.closeSent && !oe.abort && !from.sinkClosed && !from.atBoundary():
		// A close toward o waits behind a frame from s that s will now
		// never finish: o cannot get a clean close, as sendClose would
		// have decided had s been dead already.
		oe.abort = true
		from.queued = nil
	}
	l.beginClose(p)
	l.maybeFinish(p)
}

// expire closes both sides of a live pair for a policy reason (idle,
// lifetime) with 1001 and text.
func (l *loop) expire(p *pair, r Reason, text string) {
	p.setReason(r)
	l.sendClose(p, client, ws.StatusGoingAway, text)
	l.sendClose(p, upstream, ws.StatusGoingAway, text)
	l.beginClose(p)
	l.maybeFinish(p)
}

// violation ends a pair whose side s broke the protocol: the offender gets
// the violation's code, the other side 1001.
func (l *loop) violation(p *pair, s side, v violation) {
	p.setReason(violationReason(s, v))
	l.sendClose(p, s, v.code, v.reason)
	l.sendClose(p, s.other(), ws.StatusGoingAway, s.String()+" protocol error")
	l.beginClose(p)
	l.maybeFinish(p)
}

// sendClose sends a close frame to side to at the next frame boundary.
// When that boundary can never come (the frame toward it is cut off
// because its source is gone), to is aborted instead.
func (l *loop) sendClose(p *pair, to side, code ws.StatusCode, reason string) {
	ep := &p.ep[to]
	d := &p.dir[to.other()]
	if ep.dead || ep.abort || ep.closeSent || d.sinkClosed {
		return
	}
	ep.closeSent = true
	if !d.atBoundary() && p.ep[to.other()].dead {
		ep.abort = true
		return
	}
	var payload []byte
	if code != ws.StatusNoStatusRcvd {
		payload = closePayload(code, reason)
	}
	l.inject(p, to, ws.OpClose, payload, kindClose)
}

// inject sends a control frame with payload to side to at the next frame
// boundary, masked toward the upstream with a fresh key.
func (l *loop) inject(p *pair, to side, op ws.OpCode, payload []byte, kind frameKind) {
	// Built where it stays put until the round's writes are flushed.
	frame := appendControlFrame(l.ctlRoom(maxControlFrame), op, payload, to == upstream, l.maskKey())
	l.ctl = l.ctl[:len(l.ctl)+len(frame)]
	l.injectFrame(p, to, frame, kind)
}

// injectFrame sends a ready-made frame to side to; see stream.inject.
func (l *loop) injectFrame(p *pair, to side, frame []byte, kind frameKind) {
	if p.ep[to].dead || p.ep[to].abort {
		return
	}
	d := &p.dir[to.other()]
	if d.pending != nil && (kind == kindPong || kind == kindText) {
		// The sink is not taking what it has. An answer (pong, app
		// reply) waits until it has, replacing an older one of its kind
		// (only the latest ping needs a pong, RFC 6455 §5.5.3): a peer
		// that sends pings and never reads must not grow the buffer
		// toward it past the backpressure bound. releaseHeld sends it.
		d.hold(frame, kind)
		return
	}
	l.inj.reset()
	d.inject(frame, kind, &l.inj)
	l.send(p, to, &l.inj)
	l.inj.reset()
}

// maskKey returns a fresh unpredictable masking key (RFC 6455 §5.3).
func (l *loop) maskKey() (k [4]byte) {
	binary.LittleEndian.PutUint32(k[:], uint32(l.rng.Uint64()))
	return k
}

func (l *loop) beginClose(p *pair) {
	if p.closing || p.done {
		return
	}
	p.closing = true
	p.deadline = l.now + int64(p.closeTimeout)
	l.wheel.Schedule(&p.timer, p.deadline)
}

func (l *loop) maybeFinish(p *pair) {
	if !p.done && p.finished(client) && p.finished(upstream) {
		l.teardown(p)
	}
}

func (l *loop) onTimer(t *liveness.Timer[*pair]) {
	l.check(t.Value)
}

// check runs p's timed duties (close deadline, heartbeats toward both
// sides, idle and lifetime limits) and arms its one timer for the earliest
// next one. Traffic never touches the timer: it only stores timestamps,
// and check, when the timer fires, decides whether anything is due.
func (l *loop) check(p *pair) {
	if p.done {
		return
	}
	if p.closing {
		if l.now >= p.deadline {
			// The close handshake ran out of time: close both sockets.
			l.teardown(p)
		} else {
			l.wheel.Schedule(&p.timer, p.deadline)
		}
		return
	}
	next := int64(math.MaxInt64)
	for s := client; s <= upstream; s++ {
		pol := &p.pol.side[s].Heartbeat
		if !pol.Enabled() {
			continue
		}
		if !p.hb[s].Waiting() && !p.dir[s.other()].atBoundary() {
			// A frame toward s is still on its way, and a ping may only
			// follow it: look again shortly instead of starting a ping's
			// timeout that s cannot answer. Meanwhile TCP_USER_TIMEOUT
			// watches the writes of that frame.
			next = min(next, l.now+int64(wheelTick))
			continue
		}
		if p.dir[s].pending != nil && p.ep[s].readable {
			// Reading s is paused because its sink is full, and bytes
			// from it are waiting: s is alive (its pong may be among
			// them). A slow reader on one side must not make the other
			// side look dead.
			p.hb[s].Received(l.now)
		}
		act, at := p.hb[s].Check(pol, l.now)
		switch act {
		case liveness.SendPing:
			var buf [liveness.PingPayloadSize]byte
			l.inject(p, s, ws.OpPing, p.hb[s].PingPayload(buf[:0]), kindPing)
		case liveness.Dead:
			l.kill(p, s, heartbeatReason(s), s.String()+" heartbeat timeout")
			return
		}
		if p.closing || p.done {
			return // the ping's write failed and started the close
		}
		next = min(next, at)
	}
	if p.pol.idle > 0 {
		at := p.lastData + p.pol.idle
		if l.now >= at {
			l.expire(p, ReasonIdleTimeout, "idle timeout")
			return
		}
		next = min(next, at)
	}
	if p.lifetimeAt > 0 {
		if l.now >= p.lifetimeAt {
			l.expire(p, ReasonMaxLifetime, "max lifetime")
			return
		}
		next = min(next, p.lifetimeAt)
	}
	if next != math.MaxInt64 {
		l.wheel.Schedule(&p.timer, next)
	}
}

// teardown releases everything of p: sockets, buffers, timer.
func (l *loop) teardown(p *pair) {
	if p.done {
		return
	}
	p.done = true
	l.wheel.Stop(&p.timer)
	l.writeStagedNow(p)
	for s := range p.ep {
		ep := &p.ep[s]
		if ep.sock() >= 0 {
			if ep.sock() < len(l.byFD) && l.byFD[ep.sock()] == p {
				l.byFD[ep.sock()] = nil
			}
			l.drain(ep)
			unix.Close(ep.sock())
			ep.fd = -1
		}
	}
	for s := range p.dir {
		l.dropPending(&p.dir[s])
		p.dir[s].release()
	}
	l.npairs--
	l.e.pairs.Add(-1)
	l.e.report(p.stats(l.now))
}

// drain discards what a socket still has to read before it is closed: a
// socket closed with unread data sends RST, which can destroy the close
// frame just written to it before the peer reads it.
func (l *loop) drain(ep *endpoint) {
	if ep.dead {
		return
	}
	for range 4 {
		n, err := sysRead(ep.sock(), l.discard)
		if n <= 0 || errors.Is(err, unix.EAGAIN) {
			return
		}
	}
}
