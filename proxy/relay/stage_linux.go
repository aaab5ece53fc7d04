package relay

import (
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The stage: a loop round's writes wait here until the round ends, and
// then go to the kernel together, through io_uring when the kernel allows
// it (see ring). Nothing is copied to get there: a write's iovecs point at
// the bytes where they were read (the loop's arena) or built (ctl), and
// both stay untouched until the flush. A direction has at most one staged
// write; later bytes of the same round join it, so each socket still gets
// its bytes in order with one send.
//
// What a write's result means is settled after the flush, exactly as it
// was when every write was its own system call: bytes the socket did not
// take go to the direction's pending buffer, and a failed write breaks the
// pair.

const (
	// ringEntries is the most writes one io_uring_enter carries.
	ringEntries = 256
	// arenaSlots and minArena size the arena: reads of a round land one
	// after another, each taking only what it read, so small messages of
	// hundreds of pairs fit before a flush is forced.
	arenaSlots = 4
	minArena   = 512 << 10
	// discardSize is what discardUnread reads before a socket is closed.
	discardSize = 16 << 10
	// resultSkipped marks a staged write that was not attempted: its pair
	// or its socket died before the flush.
	resultSkipped = math.MinInt32
)

// stagedWrite is a write waiting for the end of the round: toward side to
// of p, the iovecs stageIov[iov0:iov1], total bytes.
type stagedWrite struct {
	p          *epair
	to         side
	iov0, iov1 int32
	total      int
}

// slot returns where the next read goes: a slotSize window of the arena,
// whose first carryRoom bytes are for a carried header. The caller
// advances l.used by what it keeps. reserveSlots must have made room.
func (l *loop) slot() []byte {
	return l.arena[l.used : l.used+l.slotSize : l.used+l.slotSize]
}

// reserveSlots makes room for n more reads, flushing the round so far if
// the arena is too full. Call it only where a flush is safe: between
// pairs, never inside one's processing.
func (l *loop) reserveSlots(n int) {
	if len(l.arena)-l.used < n*l.slotSize {
		l.flushStage()
	}
}

// stageWrite queues segs (total bytes) toward side to of p.
func (l *loop) stageWrite(p *epair, to side, segs [][]byte, total int) {
	ep := &p.ep[to]
	if ep.staged {
		i := l.stagedIndex(p, to)
		if i >= 0 && (i != len(l.stage)-1 || int(l.stage[i].iov1) != len(l.stageIov)) {
			// Another write was staged since: move this one to the end,
			// iovecs and all. Only the order of one socket's bytes
			// matters, not the order between sockets.
			w := l.stage[i]
			copy(l.stage[i:], l.stage[i+1:])
			l.stage[len(l.stage)-1] = w
			from := len(l.stageIov)
			l.stageIov = append(l.stageIov, l.stageIov[w.iov0:w.iov1]...)
			l.stage[len(l.stage)-1].iov0, l.stage[len(l.stage)-1].iov1 = int32(from), int32(len(l.stageIov))
			i = len(l.stage) - 1
		}
		if i >= 0 {
			l.appendIov(segs)
			l.stage[i].iov1 = int32(len(l.stageIov))
			l.stage[i].total += total
			return
		}
	}
	from := len(l.stageIov)
	l.appendIov(segs)
	l.stage = append(l.stage, stagedWrite{p: p, to: to, iov0: int32(from), iov1: int32(len(l.stageIov)), total: total})
	ep.staged = true
}

func (l *loop) appendIov(segs [][]byte) {
	for _, seg := range segs {
		var v unix.Iovec
		v.Base = &seg[0]
		v.SetLen(len(seg))
		l.stageIov = append(l.stageIov, v)
	}
}

// stagedIndex finds p's staged write toward to; -1 if there is none.
func (l *loop) stagedIndex(p *epair, to side) int {
	for i := len(l.stage) - 1; i >= 0; i-- {
		if l.stage[i].p == p && l.stage[i].to == to {
			return i
		}
	}
	return -1
}

// flushStage writes everything staged and settles the results, until
// settling stages nothing more; then the arena and ctl are free again.
func (l *loop) flushStage() {
	for len(l.stage) > 0 {
		st, iov := l.stage, l.stageIov
		l.stage, l.stageIov = l.spare.stage[:0], l.spare.iov[:0]
		l.writeStage(st, iov)
		l.settle(st, iov)
		clear(st)
		clear(iov)
		l.spare.stage, l.spare.iov = st[:0], iov[:0]
	}
	l.used = 0
	l.fx.ctl = l.fx.ctl[:0]
}

// writeStage performs the staged writes; l.results[i] gets st[i]'s result:
// bytes written, -errno, or resultSkipped.
func (l *loop) writeStage(st []stagedWrite, iov []unix.Iovec) {
	l.results = l.results[:0]
	for range st {
		l.results = append(l.results, resultSkipped)
	}
	if l.ring == nil || len(st) == 1 {
		for i := range st {
			w := &st[i]
			if fd, ok := w.target(); ok {
				n, err := writeIovecs(fd, iov[w.iov0:w.iov1])
				l.results[i] = writeResult(n, err)
			}
		}
		return
	}
	l.msgs = l.msgs[:0]
	for i := range st {
		w := &st[i]
		fd, ok := w.target()
		if !ok {
			continue
		}
		switch v := iov[w.iov0:w.iov1]; {
		case len(v) == 1:
			l.ring.send(fd, v[0].Base, int(v[0].Len), uint64(i))
		case len(v) > iovMax:
			// sendmsg takes at most IOV_MAX iovecs, and a read full of
			// tiny pings answers each with a pong of its own: write this
			// one the plain way, which goes in IOV_MAX chunks.
			n, err := writeIovecs(fd, v)
			l.results[i] = writeResult(n, err)
		default:
			l.msgs = append(l.msgs, unix.Msghdr{})
			m := &l.msgs[len(l.msgs)-1]
			m.Iov = &v[0]
			m.SetIovlen(len(v))
			l.ring.sendmsg(fd, m, uint64(i))
		}
		if l.ring.full() || len(l.msgs) == cap(l.msgs) {
			if l.submitRing(); l.ring == nil {
				return // settle writes what was not sent the plain way
			}
		}
	}
	l.submitRing()
}

// submitRing sends what the ring has queued; if io_uring fails as a whole
// (it should not), the loop stops using it and reports the writes it
// carried as not attempted, which settle retries one system call each.
func (l *loop) submitRing() {
	if err := l.ring.submit(l.results); err != nil {
		l.dropRing(err)
	}
	l.msgs = l.msgs[:0]
}

// dropRing stops using io_uring on this loop, after it failed with err.
func (l *loop) dropRing(err error) {
	l.env.logger.Warn("relay: io_uring failed; one system call per read and write from now on", "err", err)
	l.ring.close()
	l.ring = nil
	l.ringOn.Store(false)
}

// target returns the socket w goes to, unless nothing may go there now.
func (w *stagedWrite) target() (int, bool) {
	p := w.p
	if p == nil || p.done {
		return -1, false
	}
	ep := &p.ep[w.to]
	if p.side[w.to].dead || ep.sock() < 0 {
		return -1, false
	}
	return ep.sock(), true
}

func writeResult(n int, err error) int32 {
	if err != nil {
		if errno, ok := err.(unix.Errno); ok {
			return -int32(errno)
		}
		return -int32(unix.EIO)
	}
	return int32(n)
}

// settle applies the results of st, in two passes. First every direction
// gets its unsent bytes into its pending buffer, with no other effect;
// only then do failures close pairs and finished pairs end, which may
// stage new frames (closes): by then they queue behind those bytes.
func (l *loop) settle(st []stagedWrite, iov []unix.Iovec) {
	for i := range st {
		w := &st[i]
		p := w.p
		if p == nil || p.done {
			continue
		}
		p.ep[w.to].staged = false
		res := l.results[i]
		if res == resultSkipped && w.alive() && l.ring == nil {
			// io_uring gave up mid-round: write it the plain way.
			if fd, ok := w.target(); ok {
				n, err := writeIovecs(fd, iov[w.iov0:w.iov1])
				res = writeResult(n, err)
				l.results[i] = res
			}
		}
		if res == int32(w.total) || res == resultSkipped {
			continue
		}
		written := 0
		if res == -int32(unix.EAGAIN) {
			p.ep[w.to].writable = false
		} else if res < 0 {
			continue // broken: handled in the second pass
		} else {
			written = int(res)
		}
		l.keepUnsent(p, w.to, iov[w.iov0:w.iov1], written)
	}
	for i := range st {
		w := &st[i]
		p := w.p
		if p == nil || p.done {
			continue
		}
		res := l.results[i]
		switch {
		case res < 0 && res != resultSkipped && res != -int32(unix.EAGAIN):
			l.event(p).writeFailed(w.to, &l.fx)
			l.apply(p)
		case res >= 0 && res < int32(w.total):
			// A short write means the socket buffer is full; one more
			// write confirms it with EAGAIN, which guarantees the next
			// EPOLLOUT edge.
			l.flush(p, w.to)
		}
		if !p.done && p.closing {
			l.event(p).settle(p.busy(), &l.fx)
			l.apply(p)
		}
	}
}

func (w *stagedWrite) alive() bool { _, ok := w.target(); return ok }

// keepUnsent copies what the socket did not take of v (written bytes
// went) into the pending buffer of the direction toward to.
func (l *loop) keepUnsent(p *epair, to side, v []unix.Iovec, written int) {
	l.holdPending(p, to)
	d := &p.ep[to]
	kept := 0
	for _, e := range v {
		b := unsafe.Slice(e.Base, e.Len)
		if written >= len(b) {
			written -= len(b)
			continue
		}
		d.pending.B = append(d.pending.B, b[written:]...)
		kept += len(b) - written
		written = 0
	}
	l.env.buffered.Add(int64(kept))
}

// writeStagedNow writes p's staged writes at once, one system call each:
// p is being torn down, and its close frames must reach the sockets before
// they are closed.
func (l *loop) writeStagedNow(p *epair) {
	if !p.ep[client].staged && !p.ep[upstream].staged {
		return
	}
	for i := range l.stage {
		w := &l.stage[i]
		if w.p != p {
			continue
		}
		if ep := &p.ep[w.to]; !p.side[w.to].dead && ep.sock() >= 0 {
			writeIovecs(ep.sock(), l.stageIov[w.iov0:w.iov1])
		}
		w.p = nil
	}
	p.ep[client].staged, p.ep[upstream].staged = false, false
}

// writeIovecs writes v with write or writev; it returns how many bytes
// the socket took.
func writeIovecs(fd int, v []unix.Iovec) (int, error) {
	total := 0
	for len(v) > 0 {
		chunk := v[:min(len(v), iovMax)]
		want := 0
		for _, e := range chunk {
			want += int(e.Len)
		}
		var n int
		var err error
		if len(chunk) == 1 {
			n, err = sysWrite(fd, unsafe.Slice(chunk[0].Base, chunk[0].Len))
		} else {
			n, err = sysWritev(fd, chunk)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err == unix.EAGAIN && total > 0 {
				// Earlier chunks went: a short write, not a failed
				// one, or the caller would send them again.
				return total, nil
			}
			return total, err
		}
		total += n
		if n < want {
			break
		}
		v = v[len(chunk):]
	}
	return total, nil
}
