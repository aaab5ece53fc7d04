package main

import "testing"

func TestBurstWatch(t *testing.T) {
	var w burstWatch
	step := func(count uint64, want bool) {
		t.Helper()
		if got := w.tick(count); got != want {
			t.Fatalf("tick(%d) = %v, want %v (state %+v)", count, got, want, w)
		}
	}
	// A steady trickle never makes a burst.
	for c := uint64(10); c <= 200; c += 10 {
		step(c, false)
	}
	// A burst: thousands in a few ticks, then quiet. The release comes
	// on the third quiet tick, once.
	step(1200, false)
	step(2500, false)
	step(2505, false)
	step(2510, false)
	step(2510, true)
	step(2510, false)
	step(2510, false)
	// Quiet again, but too few handshakes since the release: nothing.
	step(2900, false)
	for range 5 {
		step(2900, false)
	}
	// Another burst ends: one more release.
	step(4000, false)
	step(4001, false)
	step(4001, false)
	step(4001, true)
}
