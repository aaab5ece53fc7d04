package relay

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gobwas/ws"
)

// seenControl is a control frame as a stream handed it to its handler.
type seenControl struct {
	op      ws.OpCode
	frame   []byte // as it came, still masked
	payload []byte // unmasked
}

// recorder is a frameHandler that records what a stream tells it: control
// frames (and text frames the rules collect whole) and data headers.
type recorder struct {
	controls    []seenControl
	dataHeaders []header
	// drop, when set, picks control frames that are not forwarded.
	drop func(op ws.OpCode, payload []byte) bool
	// reject, when set, picks control frames that break the protocol.
	reject func(op ws.OpCode, payload []byte) violation
	// closeSrc makes a close frame end the source, as a pair does.
	closeSrc bool
}

func (r *recorder) control(s *stream, h *header, frame, payload []byte) (bool, violation) {
	r.controls = append(r.controls, seenControl{h.op, bytes.Clone(frame), bytes.Clone(payload)})
	if r.reject != nil {
		if v := r.reject(h.op, payload); !v.ok() {
			return false, v
		}
	}
	if h.op == ws.OpClose && r.closeSrc {
		s.srcClosed = true
	}
	if r.drop != nil && r.drop(h.op, payload) {
		return false, violation{}
	}
	return true, violation{}
}

func (r *recorder) data(s *stream, h *header) { r.dataHeaders = append(r.dataHeaders, *h) }

// harness drives one stream the way a loop does, without sockets: each
// chunk is one read into a buffer with carryRoom headroom, run through
// withCarry and process, and everything the batches hold is appended to
// got in order.
type harness struct {
	t   testing.TB
	s   stream
	rec recorder
	buf []byte
	out batch
	inj batch
	got []byte
}

// poison fills the headroom of a read buffer before each read.
var poison = func() (p [carryRoom]byte) {
	for i := range p {
		p[i] = 0xee
	}
	return p
}()

func newHarness(t testing.TB, r rules) *harness {
	return &harness{t: t, s: stream{rules: r}}
}

// feed runs chunk through the stream as one read.
func (hs *harness) feed(chunk []byte) violation {
	hs.t.Helper()
	need := carryRoom + len(chunk)
	if cap(hs.buf) < need {
		hs.buf = make([]byte, need)
	}
	buf := hs.buf[:need]
	// Poison the headroom: carried bytes must come from the carry, not
	// from what happens to be left in the buffer.
	copy(buf[:carryRoom], poison[:])
	copy(buf[carryRoom:], chunk)
	hs.out.reset()
	v := hs.s.process(hs.s.withCarry(buf, carryRoom, len(chunk)), &hs.out, &hs.rec)
	hs.collect(&hs.out)
	if hs.s.carry != nil && len(hs.s.carry.B) >= maxControlFrame {
		hs.t.Fatalf("carry holds %d bytes, a whole control frame or more", len(hs.s.carry.B))
	}
	return v
}

// inject injects f the way a loop does, with its own batch sent at once.
// It reports whether f went out at once.
func (hs *harness) inject(f []byte, kind frameKind) bool {
	hs.inj.reset()
	hs.s.inject(f, kind, &hs.inj)
	hs.collect(&hs.inj)
	return hs.inj.total > 0
}

func (hs *harness) collect(b *batch) {
	hs.t.Helper()
	n := 0
	for _, seg := range b.segs {
		if len(seg) == 0 {
			hs.t.Fatal("batch holds an empty segment")
		}
		hs.got = append(hs.got, seg...)
		n += len(seg)
	}
	if n != b.total {
		hs.t.Fatalf("batch total %d, segments hold %d", b.total, n)
	}
}

// feedSplit feeds in as reads cut at the given offsets (ascending). It
// fails the test on a violation.
func (hs *harness) feedSplit(in []byte, cuts ...int) {
	hs.t.Helper()
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if v := hs.feed(in[prev:c]); !v.ok() {
			hs.t.Fatalf("violation %v at read %d:%d", v, prev, c)
		}
		prev = c
	}
}

// feedChunked feeds in as reads of size bytes.
func (hs *harness) feedChunked(in []byte, size int) {
	hs.t.Helper()
	for off := 0; off < len(in); off += size {
		if v := hs.feed(in[off:min(off+size, len(in))]); !v.ok() {
			hs.t.Fatalf("violation %v at offset %d", v, off)
		}
	}
}

func (hs *harness) expectGot(want []byte) {
	hs.t.Helper()
	if !bytes.Equal(hs.got, want) {
		hs.t.Fatalf("output differs from expected:\n got %d bytes: %s\nwant %d bytes: %s",
			len(hs.got), abbrev(hs.got), len(want), abbrev(want))
	}
}

func abbrev(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x…%x", b[:32], b[len(b)-32:])
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRulesFor(t *testing.T) {
	for _, c := range []struct {
		name string
		ext  []string
		max  int64
		want rules
	}{
		{"none", nil, 0, rules{}},
		{"deflate", []string{"permessage-deflate"}, 0, rules{dataRSV: rsv1}},
		{"unknown", []string{"x-custom"}, 0, rules{anyRSV: true}},
		{"both", []string{"permessage-deflate", "x-custom"}, 0, rules{dataRSV: rsv1, anyRSV: true}},
		{"max=1000", nil, 1000, rules{maxPayload: 1000}},
		{"max=-1", nil, -1, rules{}},
	} {
		for _, fromClient := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fromClient=%v", c.name, fromClient), func(t *testing.T) {
				want := c.want
				want.fromClient = fromClient
				if got := rulesFor(fromClient, c.ext, c.max); got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			})
		}
	}
}

// TestStreamHeaderSplit cuts the reads at every byte of a data frame's
// header, for every length encoding: the sink gets the bytes unchanged and
// the handler sees each frame once.
func TestStreamHeaderSplit(t *testing.T) {
	for _, length := range []int{5, 300, 70000} { // 7-bit, 16-bit and 64-bit lengths
		for _, masked := range []bool{false, true} {
			before := mkFrame(masked, ws.OpText, true, []byte("before"))
			target := mkFrame(masked, ws.OpBinary, true, payloadPattern(length, 3))
			after := mkFrame(masked, ws.OpText, true, []byte("after"))
			in := cat(before, target, after)
			h, _ := parseHeader(target)
			first, last := len(before), len(before)+h.size
			check := func(t *testing.T, hs *harness) {
				t.Helper()
				hs.expectGot(in)
				if len(hs.rec.dataHeaders) != 3 {
					t.Fatalf("handler saw %d data frames, want 3", len(hs.rec.dataHeaders))
				}
				if got := hs.rec.dataHeaders[1]; got.length != uint64(length) || got.op != ws.OpBinary || got.masked != masked {
					t.Fatalf("handler saw header %+v", got)
				}
				if hs.s.carry != nil || !hs.s.atBoundary() {
					t.Fatal("stream holds a carry or is mid-frame after whole frames")
				}
			}
			for k := first; k <= last; k++ {
				t.Run(fmt.Sprintf("length=%d/%s/split=%d", length, maskedName(masked), k-first), func(t *testing.T) {
					hs := newHarness(t, rules{fromClient: masked})
					if v := hs.feed(in[:k]); !v.ok() {
						t.Fatal(v)
					}
					inHeader := k > first && k < last
					if inHeader != (hs.s.carry != nil) {
						t.Fatalf("after a read ending %d bytes into the header: carry=%v", k-first, hs.s.carry != nil)
					}
					if inHeader && len(hs.got) != first {
						t.Fatalf("%d bytes forwarded, want %d: part of a header went out", len(hs.got), first)
					}
					if !hs.s.atBoundary() && k < last {
						t.Fatal("mid-frame before the header was complete")
					}
					if v := hs.feed(in[k:]); !v.ok() {
						t.Fatal(v)
					}
					check(t, hs)
				})
			}
			t.Run(fmt.Sprintf("length=%d/%s/double-split", length, maskedName(masked)), func(t *testing.T) {
				for i := first; i <= last; i++ {
					for j := i + 1; j <= last; j++ {
						hs := newHarness(t, rules{fromClient: masked})
						hs.feedSplit(in, i, j)
						check(t, hs)
					}
				}
			})
		}
	}
}

// TestStreamPayloadSizes relays frames of every length class, read in
// chunks of various sizes.
func TestStreamPayloadSizes(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 20} {
		for _, chunk := range []int{1, 7, 4096, 65536} {
			for _, masked := range []bool{false, true} {
				if n == 1<<20 && chunk == 1 && (!masked || testing.Short()) {
					continue // a million reads: one direction, and not in -short
				}
				t.Run(fmt.Sprintf("payload=%d/chunk=%d/%s", n, chunk, maskedName(masked)), func(t *testing.T) {
					big := mkFrame(masked, ws.OpBinary, true, payloadPattern(n, 9))
					end := mkFrame(masked, ws.OpText, true, []byte("end"))
					in := cat(big, end)
					hs := newHarness(t, rules{fromClient: masked})
					hs.feedChunked(in, chunk)
					hs.expectGot(in)
					if len(hs.rec.dataHeaders) != 2 || hs.rec.dataHeaders[0].length != uint64(n) || hs.rec.dataHeaders[1].length != 3 {
						t.Fatalf("handler saw %d data frames: %+v", len(hs.rec.dataHeaders), hs.rec.dataHeaders)
					}
					if len(hs.rec.controls) != 0 {
						t.Fatalf("handler saw %d control frames", len(hs.rec.controls))
					}
				})
			}
		}
	}
}

// TestStreamFragmentedMessage sends control frames between the fragments
// of a message (RFC 6455 §5.4): all is forwarded, and the handler gets the
// control payloads unmasked.
func TestStreamFragmentedMessage(t *testing.T) {
	for _, masked := range []bool{false, true} {
		in := cat(
			mkFrame(masked, ws.OpText, false, []byte("Hel")),
			mkFrame(masked, ws.OpPing, true, []byte("ping-1")),
			mkFrame(masked, ws.OpContinuation, false, []byte("lo, ")),
			mkFrame(masked, ws.OpPong, true, []byte("pong-2")),
			mkFrame(masked, ws.OpContinuation, true, []byte("world")),
			mkFrame(masked, ws.OpText, true, []byte("next message")),
		)
		check := func(t *testing.T, hs *harness) {
			t.Helper()
			hs.expectGot(in)
			if len(hs.rec.dataHeaders) != 4 {
				t.Fatalf("%d data frames, want 4", len(hs.rec.dataHeaders))
			}
			want := []struct {
				op      ws.OpCode
				payload string
			}{{ws.OpPing, "ping-1"}, {ws.OpPong, "pong-2"}}
			if len(hs.rec.controls) != len(want) {
				t.Fatalf("%d control frames, want %d", len(hs.rec.controls), len(want))
			}
			for i, w := range want {
				c := hs.rec.controls[i]
				if c.op != w.op || string(c.payload) != w.payload {
					t.Fatalf("control %d: %v %q, want %v %q", i, c.op, c.payload, w.op, w.payload)
				}
				if !bytes.Equal(c.frame, mkFrame(masked, w.op, true, []byte(w.payload))) {
					t.Fatalf("control %d: frame %x is not the frame as sent", i, c.frame)
				}
			}
			if hs.s.fragmented {
				t.Fatal("message still open after its last fragment")
			}
		}
		for k := 0; k <= len(in); k++ {
			t.Run(fmt.Sprintf("%s/split=%d", maskedName(masked), k), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked})
				hs.feedSplit(in, k)
				check(t, hs)
			})
		}
		t.Run(maskedName(masked)+"/chunk=1", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feedChunked(in, 1)
			check(t, hs)
		})
	}
}

// TestStreamControlSplit cuts control frames across reads, which sends
// them through the carry.
func TestStreamControlSplit(t *testing.T) {
	for _, masked := range []bool{false, true} {
		ping := mkFrame(masked, ws.OpPing, true, payloadPattern(maxControlPayload, 5))
		pong := mkFrame(masked, ws.OpPong, true, nil)
		closeF := mkFrame(masked, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
		text := mkFrame(masked, ws.OpText, true, []byte("0123456789"))
		in := cat(text, ping, pong, closeF)
		check := func(t *testing.T, hs *harness) {
			t.Helper()
			hs.expectGot(in)
			if len(hs.rec.controls) != 3 {
				t.Fatalf("%d control frames, want 3", len(hs.rec.controls))
			}
			for i, w := range []struct {
				frame   []byte
				payload []byte
			}{
				{ping, payloadPattern(maxControlPayload, 5)},
				{pong, nil},
				{closeF, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")},
			} {
				if c := hs.rec.controls[i]; !bytes.Equal(c.frame, w.frame) || !bytes.Equal(c.payload, w.payload) {
					t.Fatalf("control %d: frame %x payload %x, want %x %x", i, c.frame, c.payload, w.frame, w.payload)
				}
			}
			if hs.s.carry != nil {
				t.Fatal("carry left after whole frames")
			}
		}
		for k := 0; k <= len(in); k++ {
			t.Run(fmt.Sprintf("%s/split=%d", maskedName(masked), k), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked})
				if v := hs.feed(in[:k]); !v.ok() {
					t.Fatal(v)
				}
				if k >= len(text) && !hs.s.atBoundary() {
					t.Fatal("a control frame left the stream mid-frame")
				}
				if v := hs.feed(in[k:]); !v.ok() {
					t.Fatal(v)
				}
				check(t, hs)
			})
		}
		// Two cuts inside the 125-byte ping: the carry is carried again.
		t.Run(maskedName(masked)+"/double-split-in-ping", func(t *testing.T) {
			first := len(in) - len(closeF) - len(pong) - len(ping)
			for i := first; i < first+len(ping); i++ {
				for j := i + 1; j <= first+len(ping); j++ {
					hs := newHarness(t, rules{fromClient: masked})
					hs.feedSplit(in, i, j)
					check(t, hs)
				}
			}
		})
		t.Run(maskedName(masked)+"/chunk=1", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feedChunked(in, 1)
			check(t, hs)
		})
	}
}

// TestStreamViolations checks every protocol violation the stream finds:
// it returns the violation once, the sink gets exactly the frames before
// the offending one, and all later input is discarded.
func TestStreamViolations(t *testing.T) {
	deflate := rules{fromClient: true, dataRSV: rsv1}
	client := rules{fromClient: true}
	server := rules{}
	m := true // client frames are masked
	msbHeader := []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5}
	msbHeader = append(msbHeader, testKey[:]...)
	cases := []struct {
		name    string
		rules   rules
		prefix  [][]byte // valid frames before the offending one
		bad     []byte
		want    violation
		handler func(op ws.OpCode, payload []byte) violation
	}{
		{name: "unmasked-client-frame", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpText, true, []byte("ok"))},
			bad:    mkFrame(false, ws.OpText, true, []byte("bare")), want: errUnmaskedClient},
		{name: "unmasked-client-ping", rules: client,
			bad: mkFrame(false, ws.OpPing, true, nil), want: errUnmaskedClient},
		{name: "masked-server-frame", rules: server,
			prefix: [][]byte{mkFrame(false, ws.OpBinary, true, []byte{1, 2})},
			bad:    mkFrame(true, ws.OpBinary, true, []byte{3}), want: errMaskedServer},
		{name: "rsv1-without-extension", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpText, true, []byte("ok"))},
			bad:    wireFrame(true, rsv1, ws.OpText, &testKey, []byte("x")), want: errReservedBits},
		{name: "rsv3-without-extension/server", rules: server,
			bad: wireFrame(true, rsv3, ws.OpBinary, nil, []byte("x")), want: errReservedBits},
		{name: "rsv1-deflate-on-continuation", rules: deflate,
			prefix: [][]byte{
				wireFrame(true, rsv1, ws.OpText, &testKey, []byte("compressed")), // allowed
				wireFrame(false, rsv1, ws.OpBinary, &testKey, []byte("first")),   // allowed
			},
			bad: wireFrame(true, rsv1, ws.OpContinuation, &testKey, []byte("rest")), want: errReservedBits},
		{name: "rsv2-with-deflate", rules: deflate,
			bad: wireFrame(true, rsv2, ws.OpText, &testKey, []byte("x")), want: errReservedBits},
		{name: "rsv1-deflate-on-ping", rules: deflate,
			bad: wireFrame(true, rsv1, ws.OpPing, &testKey, nil), want: errReservedBits},
		{name: "opcode=3", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpPing, true, []byte("p"))},
			bad:    mkFrame(m, 3, true, []byte("x")), want: errReservedOpcode},
		{name: "opcode=0xB", rules: client,
			bad: mkFrame(m, 0xB, true, []byte("x")), want: errReservedOpcode},
		{name: "fragmented-control", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpText, false, []byte("frag"))},
			bad:    mkFrame(m, ws.OpPing, false, []byte("p")), want: errFragmentedControl},
		{name: "control-payload=126", rules: client,
			bad: mkFrame(m, ws.OpPing, true, payloadPattern(126, 0)), want: errControlTooLong},
		{name: "control-payload=126/server", rules: server,
			bad: mkFrame(false, ws.OpClose, true, payloadPattern(126, 0)), want: errControlTooLong},
		{name: "length-msb", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpBinary, true, payloadPattern(200, 1))},
			bad:    msbHeader, want: errLengthMSB},
		{name: "over-max-payload", rules: rules{fromClient: true, maxPayload: 1000},
			prefix: [][]byte{mkFrame(m, ws.OpBinary, true, payloadPattern(1000, 1))}, // exactly the limit
			bad:    mkFrame(m, ws.OpBinary, true, payloadPattern(1001, 2)), want: errFrameTooBig},
		{name: "continuation-without-start", rules: client,
			prefix: [][]byte{mkFrame(m, ws.OpText, true, []byte("whole"))},
			bad:    mkFrame(m, ws.OpContinuation, true, []byte("orphan")), want: errNoMessage},
		{name: "text-inside-fragmented-message", rules: client,
			prefix: [][]byte{
				mkFrame(m, ws.OpText, false, []byte("start")),
				mkFrame(m, ws.OpPing, true, nil),
				mkFrame(m, ws.OpContinuation, false, []byte("more")),
			},
			bad: mkFrame(m, ws.OpText, true, []byte("new")), want: errUnfinished},
		{name: "handler-rejects-close", rules: client,
			prefix:  [][]byte{mkFrame(m, ws.OpText, true, []byte("ok"))},
			bad:     mkFrame(m, ws.OpClose, true, []byte{0x03}),
			want:    errCloseLength,
			handler: func(op ws.OpCode, p []byte) violation { _, v := checkClosePayload(p); return v }},
	}
	for _, c := range cases {
		masked := c.rules.fromClient
		later := cat(mkFrame(masked, ws.OpText, true, []byte("later")), mkFrame(masked, ws.OpPing, true, []byte("later")))
		prefix := cat(c.prefix...)
		in := cat(prefix, c.bad, later)
		var prefixData, prefixCtl int
		for _, f := range c.prefix {
			h, _ := parseHeader(f)
			if h.op.IsControl() {
				prefixCtl++
			} else {
				prefixData++
			}
		}
		if c.want.code == 0 {
			t.Fatalf("%s: test case without a violation", c.name)
		}
		run := func(t *testing.T, cuts ...int) {
			t.Helper()
			hs := newHarness(t, c.rules)
			if c.handler != nil {
				hs.rec.reject = c.handler
			}
			var got []violation
			prev := 0
			for _, cut := range append(cuts, len(in)) {
				if v := hs.feed(in[prev:cut]); !v.ok() {
					got = append(got, v)
				}
				prev = cut
			}
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("violations %+v, want exactly %+v", got, c.want)
			}
			hs.expectGot(prefix)
			if len(hs.rec.dataHeaders) != prefixData {
				t.Fatalf("handler saw %d data frames, want the %d before the offending one", len(hs.rec.dataHeaders), prefixData)
			}
			wantCtl := prefixCtl
			if c.handler != nil {
				wantCtl++ // the handler itself judged the offending frame
			}
			if len(hs.rec.controls) != wantCtl {
				t.Fatalf("handler saw %d control frames, want %d", len(hs.rec.controls), wantCtl)
			}
			if !hs.s.stopped || !hs.s.atBoundary() {
				t.Fatalf("after a violation: stopped=%v atBoundary=%v", hs.s.stopped, hs.s.atBoundary())
			}
			// Everything after is discarded, and nothing is reported twice.
			if v := hs.feed(cat(later, later)); !v.ok() {
				t.Fatalf("violation reported again: %v", v)
			}
			hs.expectGot(prefix)
			if len(hs.rec.dataHeaders) != prefixData {
				t.Fatal("handler was told about frames after the violation")
			}
		}
		t.Run(c.name+"/whole", func(t *testing.T) { run(t) })
		// Cut at every byte from the last prefix frame through the
		// offending frame's header, and a little past it.
		from := len(prefix)
		if len(c.prefix) > 0 {
			from -= len(c.prefix[len(c.prefix)-1])
		}
		to := min(len(prefix)+maxHeaderSize+2, len(in))
		for k := from; k <= to; k++ {
			t.Run(fmt.Sprintf("%s/split=%d", c.name, k), func(t *testing.T) { run(t, k) })
		}
		t.Run(c.name+"/chunk=1", func(t *testing.T) {
			cuts := make([]int, 0, len(in))
			for k := 1; k < len(in); k++ {
				cuts = append(cuts, k)
			}
			run(t, cuts...)
		})
	}
}

// TestStreamUnknownExtension: with an extension wsalive does not know, RSV
// bits and reserved opcodes belong to it and pass; the rest of the rules
// still hold.
func TestStreamUnknownExtension(t *testing.T) {
	r := rules{fromClient: true, anyRSV: true}
	k := &testKey
	for _, c := range []struct {
		name string
		in   [][]byte
		ctl  int
	}{
		{"rsv-all-bits", [][]byte{wireFrame(true, rsv1|rsv2|rsv3, ws.OpText, k, []byte("x"))}, 0},
		{"rsv-on-continuation", [][]byte{
			wireFrame(false, rsv1, ws.OpText, k, []byte("a")),
			wireFrame(true, rsv2, ws.OpContinuation, k, []byte("b")),
		}, 0},
		{"rsv-on-ping", [][]byte{wireFrame(true, rsv3, ws.OpPing, k, []byte("p"))}, 1},
		{"opcode=3", [][]byte{wireFrame(true, 0, 3, k, []byte("ext data"))}, 0},
		{"opcode=7-fragmented", [][]byte{
			wireFrame(false, 0, 7, k, []byte("ext ")),
			wireFrame(true, 0, ws.OpContinuation, k, []byte("data")),
		}, 0},
		{"opcode=0xB", [][]byte{wireFrame(true, 0, 0xB, k, []byte("ext control"))}, 1},
		{"opcode=0xF-between-fragments", [][]byte{
			wireFrame(false, 0, ws.OpText, k, []byte("a")),
			wireFrame(true, 0, 0xF, k, []byte("ctl")),
			wireFrame(true, 0, ws.OpContinuation, k, []byte("b")),
		}, 1},
		// A frame of an extension's data opcode between the fragments of
		// a text message: the check for a new message inside a fragmented
		// one lets reserved opcodes through, so the message must still be
		// open for its continuation afterwards.
		{"opcode=3-between-fragments", [][]byte{
			wireFrame(false, 0, ws.OpText, k, []byte("a")),
			wireFrame(true, 0, 3, k, []byte("ext")),
			wireFrame(true, 0, ws.OpContinuation, k, []byte("b")),
		}, 0},
	} {
		in := cat(c.in...)
		t.Run(c.name, func(t *testing.T) {
			hs := newHarness(t, r)
			hs.feedChunked(in, 3)
			hs.expectGot(in)
			if len(hs.rec.controls) != c.ctl {
				t.Fatalf("%d control frames, want %d", len(hs.rec.controls), c.ctl)
			}
		})
	}
	for _, c := range []struct {
		name string
		bad  []byte
		want violation
	}{
		{"unmasked", wireFrame(true, rsv1, ws.OpText, nil, []byte("x")), errUnmaskedClient},
		{"fragmented-control", wireFrame(false, 0, 0xB, k, nil), errFragmentedControl},
		{"control-payload=126", wireFrame(true, 0, 0xC, k, payloadPattern(126, 0)), errControlTooLong},
	} {
		t.Run("still-rejects/"+c.name, func(t *testing.T) {
			hs := newHarness(t, r)
			if v := hs.feed(c.bad); v != c.want {
				t.Fatalf("got %+v, want %+v", v, c.want)
			}
			hs.expectGot(nil)
		})
	}
}

// TestStreamDropControl: a control frame the handler does not forward is
// removed from the stream, and nothing else is.
func TestStreamDropControl(t *testing.T) {
	for _, masked := range []bool{false, true} {
		a := mkFrame(masked, ws.OpText, false, []byte("first"))
		keep := mkFrame(masked, ws.OpPing, true, []byte("theirs"))
		drop := mkFrame(masked, ws.OpPong, true, []byte("wsalive-ours"))
		b := mkFrame(masked, ws.OpContinuation, true, payloadPattern(300, 4))
		keep2 := mkFrame(masked, ws.OpPong, true, []byte("theirs too"))
		in := cat(a, keep, drop, b, drop, keep2)
		want := cat(a, keep, b, keep2)
		for k := 0; k <= len(in); k++ {
			t.Run(fmt.Sprintf("%s/split=%d", maskedName(masked), k), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked})
				hs.rec.drop = func(op ws.OpCode, p []byte) bool { return bytes.HasPrefix(p, []byte("wsalive-")) }
				hs.feedSplit(in, k)
				hs.expectGot(want)
				if len(hs.rec.controls) != 4 {
					t.Fatalf("handler saw %d control frames, want 4", len(hs.rec.controls))
				}
			})
		}
	}
}

// TestStreamInjectAtBoundary: at a frame boundary an injected frame goes
// straight into the batch.
func TestStreamInjectAtBoundary(t *testing.T) {
	for _, masked := range []bool{false, true} {
		t.Run(maskedName(masked), func(t *testing.T) {
			a := mkFrame(masked, ws.OpBinary, true, payloadPattern(1000, 1))
			b := mkFrame(masked, ws.OpText, true, []byte("b"))
			ping := mkFrame(masked, ws.OpPing, true, []byte("wsalive-1"))
			hs := newHarness(t, rules{fromClient: masked})
			if !hs.inject(ping, kindPing) {
				t.Fatal("inject on a fresh stream was queued")
			}
			hs.feed(a)
			if !hs.inject(ping, kindPing) {
				t.Fatal("inject after a whole frame was queued")
			}
			// A read that ends inside a header leaves the sink at the
			// boundary before that header.
			hs.feed(b[:1])
			if !hs.inject(ping, kindPing) {
				t.Fatal("inject with a partial header carried was queued")
			}
			hs.feed(b[1:])
			if len(hs.s.queued) != 0 {
				t.Fatal("frames queued")
			}
			hs.expectGot(cat(ping, a, ping, ping, b))
		})
	}
}

// TestStreamInjectMidFrame: in the middle of a frame an injected frame is
// queued and goes out at the very next boundary, wherever it falls.
func TestStreamInjectMidFrame(t *testing.T) {
	for _, masked := range []bool{false, true} {
		big := mkFrame(masked, ws.OpBinary, false, payloadPattern(5000, 2))
		next := mkFrame(masked, ws.OpContinuation, true, []byte("next"))
		ping := mkFrame(masked, ws.OpPing, true, []byte("wsalive-1"))
		pong := mkFrame(masked, ws.OpPong, true, []byte("wsalive-2"))
		t.Run(maskedName(masked)+"/boundary=end-of-read", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big[:100])
			if hs.inject(ping, kindPing) || hs.inject(pong, kindPong) {
				t.Fatal("inject in the middle of a frame went out at once")
			}
			hs.expectGot(big[:100])
			hs.feed(big[100:]) // ends exactly at the boundary
			hs.expectGot(cat(big, ping, pong))
			if len(hs.s.queued) != 0 {
				t.Fatal("queue not emptied")
			}
			hs.feed(next)
			hs.expectGot(cat(big, ping, pong, next))
		})
		t.Run(maskedName(masked)+"/boundary=inside-read", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big[:100])
			hs.inject(ping, kindPing)
			hs.feed(big[100:4000])
			hs.expectGot(big[:4000])
			hs.inject(pong, kindPong)
			hs.feed(cat(big[4000:], next))
			hs.expectGot(cat(big, ping, pong, next))
		})
		t.Run(maskedName(masked)+"/header-only-read", func(t *testing.T) {
			// The read ends right after a complete header: the payload
			// is still to come, so the sink is mid-frame.
			h, _ := parseHeader(big)
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big[:h.size])
			if hs.s.atBoundary() || hs.inject(ping, kindPing) {
				t.Fatal("inject after a header went out before its payload")
			}
			hs.feed(big[h.size:])
			hs.expectGot(cat(big, ping))
		})
		t.Run(maskedName(masked)+"/empty-payload-frame", func(t *testing.T) {
			empty := mkFrame(masked, ws.OpBinary, true, nil)
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(empty)
			if !hs.inject(ping, kindPing) {
				t.Fatal("inject after a frame with no payload was queued")
			}
			hs.expectGot(cat(empty, ping))
		})
	}
}

// TestStreamCloseForwarded: once a close frame from the source went to the
// sink, later frames are dropped whole, and injection does nothing.
func TestStreamCloseForwarded(t *testing.T) {
	for _, masked := range []bool{false, true} {
		a := mkFrame(masked, ws.OpText, true, []byte("a"))
		closeF := mkFrame(masked, ws.OpClose, true, ws.NewCloseFrameBody(1000, ""))
		after := cat(
			mkFrame(masked, ws.OpBinary, true, payloadPattern(70000, 3)),
			mkFrame(masked, ws.OpPing, true, []byte("p")),
			mkFrame(masked, ws.OpClose, true, nil),
			mkFrame(masked, ws.OpText, true, []byte("z")),
		)
		in := cat(a, closeF, after)
		for _, chunk := range []int{1, 13, 4096, len(in)} {
			t.Run(fmt.Sprintf("%s/chunk=%d", maskedName(masked), chunk), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked})
				hs.feedChunked(in, chunk)
				hs.expectGot(cat(a, closeF))
				if !hs.s.sinkClosed {
					t.Fatal("sinkClosed not set")
				}
				if hs.inject(mkFrame(masked, ws.OpPing, true, nil), kindPing) || len(hs.s.queued) != 0 {
					t.Fatal("frame injected after a close")
				}
				hs.expectGot(cat(a, closeF))
			})
		}
	}
}

// TestStreamInjectClose covers injected close frames: nothing goes to the
// sink after one, including frames queued behind it.
func TestStreamInjectClose(t *testing.T) {
	for _, masked := range []bool{false, true} {
		big := mkFrame(masked, ws.OpBinary, true, payloadPattern(3000, 6))
		next := mkFrame(masked, ws.OpText, true, []byte("next"))
		closeF := mkFrame(masked, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "going away"))
		ping := mkFrame(masked, ws.OpPing, true, []byte("wsalive"))
		t.Run(maskedName(masked)+"/queued-close-then-ping", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big[:10])
			hs.inject(closeF, kindClose)
			hs.inject(ping, kindPing)
			hs.feed(cat(big[10:], next, ping))
			hs.expectGot(cat(big, closeF))
			if !hs.s.sinkClosed || len(hs.s.queued) != 0 {
				t.Fatalf("sinkClosed=%v queued=%d", hs.s.sinkClosed, len(hs.s.queued))
			}
			hs.inject(ping, kindPing)
			hs.feed(next)
			hs.expectGot(cat(big, closeF))
		})
		t.Run(maskedName(masked)+"/close-at-boundary", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big)
			if !hs.inject(closeF, kindClose) {
				t.Fatal("close at a boundary was queued")
			}
			hs.feed(cat(next, big))
			hs.expectGot(cat(big, closeF))
		})
		t.Run(maskedName(masked)+"/ping-then-close-queued", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(big[:10])
			hs.inject(ping, kindPing)
			hs.inject(closeF, kindClose)
			hs.feed(big[10:])
			hs.expectGot(cat(big, ping, closeF))
		})
	}
}

// TestStreamInjectKinds covers what the kind of an injected frame decides:
// a pong replaces a queued pong, a text frame waits for the end of the
// message and replaces a queued text frame, control frames overtake a
// queued text frame, and the stream keeps its own copy of what it queues.
func TestStreamInjectKinds(t *testing.T) {
	for _, masked := range []bool{false, true} {
		first := mkFrame(masked, ws.OpText, false, payloadPattern(500, 1))
		middle := mkFrame(masked, ws.OpContinuation, false, payloadPattern(500, 2))
		last := mkFrame(masked, ws.OpContinuation, true, payloadPattern(500, 3))
		whole := mkFrame(masked, ws.OpBinary, true, payloadPattern(500, 4))
		ping := mkFrame(masked, ws.OpPing, true, []byte("wsalive-ping"))
		pong1 := mkFrame(masked, ws.OpPong, true, []byte("answer-1"))
		pong2 := mkFrame(masked, ws.OpPong, true, []byte("answer-2"))
		text1 := mkFrame(masked, ws.OpText, true, []byte(`{"type":"pong","n":1}`))
		text2 := mkFrame(masked, ws.OpText, true, []byte(`{"type":"pong","n":2}`))
		name := maskedName(masked)
		t.Run(name+"/pong-replaces-queued-pong", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(whole[:50])
			hs.inject(pong1, kindPong)
			hs.inject(ping, kindPing)
			hs.inject(pong2, kindPong)
			hs.feed(whole[50:])
			hs.expectGot(cat(whole, pong2, ping))
		})
		t.Run(name+"/text-waits-for-message-end", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(first)
			// At a frame boundary, but inside a message.
			if hs.inject(text1, kindText) {
				t.Fatal("text frame went out between the fragments of a message")
			}
			if !hs.inject(ping, kindPing) {
				t.Fatal("ping waited behind a queued text frame")
			}
			hs.feed(middle[:10])
			hs.inject(pong1, kindPong) // queued mid-frame, ahead of the text at the next boundary
			hs.feed(middle[10:])
			hs.expectGot(cat(first, ping, middle, pong1))
			hs.feed(last)
			hs.expectGot(cat(first, ping, middle, pong1, last, text1))
			if len(hs.s.queued) != 0 {
				t.Fatal("queue not empty")
			}
			if !hs.inject(text2, kindText) {
				t.Fatal("text frame queued between messages")
			}
			hs.expectGot(cat(first, ping, middle, pong1, last, text1, text2))
		})
		t.Run(name+"/text-replaces-queued-text", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(first)
			hs.inject(text1, kindText)
			hs.inject(text2, kindText)
			hs.feed(cat(middle, last, whole))
			hs.expectGot(cat(first, middle, last, text2, whole))
		})
		t.Run(name+"/text-after-empty-last-fragment", func(t *testing.T) {
			empty := mkFrame(masked, ws.OpContinuation, true, nil)
			for _, split := range []int{0, 1, len(empty)} {
				hs := newHarness(t, rules{fromClient: masked})
				hs.feed(first)
				hs.inject(text1, kindText)
				hs.feedSplit(cat(empty, whole), split)
				hs.expectGot(cat(first, empty, text1, whole))
			}
		})
		t.Run(name+"/queue-copies-frame", func(t *testing.T) {
			hs := newHarness(t, rules{fromClient: masked})
			hs.feed(whole[:50])
			scratch := bytes.Clone(ping)
			hs.inject(scratch, kindPing)
			clear(scratch)
			hs.feed(whole[50:])
			hs.expectGot(cat(whole, ping))
		})
	}
}

// TestStreamCloseDropsQueue: once a close frame went to the sink, nothing
// queued can ever go out, so nothing may stay queued: a pair waits for its
// queues to empty before it finishes.
func TestStreamCloseDropsQueue(t *testing.T) {
	first := mkFrame(false, ws.OpText, false, []byte("fragment"))
	text := mkFrame(false, ws.OpText, true, []byte("reply"))
	closeF := mkFrame(false, ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
	t.Run("injected-close", func(t *testing.T) {
		// Inside a message, at a frame boundary: the text frame waits,
		// the close goes out at once.
		hs := newHarness(t, rules{})
		hs.feed(first)
		hs.inject(text, kindText)
		if !hs.inject(closeF, kindClose) {
			t.Fatal("close queued at a frame boundary")
		}
		hs.expectGot(cat(first, closeF))
		if hs.s.hasQueued() {
			t.Fatalf("%d frames still queued behind a close that went out", len(hs.s.queued))
		}
	})
	t.Run("forwarded-close", func(t *testing.T) {
		hs := newHarness(t, rules{})
		hs.feed(first)
		hs.inject(text, kindText)
		hs.feed(closeF)
		hs.expectGot(cat(first, closeF))
		if hs.s.hasQueued() {
			t.Fatalf("%d frames still queued behind a close that went out", len(hs.s.queued))
		}
	})
}

// TestStreamWholeText: with rules.wholeText set, unfragmented uncompressed
// text frames of exactly that length go to the handler whole, like control
// frames, even when cut across reads; every other data frame streams.
func TestStreamWholeText(t *testing.T) {
	for _, masked := range []bool{false, true} {
		k := keyIf(masked)
		appPing := wireFrame(true, 0, ws.OpText, k, []byte(`{"type":"ping"}`))
		other := wireFrame(true, 0, ws.OpText, k, []byte(`{"type":"pong"}`)) // same length, not matched by the handler
		streamed := [][]byte{
			wireFrame(true, 0, ws.OpText, k, []byte(`{"type":"ping"} `)),   // longer
			wireFrame(true, 0, ws.OpBinary, k, []byte(`{"type":"ping"}`)),  // binary
			wireFrame(true, rsv1, ws.OpText, k, []byte(`{"type":"ping"}`)), // compressed
			wireFrame(false, 0, ws.OpText, k, []byte(`{"type":"ping"}`)),   // a first fragment
			wireFrame(true, 0, ws.OpContinuation, k, []byte(`{"type":"ping"}`)),
		}
		in := cat(appPing, streamed[0], other, streamed[1], streamed[2], appPing, streamed[3], streamed[4], appPing)
		want := cat(streamed[0], other, streamed[1], streamed[2], streamed[3], streamed[4])
		for split := 0; split <= len(in); split++ {
			t.Run(fmt.Sprintf("%s/split=%d", maskedName(masked), split), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked, dataRSV: rsv1, wholeText: uint64(len(`{"type":"ping"}`))})
				hs.rec.drop = func(op ws.OpCode, p []byte) bool { return op == ws.OpText && string(p) == `{"type":"ping"}` }
				hs.feedSplit(in, split)
				hs.expectGot(want)
				if len(hs.rec.controls) != 4 || len(hs.rec.dataHeaders) != 5 {
					t.Fatalf("handler saw %d whole frames and %d data headers, want 4 and 5",
						len(hs.rec.controls), len(hs.rec.dataHeaders))
				}
				for _, c := range hs.rec.controls {
					if c.op != ws.OpText || len(c.payload) != len(`{"type":"ping"}`) {
						t.Fatalf("handler got %v %q", c.op, c.payload)
					}
				}
			})
		}
	}
}

// TestStreamSourceClosed: after the source's close frame (srcClosed), its
// input is discarded unparsed.
func TestStreamSourceClosed(t *testing.T) {
	for _, masked := range []bool{false, true} {
		a := mkFrame(masked, ws.OpText, true, []byte("a"))
		closeF := mkFrame(masked, ws.OpClose, true, ws.NewCloseFrameBody(1000, ""))
		// Garbage after the close: it would be a violation if parsed.
		junk := cat(mkFrame(!masked, ws.OpText, true, []byte("junk")), []byte{0xff, 0xff, 0xff})
		in := cat(a, closeF, junk)
		for k := 0; k <= len(in); k++ {
			t.Run(fmt.Sprintf("%s/split=%d", maskedName(masked), k), func(t *testing.T) {
				hs := newHarness(t, rules{fromClient: masked})
				hs.rec.closeSrc = true
				hs.feedSplit(in, k)
				hs.expectGot(cat(a, closeF))
				if len(hs.rec.dataHeaders) != 1 || len(hs.rec.controls) != 1 {
					t.Fatalf("handler saw %d data and %d control frames, want 1 and 1", len(hs.rec.dataHeaders), len(hs.rec.controls))
				}
				if hs.s.carry != nil {
					t.Fatal("discarded input left a carry")
				}
			})
		}
	}
	t.Run("set-between-reads", func(t *testing.T) {
		hs := newHarness(t, rules{})
		a := mkFrame(false, ws.OpText, true, []byte("a"))
		hs.feed(a)
		hs.s.srcClosed = true
		hs.feed(a)
		hs.expectGot(a)
		// An injection still reaches the sink: only the source is done.
		ping := mkFrame(false, ws.OpPing, true, nil)
		hs.inject(ping, kindPing)
		hs.expectGot(cat(a, ping))
	})
}

func TestStreamRelease(t *testing.T) {
	hs := newHarness(t, rules{})
	f := mkFrame(false, ws.OpPing, true, []byte("ping"))
	hs.feed(f[:3])
	if hs.s.carry == nil {
		t.Fatal("no carry after a partial control frame")
	}
	hs.s.queued = append(hs.s.queued, queuedFrame{frame: f})
	hs.s.release()
	if hs.s.carry != nil || hs.s.queued != nil {
		t.Fatal("release kept buffers")
	}
}

// layoutFrame is where one frame of a generated stream lies.
type layoutFrame struct {
	start, hsize, end int
	control           bool
	fin               bool
}

// randomLayout generates a valid stream: messages of one or more
// fragments, small and big, with control frames between frames.
func randomLayout(rng *rand.Rand, masked bool) (wire []byte, frames []layoutFrame) {
	n := 1 + rng.IntN(40)
	open := false
	size := func() int {
		switch x := rng.IntN(100); {
		case x < 60:
			return rng.IntN(126)
		case x < 85:
			return 126 + rng.IntN(4000)
		case x < 97:
			return 4000 + rng.IntN(70000)
		default:
			return 65536 + rng.IntN(200000)
		}
	}
	add := func(fin bool, op ws.OpCode, payload []byte) {
		var key *[4]byte
		if masked {
			k := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
			key = &k
		}
		f := wireFrame(fin, 0, op, key, payload)
		h, _ := parseHeader(f)
		frames = append(frames, layoutFrame{len(wire), h.size, len(wire) + len(f), op.IsControl(), fin})
		wire = append(wire, f...)
	}
	for i := 0; i < n || open; i++ {
		switch {
		case rng.IntN(4) == 0:
			op := ws.OpPing
			if rng.IntN(2) == 0 {
				op = ws.OpPong
			}
			add(true, op, payloadPattern(rng.IntN(maxControlPayload+1), byte(i)))
		case open:
			fin := rng.IntN(3) == 0 || i >= n
			add(fin, ws.OpContinuation, payloadPattern(size(), byte(i)))
			open = !fin
		default:
			op := ws.OpText
			if rng.IntN(2) == 0 {
				op = ws.OpBinary
			}
			fin := rng.IntN(10) < 7 || i >= n-1
			add(fin, op, payloadPattern(size(), byte(i)))
			open = !fin
		}
	}
	return wire, frames
}

// injModel predicts where a stream puts injected frames in its output.
// off is the input read so far; fi is the frame holding offset off.
type injModel struct {
	wire   []byte
	frames []layoutFrame
	fi     int
}

// at describes the stream after reading off bytes: fwd is how much input
// the sink has (all of it, except a header or control frame cut by the end
// of the last read, which waits for its rest); mid is whether the sink is
// inside a frame, and cur the frame holding off (len(frames) at the end).
func (m *injModel) at(off int) (fwd, cur int, mid bool) {
	for m.fi < len(m.frames) && m.frames[m.fi].end <= off {
		m.fi++
	}
	if m.fi == len(m.frames) || m.frames[m.fi].start == off {
		return off, m.fi, false
	}
	f := m.frames[m.fi]
	if !f.control && off >= f.start+f.hsize {
		return off, m.fi, true
	}
	return f.start, m.fi, false
}

// open reports whether a message is open as the stream sees it after
// reading off bytes: set by the last data frame whose header was read.
func (m *injModel) open(off int) bool {
	for i := min(m.fi, len(m.frames)-1); i >= 0; i-- {
		f := m.frames[i]
		if !f.control && f.start+f.hsize <= off {
			return !f.fin
		}
	}
	return false
}

// place returns the input offset an injected frame of kind goes before,
// injected after off bytes were read, and whether it goes out at once.
func (m *injModel) place(off int, kind frameKind) (pos int, now bool) {
	fwd, cur, mid := m.at(off)
	if kind != kindText {
		if mid {
			return m.frames[cur].end, false
		}
		return fwd, true
	}
	if !mid && !m.open(off) {
		return fwd, true
	}
	// The end of the message: the first final data frame from here on.
	for i := cur; i < len(m.frames); i++ {
		if f := m.frames[i]; !f.control && f.fin {
			return f.end, false
		}
	}
	panic("generated stream ends inside a message")
}

// TestStreamInjectRandom relays random streams in random reads and injects
// frames between reads: pings, pongs (a queued pong is replaced by a newer
// one) and text frames (which wait for a message boundary, and replace a
// queued one). The sink must get every injected frame whole, at the first
// boundary it may take at or after the moment of injection, and every
// original frame intact and in order.
func TestStreamInjectRandom(t *testing.T) {
	for seed := uint64(1); seed <= 150; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		masked := rng.IntN(2) == 0
		profile := rng.IntN(3)
		t.Run(fmt.Sprintf("seed=%d/%s/reads=%s", seed, maskedName(masked), []string{"tiny", "mixed", "big"}[profile]), func(t *testing.T) {
			wire, frames := randomLayout(rng, masked)
			injectOdds := 3 // 1 in injectOdds: one more injection before a read
			if profile == 0 && len(wire) > 40000 {
				profile = 1 // keep tiny reads to small streams
			}
			if profile == 0 {
				injectOdds = 8
			}
			readSize := func() int {
				switch profile {
				case 0:
					return 1 + rng.IntN(16)
				case 1:
					if rng.IntN(4) == 0 {
						return 1 + rng.IntN(20)
					}
					return 1 + rng.IntN(8192)
				default:
					return 1 + rng.IntN(80000)
				}
			}
			hs := newHarness(t, rules{fromClient: masked})
			m := &injModel{wire: wire, frames: frames}

			type injected struct {
				seq   int
				pos   int // input offset it goes before
				kind  frameKind
				frame []byte
			}
			var pending []*injected // injected, not yet in the output
			var all []*injected     // in output order
			var exp []byte          // the expected output as far as it is known
			origPos, checked := 0, 0
			// verify checks the output once fwd bytes of input went to
			// the sink, with every injected frame due by then.
			verify := func(fwd int, when func() string) {
				t.Helper()
				for {
					best := -1
					for i, in := range pending {
						if in.pos <= fwd && (best < 0 || in.pos < pending[best].pos ||
							in.pos == pending[best].pos && in.seq < pending[best].seq) {
							best = i
						}
					}
					if best < 0 {
						break
					}
					in := pending[best]
					pending = append(pending[:best], pending[best+1:]...)
					exp = append(exp, wire[origPos:in.pos]...)
					exp = append(exp, in.frame...)
					origPos = in.pos
					all = append(all, in)
				}
				exp = append(exp, wire[origPos:fwd]...)
				origPos = fwd
				if len(hs.got) != len(exp) {
					t.Fatalf("%s: sink has %d bytes, want %d (input forwarded %d)", when(), len(hs.got), len(exp), fwd)
				}
				if !bytes.Equal(hs.got[checked:], exp[checked:]) {
					t.Fatalf("%s: output bytes %d:%d differ from expected", when(), checked, len(exp))
				}
				checked = len(exp)
			}
			off, seq := 0, 0
			for off < len(wire) {
				for rng.IntN(injectOdds) == 0 {
					_, _, mid := m.at(off)
					if hs.s.atBoundary() == mid {
						t.Fatalf("at offset %d: atBoundary=%v, model says mid-frame=%v", off, hs.s.atBoundary(), mid)
					}
					seq++
					var f []byte
					kind := []frameKind{kindPing, kindPong, kindText}[rng.IntN(3)]
					payload := []byte(fmt.Sprintf("wsalive-%d", seq))
					switch kind {
					case kindPing:
						f = mkFrame(masked, ws.OpPing, true, payload)
					case kindPong:
						f = mkFrame(masked, ws.OpPong, true, payload)
					case kindText:
						f = mkFrame(masked, ws.OpText, true, payload)
					}
					pos, now := m.place(off, kind)
					scratch := bytes.Clone(f)
					if straight := hs.inject(scratch, kind); straight != now {
						t.Fatalf("at offset %d: %v frame went out at once=%v, want %v", off, kind, straight, now)
					}
					clear(scratch) // the stream must have its own copy
					replaced := false
					if !now && kind != kindPing {
						for _, in := range pending {
							if in.kind == kind {
								in.frame, replaced = f, true
								if in.pos != pos {
									t.Fatalf("model: replaced %v frame was due at %d, new one at %d", kind, in.pos, pos)
								}
							}
						}
					}
					if !replaced {
						pending = append(pending, &injected{seq, pos, kind, f})
					}
					fwd, _, _ := m.at(off)
					verify(fwd, func() string { return fmt.Sprintf("after inject %d (kind %d) at offset %d", seq, kind, off) })
					if len(hs.s.queued) != len(pending) {
						t.Fatalf("after inject %d: %d frames queued, model has %d", seq, len(hs.s.queued), len(pending))
					}
				}
				n := min(readSize(), len(wire)-off)
				if v := hs.feed(wire[off : off+n]); !v.ok() {
					t.Fatalf("violation %v in a valid stream at offset %d", v, off)
				}
				off += n
				fwd, _, _ := m.at(off)
				verify(fwd, func() string { return fmt.Sprintf("after read %d:%d", off-n, off) })
				if len(hs.s.queued) != len(pending) {
					t.Fatalf("after read ending at %d: %d frames queued, model has %d", off, len(hs.s.queued), len(pending))
				}
			}
			verify(len(wire), func() string { return "at the end" })
			if len(pending) != 0 {
				t.Fatalf("%d injected frames never went out", len(pending))
			}

			// Read the output back as a peer would: the original frames in
			// order, each injected frame whole between them, and no data
			// frame injected inside a message.
			r := bytes.NewReader(hs.got)
			next := 0
			for i := 0; i <= len(frames); i++ {
				for next < len(all) && all[next].pos == boundaryStart(frames, i, len(wire)) {
					in := all[next]
					checkWireFrame(t, r, in.frame, fmt.Sprintf("injected frame %d", in.seq))
					if in.kind == kindText && i > 0 && m.open(frames[i-1].end) {
						t.Fatalf("injected text frame %d inside a fragmented message", in.seq)
					}
					next++
				}
				if i < len(frames) {
					f := frames[i]
					checkWireFrame(t, r, wire[f.start:f.end], fmt.Sprintf("frame %d", i))
				}
			}
			if next != len(all) || r.Len() != 0 {
				t.Fatalf("%d of %d injected frames found, %d bytes left over", next, len(all), r.Len())
			}
			var nData, nCtl int
			for _, f := range frames {
				if f.control {
					nCtl++
				} else {
					nData++
				}
			}
			if len(hs.rec.dataHeaders) != nData || len(hs.rec.controls) != nCtl {
				t.Fatalf("handler saw %d data and %d control frames, want %d and %d",
					len(hs.rec.dataHeaders), len(hs.rec.controls), nData, nCtl)
			}
		})
	}
}

func boundaryStart(frames []layoutFrame, i, end int) int {
	if i < len(frames) {
		return frames[i].start
	}
	return end
}

// checkWireFrame reads one frame from r with gobwas/ws and checks that it
// is want, byte for byte.
func checkWireFrame(t *testing.T, r *bytes.Reader, want []byte, what string) {
	t.Helper()
	at := int(r.Size()) - r.Len()
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("%s at output offset %d: %v", what, at, err)
	}
	end := at + ws.HeaderSize(h) + int(h.Length)
	if int64(end) > r.Size() {
		t.Fatalf("%s at output offset %d: payload of %d bytes cut by the end of the output", what, at, h.Length)
	}
	got := make([]byte, end-at)
	r.ReadAt(got, int64(at))
	r.Seek(int64(end), io.SeekStart)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s at output offset %d: got %s, want %s", what, at, abbrev(got), abbrev(want))
	}
}
