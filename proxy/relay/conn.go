package relay

import (
	crand "crypto/rand"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"
)

// The net.Conn driver runs the pair state machine over any net.Conn: TLS
// pairs on every platform, and every pair where the epoll driver is not
// available (macOS, Windows, BSD) or not wanted (Options.ForceConnDriver).
//
// Each side has a reader goroutine, which hands what it reads to the state
// machine. The bytes the state machine sends toward a side (relayed bytes,
// and its own pings, pongs and closes, always at frame boundaries) go
// into that side's outbox, in the order of the events, and only flush
// writes an outbox to its connection: the goroutine whose event filled it
// (a reader, the timer), unless a write toward that side is already under
// way, whose goroutine then writes the rest after it. So writes toward a
// side are serialized in one place, and a relayed message costs no
// hand-off between goroutines.
//
// Memory is bounded as on the epoll driver. A reader does not read side s
// again while bytes from its last read still wait for, or are being
// written to, the other side: a slow reader slows its writer through TCP,
// and a direction holds at most one read plus wsalive's held answers.
// Buffers come from bytebufferpool only while bytes are in flight: an
// idle side waits in Read with a small buffer of its own (smallRead), and
// a read that fills it switches that side to full-size pooled buffers
// until a read comes back short, as the epoll driver's bulk reads do.

// smallRead is what an idle side's reader waits with: heartbeats, pongs
// and short messages fit.
const smallRead = 512

// connDriver holds the engine's net.Conn pairs.
type connDriver struct {
	env    *env
	mu     sync.Mutex
	pairs  map[*cpair]struct{}
	order  *drainOrder // the running drain, nil when serving
	closed bool
	wg     sync.WaitGroup // one per live pair
}

func (d *connDriver) init(v *env) {
	d.env = v
	d.pairs = make(map[*cpair]struct{})
}

// cpair is a pair as the net.Conn driver runs it.
type cpair struct {
	pair
	d  *connDriver
	mu sync.Mutex // guards everything below and the state machine
	// wake is signalled whenever an outbox empties or the pair ends.
	wake sync.Cond
	fx   effects
	// conn holds each side's connection for the pair's life; the
	// account's addresses are read from them when the pair ends.
	conn [2]net.Conn
	out  [2]outbox // bytes toward each side, waiting for flush
	// reading[s]: the reader of s is in Read. When it is not (it waits
	// for, or does, the write toward the other side), what s sends stays
	// unread.
	reading [2]bool
	timer   *time.Timer
	rng     rand.ChaCha8
	// sess is the pair's resumable session, nil for most pairs.
	sess *session
	// cgen counts the client connections a session let go: a reader or a
	// write of an earlier one finds it changed and leaves the pair alone.
	cgen uint32
}

// outbox is what waits to be written toward one side.
type outbox struct {
	buf     *bytebufferpool.ByteBuffer // nil when empty
	writing bool                       // a flush is in Write toward the side
}

// busy reports, per side, whether bytes toward it wait or are being
// written.
func (p *cpair) busy() [2]bool {
	return [2]bool{
		p.out[client].buf != nil || p.out[client].writing,
		p.out[upstream].buf != nil || p.out[upstream].writing,
	}
}

// attach starts h on this driver: its goroutines run until the pair ends.
func (d *connDriver) attach(id uint64, h *Handoff, m *routeInfo) error {
	e := d.env
	p := &cpair{d: d, conn: [2]net.Conn{h.Client, h.Upstream}}
	p.init(id, h, m)
	p.wake.L = &p.mu
	var seed [32]byte
	crand.Read(seed[:])
	p.rng.Seed(seed)
	p.fx.rng = &p.rng
	for s := client; s <= upstream; s++ {
		if !p.pol.keepaliveWanted(s, p.conn[s], s == client && h.ClientKeepaliveSet) {
			continue
		}
		if err := connKeepalive(p.conn[s], &p.pol.side[s].Keepalive); err != nil {
			e.logger.Warn("relay: setting TCP keepalive options", "side", s.String(), "err", err)
		}
	}
	// p.mu before d.mu: a drain that finds p waits until it has started.
	p.mu.Lock()
	defer p.mu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		closeConns(h)
		return ErrClosed
	}
	d.pairs[p] = struct{}{}
	d.wg.Add(1)
	order := d.order
	d.mu.Unlock()
	e.pairs.Add(1)

	p.event().start(&p.fx)
	if h.Session != nil {
		p.openSession(h.Session, h.Route)
	}
	p.apply()
	for s, b := range [2][]byte{h.ClientBuffered, h.UpstreamBuffered} {
		for len(b) > 0 && !p.done {
			n := min(len(b), e.opts.ReadBufferSize)
			slot := make([]byte, carryRoom+n)
			copy(slot[carryRoom:], b[:n])
			b = b[n:]
			p.event().read(side(s), slot, n, &p.fx)
			p.apply()
		}
	}
	if !p.done {
		p.event().timerFired(&p.fx)
		p.apply()
	}
	if order != nil && !p.done {
		p.event().drainBy(order, &p.fx)
		p.apply()
	}
	if !p.done {
		p.kick()
		for s := client; s <= upstream; s++ {
			go p.reader(s, p.cgen)
		}
	}
	return nil
}

// event prepares p's effects for an event and returns its state machine.
// p.mu is held.
func (p *cpair) event() *pair {
	p.fx.now = p.d.env.clock()
	return &p.pair
}

// apply carries out what the event just handled asked for (see effects).
// p.mu is held.
func (p *cpair) apply() {
	fx := &p.fx
	e := p.d.env
	if fx.detach {
		// A session let its client go (RESUME.md §4): close its socket
		// without a close frame. A write toward it still in Write is
		// abandoned: its goroutine finds cgen changed.
		closeConn(p.conn[client])
		p.cgen++
		p.out[client].writing = false
	}
	for to := client; to <= upstream; to++ {
		ob := &p.out[to]
		if fx.gone[to] && ob.buf != nil {
			e.buffered.Add(-int64(len(ob.buf.B)))
			bytebufferpool.Put(ob.buf)
			ob.buf = nil
		}
		if b := p.outgoing(to, fx); b != nil {
			if ob.buf == nil {
				ob.buf = bytebufferpool.Get()
				ob.buf.B = ob.buf.B[:0]
			}
			for _, seg := range b.segs {
				ob.buf.B = append(ob.buf.B, seg...)
			}
			e.buffered.Add(int64(b.total))
			p.writeBlocked(to)
		}
	}
	// Everything in send is copied: the frames built in ctl may go.
	fx.ctl = fx.ctl[:0]
	if fx.arm != 0 && !fx.done {
		p.arm(fx.arm)
	}
	if !fx.done && p.closing {
		p.settle(p.busy(), fx)
	}
	if fx.done {
		p.teardown()
	}
	if p.sess != nil {
		p.syncSession()
	}
	fx.reset()
	p.wake.Broadcast()
}

// arm sets the pair's timer to fire at engine time at.
func (p *cpair) arm(at int64) {
	d := time.Duration(at - p.d.env.clock())
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.fire)
		return
	}
	p.timer.Reset(d)
}

// fire runs the pair's timed duties.
func (p *cpair) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	sm := p.event()
	for s := client; s <= upstream; s++ {
		p.fx.unread[s] = !p.reading[s] && !p.side[s].dead
	}
	sm.timerFired(&p.fx)
	p.apply()
	p.flush()
}

// readSlots lends the full-size read buffers of busy sides. It is a pool
// of its own: bytebufferpool calibrates each pool to the sizes put back
// into it, and in the shared pool the many ~1 KiB outbox buffers made it
// drop the 64 KiB slots, so a busy side allocated a fresh one per read
// (a fifth of the driver's CPU at 200 x 1 KiB echo over TLS).
var readSlots bytebufferpool.Pool

// reader reads side s and hands the bytes to the state machine; gen is
// the client connection it reads (a session may swap it).
func (p *cpair) reader(s side, gen uint32) {
	readSize := p.d.env.opts.ReadBufferSize
	small := make([]byte, carryRoom+smallRead)
	bulk := false
	for {
		p.mu.Lock()
		for !p.done && p.busy()[s.other()] {
			// Backpressure: what the last read brought still waits for
			// the other side.
			p.wake.Wait()
		}
		if p.done || p.side[s].dead || s == client && p.cgen != gen {
			p.mu.Unlock()
			return
		}
		p.reading[s] = true
		conn := p.conn[s]
		p.mu.Unlock()

		slot := small
		var pooled *bytebufferpool.ByteBuffer
		if bulk {
			pooled = readSlots.Get()
			if cap(pooled.B) < carryRoom+readSize {
				pooled.B = make([]byte, carryRoom+readSize)
			}
			// The length, not just the capacity: the pool calibrates
			// what it keeps by the length of what is put back.
			pooled.B = pooled.B[:carryRoom+readSize]
			slot = pooled.B
		}
		n, err := conn.Read(slot[carryRoom:])
		p.mu.Lock()
		if s == client && p.cgen != gen {
			// The session let this connection go meanwhile.
			p.mu.Unlock()
			if pooled != nil {
				readSlots.Put(pooled)
			}
			return
		}
		p.reading[s] = false
		if !p.done && n > 0 {
			p.event().read(s, slot, n, &p.fx)
			p.apply()
		}
		if !p.done && err != nil {
			p.event().readEnded(s, &p.fx)
			p.apply()
		}
		if !p.done {
			// This read's round: what crossed goes to metrics as sums.
			p.reportRelayed()
			// The reader writes what its read produced: while it writes
			// toward the other side it does not read, which is the
			// backpressure.
			p.flush()
		}
		p.mu.Unlock()
		if pooled != nil {
			readSlots.Put(pooled)
		}
		if err != nil {
			return
		}
		bulk = n == len(slot)-carryRoom
	}
}

// flush writes what waits in the outboxes, unless a write toward that
// side is under way (its goroutine writes the rest after it). p.mu is
// held, and released during each Write.
func (p *cpair) flush() {
	e := p.d.env
	for !p.done {
		s := client
		if ob := &p.out[s]; ob.buf == nil || ob.writing {
			s = upstream
		}
		ob := &p.out[s]
		if ob.buf == nil || ob.writing {
			return
		}
		b := ob.buf
		ob.buf, ob.writing = nil, true
		conn, gen := p.conn[s], p.cgen
		p.mu.Unlock()
		_, err := conn.Write(b.B)
		e.buffered.Add(-int64(len(b.B)))
		bytebufferpool.Put(b)
		p.mu.Lock()
		if s == client && p.cgen != gen {
			// Written to a client connection the session let go: the
			// outbox now belongs to its successor.
			continue
		}
		ob.writing = false
		if p.done {
			return
		}
		if err != nil {
			p.event().writeFailed(s, &p.fx)
		} else if ob.buf == nil {
			p.event().writeDone(s, &p.fx)
		} else {
			p.event()
		}
		p.apply()
	}
}

// kick flushes from a goroutine of its own: for bytes that Attach or a
// drain put in the outboxes, whose callers must not wait for a peer.
// p.mu is held.
func (p *cpair) kick() {
	for s := client; s <= upstream; s++ {
		if ob := &p.out[s]; ob.buf != nil && !ob.writing {
			go func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.flush()
			}()
			return
		}
	}
}

// teardown releases everything of p: connections, buffers, timer, its
// place in the driver. The state machine has already ended it. p.mu is
// held; the readers and a flush in Write see their connection closed and
// p.done, and return.
func (p *cpair) teardown() {
	e := p.d.env
	if p.timer != nil {
		p.timer.Stop()
	}
	for s := client; s <= upstream; s++ {
		closeConn(p.conn[s])
		if ob := &p.out[s]; ob.buf != nil {
			e.buffered.Add(-int64(len(ob.buf.B)))
			bytebufferpool.Put(ob.buf)
			ob.buf = nil
		}
	}
	p.reportRelayed()
	p.countDrain(false)
	if p.sess != nil {
		p.burySession()
	}
	d := p.d
	d.mu.Lock()
	delete(d.pairs, p)
	d.mu.Unlock()
	e.pairs.Add(-1)
	e.report(p.stats(p.fx.now, [2]string{remoteText(p.conn[client]), remoteText(p.conn[upstream])}))
	d.wg.Done()
}

// each calls f with every live pair, its lock held.
func (d *connDriver) each(f func(p *cpair)) {
	d.mu.Lock()
	ps := make([]*cpair, 0, len(d.pairs))
	for p := range d.pairs {
		ps = append(ps, p)
	}
	d.mu.Unlock()
	for _, p := range ps {
		p.mu.Lock()
		if !p.done {
			f(p)
		}
		p.mu.Unlock()
	}
}

// drain stops taking pairs and gives every live pair its moment in o.
func (d *connDriver) drain(o *drainOrder) {
	d.mu.Lock()
	d.closed = true
	d.order = o
	d.mu.Unlock()
	d.each(func(p *cpair) {
		p.event().drainBy(o, &p.fx)
		p.apply()
		p.kick()
	})
}

// force cuts every pair still open.
func (d *connDriver) force() {
	d.each(func(p *cpair) {
		p.countDrain(true)
		r := ReasonShutdown
		if p.drain != nil {
			r = p.drain.reason
		}
		p.drain = nil
		p.event().cut(r, &p.fx)
		p.apply()
	})
}

// wait returns when every pair has ended.
func (d *connDriver) wait() { d.wg.Wait() }

// closeConn closes c. A TLS connection sends its close_notify first,
// which may wait (up to 5 s, crypto/tls's bound) for a peer that does not
// read: that happens on a goroutine of its own, not under the pair's lock.
func closeConn(c net.Conn) {
	if _, plain := c.(*net.TCPConn); plain || isSocket(c) {
		c.Close()
		return
	}
	go c.Close()
}
