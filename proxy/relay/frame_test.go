package relay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// testKey masks frames in tests that need a fixed, known key.
var testKey = [4]byte{0xa1, 0xb2, 0xc3, 0xd4}

// wireFrame builds one frame as it travels on the wire: the given FIN bit,
// RSV bits (in place, as rsv1|rsv2|rsv3) and opcode, and the payload masked
// with *key when key is not nil. The caller's payload is not modified.
func wireFrame(fin bool, rsv byte, op ws.OpCode, key *[4]byte, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv >> 4, OpCode: op, Length: int64(len(payload))}
	if key != nil {
		h.Masked, h.Mask = true, *key
	}
	b := wireHeader(h)
	start := len(b)
	b = append(b, payload...)
	if key != nil {
		ws.Cipher(b[start:], *key, 0)
	}
	return b
}

// wireHeader encodes h alone, with the shortest length encoding.
func wireHeader(h ws.Header) []byte {
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// keyIf returns testKey when masked, else nil.
func keyIf(masked bool) *[4]byte {
	if masked {
		return &testKey
	}
	return nil
}

// mkFrame is shorthand for a frame with no RSV bits, masked with testKey when
// masked is true.
func mkFrame(masked bool, op ws.OpCode, fin bool, payload []byte) []byte {
	return wireFrame(fin, 0, op, keyIf(masked), payload)
}

// payloadPattern returns n bytes that differ from their neighbours, so that
// a shifted, dropped or repeated byte shows; seed picks where in the
// pattern they start.
func payloadPattern(n int, seed byte) []byte {
	start := int(seed) * 101
	if start+n > len(patternBase) {
		panic("payloadPattern: n too big")
	}
	return bytes.Clone(patternBase[start : start+n : start+n])
}

// patternBase is computed once: filling megabytes byte by byte for every
// frame is slow under the race detector.
var patternBase = func() []byte {
	p := make([]byte, 2<<20)
	for i := range p {
		p[i] = byte(i*7) + byte(i>>8) + byte(i>>16)
	}
	return p
}()

func maskedName(masked bool) string {
	if masked {
		return "masked"
	}
	return "unmasked"
}

func TestParseHeader(t *testing.T) {
	lengths := []int64{0, 125, 126, 65535, 65536, 1 << 32}
	sizes := map[int64]int{0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10, 1 << 32: 10}
	for _, length := range lengths {
		for _, masked := range []bool{false, true} {
			for _, c := range []struct {
				name string
				fin  bool
				rsv  byte
				op   ws.OpCode
			}{
				{"binary", true, 0, ws.OpBinary},
				{"text-nofin", false, 0, ws.OpText},
				{"continuation-rsv1", true, rsv1, ws.OpContinuation},
				{"binary-rsv123", false, rsv1 | rsv2 | rsv3, ws.OpBinary},
				{"opcode=0xF", true, 0, 0xF},
			} {
				name := fmt.Sprintf("length=%d/%s/%s", length, maskedName(masked), c.name)
				t.Run(name, func(t *testing.T) {
					in := ws.Header{Fin: c.fin, Rsv: c.rsv >> 4, OpCode: c.op, Length: length}
					if masked {
						in.Masked, in.Mask = true, testKey
					}
					wire := wireHeader(in)
					want := sizes[length]
					if masked {
						want += 4
					}
					if len(wire) != want {
						t.Fatalf("test setup: header is %d bytes, want %d", len(wire), want)
					}
					// Exactly the header, with no capacity past it: reading
					// beyond what it needs would panic.
					h, ok := parseHeader(wire[:len(wire):len(wire)])
					if !ok {
						t.Fatal("complete header reported incomplete")
					}
					checkHeader(t, h, in, want)
					// Followed by payload bytes: they must not change anything.
					h, ok = parseHeader(append(bytes.Clone(wire), 0xff, 0xff, 0xff, 0xff, 0xff))
					if !ok {
						t.Fatal("header followed by payload reported incomplete")
					}
					checkHeader(t, h, in, want)
					for i := 0; i < len(wire); i++ {
						if _, ok := parseHeader(wire[:i:i]); ok {
							t.Fatalf("prefix of %d of %d bytes reported complete", i, len(wire))
						}
					}
				})
			}
		}
	}
	t.Run("length-msb", func(t *testing.T) {
		// parseHeader reports the length as sent; check() rejects it.
		wire := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}
		h, ok := parseHeader(wire)
		if !ok || h.length != 1<<63|1 || h.size != 10 {
			t.Fatalf("got %+v ok=%v, want length 1<<63|1, size 10", h, ok)
		}
	})
}

func checkHeader(t *testing.T, h header, want ws.Header, size int) {
	t.Helper()
	if h.fin != want.Fin || h.rsv != want.Rsv<<4 || h.op != want.OpCode || h.masked != want.Masked ||
		h.length != uint64(want.Length) || h.size != size {
		t.Fatalf("parsed %+v, want fin=%v rsv=%#x op=%v masked=%v length=%d size=%d",
			h, want.Fin, want.Rsv<<4, want.OpCode, want.Masked, want.Length, size)
	}
	if want.Masked && h.mask != want.Mask {
		t.Fatalf("mask %x, want %x", h.mask, want.Mask)
	}
	if !want.Masked && h.mask != [4]byte{} {
		t.Fatalf("unmasked header has mask %x", h.mask)
	}
}

func TestAppendControlFrame(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpPing, ws.OpPong, ws.OpClose} {
		for _, n := range []int{0, 1, 4, 5, 16, 17, 125} {
			for _, masked := range []bool{false, true} {
				t.Run(fmt.Sprintf("op=%v/payload=%d/%s", op, n, maskedName(masked)), func(t *testing.T) {
					payload := payloadPattern(n, 1)
					orig := bytes.Clone(payload)
					key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
					prefix := []byte("xyz")
					out := appendControlFrame(bytes.Clone(prefix), op, payload, masked, key)
					if !bytes.Equal(out[:3], prefix) {
						t.Fatalf("prefix changed to %q", out[:3])
					}
					if !bytes.Equal(payload, orig) {
						t.Fatal("caller's payload was modified")
					}
					r := bytes.NewReader(out[3:])
					f, err := ws.ReadFrame(r)
					if err != nil {
						t.Fatal(err)
					}
					if r.Len() != 0 {
						t.Fatalf("%d bytes after the frame", r.Len())
					}
					h := f.Header
					if !h.Fin || h.Rsv != 0 || h.OpCode != op || h.Masked != masked || h.Length != int64(n) {
						t.Fatalf("header %+v", h)
					}
					if masked {
						if h.Mask != key {
							t.Fatalf("mask %x, want %x", h.Mask, key)
						}
						f = ws.UnmaskFrameInPlace(f)
					}
					if !bytes.Equal(f.Payload, payload) {
						t.Fatalf("payload %x, want %x", f.Payload, payload)
					}
					ph, ok := parseHeader(out[3:])
					if !ok || ph.size+int(ph.length) != len(out)-3 {
						t.Fatalf("parseHeader disagrees: %+v", ph)
					}
				})
			}
		}
	}
}

func TestClosePayload(t *testing.T) {
	check := func(t *testing.T, code ws.StatusCode, reason string, p []byte) string {
		t.Helper()
		if len(p) > maxControlPayload {
			t.Fatalf("payload is %d bytes, over %d", len(p), maxControlPayload)
		}
		if len(p) < 2 || ws.StatusCode(binary.BigEndian.Uint16(p)) != code {
			t.Fatalf("payload %x does not start with code %d", p, code)
		}
		got := string(p[2:])
		if !utf8.ValidString(got) {
			t.Fatalf("reason %q is not valid UTF-8", got)
		}
		if !strings.HasPrefix(reason, got) {
			t.Fatalf("reason %q is not a prefix of %q", got, reason)
		}
		if c, v := checkClosePayload(p); !v.ok() || c != code {
			t.Fatalf("checkClosePayload rejects it: %d %v", c, v)
		}
		return got
	}
	for _, c := range []struct {
		name   string
		reason string
		want   string
	}{
		{"empty", "", ""},
		{"short", "going away", "going away"},
		{"ascii=123", strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"ascii=124", strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"ascii=300", strings.Repeat("b", 300), strings.Repeat("b", 123)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := check(t, ws.StatusGoingAway, c.reason, closePayload(ws.StatusGoingAway, c.reason))
			if got != c.want {
				t.Fatalf("reason %q, want %q", got, c.want)
			}
		})
	}
	for _, r := range []string{"é", "€", "😀"} {
		for pad := 0; pad < 4; pad++ {
			t.Run(fmt.Sprintf("rune=%d-bytes/pad=%d", len(r), pad), func(t *testing.T) {
				reason := strings.Repeat("a", pad) + strings.Repeat(r, 100)
				got := check(t, 4000, reason, closePayload(4000, reason))
				// The cut keeps as many whole runes as fit.
				if len(got) <= maxCloseReason-len(r) {
					t.Fatalf("reason cut to %d bytes, more than one rune short of %d", len(got), maxCloseReason)
				}
			})
		}
	}
	t.Run("invalid-utf8-long", func(t *testing.T) {
		reason := "\xff" + strings.Repeat("a", 200)
		p := closePayload(ws.StatusInternalServerError, reason)
		if len(p) > maxControlPayload || !utf8.Valid(p[2:]) {
			t.Fatalf("payload %q", p)
		}
	})
}

func TestCheckClosePayload(t *testing.T) {
	body := func(code ws.StatusCode, reason string) []byte {
		p := make([]byte, 2, 2+len(reason))
		binary.BigEndian.PutUint16(p, uint16(code))
		return append(p, reason...)
	}
	for _, c := range []struct {
		name    string
		payload []byte
		code    ws.StatusCode
	}{
		{"empty", nil, ws.StatusNoStatusRcvd},
		{"code=1000", body(1000, ""), 1000},
		{"code=1001/reason", body(1001, "bye"), 1001},
		{"code=1002", body(1002, ""), 1002},
		{"code=1003", body(1003, ""), 1003},
		{"code=1007", body(1007, ""), 1007},
		{"code=1011", body(1011, "oops"), 1011},
		{"code=3000", body(3000, ""), 3000},
		{"code=4999/utf8-reason", body(4999, "fin — 終わり"), 4999},
		{"code=1000/max-reason", body(1000, strings.Repeat("x", maxCloseReason)), 1000},
	} {
		t.Run("accept/"+c.name, func(t *testing.T) {
			code, v := checkClosePayload(c.payload)
			if !v.ok() {
				t.Fatalf("rejected: %v", v)
			}
			if code != c.code {
				t.Fatalf("code %d, want %d", code, c.code)
			}
		})
	}
	for _, c := range []struct {
		name    string
		payload []byte
		want    violation
	}{
		{"one-byte", []byte{0x03}, errCloseLength},
		{"code=0", body(0, ""), errCloseCode},
		{"code=999", body(999, ""), errCloseCode},
		{"code=1004", body(1004, ""), errCloseCode},
		{"code=1005", body(1005, ""), errCloseCode},
		{"code=1006", body(1006, ""), errCloseCode},
		{"code=1015", body(1015, ""), errCloseCode},
		{"code=2000", body(2000, ""), errCloseCode},
		{"code=2999", body(2999, ""), errCloseCode},
		{"code=5000", body(5000, ""), errCloseCode},
		{"code=65535", body(65535, ""), errCloseCode},
		{"code=1007/invalid-utf8", body(1007, "bad \xc3\x28 reason"), errCloseReason},
		{"code=1000/truncated-rune", body(1000, "\xe2\x82"), errCloseReason},
	} {
		t.Run("reject/"+c.name, func(t *testing.T) {
			_, v := checkClosePayload(c.payload)
			if v != c.want {
				t.Fatalf("got %+v, want %+v", v, c.want)
			}
		})
	}
	if errCloseReason.code != ws.StatusInvalidFramePayloadData {
		t.Fatalf("invalid UTF-8 reason closes with %d, want 1007", errCloseReason.code)
	}
}
