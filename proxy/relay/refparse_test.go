package relay

import (
	"encoding/binary"
	"unicode/utf8"
)

// This file is a reference model of what one direction of a pair does with
// the bytes it reads, written from RFC 6455 §5 and §7 (and RFC 7692 §6 for
// permessage-deflate's RSV1) without looking at stream.go. It parses a whole
// buffer at once, so it knows nothing about reads; FuzzStreamParser checks
// the streaming parser against it with the same bytes cut into arbitrary
// reads. It deliberately uses none of the package's own parsing helpers.

// refRule names one rule of the RFCs a frame can break.
type refRule uint8

const (
	refUnmaskedFromClient refRule = iota + 1 // §5.1: a server MUST close the connection upon an unmasked frame
	refMaskedFromServer                      // §5.1: a client MUST close the connection upon a masked frame
	refLengthMSB                             // §5.2: the most significant bit of a 64-bit length MUST be 0
	refReservedBits                          // §5.2: RSV bits MUST be 0 unless an extension defines them
	refReservedOpcode                        // §5.2: an unknown opcode MUST fail the connection
	refControlFragmented                     // §5.5: control frames MUST NOT be fragmented
	refControlTooLong                        // §5.5: control frames MUST have a payload of 125 bytes or less
	refContinuationAlone                     // §5.4: a continuation frame needs a message in progress
	refMessageInMessage                      // §5.4: fragments of messages MUST NOT be interleaved
	refTooBig                                // §7.4.1 (1009): a frame over the configured limit
	refCloseOneByte                          // §5.5.1: a close body starts with a 2-byte code
	refCloseBadCode                          // §7.4: a code that may not appear in a close frame
	refCloseReasonUTF8                       // §5.5.1, §8.1: the close reason MUST be UTF-8
)

var refRuleNames = [...]string{
	refUnmaskedFromClient: "unmasked frame from client",
	refMaskedFromServer:   "masked frame from server",
	refLengthMSB:          "64-bit length with MSB set",
	refReservedBits:       "reserved bits",
	refReservedOpcode:     "reserved opcode",
	refControlFragmented:  "fragmented control frame",
	refControlTooLong:     "control payload over 125",
	refContinuationAlone:  "continuation without message",
	refMessageInMessage:   "new message inside a message",
	refTooBig:             "frame over the size limit",
	refCloseOneByte:       "1-byte close body",
	refCloseBadCode:       "invalid close code",
	refCloseReasonUTF8:    "close reason not UTF-8",
}

func (r refRule) String() string { return refRuleNames[r] }

// code is the close code RFC 6455 §7.4.1 gives the rule: 1009 for a
// message too big to process, 1007 for data inconsistent with its type
// (the close reason is text), 1002 for every other protocol error.
func (r refRule) code() uint16 {
	switch r {
	case refTooBig:
		return 1009
	case refCloseReasonUTF8:
		return 1007
	default:
		return 1002
	}
}

// refConfig is what was negotiated for the direction.
type refConfig struct {
	fromClient bool // frames come from the client, so MUST be masked
	// deflate: permessage-deflate was negotiated; RSV1 marks the first
	// frame of a compressed data message (RFC 7692 §6), nothing else.
	deflate bool
	// unknownExt: an extension wsalive does not know was negotiated. It may
	// define any RSV bit and reserved opcode, so those are not errors; a
	// reserved data opcode (%x3-7) is treated like a data opcode that may
	// also appear inside a message (the extension may interleave its own
	// frames), which is wsalive's stated choice, not the RFC's.
	unknownExt bool
	maxPayload uint64 // 0: no limit; applies to data frames (control frames have 125)
	// wholeText is the length of the unfragmented, uncompressed text
	// frames the pair inspects whole (application-level pings); 0 for none.
	wholeText uint64
	// closeEndsSource: after a valid close frame the source is done and
	// anything it sends later is discarded (what a pair does).
	closeEndsSource bool
	// drop picks the inspected frames (control and whole text) the pair
	// keeps for itself instead of forwarding; nil forwards them all.
	drop func(op byte, payload []byte) bool
}

// refEvent is a frame the parser hands to its owner: a data frame's header
// as soon as the header is complete, or a whole inspected frame.
type refEvent struct {
	op      byte
	fin     bool
	rsv     byte // RSV bits in place (0x70)
	masked  bool
	key     [4]byte
	length  uint64
	whole   bool   // an inspected frame (control, or whole text)
	frame   []byte // whole frames only: the frame as it came
	payload []byte // whole frames only: unmasked
	// at is the input length at which the event can be known: the end of
	// the header for data frames, the end of the frame for whole ones.
	at int
}

// refResult is what the reference says happens to an input.
type refResult struct {
	events []refEvent
	// out is every byte forwarded, in order; avail[i] is the input length
	// at which out[i] may be forwarded at the earliest (a data frame's
	// header when complete, its payload byte by byte, an inspected frame
	// when complete). A streaming parser that has read n bytes has
	// forwarded exactly the out[i] with avail[i] <= n.
	out   []byte
	avail []int
	// broken lists the rules the offending frame breaks; empty when the
	// input breaks none. The frame is not forwarded, nor anything after.
	broken []refRule
	// brokenAt is the input length at which the offence is known: the end
	// of the offending header, or of the frame for rules on its payload.
	brokenAt int
	// midFrame: the input ends inside a data frame's payload, so the sink
	// is not at a frame boundary.
	midFrame bool
}

// codes returns the close codes the broken rules allow.
func (r *refResult) codes() map[uint16]bool {
	m := map[uint16]bool{}
	for _, b := range r.broken {
		m[b.code()] = true
	}
	return m
}

// refHeader is a frame header as §5.2 draws it.
type refHeader struct {
	fin    bool
	rsv    byte
	op     byte
	masked bool
	key    [4]byte
	length uint64
	size   int // bytes on the wire
}

// refParseHeader reads the header at the start of b (§5.2): FIN, RSV1-3
// and the opcode in the first byte; MASK and a 7-bit length in the second;
// 126 means a 16-bit length follows, 127 a 64-bit one; then the masking key
// when MASK is set. ok is false while b is too short for the whole header.
func refParseHeader(b []byte) (h refHeader, ok bool) {
	if len(b) < 2 {
		return h, false
	}
	h.fin = b[0]>>7 == 1
	h.rsv = b[0] & 0x70
	h.op = b[0] & 0x0f
	h.masked = b[1]>>7 == 1
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < n+2 {
			return h, false
		}
		h.length = uint64(binary.BigEndian.Uint16(b[n:]))
		n += 2
	case 127:
		if len(b) < n+8 {
			return h, false
		}
		h.length = binary.BigEndian.Uint64(b[n:])
		n += 8
	default:
		h.length = uint64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, false
		}
		copy(h.key[:], b[n:n+4])
		n += 4
	}
	h.size = n
	return h, true
}

// refIsControl: opcodes with the high bit set are control frames (§5.5),
// the reserved ones %xB-F included.
func refIsControl(op byte) bool { return op >= 0x8 }

// refKnownOpcode: %x0 continuation, %x1 text, %x2 binary, %x8 close,
// %x9 ping, %xA pong (§5.2); the rest are reserved.
func refKnownOpcode(op byte) bool { return op <= 0x2 || (op >= 0x8 && op <= 0xa) }

// refCloseCodeValid says whether a received close frame may carry code:
// the codes RFC 6455 §7.4.1 defines for use on the wire (1000-1003,
// 1007-1011), those the IANA registry added since (1012-1014), and the
// ranges for libraries and applications (3000-4999). 1004 is reserved;
// 1005, 1006 and 1015 MUST NOT be set in a close frame (§7.4.1); 0-999 are
// not used and 1016-2999 are reserved for future RFCs (§7.4.2).
func refCloseCodeValid(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// refParse runs the whole input through the rules of cfg.
func refParse(in []byte, cfg refConfig) refResult {
	var (
		res         refResult
		inMessage   bool // a fragmented data message has started (§5.4)
		sinkClosed  bool // a close went to the sink; nothing follows it (§5.5.1)
		sourceEnded bool
	)
	forward := func(b []byte, avail func(i int) int) {
		if sinkClosed {
			return
		}
		for i := range b {
			res.out = append(res.out, b[i])
			res.avail = append(res.avail, avail(i))
		}
	}
	pos := 0
	for pos < len(in) && !sourceEnded {
		h, ok := refParseHeader(in[pos:])
		if !ok {
			return res // a header cut by the end of the input
		}
		hdrEnd := pos + h.size
		if broken := refHeaderRules(h, cfg, inMessage); len(broken) > 0 {
			res.broken, res.brokenAt = broken, hdrEnd
			return res
		}
		inspected := refIsControl(h.op) ||
			(cfg.wholeText != 0 && h.op == 0x1 && h.fin && h.rsv == 0 && h.length == cfg.wholeText)
		if !inspected {
			// A data frame: its header goes when complete, its payload
			// byte by byte as it arrives.
			res.events = append(res.events, refEvent{
				op: h.op, fin: h.fin, rsv: h.rsv, masked: h.masked, key: h.key, length: h.length, at: hdrEnd,
			})
			if h.op <= 0x2 || !inMessage {
				// A reserved data opcode inside a message does not end it
				// (refConfig.unknownExt).
				inMessage = !h.fin
			}
			forward(in[pos:hdrEnd], func(int) int { return hdrEnd })
			rest := uint64(len(in) - hdrEnd)
			if h.length > rest {
				forward(in[hdrEnd:], func(i int) int { return hdrEnd + i + 1 })
				res.midFrame = true
				return res
			}
			end := hdrEnd + int(h.length)
			forward(in[hdrEnd:end], func(i int) int { return hdrEnd + i + 1 })
			pos = end
			continue
		}
		// An inspected frame is handed over whole.
		if h.length > uint64(len(in)-hdrEnd) {
			return res
		}
		end := hdrEnd + int(h.length)
		payload := append([]byte(nil), in[hdrEnd:end]...)
		if h.masked {
			// §5.3: octet i of the payload is XORed with octet i mod 4 of
			// the masking key.
			for i := range payload {
				payload[i] ^= h.key[i%4]
			}
		}
		res.events = append(res.events, refEvent{
			op: h.op, fin: h.fin, rsv: h.rsv, masked: h.masked, key: h.key, length: h.length,
			whole: true, frame: append([]byte(nil), in[pos:end]...), payload: payload, at: end,
		})
		if h.op == 0x8 {
			if broken := refCloseBodyRules(payload); len(broken) > 0 {
				res.broken, res.brokenAt = broken, end
				return res
			}
		}
		if cfg.drop == nil || !cfg.drop(h.op, payload) {
			forward(in[pos:end], func(int) int { return end })
			if h.op == 0x8 {
				sinkClosed = true
			}
		}
		if h.op == 0x8 && cfg.closeEndsSource {
			sourceEnded = true
		}
		pos = end
	}
	return res
}

// refHeaderRules lists the rules header h breaks, given whether a
// fragmented message is in progress.
func refHeaderRules(h refHeader, cfg refConfig, inMessage bool) []refRule {
	var broken []refRule
	add := func(r refRule) { broken = append(broken, r) }
	// §5.1: client frames are masked, server frames are not.
	if cfg.fromClient && !h.masked {
		add(refUnmaskedFromClient)
	}
	if !cfg.fromClient && h.masked {
		add(refMaskedFromServer)
	}
	if h.length>>63 == 1 {
		add(refLengthMSB)
	}
	known := refKnownOpcode(h.op)
	if !known && !cfg.unknownExt {
		add(refReservedOpcode)
	}
	control := refIsControl(h.op)
	if h.rsv != 0 && !cfg.unknownExt {
		// RFC 7692 §6: with permessage-deflate, RSV1 may be set on the
		// first frame of a data message, nowhere else.
		firstOfMessage := h.op == 0x1 || h.op == 0x2
		if !(cfg.deflate && h.rsv == 0x40 && firstOfMessage) {
			add(refReservedBits)
		}
	}
	if control {
		if !h.fin {
			add(refControlFragmented)
		}
		if h.length > 125 {
			add(refControlTooLong)
		}
		return broken
	}
	if cfg.maxPayload != 0 && h.length > cfg.maxPayload {
		add(refTooBig)
	}
	switch {
	case h.op == 0x0 && !inMessage:
		add(refContinuationAlone)
	case (h.op == 0x1 || h.op == 0x2) && inMessage:
		add(refMessageInMessage)
	}
	return broken
}

// refCloseBodyRules lists the rules a close frame's unmasked body breaks
// (§5.5.1): empty, or a 2-byte code that may be sent (§7.4) followed by a
// UTF-8 reason.
func refCloseBodyRules(body []byte) []refRule {
	switch len(body) {
	case 0:
		return nil
	case 1:
		return []refRule{refCloseOneByte}
	}
	var broken []refRule
	if !refCloseCodeValid(binary.BigEndian.Uint16(body)) {
		broken = append(broken, refCloseBadCode)
	}
	if !utf8.Valid(body[2:]) {
		broken = append(broken, refCloseReasonUTF8)
	}
	return broken
}
