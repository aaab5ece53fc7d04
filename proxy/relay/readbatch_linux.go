package relay

import "golang.org/x/sys/unix"

// The round's reads, batched: before the ready pairs are served one by
// one, every socket among them that is expected to hold a small message
// (a heartbeat's pong, a chat line, a request) is read in one
// io_uring_enter. What each read brings is then handled exactly as a
// read(2) in pump would be. Sockets that hold more than a batch read
// takes are read again at once by pump, with the full buffer, and from
// then on alone (endpoint.bulk) until a read comes back short.

// batchReadSize is what one read in the batch takes. Small messages fit;
// the space of a whole batch (ringEntries reads) stays within the arena,
// and it is all the arena a batch touches.
const batchReadSize = 2 << 10

// batchedRead is one read of the batch: side s of p, into arena[at:].
type batchedRead struct {
	p  *epair
	s  side
	at int
}

// readBatch reads, in batches of up to ringEntries, every socket of ready
// that has bytes waiting, may be read now, and is not known to hold more
// than batchReadSize.
func (l *loop) readBatch(ready []*epair) {
	if l.ring == nil {
		return
	}
	next := 0 // index in ready of the first pair not yet considered
	side0 := client
	for next < len(ready) {
		l.reads = l.reads[:0]
		// Slots start carryRoom into the free arena: withCarry writes in
		// front of a slot, but only when the stream carries bytes, and
		// such a stream is not batched, so the room is never written and
		// slots can be packed without it.
		at := l.used + carryRoom
		for ; next < len(ready) && len(l.reads) < ringEntries; next++ {
			p := ready[next]
			for s := side0; s <= upstream && !p.done; s++ {
				if len(l.reads) == ringEntries || len(l.arena)-at < batchReadSize {
					side0 = s
					goto full
				}
				if l.batchable(p, s) {
					l.reads = append(l.reads, batchedRead{p, s, at})
					at += batchReadSize
				}
			}
			side0 = client
		}
	full:
		if len(l.reads) < 2 {
			// One read is as cheap as read(2); pump does it.
			return
		}
		l.used = at
		for i, r := range l.reads {
			l.ring.recv(r.p.ep[r.s].sock(), &l.arena[r.at], batchReadSize, uint64(i))
		}
		l.readRes = l.readRes[:len(l.reads)]
		for i := range l.readRes {
			l.readRes[i] = resultSkipped
		}
		err := l.ring.submit(l.readRes)
		// Reads that ran took their bytes off the socket, even if the
		// batch as a whole failed: they are settled either way.
		for i, r := range l.reads {
			if l.readRes[i] != resultSkipped {
				l.settleRead(r, l.readRes[i])
			}
		}
		clear(l.reads)
		if err != nil {
			l.dropRing(err)
			return // pump reads the rest the plain way
		}
		if len(l.arena)-l.used < carryRoom+2*batchReadSize {
			return // the arena is spent until the flush; pump reads the rest
		}
	}
}

// batchable reports whether side s of p goes in the read batch.
func (l *loop) batchable(p *epair, s side) bool {
	ep := &p.ep[s]
	return ep.readable && !p.side[s].dead && !ep.bulk && p.ep[s.other()].pending == nil && p.dir[s].carry == nil
}

// settleRead handles the result of one batched read like pump handles
// read(2).
func (l *loop) settleRead(r batchedRead, res int32) {
	p, s := r.p, r.s
	if p.done || p.side[s].dead {
		return
	}
	switch {
	case res == -int32(unix.EAGAIN):
		p.ep[s].readable = false
	case res == -int32(unix.EINTR):
		// Still readable: pump reads it.
	case res <= 0:
		l.event(p).readEnded(s, &l.fx)
		l.apply(p)
	default:
		slot := l.arena[r.at-carryRoom : r.at+batchReadSize : r.at+batchReadSize]
		l.gotBytes(p, s, slot, int(res))
	}
}
