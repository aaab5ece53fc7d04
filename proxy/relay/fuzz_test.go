package relay

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzStreamParser feeds one direction's stream arbitrary bytes, cut into
// reads at points the input chooses, under rules the input chooses, and
// checks everything it does against refParse, the whole-buffer reference
// written from RFC 6455: the frames it reports and when, the bytes it
// forwards after every read, the violation and its close code, and that
// nothing moves after a violation.
//
// Short run (CI): go test -run '^$' -fuzz '^FuzzStreamParser$' -fuzztime 20s -fuzzminimizetime 100x ./proxy/relay
// Long run:       go test -run '^$' -fuzz '^FuzzStreamParser$' -fuzztime 30m -fuzzminimizetime 100x ./proxy/relay
//
// The arguments:
//   - wire: the bytes the source sends.
//   - cuts: the sizes of successive reads, one byte each (n+1 bytes; 0xff
//     reads all that is left), used in a cycle; empty means one read.
//   - mode: bit 0 the source is the client (frames masked), bit 1
//     permessage-deflate negotiated, bit 2 an unknown extension negotiated,
//     bit 3 a valid close ends the source (as a pair does), bit 4 the owner
//     keeps inspected frames whose payload starts with an odd byte.
//   - limit: the frame size limit; 0 for none, else at least 125, the
//     smallest the configuration allows.
//   - whole: the length of text frames inspected whole; 0 for none, else
//     1 to 125.
//
// The seed corpus is testdata/fuzz/FuzzStreamParser (see streamSeeds).
func FuzzStreamParser(f *testing.F) {
	f.Fuzz(func(t *testing.T, wire, cuts []byte, mode uint8, limit uint32, whole uint8) {
		checkStreamAgainstReference(t, wire, cuts, mode, limit, whole)
	})
}

// Mode bits of FuzzStreamParser.
const (
	modeFromClient uint8 = 1 << iota
	modeDeflate
	modeUnknownExt
	modeCloseEndsSource
	modeDropOdd
)

// fuzzSetup turns FuzzStreamParser's arguments into the stream's rules
// (through rulesFor, as the engine builds them) and the reference's view
// of the same negotiation.
func fuzzSetup(mode uint8, limit uint32, whole uint8) (rules, refConfig) {
	var ext []string
	if mode&modeDeflate != 0 {
		ext = append(ext, "permessage-deflate")
	}
	if mode&modeUnknownExt != 0 {
		ext = append(ext, "x-unknown-to-wsalive")
	}
	var maxPayload uint64
	if limit != 0 {
		maxPayload = max(uint64(limit), 125)
	}
	var wholeText uint64
	if whole != 0 {
		wholeText = 1 + uint64(whole-1)%125
	}
	r := rulesFor(mode&modeFromClient != 0, ext, int64(maxPayload))
	r.wholeText = wholeText
	cfg := refConfig{
		fromClient:      mode&modeFromClient != 0,
		deflate:         mode&modeDeflate != 0,
		unknownExt:      mode&modeUnknownExt != 0,
		maxPayload:      maxPayload,
		wholeText:       wholeText,
		closeEndsSource: mode&modeCloseEndsSource != 0,
	}
	if mode&modeDropOdd != 0 {
		cfg.drop = dropOdd
	}
	return r, cfg
}

// dropOdd is the owner's choice of inspected frames to keep: those whose
// payload starts with an odd byte. Any rule works; this one depends on the
// payload, so both kept and forwarded frames come up.
func dropOdd(_ byte, payload []byte) bool { return len(payload) > 0 && payload[0]&1 == 1 }

// fuzzEvent is what the stream told its owner, and in which read.
type fuzzEvent struct {
	h       header
	whole   bool
	frame   []byte
	payload []byte
	read    int
}

// fuzzOwner is the stream's frameHandler in FuzzStreamParser: it records
// what it is told and does what a pair does with a close frame (checks its
// body, and ends the source when the mode says so), keeping the frames
// cfg.drop picks.
type fuzzOwner struct {
	cfg    refConfig
	read   int
	events []fuzzEvent
}

func (o *fuzzOwner) control(s *stream, h *header, frame, payload []byte) (bool, violation) {
	o.events = append(o.events, fuzzEvent{*h, true, bytes.Clone(frame), bytes.Clone(payload), o.read})
	if h.op == ws.OpClose {
		if _, v := checkClosePayload(payload); !v.ok() {
			return false, v
		}
		if o.cfg.closeEndsSource {
			s.srcClosed = true
		}
	}
	if o.cfg.drop != nil && o.cfg.drop(byte(h.op), payload) {
		return false, violation{}
	}
	return true, violation{}
}

func (o *fuzzOwner) data(_ *stream, h *header) {
	o.events = append(o.events, fuzzEvent{h: *h, read: o.read})
}

// fuzzReads cuts wire into reads as cuts says (see FuzzStreamParser).
func fuzzReads(wire, cuts []byte) [][]byte {
	var reads [][]byte
	for i := 0; len(wire) > 0; i++ {
		n := len(wire)
		if len(cuts) > 0 {
			if c := cuts[i%len(cuts)]; c != 0xff {
				n = min(int(c)+1, len(wire))
			}
		}
		reads = append(reads, wire[:n])
		wire = wire[n:]
	}
	return reads
}

func checkStreamAgainstReference(t *testing.T, wire, cuts []byte, mode uint8, limit uint32, whole uint8) {
	r, cfg := fuzzSetup(mode, limit, whole)
	want := refParse(wire, cfg)
	s := &stream{rules: r}
	defer s.release()
	owner := &fuzzOwner{cfg: cfg}
	var (
		out      batch
		got      []byte
		buf      []byte
		off      int // input read so far
		violated bool
		k        int // len(want.out) forwardable after off bytes
		checked  int // len(got) already compared
	)
	for i, chunk := range fuzzReads(wire, cuts) {
		owner.read = i
		// A read lands behind carryRoom bytes of headroom, which hold
		// garbage: carried bytes must come from the carry.
		need := carryRoom + len(chunk)
		if cap(buf) < need {
			buf = make([]byte, need)
		}
		buf = buf[:need]
		for j := range carryRoom {
			buf[j] = 0xa5
		}
		copy(buf[carryRoom:], chunk)
		out.reset()
		v := s.process(s.withCarry(buf, carryRoom, len(chunk)), &out, owner)
		start := off
		off += len(chunk)

		n := 0
		for _, seg := range out.segs {
			if len(seg) == 0 {
				t.Fatalf("read %d: the batch holds an empty segment", i)
			}
			got = append(got, seg...)
			n += len(seg)
		}
		if n != out.total {
			t.Fatalf("read %d: batch total %d, its segments hold %d", i, out.total, n)
		}
		// What waits for the next read is a piece of a header or of an
		// inspected frame: never a whole largest control frame (14 bytes
		// of header, 125 of payload), and always within the headroom.
		if s.carry != nil && (len(s.carry.B) >= maxHeaderSize+125 || len(s.carry.B) > carryRoom) {
			t.Fatalf("read %d: carry holds %d bytes", i, len(s.carry.B))
		}

		if !v.ok() {
			if violated {
				t.Fatalf("read %d: a second violation %+v after the first", i, v)
			}
			violated = true
			if len(want.broken) == 0 {
				t.Fatalf("read %d (input %d:%d): violation %+v; the reference finds none", i, start, off, v)
			}
			if !want.codes()[uint16(v.code)] {
				t.Fatalf("read %d: violation %+v; the reference finds %v, codes %v", i, v, want.broken, want.codes())
			}
			if v.reason == "" {
				t.Fatalf("read %d: violation %+v without a reason", i, v)
			}
			if want.brokenAt <= start || want.brokenAt > off {
				t.Fatalf("read %d (input %d:%d): violation reported; the reference knows it at %d", i, start, off, want.brokenAt)
			}
		}
		// After every read the sink has exactly what could be forwarded
		// from the input so far.
		// (Both only grow, so each read compares its own part: reads of
		// one byte through a long payload must not cost quadratic time.)
		for k < len(want.avail) && want.avail[k] <= off {
			k++
		}
		if len(got) != k || !bytes.Equal(got[checked:], want.out[checked:k]) {
			t.Fatalf("read %d (input %d:%d): forwarded %d bytes, the reference %d\n got %s\nwant %s",
				i, start, off, len(got), k, fuzzAbbrev(got), fuzzAbbrev(want.out[:k]))
		}
		checked = k
	}
	if !violated && len(want.broken) > 0 {
		t.Fatalf("no violation; the reference finds %v at %d", want.broken, want.brokenAt)
	}
	if !bytes.Equal(got, want.out) {
		t.Fatalf("forwarded %d bytes, the reference %d", len(got), len(want.out))
	}
	if s.atBoundary() == want.midFrame {
		t.Fatalf("atBoundary=%v, the reference ends mid-frame=%v", s.atBoundary(), want.midFrame)
	}

	// The frames reported, each in the read where it became known.
	if len(owner.events) != len(want.events) {
		t.Fatalf("%d frames reported, the reference %d:\n got %s\nwant %s",
			len(owner.events), len(want.events), describeFuzzEvents(owner.events), describeRefEvents(want.events))
	}
	reads := fuzzReads(wire, cuts)
	ends := make([]int, len(reads))
	for i, r := range reads {
		ends[i] = len(r)
		if i > 0 {
			ends[i] += ends[i-1]
		}
	}
	for j, g := range owner.events {
		w := want.events[j]
		h := g.h
		if byte(h.op) != w.op || h.fin != w.fin || h.rsv != w.rsv || h.masked != w.masked ||
			h.length != w.length || (w.masked && h.mask != w.key) || g.whole != w.whole {
			t.Fatalf("frame %d: got %s, want %s", j, describeFuzzEvents(owner.events[j:j+1]), describeRefEvents(want.events[j:j+1]))
		}
		if g.whole && (!bytes.Equal(g.frame, w.frame) || !bytes.Equal(g.payload, w.payload)) {
			t.Fatalf("frame %d: frame %x payload %x, want frame %x payload %x", j, g.frame, g.payload, w.frame, w.payload)
		}
		start := 0
		if g.read > 0 {
			start = ends[g.read-1]
		}
		if w.at <= start || w.at > ends[g.read] {
			t.Fatalf("frame %d reported in read %d (input %d:%d); it is known at %d", j, g.read, start, ends[g.read], w.at)
		}
	}
}

func describeFuzzEvents(evs []fuzzEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "[op=%d fin=%v rsv=%#x masked=%v len=%d whole=%v] ", e.h.op, e.h.fin, e.h.rsv, e.h.masked, e.h.length, e.whole)
	}
	return b.String()
}

func describeRefEvents(evs []refEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "[op=%d fin=%v rsv=%#x masked=%v len=%d whole=%v] ", e.op, e.fin, e.rsv, e.masked, e.length, e.whole)
	}
	return b.String()
}

// streamSeed is one named entry of FuzzStreamParser's seed corpus.
type streamSeed struct {
	name       string
	wire, cuts []byte
	mode       uint8
	limit      uint32
	whole      uint8
}

// seedKey is the masking key of every masked seed frame.
var seedKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// Length encodings a seed frame can force (§5.2 asks senders for the
// shortest; receivers must still read the others).
const (
	lenShortest = iota
	len16
	len64
)

// seedFrame builds a frame on the wire: key nil for unmasked.
func seedFrame(fin bool, rsv, op byte, key *[4]byte, payload []byte, enc int) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var maskBit byte
	if key != nil {
		maskBit = 0x80
	}
	f := []byte{b0}
	n := len(payload)
	switch {
	case enc == len64 || n > 0xffff:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	case enc == len16 || n > 125:
		f = append(f, maskBit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit|byte(n))
	}
	if key == nil {
		return append(f, payload...)
	}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// seedPayload is n bytes of a pattern that shows shifted or lost bytes.
func seedPayload(n int, salt byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*13) ^ byte(i>>8) ^ salt
	}
	return p
}

func seedCloseBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// streamSeeds is the seed corpus: valid streams of every shape, each rule
// broken once, and reads cut through headers and payloads.
func streamSeeds() []streamSeed {
	k := &seedKey
	cl, sv := modeFromClient, uint8(0)
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	byteReads := []byte{0}        // one byte per read
	headerCuts := []byte{0, 2, 6} // reads of 1, 3 and 7 bytes: through every header part
	return []streamSeed{
		// Valid streams.
		{name: "masked-text-binary", mode: cl,
			wire: join(seedFrame(true, 0, 0x1, k, []byte("hello"), lenShortest), seedFrame(true, 0, 0x2, k, seedPayload(40, 1), lenShortest))},
		{name: "unmasked-text-binary", mode: sv,
			wire: join(seedFrame(true, 0, 0x1, nil, []byte("hello"), lenShortest), seedFrame(true, 0, 0x2, nil, seedPayload(40, 1), lenShortest))},
		{name: "masked-fragmented-ping-between", mode: cl, cuts: headerCuts,
			wire: join(
				seedFrame(false, 0, 0x1, k, []byte("frag-"), lenShortest),
				seedFrame(true, 0, 0x9, k, []byte("ping"), lenShortest),
				seedFrame(false, 0, 0x0, k, []byte("ment-"), lenShortest),
				seedFrame(true, 0, 0xa, k, []byte("pong"), lenShortest),
				seedFrame(true, 0, 0x0, k, []byte("ed"), lenShortest))},
		{name: "unmasked-fragmented-close-between", mode: sv | modeCloseEndsSource,
			wire: join(
				seedFrame(false, 0, 0x2, nil, seedPayload(10, 2), lenShortest),
				seedFrame(true, 0, 0x8, nil, seedCloseBody(1000, "bye"), lenShortest),
				seedFrame(true, 0, 0x0, nil, seedPayload(10, 3), lenShortest))},
		{name: "len16-masked-split-reads", mode: cl, cuts: []byte{1, 3, 200},
			wire: join(seedFrame(true, 0, 0x2, k, seedPayload(300, 4), lenShortest), seedFrame(true, 0, 0x9, k, nil, lenShortest))},
		{name: "len64-unmasked", mode: sv, cuts: []byte{9, 254},
			wire: join(seedFrame(true, 0, 0x2, nil, seedPayload(70000, 5), lenShortest), seedFrame(true, 0, 0xa, nil, []byte("p"), lenShortest))},
		{name: "non-minimal-lengths", mode: cl, cuts: byteReads,
			wire: join(seedFrame(true, 0, 0x1, k, []byte("16"), len16), seedFrame(true, 0, 0x9, k, []byte("64"), len64), seedFrame(true, 0, 0x2, k, nil, len64))},
		{name: "header-split-every-byte", mode: cl, cuts: byteReads,
			wire: join(seedFrame(true, 0, 0x2, k, seedPayload(130, 6), lenShortest), seedFrame(true, 0, 0xa, k, seedPayload(125, 7), lenShortest))},
		{name: "max-control-payload", mode: sv, cuts: []byte{70},
			wire: join(seedFrame(true, 0, 0x9, nil, seedPayload(125, 8), lenShortest), seedFrame(true, 0, 0x8, nil, seedCloseBody(1001, "going"), len64))},
		{name: "close-then-more", mode: cl,
			wire: join(seedFrame(true, 0, 0x8, k, seedCloseBody(4000, "app"), lenShortest), seedFrame(true, 0, 0x1, k, []byte("after close"), lenShortest), seedFrame(true, 0, 0x9, k, nil, lenShortest))},
		{name: "close-ends-source", mode: cl | modeCloseEndsSource,
			wire: join(seedFrame(true, 0, 0x8, k, nil, lenShortest), []byte{0xff, 0xff, 0xff})},
		{name: "drop-odd-controls", mode: sv | modeDropOdd, cuts: headerCuts,
			wire: join(seedFrame(true, 0, 0x9, nil, []byte{1, 2}, lenShortest), seedFrame(true, 0, 0xa, nil, []byte{2, 2}, lenShortest), seedFrame(true, 0, 0x2, nil, []byte{1}, lenShortest), seedFrame(true, 0, 0x8, nil, seedCloseBody(1001, ""), lenShortest))},
		{name: "whole-text", mode: cl | modeDropOdd, whole: 4,
			wire: join(seedFrame(true, 0, 0x1, k, []byte("ping"), lenShortest), seedFrame(true, 0, 0x1, k, []byte{3, 'i', 'n', 'g'}, lenShortest), seedFrame(true, 0, 0x1, k, []byte("longer"), lenShortest))},
		{name: "deflate-rsv1-first-frame", mode: cl | modeDeflate,
			wire: join(seedFrame(false, 0x40, 0x1, k, []byte("z1"), lenShortest), seedFrame(true, 0, 0x0, k, []byte("z2"), lenShortest), seedFrame(true, 0x40, 0x2, k, []byte("z3"), lenShortest))},
		{name: "unknown-extension", mode: sv | modeUnknownExt,
			wire: join(seedFrame(false, 0x70, 0x1, nil, []byte("a"), lenShortest), seedFrame(true, 0x20, 0x3, nil, []byte("ext"), lenShortest), seedFrame(true, 0x10, 0x0, nil, []byte("b"), lenShortest), seedFrame(true, 0, 0xb, nil, []byte("ctl"), lenShortest))},
		{name: "limit-exact", mode: cl, limit: 200,
			wire: seedFrame(true, 0, 0x2, k, seedPayload(200, 9), lenShortest)},
		{name: "truncated-payload", mode: sv,
			wire: seedFrame(true, 0, 0x2, nil, seedPayload(1000, 10), lenShortest)[:500]},

		// Each rule broken, after a valid frame.
		{name: "violation-unmasked-client", mode: cl, cuts: headerCuts,
			wire: join(seedFrame(true, 0, 0x1, k, []byte("ok"), lenShortest), seedFrame(true, 0, 0x1, nil, []byte("bare"), lenShortest))},
		{name: "violation-masked-server", mode: sv,
			wire: join(seedFrame(true, 0, 0x1, nil, []byte("ok"), lenShortest), seedFrame(true, 0, 0x2, k, []byte("masked"), lenShortest))},
		{name: "violation-length-msb", mode: sv, cuts: byteReads,
			wire: join(seedFrame(true, 0, 0x2, nil, []byte("ok"), lenShortest), []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0})},
		{name: "violation-rsv-no-extension", mode: cl,
			wire: seedFrame(true, 0x40, 0x1, k, []byte("x"), lenShortest)},
		{name: "violation-deflate-rsv1-continuation", mode: cl | modeDeflate,
			wire: join(seedFrame(false, 0x40, 0x1, k, []byte("a"), lenShortest), seedFrame(true, 0x40, 0x0, k, []byte("b"), lenShortest))},
		{name: "violation-deflate-rsv1-control", mode: sv | modeDeflate,
			wire: seedFrame(true, 0x40, 0x9, nil, nil, lenShortest)},
		{name: "violation-reserved-opcode-data", mode: sv,
			wire: seedFrame(true, 0, 0x3, nil, []byte("x"), lenShortest)},
		{name: "violation-reserved-opcode-control", mode: cl,
			wire: seedFrame(true, 0, 0xf, k, nil, lenShortest)},
		{name: "violation-fragmented-ping", mode: cl,
			wire: join(seedFrame(false, 0, 0x1, k, []byte("a"), lenShortest), seedFrame(false, 0, 0x9, k, nil, lenShortest))},
		{name: "violation-control-126", mode: sv, cuts: []byte{3},
			wire: seedFrame(true, 0, 0xa, nil, seedPayload(126, 11), lenShortest)},
		{name: "violation-continuation-alone", mode: cl,
			wire: join(seedFrame(true, 0, 0x1, k, []byte("done"), lenShortest), seedFrame(true, 0, 0x0, k, []byte("orphan"), lenShortest))},
		{name: "violation-text-inside-message", mode: sv,
			wire: join(seedFrame(false, 0, 0x2, nil, []byte("a"), lenShortest), seedFrame(true, 0, 0x9, nil, nil, lenShortest), seedFrame(true, 0, 0x1, nil, []byte("new"), lenShortest))},
		{name: "violation-too-big", mode: cl, limit: 1000, cuts: []byte{5},
			wire: join(seedFrame(true, 0, 0x2, k, seedPayload(1000, 12), lenShortest), seedFrame(true, 0, 0x2, k, seedPayload(1001, 13), lenShortest))},
		{name: "violation-close-one-byte", mode: sv,
			wire: seedFrame(true, 0, 0x8, nil, []byte{3}, lenShortest)},
		{name: "violation-close-code-1005", mode: cl,
			wire: seedFrame(true, 0, 0x8, k, seedCloseBody(1005, ""), lenShortest)},
		{name: "violation-close-code-2999", mode: sv,
			wire: seedFrame(true, 0, 0x8, nil, seedCloseBody(2999, ""), lenShortest)},
		{name: "violation-close-reason-not-utf8", mode: cl, cuts: byteReads,
			wire: seedFrame(true, 0, 0x8, k, seedCloseBody(1000, "bad \xc3\x28"), lenShortest)},
	}
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzStreamParser/seed-* from streamSeeds")

// TestStreamSeedCorpus keeps testdata/fuzz/FuzzStreamParser/seed-* equal to
// streamSeeds, so that the corpus `go test` and the fuzzer start from says
// what its names say. -update-fuzz-seeds rewrites the files. Other files
// there are inputs the fuzzer found; they stay as they are.
func TestStreamSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStreamParser")
	seeds := streamSeeds()
	names := map[string]bool{}
	for _, s := range seeds {
		name := "seed-" + s.name
		if names[name] {
			t.Fatalf("two seeds named %s", name)
		}
		names[name] = true
		// A seed is what its name says: a violation seed breaks a rule,
		// the others break none.
		_, cfg := fuzzSetup(s.mode, s.limit, s.whole)
		if res := refParse(s.wire, cfg); (len(res.broken) > 0) != strings.HasPrefix(s.name, "violation-") {
			t.Errorf("seed %s: the reference finds %v", s.name, res.broken)
		}
		want := encodeCorpusEntry(s.wire, s.cuts, s.mode, s.limit, s.whole)
		path := filepath.Join(dir, name)
		if *updateFuzzSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestStreamSeedCorpus -update-fuzz-seeds)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from streamSeeds (run go test -run TestStreamSeedCorpus -update-fuzz-seeds)", path)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "seed-") && !names[e.Name()] {
			t.Errorf("%s is not in streamSeeds any more; delete it", filepath.Join(dir, e.Name()))
		}
	}
}

// encodeCorpusEntry writes FuzzStreamParser's arguments in the format of
// the go command's fuzzing corpus files ("go test fuzz v1").
func encodeCorpusEntry(wire, cuts []byte, mode uint8, limit uint32, whole uint8) []byte {
	lines := []string{
		"go test fuzz v1",
		"[]byte(" + strconv.Quote(string(wire)) + ")",
		"[]byte(" + strconv.Quote(string(cuts)) + ")",
		"uint8(" + strconv.Itoa(int(mode)) + ")",
		"uint32(" + strconv.FormatUint(uint64(limit), 10) + ")",
		"uint8(" + strconv.Itoa(int(whole)) + ")",
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// TestReferenceParser pins the reference itself on hand-checked inputs, so
// that a mistake in it cannot hide the same mistake in the stream.
func TestReferenceParser(t *testing.T) {
	k := &seedKey
	ping := seedFrame(true, 0, 0x9, k, []byte("hi"), lenShortest)
	text := seedFrame(true, 0, 0x1, k, []byte("text"), lenShortest)
	for _, c := range []struct {
		name      string
		wire      []byte
		cfg       refConfig
		out       []byte
		broken    []refRule
		brokenAt  int
		events    int
		midFrame  bool
		codeWants uint16
	}{
		{name: "valid", cfg: refConfig{fromClient: true}, wire: bytes.Join([][]byte{text, ping}, nil),
			out: bytes.Join([][]byte{text, ping}, nil), events: 2},
		{name: "header-cut", cfg: refConfig{fromClient: true}, wire: append(bytes.Clone(text), ping[:5]...),
			out: text, events: 1},
		{name: "control-cut", cfg: refConfig{fromClient: true}, wire: append(bytes.Clone(text), ping[:len(ping)-1]...),
			out: text, events: 1},
		{name: "payload-cut", cfg: refConfig{fromClient: true}, wire: text[:len(text)-1],
			out: text[:len(text)-1], events: 1, midFrame: true},
		{name: "unmasked-after-text", cfg: refConfig{fromClient: true},
			wire: append(bytes.Clone(text), seedFrame(true, 0, 0x1, nil, []byte("x"), lenShortest)...),
			out:  text, broken: []refRule{refUnmaskedFromClient}, brokenAt: len(text) + 2, events: 1, codeWants: 1002},
		{name: "too-big-and-unmasked", cfg: refConfig{fromClient: true, maxPayload: 125},
			wire:   seedFrame(true, 0, 0x2, nil, seedPayload(126, 0), lenShortest),
			broken: []refRule{refUnmaskedFromClient, refTooBig}, brokenAt: 4, codeWants: 1009},
		{name: "close-reason-not-utf8", cfg: refConfig{},
			wire:   seedFrame(true, 0, 0x8, nil, seedCloseBody(1000, "\xff"), lenShortest),
			broken: []refRule{refCloseReasonUTF8}, brokenAt: 5, events: 1, codeWants: 1007},
		{name: "close-code-1004", cfg: refConfig{},
			wire:   seedFrame(true, 0, 0x8, nil, seedCloseBody(1004, ""), lenShortest),
			broken: []refRule{refCloseBadCode}, brokenAt: 4, events: 1, codeWants: 1002},
		{name: "close-code-1014", cfg: refConfig{}, wire: seedFrame(true, 0, 0x8, nil, seedCloseBody(1014, ""), lenShortest),
			out: seedFrame(true, 0, 0x8, nil, seedCloseBody(1014, ""), lenShortest), events: 1},
		{name: "after-forwarded-close", cfg: refConfig{},
			wire: bytes.Join([][]byte{seedFrame(true, 0, 0x8, nil, nil, lenShortest), seedFrame(true, 0, 0x1, nil, []byte("late"), lenShortest)}, nil),
			out:  seedFrame(true, 0, 0x8, nil, nil, lenShortest), events: 2},
		{name: "deflate-rsv1", cfg: refConfig{deflate: true}, wire: seedFrame(true, 0x40, 0x1, nil, []byte("z"), lenShortest),
			out: seedFrame(true, 0x40, 0x1, nil, []byte("z"), lenShortest), events: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := refParse(c.wire, c.cfg)
			if !bytes.Equal(res.out, c.out) {
				t.Errorf("out %x, want %x", res.out, c.out)
			}
			if !slices.Equal(res.broken, c.broken) || res.brokenAt != c.brokenAt {
				t.Errorf("broken %v at %d, want %v at %d", res.broken, res.brokenAt, c.broken, c.brokenAt)
			}
			if c.codeWants != 0 && !res.codes()[c.codeWants] {
				t.Errorf("codes %v, want %d among them", res.codes(), c.codeWants)
			}
			if len(res.events) != c.events || res.midFrame != c.midFrame {
				t.Errorf("%d events midFrame=%v, want %d, %v", len(res.events), res.midFrame, c.events, c.midFrame)
			}
		})
	}
}

// fuzzAbbrev shows long byte strings by their ends.
func fuzzAbbrev(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x…%x", b[:32], b[len(b)-32:])
}
