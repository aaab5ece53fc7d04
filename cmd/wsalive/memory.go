package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// After a flood of connections ends, wsalive hands the memory it used back
// to the operating system within seconds, instead of over minutes or never.
//
// Why: the live state of an idle pair is about 650 bytes, but every
// connection in handshake costs ~18 KB (buffers, a goroutine stack grown
// by the parsers) and leaves garbage behind. After a flood of idle
// connections, slow heads or finished handshakes, the Go heap keeps that
// size: with no allocation afterwards no collection runs, and the runtime
// returns free spans only slowly. A sidecar's memory limit is set by what
// it holds at rest, so it should come back down to what its pairs need.
//
// The trigger reads live state, not accept counts: the end of a flood
// brings no new accepts, so a trigger counting them (as the first one
// did) fires while the flood's connections are still alive and never
// again once they go (issue 12, defect 2). It releases when
//
//   - the connections in handshake have been few, and new pairs few, for
//     releaseSettle ticks (a flood or a ramp still under way holds its
//     memory for real), and
//   - the heap the runtime holds is well above what the live pairs and
//     handshakes need (releaseSlack above the estimate), and
//   - it is releaseSlack above where the last release left it (when a
//     release could not bring it down, the memory is in use, and
//     collecting again every few seconds would only cost CPU), and
//   - releaseCooldown has passed since the last release.
//
// Between releases, while handshakes are few, the garbage made since the
// last collection is kept small: once it passes collectSlack (and at
// most once per releaseCooldown), wsalive runs one collection, without
// returning spans. At rest the heap's only garbage is what heartbeats and
// the admin endpoint leave (some 50 KB a second with 9,000 pairs), which
// left alone grows until the heap is twice its live size before Go
// collects it: each page it touches stays in RSS. With 9,000 idle pairs
// that was 1.5 MB within 15 s, 170 bytes per pair, and up to the live
// heap itself (600-700 bytes per pair) later on.
//
// A release is two forced collections (sync.Pools keep their contents
// through one) and a return of free spans: a few milliseconds with 10,000
// pairs.

const (
	releaseTick     = time.Second     // how often live state is read
	releaseSettle   = 2               // ticks with few handshakes before a release
	releaseCooldown = 5 * time.Second // least time between two releases
	releaseSlack    = 2 << 20         // heap above the estimate that is worth returning
	handshakesFew   = 16              // handshakes in flight that count as few
	// pairNeeds is the heap of an idle plain pair: its 512-byte state,
	// its place in the server's pair count (about 50 bytes with the
	// set's slack) and in its loop's tables (about 40), measured
	// (GODEBUG=memprofilerate=1, MemStats) at 9,000 pairs; the rest is
	// margin. The estimate, the slack and the floor of the baseline
	// decide whether a storm's garbage is ever returned: with 1 KiB per
	// pair, 8 MiB and 4 MiB, 9,000 idle pairs were allowed 21 MiB, more
	// than the process held after a storm (12-13 MiB), so nothing was
	// returned and RSS followed the GC's goal, twice the live heap:
	// 1.2-2.1 KB per pair. A pair that needs more (a TLS pair, one with
	// messages buffered) makes the estimate low; that costs one release
	// after its burst, and the floor below keeps it from being repeated.
	pairNeeds      = 640
	collectSlack   = 1 << 20         // garbage worth a collection while idle
	handshakeNeeds = 32 << 10        // heap per connection in handshake
	minBaseline    = uint64(4 << 20) // the floor of the baseline estimate
)

// memReading is one sample of live state.
type memReading struct {
	// Handshakes is the number of connections in handshake.
	Handshakes int
	// Pairs is the number of live pairs.
	Pairs int64
	// HeapHeld is the heap memory the runtime holds from the system:
	// objects (live or garbage), unused parts of spans, free spans not
	// yet returned, and goroutine stacks.
	HeapHeld uint64
	// Garbage is the heap's objects beyond what the last collection
	// found live: about what the next one would free.
	Garbage uint64
}

// releaseTrigger decides, from readings, when to release memory. It holds
// no clock: the caller passes the time of each reading, so tests drive it
// with a fake one.
type releaseTrigger struct {
	// baseline is what the process holds at rest with nothing live.
	baseline uint64

	fewTicks    int       // consecutive settled readings: few handshakes, few new pairs
	lastPairs   int64     // the pairs of the last reading
	read        bool      // a reading was taken
	lastRelease time.Time // zero before the first
	lastCollect time.Time // the last collection, released or not
	// floor is the least held since the last release: what a release
	// could not give back.
	floor uint64
}

func newReleaseTrigger(baseline uint64) *releaseTrigger {
	return &releaseTrigger{baseline: max(baseline, minBaseline)}
}

// need is what r's live pairs and handshakes are expected to hold.
func (t *releaseTrigger) need(r memReading) uint64 {
	return t.baseline + uint64(max(r.Pairs, 0))*pairNeeds + uint64(max(r.Handshakes, 0))*handshakeNeeds
}

// tick takes a reading made at now and reports whether to release now.
func (t *releaseTrigger) tick(now time.Time, r memReading) bool {
	// Settled: few connections in handshake, and few new pairs since the
	// last reading. A ramp of fast handshakes (3,000 a second that each
	// take a millisecond) never has many in flight at once; released in
	// the middle, its later garbage would stay, as the floor below keeps
	// a second release from firing until the heap grows by the slack.
	grew := t.read && r.Pairs > t.lastPairs+handshakesFew
	t.read, t.lastPairs = true, r.Pairs
	if r.Handshakes <= handshakesFew && !grew {
		t.fewTicks++
	} else {
		t.fewTicks = 0
	}
	if t.floor != 0 {
		t.floor = min(t.floor, r.HeapHeld)
	}
	switch {
	case t.fewTicks < releaseSettle:
		return false
	case r.HeapHeld <= t.need(r)+releaseSlack:
		return false
	case t.floor != 0 && r.HeapHeld <= t.floor+releaseSlack:
		return false
	case !t.lastRelease.IsZero() && now.Sub(t.lastRelease) < releaseCooldown:
		return false
	}
	t.lastRelease, t.lastCollect = now, now
	// The next reading, made after the release, starts the new floor.
	t.floor = ^uint64(0)
	return true
}

// collect reports, for a reading on which tick did not release, whether
// to run one collection (no release) now: handshakes have been few for
// releaseSettle ticks, garbage is over collectSlack, and releaseCooldown
// has passed since the last collection.
func (t *releaseTrigger) collect(now time.Time, r memReading) bool {
	if t.fewTicks < releaseSettle || r.Garbage <= collectSlack ||
		(!t.lastCollect.IsZero() && now.Sub(t.lastCollect) < releaseCooldown) {
		return false
	}
	t.lastCollect = now
	return true
}

// heapGarbage reads the heap's objects beyond the live heap of the last
// collection.
func heapGarbage() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(samples)
	if samples[0].Value.Kind() != metrics.KindUint64 || samples[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	objects, live := samples[0].Value.Uint64(), samples[1].Value.Uint64()
	return objects - min(objects, live)
}

// heapHeld reads what the runtime holds for the heap and stacks.
func heapHeld() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(samples)
	var sum uint64
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			sum += s.Value.Uint64()
		}
	}
	return sum
}

// handshakeCounter is the server's count of connections in handshake.
// *proxy.Server provides it once the front door's handshake limits land;
// until then goroutineHandshakes estimates it.
type handshakeCounter interface {
	InHandshake() int
}

// goroutineHandshakes estimates the connections in handshake from the
// goroutine count: each handshake runs on a goroutine of its own, and
// nothing else in wsalive starts goroutines per connection (the engine's
// loops are a fixed number). base is the count at rest.
func goroutineHandshakes(base int) func() int {
	return func() int { return max(runtime.NumGoroutine()-base, 0) }
}

// releaseWhenIdle reads live state every releaseTick until ctx ends and
// releases memory when the trigger says so.
func releaseWhenIdle(ctx context.Context, handshakes func() int, pairs func() int64) {
	t := time.NewTicker(releaseTick)
	defer t.Stop()
	trigger := newReleaseTrigger(heapHeld())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r := memReading{Handshakes: handshakes(), Pairs: pairs(), HeapHeld: heapHeld(), Garbage: heapGarbage()}
			switch {
			case trigger.tick(now, r):
				runtime.GC()
				debug.FreeOSMemory()
			case trigger.collect(now, r):
				runtime.GC()
			}
		}
	}
}
