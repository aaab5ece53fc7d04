package relay

import (
	"strconv"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// The state machine's part of a resumable session (examples/client/
// RESUME.md): message counts, the client's control messages, wsalive's
// acknowledgements, the replay buffer, parking and resuming. Like the rest
// of pair.go it does no I/O: the driver hands in events and carries out
// effects (effects.detach closes the client's socket of a parked pair).
// Tokens, the session table and the 101 of a resume are the engine's
// (session.go).
//
// Resumable pairs always run on the net.Conn driver, even plain TCP on
// Linux: a session needs a replay buffer, counts and acks per pair, and a
// client connection that can be swapped under a live upstream; sessions
// are opt-in and rare next to ordinary pairs, and keeping them off the
// epoll loops leaves its hot path and its 512-byte pair untouched (a
// session costs the pair one pointer it already had, pair.x).

const (
	// ackEvery is how many client messages wsalive forwards between two
	// acknowledgements toward the client (RESUME.md §3).
	ackEvery = 32
	// prefixLen is the length of a control prefix: 18 random bytes in
	// base64url.
	prefixLen = 24
	// tokenLen is the length of a token: 16 random bytes in base64url.
	tokenLen = 22
)

// resumeBudget is the process-wide bound on replay bytes
// (Options.ResumeMemory), shared by every session of an engine.
type resumeBudget struct {
	limit int64 // 0: no limit
	used  atomic.Int64
}

// take reserves n bytes; false when that would pass the limit.
func (b *resumeBudget) take(n int) bool {
	if b.used.Add(int64(n)) > b.limit && b.limit > 0 {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *resumeBudget) give(n int) { b.used.Add(-int64(n)) }

// sessState is what the pair state machine knows of its session.
type sessState struct {
	prefix [prefixLen]byte // the control prefix, as sent in the welcome
	window int64           // ns
	// up counts the client's messages handed to the upstream's
	// connection; upAcked is the up count last acknowledged to the client.
	up, upAcked uint64
	// parked: the client is away and the upstream waits until until (ns);
	// parkReason is why the client went, the pair's reason if the session
	// ends without it.
	parked     bool
	claimed    bool // a resume holds the session: the window does not end it
	parkReason Reason
	until      int64
	// lost is the refusal code once the session cannot be resumed
	// (ResumeOverflowed, ResumeCannotResume), 0 while it can.
	lost   uint16
	replay replayBuffer
}

// newSessState returns the state of a session with prefix, window (ns),
// and replay bounds.
func newSessState(prefix string, window int64, limit int, budget *resumeBudget) *sessState {
	s := &sessState{window: window}
	copy(s.prefix[:], prefix)
	s.replay.limit, s.replay.budget = limit, budget
	return s
}

// replayBuffer keeps the upstream's data frames toward the client, whole
// and as they came, for the messages the client has not acknowledged. It
// parses the upstream's bytes itself (a tap beside the stream): the
// stream only learns where frames are, and what it forwards toward the
// client is mixed with wsalive's own frames. Its partial-header handling
// mirrors the stream's carry, so that what it holds plus the bytes still
// to come is always exactly the upstream's frames.
//
// The bytes live in chunks, each twice the size of the one before from
// 512 B up to 16 KiB (those from a bytebufferpool of their own): a session that holds a few
// small messages holds a small chunk, a busy one 16 KiB chunks, and an
// acknowledgement frees whole chunks without copying what remains.
type replayBuffer struct {
	chunks []*bytebufferpool.ByteBuffer // nil while empty: an idle session holds none
	// Positions in the stream of bytes kept since the session started:
	// first is that of chunks[0].B[0], low that of the first byte held
	// (bytes before it in chunks[0] are acknowledged), high the end.
	first, low, high int64
	// ends[e0+i] is where message base+1+i ends; bytes past the last end
	// belong to the message in progress. Entries before e0 are spent, and
	// reclaimed once they are half of ends.
	ends []int64
	e0   int
	// base is how many messages were dropped (acknowledged) from the
	// front; sent how many complete messages the upstream sent.
	base, sent uint64
	limit      int
	budget     *resumeBudget
	off        bool // the buffer overflowed: count, keep nothing
	closed     bool // the upstream sent a close frame: nothing follows
	// The frame being parsed.
	hdr       [maxHeaderSize]byte
	hlen      int
	remaining uint64
	keep, fin bool
}

const (
	replayChunkMin = 512
	replayChunkMax = 16 << 10
)

// replayChunks lends the full-size chunks of busy sessions; it is a pool
// of its own so that it keeps that one size (see readSlots). The smaller
// first chunks of a session are left to the garbage collector.
var replayChunks bytebufferpool.Pool

// held returns the bytes held (and counted against the bounds).
func (r *replayBuffer) held() int { return int(r.high - r.low) }

// tap takes bytes read from the upstream; false when keeping them would
// pass a bound (the buffer is then dropped and keeps nothing more, but
// goes on counting messages).
func (r *replayBuffer) tap(p []byte) bool {
	ok := true
	for len(p) > 0 && !r.closed {
		if r.remaining > 0 {
			n := int(min(uint64(len(p)), r.remaining))
			if r.keep && !r.off {
				ok = r.add(p[:n]) && ok
			}
			p = p[n:]
			r.remaining -= uint64(n)
			if r.remaining == 0 {
				r.frameEnd()
			}
			continue
		}
		k := copy(r.hdr[r.hlen:], p)
		h, complete := parseHeader(r.hdr[:r.hlen+k])
		if !complete {
			r.hlen += k
			p = p[k:]
			continue
		}
		p = p[h.size-r.hlen:]
		r.hlen = 0
		if h.op == ws.OpClose {
			r.closed = true
			break
		}
		r.keep = !h.op.IsControl()
		r.fin = h.fin
		r.remaining = h.length
		if r.keep && !r.off {
			ok = r.add(r.hdr[:h.size]) && ok
		}
		if r.remaining == 0 {
			r.frameEnd()
		}
	}
	return ok
}

// frameEnd ends the frame parsed; a data frame with FIN ends a message.
func (r *replayBuffer) frameEnd() {
	if r.keep && r.fin {
		r.sent++
		if !r.off {
			r.ends = append(r.ends, r.high)
		}
	}
}

func (r *replayBuffer) add(b []byte) bool {
	if r.held()+len(b) > r.limit || !r.budget.take(len(b)) {
		r.drop()
		return false
	}
	r.high += int64(len(b))
	for len(b) > 0 {
		var c *bytebufferpool.ByteBuffer
		if n := len(r.chunks); n > 0 && len(r.chunks[n-1].B) < cap(r.chunks[n-1].B) {
			c = r.chunks[n-1]
		} else {
			size := replayChunkMin
			if n > 0 {
				size = min(2*cap(r.chunks[n-1].B), replayChunkMax)
			}
			if size == replayChunkMax {
				c = replayChunks.Get()
				if cap(c.B) != replayChunkMax {
					c.B = make([]byte, 0, replayChunkMax)
				}
				c.B = c.B[:0]
			} else {
				c = &bytebufferpool.ByteBuffer{B: make([]byte, 0, size)}
			}
			r.chunks = append(r.chunks, c)
		}
		k := min(len(b), cap(c.B)-len(c.B))
		c.B = append(c.B, b[:k]...)
		b = b[k:]
	}
	return true
}

// drop gives up the buffer for good (overflow, or the session's end).
func (r *replayBuffer) drop() {
	r.off = true
	r.budget.give(r.held())
	r.low = r.high
	r.freeUpTo(r.high)
	r.ends, r.e0 = nil, 0
}

// freeUpTo returns the chunks whose bytes all lie before position pos.
func (r *replayBuffer) freeUpTo(pos int64) {
	n := 0
	for n < len(r.chunks) && r.first+int64(len(r.chunks[n].B)) <= pos {
		r.first += int64(len(r.chunks[n].B))
		if cap(r.chunks[n].B) == replayChunkMax {
			replayChunks.Put(r.chunks[n])
		}
		r.chunks[n] = nil
		n++
	}
	r.chunks = r.chunks[n:]
	if len(r.chunks) == 0 {
		r.chunks = nil
		r.first = r.high
	}
}

// trim drops messages 1…n (the client has them); false when n is beyond
// what the upstream sent.
func (r *replayBuffer) trim(n uint64) bool {
	if n > r.sent {
		return false
	}
	if n <= r.base || r.off {
		r.base = max(r.base, n)
		return true
	}
	k := int(n - r.base)
	cut := r.ends[r.e0+k-1]
	r.e0 += k
	if r.e0 > len(r.ends)/2 {
		r.ends = r.ends[:copy(r.ends, r.ends[r.e0:])]
		r.e0 = 0
	}
	r.base = n
	r.budget.give(int(cut - r.low))
	r.low = cut
	r.freeUpTo(cut)
	return true
}

// from returns what a client that delivered recv messages misses:
// messages recv+1… and the one in progress, as frames, in segments. ok is
// false when the buffer cannot give them (overflowed, trimmed past recv,
// or recv beyond what was sent). The bytes are valid until the next tap
// or trim.
func (r *replayBuffer) from(recv uint64) (segs [][]byte, ok bool) {
	if r.off || recv > r.sent || recv < r.base {
		return nil, false
	}
	r.trim(recv)
	pos := r.first
	for _, c := range r.chunks {
		b := c.B
		if skip := r.low - pos; skip > 0 {
			b = b[skip:]
		}
		pos += int64(len(c.B))
		if len(b) > 0 {
			segs = append(segs, b)
		}
	}
	return segs, true
}

// bytes returns the bytes held, in one slice (tests).
func (r *replayBuffer) bytes() []byte {
	segs, _ := r.from(r.base)
	var b []byte
	for _, s := range segs {
		b = append(b, s...)
	}
	return b
}

// appendWelcome appends the welcome's JSON (RESUME.md §2).
func appendWelcome(dst []byte, resumed bool, token string, prefix []byte, windowMs int64, recv uint64) []byte {
	dst = append(dst, `{"wsalive":"welcome","v":1,"resume":true,"resumed":`...)
	dst = strconv.AppendBool(dst, resumed)
	dst = append(dst, `,"token":"`...)
	dst = append(dst, token...)
	dst = append(dst, `","control":"`...)
	dst = append(dst, prefix...)
	dst = append(dst, `","window_ms":`...)
	dst = strconv.AppendInt(dst, windowMs, 10)
	dst = append(dst, `,"recv":`...)
	dst = strconv.AppendUint(dst, recv, 10)
	return append(dst, '}')
}

// noResumeWelcome is the welcome of a client that opted in on a route
// without resume: a text frame toward the client.
var noResumeWelcome = appendTextFrame(nil, []byte(`{"wsalive":"welcome","v":1,"resume":false}`))

var errBadAck = violation{ws.StatusProtocolError, "resume: acknowledgement beyond the messages sent"}

// sessionControl handles a client text message collected whole on a
// session pair: consumed reports whether it was a control message (it
// then never reaches the upstream and is no message).
func (p *pair) sessionControl(ses *sessState, payload []byte, fx *effects) (consumed bool, v violation) {
	if len(payload) <= prefixLen || string(payload[:prefixLen]) != string(ses.prefix[:]) {
		return false, violation{}
	}
	cmd, arg := payload[prefixLen], payload[prefixLen+1:]
	if cmd != 'a' {
		// An unknown command from a newer helper: consumed, ignored.
		return true, violation{}
	}
	n, err := strconv.ParseUint(string(arg), 10, 64)
	if err != nil || !ses.replay.trim(n) {
		return true, errBadAck
	}
	return true, violation{}
}

// countUp counts a client message handed to the upstream. The read that
// brought it acknowledges once it is processed (ackDue), if ackEvery
// messages have passed since the last ack: one ack per read, however
// many messages the read held.
func (p *pair) countUp(ses *sessState, fx *effects) { ses.up++ }

// ackDue acknowledges after a client read that brought ackEvery or more
// messages since the last ack.
func (p *pair) ackDue(ses *sessState, fx *effects) {
	if ses.up-ses.upAcked >= ackEvery {
		p.sendAck(ses, fx)
	}
}

// sendAck sends the client the up count as a control message.
func (p *pair) sendAck(ses *sessState, fx *effects) {
	if p.side[client].dead || p.side[client].closeSent {
		return
	}
	ses.upAcked = ses.up
	var payload [prefixLen + 1 + 20]byte
	b := append(append(payload[:0], ses.prefix[:]...), 'a')
	b = strconv.AppendUint(b, ses.up, 10)
	// In fx.ctl once the pair has its chunk or is busy enough to be worth
	// one; before that a frame of its own, so that a quiet session does
	// not take on 16 KiB for a 50-byte frame every 32 messages.
	var frame []byte
	if cap(fx.ctl) > 0 || ses.up >= 32*ackEvery {
		frame = appendTextFrame(fx.frameRoom(len(b)+2), b)
		fx.ctl = fx.ctl[:len(fx.ctl)+len(frame)]
	} else {
		frame = appendTextFrame(make([]byte, 0, len(b)+2), b)
	}
	p.injectFrame(client, frame, kindAck, fx)
}

// tapUpstream gives the session's replay buffer the bytes read from the
// upstream; an overflow costs the session its resumability, and ends a
// parked one.
func (p *pair) tapUpstream(ses *sessState, b []byte, fx *effects) {
	// Tapped even once it overflowed: it still counts the messages sent,
	// which bound the client's acknowledgements.
	if ses.replay.tap(b) {
		return
	}
	if ses.lost == 0 {
		ses.lost = ResumeOverflowed
	}
	if ses.parked {
		p.endSession(ses, fx)
	}
}

// startSession sends the first welcome of a session toward the client,
// before any byte of the upstream's: the driver calls it right after
// start.
func (p *pair) startSession(ses *sessState, token string, fx *effects) {
	p.extras().ses = ses
	p.dir[client].rules.ctlMin = prefixLen + 1
	p.sendWelcome(ses, false, token, fx)
}

// sendWelcome puts the welcome in front of everything toward the client.
func (p *pair) sendWelcome(ses *sessState, resumed bool, token string, fx *effects) {
	var payload [256]byte
	b := appendWelcome(payload[:0], resumed, token, ses.prefix[:], ses.window/1e6, ses.up)
	// A frame of its own rather than in fx.ctl, whose first use costs a
	// pair 16 KiB for good.
	fx.send[client].add(appendTextFrame(make([]byte, 0, len(b)+4), b))
}

// canPark reports whether the session can wait for its client: it is
// resumable, nothing is closing, and the client's last message reached
// the upstream whole (a message cut in half cannot be finished by a
// resend). It records why not in ses.lost.
func (p *pair) canPark(ses *sessState) bool {
	if ses == nil || ses.lost != 0 || ses.parked || p.closing || p.done ||
		p.side[client].closeRecv || p.side[upstream].dead || p.side[upstream].closeRecv {
		return false
	}
	if d := &p.dir[client]; d.remaining > 0 || d.fragmented {
		ses.lost = ResumeCannotResume
		return false
	}
	return true
}

// park lets the client go and keeps the upstream: the client's socket is
// closed (effects.detach), nothing more goes toward it, and the window
// starts. r is why the client went. The caller re-runs duties to arm the
// window.
func (p *pair) park(ses *sessState, r Reason, fx *effects) {
	ses.parked = true
	ses.parkReason = r
	ses.until = fx.now + ses.window
	p.detachClient(fx)
}

// detachClient forgets the client's connection: its socket is closed
// without a close frame (effects.detach).
func (p *pair) detachClient(fx *effects) {
	c := &p.side[client]
	c.dead, c.blocked = true, false
	fx.gone[client] = true
	fx.detach = true
	p.dropQueued(client)
	// A header the client left half-sent never reached the upstream.
	p.dir[client].release()
}

// endSession ends a parked session: the upstream gets 1001 "client gone"
// and the pair ends with the reason the client went.
func (p *pair) endSession(ses *sessState, fx *effects) {
	ses.parked = false
	p.setReason(ses.parkReason)
	p.sendClose(upstream, ws.StatusGoingAway, "client gone", fx)
	p.beginClose(fx)
}

// resumable returns the refusal code of a resume now, 0 when the session
// can take a client.
func (p *pair) resumable(ses *sessState) uint16 {
	switch {
	case p.done || p.closing:
		return ResumeOver
	case ses.lost != 0:
		return ses.lost
	}
	return 0
}

// takeOver lets the session's current client connection go for a resume
// (it is most likely dead already, unnoticed): its socket is closed
// without a close frame. It returns a refusal code, 0 when the session
// now waits for the resuming client.
func (p *pair) takeOver(fx *effects) uint16 {
	ses := p.ses()
	if code := p.resumable(ses); code != 0 || ses.parked {
		return code
	}
	if !p.canPark(ses) {
		if ses.lost == 0 {
			return ResumeOver
		}
		return ses.lost
	}
	ses.parked, ses.until = true, fx.now+ses.window
	ses.parkReason = ReasonClientGone
	p.detachClient(fx)
	p.duties(fx)
	return 0
}

// resumeClient attaches a new client connection to the parked session
// (takeOver first if it was not): the client gets the resumed welcome
// with token, then the upstream's messages after recv from the replay
// buffer, then the live traffic. It returns a refusal code, 0 when the
// client is attached.
func (p *pair) resumeClient(token string, recv uint64, fx *effects) uint16 {
	ses := p.ses()
	ses.claimed = false
	if code := p.resumable(ses); code != 0 {
		return code
	}
	if !ses.parked {
		return ResumeOver
	}
	replay, ok := ses.replay.from(recv)
	if !ok {
		return ResumeCannotResume
	}
	ses.parked = false
	p.side[client] = peer{}
	d := &p.dir[client]
	d.remaining, d.dropping, d.fragmented, d.srcClosed, d.stopped = 0, false, false, false, false
	p.hb[client].Start(&p.pol.side[client].Heartbeat, fx.now)
	p.sendWelcome(ses, true, token, fx)
	ses.upAcked = ses.up
	for _, seg := range replay {
		fx.send[client].add(seg)
	}
	p.duties(fx)
	return 0
}
