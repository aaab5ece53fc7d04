package relay

import (
	"time"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"

	"github.com/wsalive/wsalive/liveness"
)

// side names one end of a pair.
type side uint8

const (
	client side = iota
	upstream
)

func (s side) other() side { return 1 - s }

func (s side) String() string {
	if s == client {
		return "client"
	}
	return "upstream"
}

// endpoint is one socket of a pair and what is known of its close handshake.
type endpoint struct {
	addr     string
	fd       int32 // int32 keeps a pair in a smaller allocation class
	readable bool  // edge-triggered readiness, cleared by EAGAIN
	writable bool
	hangup   bool // the peer closed or the socket failed: read to the end
	// dead: no more I/O with it (EOF, reset, failed write).
	dead bool
	// abort: it cannot be sent a clean close (the frame toward it can
	// never finish), so its TCP connection is closed without one.
	abort bool
	// closeSent: a close frame is on its way to it (queued, pending or
	// written); closeRecv: it sent one, with closeCode.
	closeSent bool
	closeRecv bool
	closeCode ws.StatusCode
	// staged: bytes for it wait in the loop's stage for the end of the
	// round (see stage_linux.go).
	staged bool
	// bulk: its last read filled the buffer; it is read alone, with a full
	// buffer, rather than in the round's batch of small reads.
	bulk bool
}

// sock returns the socket's descriptor for system calls.
func (e *endpoint) sock() int { return int(e.fd) }

// direction is one way through a pair: bytes from side s to s.other(),
// with their framing state and whatever the sink has not accepted yet.
type direction struct {
	stream
	pending *bytebufferpool.ByteBuffer
	pendOff int
	bytes   uint64
	frames  uint64
}

func (d *direction) pendingLen() int {
	if d.pending == nil {
		return 0
	}
	return len(d.pending.B) - d.pendOff
}

// pair is a client and an upstream connection relayed by one loop. All of
// its fields are owned by that loop's goroutine.
type pair struct {
	id    uint64
	route string
	// opened is the loop clock (ns) at attach.
	opened       int64
	closeTimeout time.Duration
	ep           [2]endpoint
	dir          [2]direction // dir[s] carries bytes from s to s.other()
	timer        liveness.Timer[*pair]
	// deadline ends the close handshake once closing is set.
	deadline int64
	closing  bool
	reason   Reason
	ready    bool // in the loop's ready list
	done     bool
	recheck  bool // run check after the current read: a deadline moved
	loop     *loop
	pol      *Policy
	hb       [2]liveness.Side
	// lastData is when a data frame last passed either way (idle timeout);
	// lifetimeAt is when max_lifetime ends the pair, 0 for never.
	lastData   int64
	lifetimeAt int64
}

// sideOf tells which side's stream st is.
func (p *pair) sideOf(st *stream) side {
	if st == &p.dir[client].stream {
		return client
	}
	return upstream
}

// setReason records the first cause of the pair's end.
func (p *pair) setReason(r Reason) {
	if p.reason == ReasonNone {
		p.reason = r
	}
}

// control implements frameHandler.
func (p *pair) control(st *stream, h *header, frame, payload []byte) (bool, violation) {
	s := p.sideOf(st)
	p.dir[s].frames++
	switch h.op {
	case ws.OpClose:
		return p.closeFrame(st, s, payload)
	case ws.OpPong:
		// A pong answering wsalive's ping is absorbed; any other pong is
		// the peers' business and crosses untouched.
		if liveness.IsOwnPong(payload) {
			p.hb[s].Pong(&p.pol.side[s].Heartbeat, payload, p.loop.now)
			p.recheck = true
			return false, violation{}
		}
	case ws.OpPing:
		if p.pol.side[s].AnswerPings {
			p.loop.inject(p, s, ws.OpPong, payload, kindPong)
			return false, violation{}
		}
	case ws.OpText:
		// Collected whole because its length matches the app ping.
		if string(payload) == string(p.pol.appMatch) {
			p.loop.injectFrame(p, s, p.pol.appReply, kindText)
			return false, violation{}
		}
		p.lastData = p.loop.now
	}
	return true, violation{}
}

// closeFrame handles a close frame from side s.
func (p *pair) closeFrame(st *stream, s side, payload []byte) (bool, violation) {
	code, v := checkClosePayload(payload)
	if !v.ok() {
		return false, v
	}
	ep, oe := &p.ep[s], &p.ep[s.other()]
	ep.closeRecv = true
	ep.closeCode = code
	st.srcClosed = true
	p.setReason(closedBy(s))
	p.loop.beginClose(p)
	// Forward it unless the other side already has a close (it started
	// the handshake, or wsalive did) or is gone.
	if oe.closeSent || oe.dead || oe.abort {
		return false, violation{}
	}
	oe.closeSent = true
	return true, violation{}
}

// data implements frameHandler.
func (p *pair) data(st *stream, h *header) {
	p.dir[p.sideOf(st)].frames++
	p.lastData = p.loop.now
}

// finished reports whether side s needs nothing more: it is gone, or its
// close handshake is complete and everything toward it is written.
func (p *pair) finished(s side) bool {
	ep := &p.ep[s]
	if ep.dead || ep.abort {
		return true
	}
	toward := &p.dir[s.other()]
	return ep.closeSent && !ep.staged && toward.pending == nil && !toward.hasQueued() &&
		(ep.closeRecv || p.dir[s].stopped)
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

func (p *pair) stats(now int64) PairStats {
	d := time.Duration(now - p.opened)
	return PairStats{
		ID:                 p.id,
		Route:              p.route,
		ClientAddr:         p.ep[client].addr,
		UpstreamAddr:       p.ep[upstream].addr,
		Opened:             time.Now().Add(-d),
		Duration:           d,
		Reason:             p.reason,
		BytesToUpstream:    p.dir[client].bytes,
		BytesToClient:      p.dir[upstream].bytes,
		FramesFromClient:   p.dir[client].frames,
		FramesFromUpstream: p.dir[upstream].frames,
		ClientHeartbeat:    p.hb[client].Stats(),
		UpstreamHeartbeat:  p.hb[upstream].Stats(),
	}
}
