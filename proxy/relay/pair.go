package relay

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/metrics"
)

// The pair state machine: everything a pair decides, on every platform and
// for every driver. It does no I/O and never calls its driver. A driver
// (the epoll loop on Linux, the net.Conn driver elsewhere and for TLS)
// turns what happens on the sockets and the clock into events, calls the
// pair's event method with an effects value, and then carries out the
// effects it holds:
//
//	event                              effects
//	start                              —
//	read(s, bytes)                     send toward either side, arm timer, end
//	readEnded(s), writeFailed(s)       gone(s), send toward the other, end
//	writeDone(s)                       send toward s (answers held back)
//	timerFired                         send (pings, closes), arm timer, end
//	closeRequested(code, reason)       send closes, arm timer
//	drainBy(order)                     arm timer at its moment, or send closes
//	writeBlocked(s)                    —
//	settle(busy)                       end
//	cut(reason)                        end
//
// Backpressure stays with the driver: it stops reading side s while the
// bytes from s wait for the other side's socket, and tells the pair that
// a sink is blocked (writeBlocked) and free again (writeDone), which is
// all the pair needs to hold back its own answers.
//
// Every way a pair ends, with its Reason:
//
//   - a side sends a close frame: the handshake runs, then the pair ends
//     (ReasonClientClosed, ReasonUpstreamClosed; see closeFrame);
//   - a side's connection ends without one, on read or write
//     (ReasonClientGone, ReasonUpstreamGone; readEnded, writeFailed);
//   - a side breaks RFC 6455 or sends a frame over the size limit
//     (Reason*ProtocolError, Reason*FrameTooBig; violation);
//   - a side misses max_missed pings (Reason*HeartbeatTimeout; duties);
//   - no data frame for idle_timeout, or max_lifetime reached
//     (ReasonIdleTimeout, ReasonMaxLifetime; duties);
//   - the engine drains or shuts down (ReasonDrain, ReasonShutdown;
//     closeRequested, and duties at the pair's drain moment);
//   - the close handshake outlives close_timeout: the sockets are closed
//     (duties), keeping the reason that started the close;
//   - the driver cuts it (cut): a forced shutdown, or a socket the driver
//     could not take on.
//
// Whichever way it ends, the close frames that crossed, forwarded or
// wsalive's own, are kept per side in the pair's close log (closeLog)
// for its stats: what each side received and what it sent.

// peer is what the pair knows of one side's connection.
type peer struct {
	// dead: no more I/O with it (EOF, reset, failed write).
	dead bool
	// abort: it cannot be sent a clean close (the frame toward it can
	// never finish), so its connection is closed without one.
	abort bool
	// closeSent: a close frame is on its way to it; closeRecv: it sent
	// one, with closeCode.
	closeSent bool
	closeRecv bool
	// blocked: the driver holds bytes toward it that its socket has not
	// taken yet (writeBlocked until writeDone).
	blocked   bool
	closeCode ws.StatusCode
}

// direction is one way through a pair: bytes from side s toward
// s.other(), with their framing state and counters.
type direction struct {
	stream
	bytes  uint64 // written toward the sink, injected frames included
	frames uint64 // received from the source, control frames included
	// reportedBytes and reportedFrames are what metrics already got,
	// modulo 2^32 (a round moves far less).
	reportedBytes, reportedFrames uint32
}

// pair is one client/upstream pair: the state machine.
type pair struct {
	id    uint64
	route *routeInfo
	// opened is the engine clock (ns) at start.
	opened int64
	side   [2]peer
	dir    [2]direction // dir[s] carries bytes from s toward s.other()
	hb     [2]liveness.Side
	pol    *Policy
	// lastData is when a data frame last passed either way (idle
	// timeout).
	lastData int64
	// endAt is when the pair ends at the latest, 0 for never. While it
	// is open: its max_lifetime, or its moment in a drain (drain set) if
	// that comes first. Once closing is set: the close handshake's
	// deadline, which replaces the limits (a closing pair ends by its
	// handshake); one field for both keeps the pair in its size class.
	endAt int64
	drain *drainOrder
	// x holds what few pairs need: the close log, made when the first
	// close frame crosses, and a resumable session's state. An open pair
	// pays one pointer for both, not the records (the epoll pair has no
	// spare byte in its size class).
	x       *pairExtras
	reason  Reason
	closing bool
	done    bool
	recheck bool // run duties after the current read: a deadline moved
	// closeTimeout bounds the close handshake, in milliseconds (it
	// packs with the flags above).
	closeTimeout uint32
}

// closeLog is a pair's close handshake as it crossed wsalive, per side:
// the close frame that went toward it (the other side's, forwarded, or
// wsalive's own) and the one it sent. A close frame that waits for a
// frame boundary is in toward from the start, and struck out if it is
// dropped before it goes (dropQueued).
type closeLog struct {
	toward [2]CloseFrame
	from   [2]CloseFrame
}

// pairExtras is what a pair holds behind its one optional pointer.
type pairExtras struct {
	closes closeLog
	// ses is the session state of a resumable pair (resume.go), nil for
	// every other pair.
	ses *sessState
	// addrText holds, per side, a socket address the pair cannot keep as
	// a value (see peerAddr): one with a zone, or not an IP address.
	addrText [2]string
}

// extras returns p's extras, made on first use.
func (p *pair) extras() *pairExtras {
	if p.x == nil {
		p.x = new(pairExtras)
	}
	return p.x
}

// log returns p's close log, made when the first close frame crosses.
func (p *pair) log() *closeLog { return &p.extras().closes }

// ses returns p's session state, nil unless p is a resumable session.
func (p *pair) ses() *sessState {
	if p.x == nil {
		return nil
	}
	return p.x.ses
}

// routeInfo is what the pairs of one route share: its name and its
// metrics handle, resolved once.
type routeInfo struct {
	name    string
	metrics metrics.Route
}

// effects is what an event asks of the driver. The driver owns one,
// resets it before an event, and afterwards carries it out in this order:
// drop what waits toward a gone side, send, re-arm the timer, end.
type effects struct {
	// now is the event's time on the engine clock (ns): an input.
	now int64
	// rng makes masking keys: an input, owned by the driver.
	rng *rand.ChaCha8
	// send holds the bytes toward each side, in order: slices of the
	// bytes handed in with the event, and frames built in ctl.
	send [2]batch
	// ctl is where injected frames are built. The driver keeps its
	// contents until the bytes in send are written or copied.
	ctl []byte
	// unread[s]: the driver paused reading s (its sink is blocked) with
	// bytes from s waiting; an input to timerFired.
	unread [2]bool
	// arm, when not 0, is when the pair's timer must fire next.
	arm int64
	// gone[s]: side s is gone; drop what waits toward it.
	gone [2]bool
	// detach: a resumable session let its client go (it parks, or a
	// resume takes it over); close the client's socket, keep the pair.
	detach bool
	// done: the pair is over; close both sockets and report p.reason.
	done bool
	// handler hands the frames of a read to the pair with these effects.
	handler frameEvents
}

// frameEvents is the stream's frameHandler during a read event: the pair
// and the effects of the event.
type frameEvents struct {
	p  *pair
	fx *effects
}

func (h *frameEvents) control(st *stream, hd *header, frame, payload []byte) (bool, violation) {
	return h.p.control(st, hd, frame, payload, h.fx)
}

func (h *frameEvents) data(st *stream, hd *header) { h.p.data(st, hd, h.fx) }

func (fx *effects) reset() {
	fx.send[client].reset()
	fx.send[upstream].reset()
	fx.arm = 0
	fx.gone = [2]bool{}
	fx.unread = [2]bool{}
	fx.detach = false
	fx.done = false
}

// frameRoom returns an empty slice with room for n bytes in ctl.
func (fx *effects) frameRoom(n int) []byte {
	if cap(fx.ctl)-len(fx.ctl) < n {
		// The old chunk lives on as long as bytes to send point into it.
		fx.ctl = make([]byte, 0, ctlChunk)
	}
	return fx.ctl[len(fx.ctl):len(fx.ctl):cap(fx.ctl)]
}

const (
	// ctlChunk holds a round's injected control frames (at most 131 B
	// each).
	ctlChunk = 16 << 10
	// wheelTick is the timer resolution; close deadlines and heartbeats
	// are seconds long, so 100 ms is plenty and keeps wakeups rare.
	wheelTick = 100 * time.Millisecond
)

// maskKey returns a fresh unpredictable masking key (RFC 6455 §5.3).
func (fx *effects) maskKey() (k [4]byte) {
	binary.LittleEndian.PutUint32(k[:], uint32(fx.rng.Uint64()))
	return k
}

// newPair returns a pair for h, not yet started.
func newPair(id uint64, h *Handoff, r *routeInfo) *pair {
	p := &pair{}
	p.init(id, h, r)
	return p
}

// init sets up p (embedded in a driver's pair) for h.
func (p *pair) init(id uint64, h *Handoff, r *routeInfo) {
	p.id, p.route, p.pol = id, r, h.Policy
	ct := h.CloseTimeout
	if ct <= 0 {
		ct = 5 * time.Second
	}
	p.closeTimeout = uint32(min(max(ct/time.Millisecond, 1), math.MaxUint32))
	if p.pol == nil {
		p.pol = noPolicy
	}
	p.dir[client].rules = rulesFor(true, h.Extensions, h.MaxFrameSize)
	p.dir[client].rules.wholeText = uint64(p.pol.appMatchLen)
	p.dir[upstream].rules = rulesFor(false, h.Extensions, h.MaxFrameSize)
}

// start begins the pair's life at fx.now. The driver then feeds the bytes
// the handshakes read ahead (read events) and calls timerFired once to
// arm the first timer.
func (p *pair) start(fx *effects) {
	p.opened = fx.now
	p.lastData = fx.now
	for s := client; s <= upstream; s++ {
		p.hb[s].Start(&p.pol.side[s].Heartbeat, fx.now)
	}
	if p.pol.lifetime > 0 {
		jitter := int64(0)
		if p.pol.jitter > 0 {
			jitter = int64(fx.rng.Uint64() % uint64(p.pol.jitter))
		}
		p.endAt = fx.now + p.pol.lifetime - jitter
	}
	p.route.metrics.PairOpened()
}

// setReason records the first cause of the pair's end.
func (p *pair) setReason(r Reason) {
	if p.reason == ReasonNone {
		p.reason = r
	}
}

// read handles n bytes read from side s into slot[carryRoom:]. The bytes
// to send (fx.send) may point into slot.
func (p *pair) read(s side, slot []byte, n int, fx *effects) {
	if p.done {
		return
	}
	p.hb[s].Received(fx.now)
	d := &p.dir[s]
	buf := d.withCarry(slot, carryRoom, n)
	if d.remaining > 0 && !d.dropping {
		// The payload of a data frame is still arriving: the pair is in
		// use even though no new frame header passes (idle timeout).
		p.lastData = fx.now
	}
	if s == upstream && p.x != nil && p.x.ses != nil {
		// The replay buffer parses the fresh bytes itself (it keeps its
		// own partial header, as the stream keeps its carry).
		p.tapUpstream(p.x.ses, slot[carryRoom:carryRoom+n], fx)
		if p.done {
			return
		}
	}
	fx.handler = frameEvents{p, fx}
	v := d.process(buf, &fx.send[s.other()], &fx.handler)
	if !v.ok() {
		p.protocolBroken(s, v, fx)
		return
	}
	if s == client && p.x != nil && p.x.ses != nil && !p.done {
		p.ackDue(p.x.ses, fx)
	}
	if p.recheck && !p.done {
		// A pong moved a heartbeat deadline earlier than the armed timer
		// (a timeout longer than the interval): re-arm now, outside
		// process, where injecting frames is safe.
		p.recheck = false
		p.duties(fx)
	}
}

// control handles a control frame (or a text frame collected whole)
// from the source of st: see frameHandler.
func (p *pair) control(st *stream, h *header, frame, payload []byte, fx *effects) (bool, violation) {
	s := p.sideOf(st)
	p.dir[s].frames++
	switch h.op {
	case ws.OpClose:
		return p.closeFrame(st, s, payload, fx)
	case ws.OpPong:
		// A pong answering wsalive's ping is absorbed; any other pong is
		// the peers' business and crosses untouched.
		if liveness.IsOwnPong(payload) {
			before := p.hb[s].Stats().PongsReceived
			p.hb[s].Pong(&p.pol.side[s].Heartbeat, payload, fx.now)
			if st := p.hb[s].Stats(); st.PongsReceived != before {
				p.route.metrics.Pong(s.metric(), st.LastRTT)
			}
			p.recheck = true
			return false, violation{}
		}
	case ws.OpPing:
		if p.pol.side[s].AnswerPings || p.side[s.other()].dead && !p.closing {
			// The client of a parked session cannot answer: wsalive does.
			p.inject(s, ws.OpPong, payload, kindPong, fx)
			return false, violation{}
		}
	case ws.OpText:
		// Collected whole because its length matches the app ping, or
		// could be a session's control message.
		if ses := p.ses(); ses != nil && s == client {
			if consumed, v := p.sessionControl(ses, payload, fx); consumed || !v.ok() {
				return false, v
			}
		}
		if string(payload) == string(p.pol.appMatch) {
			p.injectFrame(s, p.pol.appReply, kindText, fx)
			return false, violation{}
		}
		p.lastData = fx.now
		if ses := p.ses(); ses != nil && s == client {
			p.countUp(ses, fx)
		}
	}
	return true, violation{}
}

// data handles a data frame header from the source of st.
func (p *pair) data(st *stream, h *header, fx *effects) {
	s := p.sideOf(st)
	p.dir[s].frames++
	p.lastData = fx.now
	if s == client && h.fin && p.x != nil && p.x.ses != nil && !st.sinkClosed {
		// A session counts the client's messages as their last frame
		// goes up (a cut in its middle ends the session: canPark).
		p.countUp(p.x.ses, fx)
	}
}

// sideOf tells which side's stream st is.
func (p *pair) sideOf(st *stream) side {
	if st == &p.dir[client].stream {
		return client
	}
	return upstream
}

// closeFrame handles a close frame from side s.
func (p *pair) closeFrame(st *stream, s side, payload []byte, fx *effects) (bool, violation) {
	code, v := checkClosePayload(payload)
	if !v.ok() {
		return false, v
	}
	me, other := &p.side[s], &p.side[s.other()]
	me.closeRecv = true
	me.closeCode = code
	st.srcClosed = true
	sent := CloseFrame{Code: uint16(code)}
	if len(payload) > 2 {
		// Copied: payload is scratch memory of the read.
		sent.Reason = string(payload[2:])
	}
	log := p.log()
	log.from[s] = sent
	p.setReason(closedBy(s))
	p.beginClose(fx)
	if ses := p.ses(); ses != nil && ses.parked && s == upstream {
		// The client is away: the session ends and wsalive answers.
		ses.parked = false
		p.sendClose(upstream, code, "", fx)
	}
	// Forward it unless the other side already has a close (it started
	// the handshake, or wsalive did) or is gone.
	if other.closeSent || other.dead || other.abort {
		return false, violation{}
	}
	other.closeSent = true
	log.toward[s.other()] = sent
	return true, violation{}
}

// readEnded handles EOF or a read error on side s.
func (p *pair) readEnded(s side, fx *effects) {
	if p.side[s].closeRecv {
		// The orderly end: it closed TCP after its close frame.
		p.kill(s, ReasonNone, "", fx)
	} else if s == client && p.canPark(p.ses()) {
		p.park(p.x.ses, goneReason(s), fx)
		p.duties(fx)
	} else {
		p.kill(s, goneReason(s), s.String()+" gone", fx)
	}
}

// writeFailed handles a failed write toward side s.
func (p *pair) writeFailed(s side, fx *effects) { p.readEnded(s, fx) }

// writeBlocked records that the driver holds bytes toward side s that its
// socket did not take yet.
func (p *pair) writeBlocked(s side) { p.side[s].blocked = true }

// writeDone records that side s's socket took everything the driver held
// for it, and sends the answers held back meanwhile (see injectFrame).
func (p *pair) writeDone(s side, fx *effects) {
	p.side[s].blocked = false
	d := p.toward(s)
	if p.done || !d.hasQueued() || !d.atBoundary() {
		return // a frame is on its way: its end releases them
	}
	d.emitQueued(&fx.send[s])
}

// kill marks side s gone: nothing more goes to it, and the other side is
// told with a 1001 close frame with text as its reason, unless it already
// has a close.
func (p *pair) kill(s side, r Reason, text string, fx *effects) {
	me := &p.side[s]
	if me.dead || p.done {
		return
	}
	me.dead = true
	me.blocked = false
	p.setReason(r)
	fx.gone[s] = true
	p.dropQueued(s)
	p.toward(s).sinkClosed = true
	o := s.other()
	oe := &p.side[o]
	from := &p.dir[s]
	switch {
	case !oe.dead && !oe.closeSent:
		code := ws.StatusGoingAway
		if oe.closeRecv {
			// It started the close handshake and s died before
			// answering: answer in s's place, echoing its code.
			code, text = oe.closeCode, ""
		}
		p.sendClose(o, code, text, fx)
	case oe.closeSent && !oe.abort && !from.sinkClosed && !from.atBoundary():
		// A close toward o waits behind a frame from s that s will now
		// never finish: o cannot get a clean close, as sendClose would
		// have decided had s been dead already.
		oe.abort = true
		p.dropQueued(o)
	}
	p.beginClose(fx)
}

// closeRequested closes both sides of a live pair for reason r: the
// client gets code and text, the upstream 1001 with upstreamText (a
// policy limit, a drain, a shutdown).
func (p *pair) closeRequested(r Reason, code ws.StatusCode, text, upstreamText string, fx *effects) {
	if p.done {
		return
	}
	p.setReason(r)
	p.sendClose(client, code, text, fx)
	p.sendClose(upstream, ws.StatusGoingAway, upstreamText, fx)
	p.beginClose(fx)
}

// protocolBroken ends a pair whose side s broke the protocol: the offender gets
// the violation's code, the other side 1001.
func (p *pair) protocolBroken(s side, v violation, fx *effects) {
	p.setReason(violationReason(s, v))
	p.sendClose(s, v.code, v.reason, fx)
	p.sendClose(s.other(), ws.StatusGoingAway, s.String()+" protocol error", fx)
	p.beginClose(fx)
}

// sendClose sends a close frame to side to at the next frame boundary.
// When that boundary can never come (the frame toward it is cut off
// because its source is gone), to is aborted instead.
func (p *pair) sendClose(to side, code ws.StatusCode, reason string, fx *effects) {
	sd := &p.side[to]
	d := p.toward(to)
	if sd.dead || sd.abort || sd.closeSent || d.sinkClosed {
		return
	}
	sd.closeSent = true
	if !d.atBoundary() && p.side[to.other()].dead {
		sd.abort = true
		return
	}
	var payload []byte
	if code != ws.StatusNoStatusRcvd {
		payload = closePayload(code, reason)
		reason = reason[:len(payload)-2] // as cut to fit the frame
	} else {
		reason = ""
	}
	p.log().toward[to] = CloseFrame{Code: uint16(code), Reason: reason}
	p.inject(to, ws.OpClose, payload, kindClose, fx)
}

// dropQueued throws away the frames that wait for a frame boundary
// toward side s. A close frame among them never reaches s, so it leaves
// the close log.
func (p *pair) dropQueued(s side) {
	d := p.toward(s)
	for _, q := range d.queued {
		if q.kind == kindClose {
			p.x.closes.toward[s] = CloseFrame{}
		}
	}
	d.queued = nil
}

// inject sends a control frame with payload to side to at the next frame
// boundary, masked toward the upstream with a fresh key.
func (p *pair) inject(to side, op ws.OpCode, payload []byte, kind frameKind, fx *effects) {
	frame := appendControlFrame(fx.frameRoom(maxControlFrame), op, payload, to == upstream, fx.maskKey())
	fx.ctl = fx.ctl[:len(fx.ctl)+len(frame)]
	p.injectFrame(to, frame, kind, fx)
}

// injectFrame sends a ready-made frame to side to; see stream.inject.
func (p *pair) injectFrame(to side, frame []byte, kind frameKind, fx *effects) {
	if p.side[to].dead || p.side[to].abort {
		return
	}
	d := p.toward(to)
	if p.side[to].blocked && (kind == kindPong || kind == kindText || kind == kindAck) {
		// The sink is not taking what it has. An answer (pong, app
		// reply) waits until it has, replacing an older one of its kind
		// (only the latest ping needs a pong, RFC 6455 §5.5.3): a peer
		// that sends pings and never reads must not grow the buffer
		// toward it past the backpressure bound. writeDone sends it.
		d.hold(frame, kind)
		return
	}
	d.inject(frame, kind, &fx.send[to])
}

func (p *pair) beginClose(fx *effects) {
	if p.closing || p.done {
		return
	}
	p.closing = true
	p.endAt = fx.now + int64(p.closeTimeout)*int64(time.Millisecond)
	fx.arm = p.endAt
}

// finished reports whether side s needs nothing more: it is gone, or its
// close handshake is complete and everything toward it is written (busy:
// the driver still holds bytes for it).
func (p *pair) finished(s side, busy bool) bool {
	sd := &p.side[s]
	if sd.dead || sd.abort {
		return true
	}
	return sd.closeSent && !busy && !p.toward(s).hasQueued() &&
		(sd.closeRecv || p.dir[s].stopped)
}

// settle ends a closing pair once both sides are finished; busy[s] says
// whether the driver still holds bytes toward s.
func (p *pair) settle(busy [2]bool, fx *effects) {
	if p.closing && !p.done && p.finished(client, busy[client]) && p.finished(upstream, busy[upstream]) {
		p.end(fx)
	}
}

// cut ends the pair at once, without a close handshake.
func (p *pair) cut(r Reason, fx *effects) {
	p.setReason(r)
	p.end(fx)
}

// end marks the pair over and releases its streams' buffers.
func (p *pair) end(fx *effects) {
	if p.done {
		return
	}
	p.done = true
	fx.done = true
	for s := client; s <= upstream; s++ {
		p.dropQueued(s)
		p.dir[s].release()
	}
	if ses := p.ses(); ses != nil {
		ses.replay.drop()
	}
	p.route.metrics.PairClosed(p.reason.String())
}

// timerFired runs the pair's timed duties.
func (p *pair) timerFired(fx *effects) { p.duties(fx) }

// duties runs p's timed work (close deadline, heartbeats toward both
// sides, idle and lifetime limits, a drain's moment) and asks for its
// one timer at the earliest next one. Traffic never touches the timer:
// it only stores timestamps, and duties, when the timer fires, decides
// whether anything is due.
func (p *pair) duties(fx *effects) {
	if p.done {
		return
	}
	now := fx.now
	if p.closing {
		if now >= p.endAt {
			// The close handshake ran out of time: close both sockets.
			p.end(fx)
		} else {
			fx.arm = p.endAt
		}
		return
	}
	next := int64(math.MaxInt64)
	for s := client; s <= upstream; s++ {
		pol := &p.pol.side[s].Heartbeat
		if !pol.Enabled() || p.side[s].dead {
			// Dead and not closing: the client of a parked session.
			continue
		}
		if !p.hb[s].Waiting() && !p.toward(s).atBoundary() {
			// A frame toward s is still on its way, and a ping may only
			// follow it: look again shortly instead of starting a ping's
			// timeout that s cannot answer. Meanwhile TCP_USER_TIMEOUT
			// watches the writes of that frame.
			next = min(next, now+int64(wheelTick))
			continue
		}
		if fx.unread[s] {
			// Reading s is paused because its sink is full, and bytes
			// from it are waiting: s is alive (its pong may be among
			// them). A slow reader on one side must not make the other
			// side look dead.
			p.hb[s].Received(now)
		}
		missed := p.hb[s].Stats().Missed
		act, at := p.hb[s].Check(pol, now)
		if m := p.hb[s].Stats().Missed; m > missed || act == liveness.Dead {
			p.route.metrics.Miss(s.metric())
		}
		switch act {
		case liveness.SendPing:
			var buf [liveness.PingPayloadSize]byte
			p.inject(s, ws.OpPing, p.hb[s].PingPayload(buf[:0]), kindPing, fx)
			p.route.metrics.Ping(s.metric())
			if ses := p.ses(); s == client && ses != nil && ses.up != ses.upAcked {
				p.sendAck(ses, fx)
			}
		case liveness.Dead:
			if s == client && p.canPark(p.ses()) {
				p.park(p.x.ses, heartbeatReason(s), fx)
				continue
			}
			p.kill(s, heartbeatReason(s), s.String()+" heartbeat timeout", fx)
			return
		}
		next = min(next, at)
	}
	if p.pol.idle > 0 {
		at := p.lastData + p.pol.idle
		if now >= at {
			p.closeRequested(ReasonIdleTimeout, ws.StatusGoingAway, "idle timeout", "idle timeout", fx)
			return
		}
		next = min(next, at)
	}
	if ses := p.ses(); ses != nil && ses.parked && !ses.claimed {
		if now >= ses.until {
			p.endSession(ses, fx)
			return
		}
		next = min(next, ses.until)
	}
	if p.endAt > 0 {
		if now < p.endAt {
			next = min(next, p.endAt)
		} else if o := p.drain; o != nil {
			p.closeRequested(o.reason, o.code, o.text, "going away", fx)
			return
		} else {
			p.closeRequested(ReasonMaxLifetime, ws.StatusGoingAway, "max lifetime", "max lifetime", fx)
			return
		}
	}
	if next != math.MaxInt64 {
		fx.arm = next
	}
}

// drainOrder is one Engine.Drain (or Close) as the pairs see it, and its
// account.
type drainOrder struct {
	code   ws.StatusCode
	text   string
	reason Reason // ReasonDrain, or ReasonShutdown for Close
	window time.Duration
	// Counted as pairs that were given this order end.
	drained, ended, cut atomic.Int64
}

// drainBy gives p its moment in drain o: a uniformly random time within
// o's window from now (at once for a zero window). A pair that is
// already closing keeps its close.
func (p *pair) drainBy(o *drainOrder, fx *effects) {
	if p.done {
		return
	}
	if p.closing {
		if p.drain == nil {
			p.drain = o
		}
		return
	}
	at := fx.now
	if ses := p.ses(); o.window > 0 && (ses == nil || !ses.parked) {
		// A parked session ends at once: nobody will resume it.
		at += int64(fx.rng.Uint64() % uint64(o.window))
	}
	if at <= fx.now {
		p.drain = o
		p.closeRequested(o.reason, o.code, o.text, "going away", fx)
		return
	}
	// A pair whose max_lifetime comes first is closed by the drain then.
	p.drain = o
	if p.endAt == 0 || at < p.endAt {
		p.endAt = at
	}
	p.duties(fx)
}

// countDrain adds the ended pair to its drain's account; forced: it was
// cut when the drain's context ended.
func (p *pair) countDrain(forced bool) {
	o := p.drain
	if o == nil {
		return
	}
	switch {
	case forced:
		o.cut.Add(1)
	case p.reason == o.reason:
		o.drained.Add(1)
	default:
		o.ended.Add(1)
	}
}

// outgoing returns the bytes fx holds toward side to, counted, or nil
// when there are none or the side takes no more.
func (p *pair) outgoing(to side, fx *effects) *batch {
	b := &fx.send[to]
	if b.total == 0 || p.side[to].dead || p.side[to].abort {
		return nil
	}
	p.toward(to).bytes += uint64(b.total)
	return b
}

// reportRelayed gives metrics what crossed since the last report: called
// by the driver once per round in which the pair was served.
func (p *pair) reportRelayed() {
	for s := client; s <= upstream; s++ {
		d := &p.dir[s]
		// Bytes are counted toward the sink, frames from the source.
		b, f := uint32(d.bytes)-d.reportedBytes, uint32(d.frames)-d.reportedFrames
		if b != 0 || f != 0 {
			p.route.metrics.Relayed(s.other().towardMetric(), uint64(b), uint64(f))
			d.reportedBytes, d.reportedFrames = uint32(d.bytes), uint32(d.frames)
		}
	}
}

func closedBy(s side) Reason {
	if s == client {
		return ReasonClientClosed
	}
	return ReasonUpstreamClosed
}

func goneReason(s side) Reason {
	if s == client {
		return ReasonClientGone
	}
	return ReasonUpstreamGone
}

func heartbeatReason(s side) Reason {
	if s == client {
		return ReasonClientHeartbeatTimeout
	}
	return ReasonUpstreamHeartbeatTimeout
}

func violationReason(s side, v violation) Reason {
	switch {
	case s == client && v.code == ws.StatusMessageTooBig:
		return ReasonClientFrameTooBig
	case s == client:
		return ReasonClientProtocolError
	case v.code == ws.StatusMessageTooBig:
		return ReasonUpstreamFrameTooBig
	default:
		return ReasonUpstreamProtocolError
	}
}

// stats is the pair's account at now, with the sockets' addresses.
func (p *pair) stats(now int64, addr [2]string) PairStats {
	d := time.Duration(now - p.opened)
	return PairStats{
		ID:                 p.id,
		Route:              p.route.name,
		ClientAddr:         addr[client],
		UpstreamAddr:       addr[upstream],
		Opened:             time.Now().Add(-d),
		Duration:           d,
		Reason:             p.reason,
		BytesToUpstream:    p.toward(upstream).bytes,
		BytesToClient:      p.toward(client).bytes,
		FramesFromClient:   p.dir[client].frames,
		FramesFromUpstream: p.dir[upstream].frames,
		ClientHeartbeat:    p.hb[client].Stats(),
		UpstreamHeartbeat:  p.hb[upstream].Stats(),
		ClientClose:        p.handshake(client),
		UpstreamClose:      p.handshake(upstream),
	}
}

// handshake returns side s's part of the close log; none when no close
// frame crossed.
func (p *pair) handshake(s side) CloseHandshake {
	if p.x == nil {
		return CloseHandshake{}
	}
	l := &p.x.closes
	return CloseHandshake{Received: l.toward[s], Sent: l.from[s]}
}
