package relay

import (
	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// carryRoom is the space a read buffer keeps in front of the read bytes so
// that a header or control frame left incomplete by the previous read can be
// put back in front of its rest and parsed in one piece.
const carryRoom = 256

// rules are the wire rules for one direction.
type rules struct {
	fromClient bool // frames must be masked (else must not be)
	dataRSV    byte // RSV bits allowed on the first frame of a message
	anyRSV     bool // an unknown extension was negotiated: allow all RSV bits and reserved opcodes
	// ctlMin, when not 0, collects whole every unfragmented, uncompressed
	// text frame of ctlMin to 125 bytes: a resumable session's control
	// messages are among them (resume.go). It sits in padding.
	ctlMin     uint8
	maxPayload uint64 // 0 = unlimited
	// wholeText, when not 0, is the payload length of unfragmented,
	// uncompressed text frames that are collected whole and handed to the
	// handler like control frames (application-level pings).
	wholeText uint64
}

// rulesFor returns the rules for frames coming from the client (fromClient)
// or the upstream, given the negotiated extensions.
func rulesFor(fromClient bool, extensions []string, maxPayload int64) rules {
	r := rules{fromClient: fromClient}
	if maxPayload > 0 {
		r.maxPayload = uint64(maxPayload)
	}
	for _, e := range extensions {
		switch e {
		case "permessage-deflate":
			// RFC 7692 §6: RSV1 marks a compressed message, set on its
			// first frame only.
			r.dataRSV |= rsv1
		default:
			r.anyRSV = true
		}
	}
	return r
}

// frameHandler is told about frames as a stream parses them.
type frameHandler interface {
	// control is called with every complete control frame from the source
	// of stream s, and every text frame the rules collect whole: the frame
	// as it came (still masked) and its unmasked payload, both valid only
	// during the call. It returns whether the frame goes to the sink, or a
	// violation.
	control(s *stream, h *header, frame, payload []byte) (forward bool, v violation)
	// data is called with every data frame header.
	data(s *stream, h *header)
}

// frameKind says what an injected frame is, which decides where it may go
// and what it replaces.
type frameKind uint8

const (
	kindPing  frameKind = iota
	kindPong            // replaces a queued pong: only the latest ping needs an answer (§5.5.3)
	kindClose           // nothing follows it
	kindText            // a data frame: waits for a message boundary, replaces a queued one
	kindAck             // a session's acknowledgement: a data frame like kindText, replaces a queued one
)

// queuedFrame is a frame waiting for the next boundary.
type queuedFrame struct {
	frame []byte
	kind  frameKind
}

// batch collects what one pass of a stream writes to its sink: slices of
// the read buffer and of queued frames, in order. It belongs to a loop and
// is reused.
type batch struct {
	segs  [][]byte
	total int
	// hdr is the header being parsed; it lives here rather than on the
	// stack because handlers receive a pointer to it, which would make
	// each frame's header escape to the heap.
	hdr header
	// ctl receives an unmasked copy of a control frame's payload.
	ctl [maxControlPayload]byte
}

func (b *batch) reset() {
	clear(b.segs)
	b.segs = b.segs[:0]
	b.total = 0
}

func (b *batch) add(p []byte) {
	if len(p) == 0 {
		return
	}
	b.segs = append(b.segs, p)
	b.total += len(p)
}

// stream is the framing state of one direction: it finds frame boundaries
// in the bytes as they pass, validates headers, hands control frames to a
// handler, and injects queued control frames at boundaries. It does no I/O.
type stream struct {
	rules rules
	// remaining counts the payload bytes of the current data frame not yet
	// seen; non-zero means the sink is in the middle of a frame.
	remaining uint64
	// dropping means the current frame's payload is discarded, not sent.
	dropping bool
	// fragmented means a data message has started and not finished.
	fragmented bool
	// srcClosed: the source sent a close frame; later bytes are discarded.
	srcClosed bool
	// sinkClosed: a close frame went to the sink; later frames are dropped.
	sinkClosed bool
	// stopped: the source broke the protocol; its input is discarded.
	stopped bool
	// carry holds the start of a header or control frame cut by the end of
	// a read; nil almost always, so idle pairs hold no buffer.
	carry  *bytebufferpool.ByteBuffer
	queued []queuedFrame
}

// atBoundary reports whether the sink has received only whole frames.
func (s *stream) atBoundary() bool { return s.remaining == 0 }

// withCarry returns the bytes to parse: buf[room:room+n] freshly read, with
// any carried bytes moved in front of them (room must be >= carryRoom).
func (s *stream) withCarry(buf []byte, room, n int) []byte {
	if s.carry == nil {
		return buf[room : room+n]
	}
	c := s.carry.B
	start := room - len(c)
	copy(buf[start:room], c)
	bytebufferpool.Put(s.carry)
	s.carry = nil
	return buf[start : room+n]
}

func (s *stream) saveCarry(p []byte) {
	s.carry = bytebufferpool.Get()
	s.carry.B = append(s.carry.B[:0], p...)
}

// release returns the stream's buffers; the stream is dead afterwards.
func (s *stream) release() {
	if s.carry != nil {
		bytebufferpool.Put(s.carry)
		s.carry = nil
	}
	s.queued = nil
}

// inject sends frame to the sink at the next boundary: into out now if
// the sink is at one, else into the queue (copied, so frame may be scratch
// memory). Control frames need a frame boundary; a data frame needs a
// message boundary, since it cannot go between a message's fragments
// (RFC 6455 §5.4). Nothing goes after a close.
func (s *stream) inject(frame []byte, kind frameKind, out *batch) {
	if s.sinkClosed {
		return
	}
	// Whenever the sink is at a frame boundary, the queue holds at most a
	// data frame waiting for its message boundary, which control frames
	// may overtake, and answers held while the sink is blocked.
	if s.canEmit(kind) {
		out.add(frame)
		if kind == kindClose {
			// Nothing follows a close: drop what still waits.
			s.sinkClosed = true
			clear(s.queued)
			s.queued = nil
		}
		return
	}
	s.hold(frame, kind)
}

// hold queues frame (copied) for the next boundary at which it may go. A
// pong or a data frame replaces a queued one of its kind.
func (s *stream) hold(frame []byte, kind frameKind) {
	if s.sinkClosed {
		return
	}
	if kind == kindPong || kind == kindText || kind == kindAck {
		for i := range s.queued {
			if s.queued[i].kind == kind {
				s.queued[i].frame = append(s.queued[i].frame[:0], frame...)
				return
			}
		}
	}
	s.queued = append(s.queued, queuedFrame{append([]byte(nil), frame...), kind})
}

// canEmit reports whether a frame of kind may go to the sink now.
func (s *stream) canEmit(kind frameKind) bool {
	if kind == kindText || kind == kindAck {
		return s.remaining == 0 && !s.fragmented
	}
	return s.remaining == 0
}

// emitQueued sends what the queue may send at this boundary, in order,
// except that control frames overtake a data frame still waiting for its
// message boundary.
func (s *stream) emitQueued(out *batch) {
	kept := s.queued[:0]
	for _, q := range s.queued {
		switch {
		case s.sinkClosed:
		case s.canEmit(q.kind):
			out.add(q.frame)
			s.sinkClosed = q.kind == kindClose
		default:
			kept = append(kept, q)
		}
	}
	clear(s.queued[len(kept):])
	s.queued = kept
	if len(kept) == 0 {
		s.queued = nil
	}
}

// hasQueued reports whether frames still wait for a boundary.
func (s *stream) hasQueued() bool { return len(s.queued) > 0 }

// check validates a header against the direction's rules and the state of
// the message stream (RFC 6455 §5.2-§5.5).
func (s *stream) check(h *header) violation {
	r := &s.rules
	if h.masked != r.fromClient {
		if r.fromClient {
			return errUnmaskedClient
		}
		return errMaskedServer
	}
	if h.length>>63 != 0 {
		return errLengthMSB
	}
	if h.op.IsReserved() && !r.anyRSV {
		return errReservedOpcode
	}
	if h.op.IsControl() {
		if !h.fin {
			return errFragmentedControl
		}
		if h.length > maxControlPayload {
			return errControlTooLong
		}
		if h.rsv != 0 && !r.anyRSV {
			return errReservedBits
		}
		return violation{}
	}
	if r.maxPayload > 0 && h.length > r.maxPayload {
		return errFrameTooBig
	}
	if h.rsv != 0 && !r.anyRSV {
		// Extensions like permessage-deflate set their bit on the first
		// frame of a message only.
		if h.op == ws.OpContinuation || h.rsv&^r.dataRSV != 0 {
			return errReservedBits
		}
	}
	switch {
	case h.op == ws.OpContinuation && !s.fragmented:
		return errNoMessage
	case h.op != ws.OpContinuation && !h.op.IsReserved() && s.fragmented:
		return errUnfinished
	}
	if !h.op.IsReserved() || !s.fragmented {
		// A reserved opcode inside a message (allowed only with an
		// unknown extension) does not end that message.
		s.fragmented = !h.fin
	}
	return violation{}
}

// collectsWhole reports whether a data frame is handed over whole.
func (s *stream) collectsWhole(h *header) bool {
	if s.rules.wholeText == 0 && s.rules.ctlMin == 0 || h.op != ws.OpText || !h.fin || h.rsv != 0 {
		return false
	}
	return h.length == s.rules.wholeText ||
		s.rules.ctlMin != 0 && h.length >= uint64(s.rules.ctlMin) && h.length <= maxControlPayload
}

// process parses buf (from withCarry), adds to out what goes to the sink,
// and keeps an incomplete tail as carry. On a violation it stops before the
// offending frame, so the sink still ends at a frame boundary, and the
// stream discards all later input.
func (s *stream) process(buf []byte, out *batch, h frameHandler) violation {
	pos, start := 0, 0 // buf[start:pos] is forwarded but not yet in out
	skip := func(from, to int) {
		out.add(buf[start:from])
		start = to
	}
	for pos < len(buf) {
		if s.remaining > 0 {
			n := uint64(len(buf) - pos)
			if n > s.remaining {
				n = s.remaining
			}
			if s.dropping {
				skip(pos, pos+int(n))
			}
			pos += int(n)
			s.remaining -= n
			continue
		}
		if len(s.queued) > 0 {
			skip(pos, pos)
			s.emitQueued(out)
		}
		if s.srcClosed || s.stopped {
			skip(pos, len(buf))
			pos = len(buf)
			break
		}
		hd := &out.hdr
		var ok bool
		*hd, ok = parseHeader(buf[pos:])
		if !ok {
			s.saveCarry(buf[pos:])
			skip(pos, len(buf))
			pos = len(buf)
			break
		}
		if v := s.check(hd); !v.ok() {
			skip(pos, len(buf))
			s.stopped = true
			return v
		}
		if hd.op.IsControl() || s.collectsWhole(hd) {
			end := pos + hd.size + int(hd.length)
			if end > len(buf) {
				s.saveCarry(buf[pos:])
				skip(pos, len(buf))
				pos = len(buf)
				break
			}
			payload := out.ctl[:hd.length]
			copy(payload, buf[pos+hd.size:end])
			if hd.masked {
				ws.Cipher(payload, hd.mask, 0)
			}
			forward, v := h.control(s, hd, buf[pos:end], payload)
			if !v.ok() {
				skip(pos, len(buf))
				s.stopped = true
				return v
			}
			if !forward || s.sinkClosed {
				skip(pos, end)
			} else if hd.op == ws.OpClose {
				s.sinkClosed = true
			}
			pos = end
			continue
		}
		h.data(s, hd)
		s.dropping = s.sinkClosed
		if s.dropping {
			skip(pos, pos+hd.size)
		}
		pos += hd.size
		s.remaining = hd.length
	}
	out.add(buf[start:pos])
	if s.remaining == 0 && len(s.queued) > 0 {
		s.emitQueued(out)
	}
	return violation{}
}
