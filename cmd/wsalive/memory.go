package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// After a burst of handshakes, wsalive hands the memory the burst used back
// to the operating system at once, instead of over minutes.
//
// Why: the live state of an idle pair is about 560 bytes, but every
// handshake leaves a few kilobytes of garbage (net/http's request parsing,
// the dial, goroutine stacks grown by the parsers), and after a burst of
// thousands the Go heap keeps that headroom, plus pooled buffers and idle
// spans the runtime returns only slowly. A sidecar's memory limit is set
// by what it holds at rest, so it should come back down to what its pairs
// need once the burst is over. The two forced collections per burst cost
// a few milliseconds with 10,000 pairs.

const (
	burstMin      = 1000        // handshakes since the last release that make a burst
	burstQuietMax = 20          // handshakes in a tick that still count as quiet
	burstQuiet    = 3           // quiet ticks in a row that end a burst
	burstTick     = time.Second // how often the counter is sampled
)

// burstWatch decides, from a counter of handshakes sampled every tick,
// when a burst has ended. It holds no clock: tests drive it tick by tick.
type burstWatch struct {
	last      uint64 // the counter at the previous tick
	sinceFree uint64 // handshakes since the last release
	quiet     int    // quiet ticks in a row
}

// tick takes the counter's current value and reports whether to release
// memory now.
func (w *burstWatch) tick(count uint64) bool {
	delta := count - w.last
	w.last = count
	w.sinceFree += delta
	if delta > burstQuietMax {
		w.quiet = 0
		return false
	}
	w.quiet++
	if w.quiet < burstQuiet || w.sinceFree < burstMin {
		return false
	}
	w.sinceFree = 0
	return true
}

// releaseAfterBursts runs until ctx ends, releasing memory after each
// burst of handshakes that count reports.
func releaseAfterBursts(ctx context.Context, count func() uint64) {
	t := time.NewTicker(burstTick)
	defer t.Stop()
	w := burstWatch{last: count()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if w.tick(count()) {
				// sync.Pools (the handshake's buffers, gobwas's bufio
				// readers and writers) keep their contents through one
				// collection, so it takes two to drop them.
				runtime.GC()
				debug.FreeOSMemory()
			}
		}
	}
}
