package relay

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Frame layout limits from RFC 6455 §5.2.
const (
	// maxHeaderSize is 2 bytes of flags and length, 8 of extended length
	// and 4 of masking key.
	maxHeaderSize = 14
	// maxControlPayload is the largest control frame payload (§5.5).
	maxControlPayload = ws.MaxControlFramePayloadSize
	// maxControlFrame is the largest control frame on the wire.
	maxControlFrame = maxHeaderSize + maxControlPayload
	// maxCloseReason keeps a close payload within maxControlPayload.
	maxCloseReason = maxControlPayload - 2
)

// RSV bits as they sit in the first header byte.
const (
	rsv1 byte = 0x40
	rsv2 byte = 0x20
	rsv3 byte = 0x10
)

// header is a parsed frame header.
type header struct {
	fin    bool
	rsv    byte // the RSV1..3 bits in place (0x70 mask)
	op     ws.OpCode
	masked bool
	mask   [4]byte
	length uint64 // payload length
	size   int    // header length on the wire
}

// parseHeader parses the frame header at the start of b. It reports false
// when b holds only part of a header; it never reads past what it needs.
func parseHeader(b []byte) (h header, ok bool) {
	if len(b) < 2 {
		return h, false
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.op = ws.OpCode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	h.size = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.size += 2
	case 127:
		h.size += 8
	default:
		h.length = uint64(l)
	}
	if h.masked {
		h.size += 4
	}
	if len(b) < h.size {
		return h, false
	}
	p := 2
	switch b[1] & 0x7f {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(b[2:4]))
		p = 4
	case 127:
		h.length = binary.BigEndian.Uint64(b[2:10])
		p = 10
	}
	if h.masked {
		copy(h.mask[:], b[p:p+4])
	}
	return h, true
}

// appendControlFrame appends a complete control frame (FIN set) with the
// given payload, masked with key when masked is true (frames toward the
// upstream, §5.3).
func appendControlFrame(dst []byte, op ws.OpCode, payload []byte, masked bool, key [4]byte) []byte {
	dst = append(dst, 0x80|byte(op))
	if masked {
		dst = append(dst, 0x80|byte(len(payload)))
		dst = append(dst, key[:]...)
		start := len(dst)
		dst = append(dst, payload...)
		ws.Cipher(dst[start:], key, 0)
		return dst
	}
	dst = append(dst, byte(len(payload)))
	return append(dst, payload...)
}

// appendTextFrame appends an unmasked, unfragmented text frame.
func appendTextFrame(dst, payload []byte) []byte {
	dst = append(dst, 0x80|byte(ws.OpText))
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// closePayload builds a close frame body: the code and a reason cut to fit
// a control frame without splitting a UTF-8 sequence.
func closePayload(code ws.StatusCode, reason string) []byte {
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return append(p, reason...)
}

// violation is a protocol error found on the wire: the close code to send
// to the offender and a short reason. The zero value means none.
type violation struct {
	code   ws.StatusCode
	reason string
}

func (v violation) ok() bool { return v.code == 0 }

// Violations, named after the rule they break.
var (
	errReservedBits      = violation{ws.StatusProtocolError, "reserved bits set"}
	errReservedOpcode    = violation{ws.StatusProtocolError, "reserved opcode"}
	errFragmentedControl = violation{ws.StatusProtocolError, "fragmented control frame"}
	errControlTooLong    = violation{ws.StatusProtocolError, "control frame payload over 125 bytes"}
	errUnmaskedClient    = violation{ws.StatusProtocolError, "client frame not masked"}
	errMaskedServer      = violation{ws.StatusProtocolError, "server frame masked"}
	errLengthMSB         = violation{ws.StatusProtocolError, "payload length has the most significant bit set"}
	errFrameTooBig       = violation{ws.StatusMessageTooBig, "frame too big"}
	errNoMessage         = violation{ws.StatusProtocolError, "continuation frame without a message"}
	errUnfinished        = violation{ws.StatusProtocolError, "new message inside a fragmented message"}
	errCloseLength       = violation{ws.StatusProtocolError, "close frame with a 1-byte payload"}
	errCloseCode         = violation{ws.StatusProtocolError, "invalid close code"}
	errCloseReason       = violation{ws.StatusInvalidFramePayloadData, "close reason not UTF-8"}
)

// checkClosePayload validates a received close frame body (§5.5.1, §7.4).
func checkClosePayload(p []byte) (ws.StatusCode, violation) {
	switch {
	case len(p) == 0:
		return ws.StatusNoStatusRcvd, violation{}
	case len(p) == 1:
		return 0, errCloseLength
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return code, errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return code, errCloseReason
	}
	return code, violation{}
}

// validCloseCode reports whether code may appear in a close frame: the
// codes RFC 6455 §7.4.1 and the IANA registry define for the wire, and the
// 3000-4999 application ranges.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
