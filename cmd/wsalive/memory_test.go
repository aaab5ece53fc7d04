package main

import (
	"testing"
	"time"
)

const mib = 1 << 20

// replay drives a trigger through readings one second apart and returns
// the indexes of the readings it released at.
func replay(trigger *releaseTrigger, start time.Time, readings []memReading) []int {
	var released []int
	for i, r := range readings {
		if trigger.tick(start.Add(time.Duration(i)*time.Second), r) {
			released = append(released, i)
		}
	}
	return released
}

func repeat(n int, r memReading) []memReading {
	out := make([]memReading, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func concat(parts ...[]memReading) []memReading {
	var out []memReading
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestReleaseTrigger(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rest := memReading{Pairs: 50, HeapHeld: 12 * mib}
	cases := []struct {
		name     string
		readings []memReading
		want     []int
	}{
		{
			// ~19,900 idle connections sit in handshake (never sent a
			// head), then go away all at once with no new accept.
			name: "accepted-idle flood ends",
			readings: concat(
				repeat(10, memReading{Handshakes: 19900, Pairs: 50, HeapHeld: 222 * mib}),
				repeat(5, memReading{Handshakes: 0, Pairs: 50, HeapHeld: 222 * mib}),
				repeat(10, rest),
			),
			want: []int{11}, // the second quiet reading; the memory is then back
		},
		{
			name: "slowloris heads end one by one",
			readings: concat(
				repeat(5, memReading{Handshakes: 3000, HeapHeld: 60 * mib}),
				[]memReading{
					{Handshakes: 1500, HeapHeld: 60 * mib},
					{Handshakes: 200, HeapHeld: 60 * mib},
					{Handshakes: 10, HeapHeld: 60 * mib},
					{Handshakes: 3, HeapHeld: 60 * mib},
				},
				repeat(5, memReading{HeapHeld: 10 * mib}),
			),
			want: []int{8},
		},
		{
			// Thousands of handshakes finished and their pairs closed:
			// nothing is in handshake at any reading, the heap is big.
			name: "burst of finished handshakes",
			readings: concat(
				repeat(3, rest),
				repeat(3, memReading{Pairs: 50, HeapHeld: 90 * mib}),
				repeat(5, rest),
			),
			want: []int{3},
		},
		{
			name:     "a flood still under way is never released",
			readings: repeat(30, memReading{Handshakes: 5000, HeapHeld: 200 * mib}),
			want:     nil,
		},
		{
			// 20,000 pairs need their memory: held is within the
			// estimate plus slack.
			name:     "many live pairs hold what they need",
			readings: repeat(30, memReading{Pairs: 20000, HeapHeld: minBaseline + 20000*pairNeeds + releaseSlack - mib}),
			want:     nil,
		},
		{
			// A release that could not bring the heap down (the memory is
			// in use, say by buffers for slow readers) is not repeated
			// every cooldown; a new growth by the slack is released again.
			name: "memory in use is not released over and over",
			readings: concat(
				repeat(20, memReading{HeapHeld: 100 * mib}),
				repeat(5, memReading{HeapHeld: 100*mib + releaseSlack + mib}),
			),
			want: []int{1, 20},
		},
		{
			name: "cooldown between releases",
			readings: []memReading{
				{HeapHeld: 100 * mib},
				{HeapHeld: 100 * mib}, // released
				{HeapHeld: 10 * mib},  // came back; the floor is 10 MiB
				{HeapHeld: 80 * mib},  // a new burst's garbage...
				{HeapHeld: 80 * mib},  // ...within the cooldown
				{HeapHeld: 80 * mib},
				{HeapHeld: 80 * mib}, // 5 s after the last release
				{HeapHeld: 10 * mib},
			},
			want: []int{1, 6},
		},
		{
			// 9,000 clients at 3,000 a second: each handshake is quick,
			// so few are ever in flight, but the pairs grow. Released
			// mid-ramp, the rest of the ramp's garbage would stay: the
			// release waits until the pairs stop growing.
			name: "a ramp of quick handshakes is released once it ends",
			readings: concat(
				[]memReading{
					{Handshakes: 3, Pairs: 0, HeapHeld: 5 * mib},
					{Handshakes: 3, Pairs: 3000, HeapHeld: 10 * mib},
					{Handshakes: 3, Pairs: 6000, HeapHeld: 15 * mib},
					{Handshakes: 3, Pairs: 9000, HeapHeld: 20 * mib},
				},
				repeat(5, memReading{Pairs: 9000, HeapHeld: 20 * mib}),
			),
			want: []int{5},
		},
		{
			name:     "a quiet process at rest is left alone",
			readings: repeat(60, rest),
			want:     nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := replay(newReleaseTrigger(10*mib), start, c.readings)
			if len(got) != len(c.want) {
				t.Fatalf("released at %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("released at %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestHeapHeldReadsTheRuntime(t *testing.T) {
	if got := heapHeld(); got < 1<<20 {
		t.Fatalf("heapHeld() = %d, want at least the MiB a Go test holds", got)
	}
}

// TestIdleCollect checks the collections between releases: only while
// handshakes are few, only past collectSlack of garbage, at most one per
// releaseCooldown, and none right after a release (which collected).
func TestIdleCollect(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	garbage := func(handshakes int, g uint64) memReading {
		// HeapHeld within the estimate: tick never releases here.
		return memReading{Handshakes: handshakes, Pairs: 9000, HeapHeld: 12 * mib, Garbage: g}
	}
	readings := concat(
		repeat(3, garbage(500, 50*mib)), // a storm: its garbage is the GC's to pace
		repeat(3, garbage(0, collectSlack/2)),
		repeat(12, garbage(0, collectSlack+1)), // idle, over the slack
	)
	trigger := newReleaseTrigger(10 * mib)
	var collected []int
	for i, r := range readings {
		now := start.Add(time.Duration(i) * time.Second)
		if trigger.tick(now, r) {
			t.Fatalf("released at %d", i)
		}
		if trigger.collect(now, r) {
			collected = append(collected, i)
		}
	}
	if want := []int{6, 11, 16}; len(collected) != len(want) || collected[0] != want[0] || collected[1] != want[1] || collected[2] != want[2] {
		t.Fatalf("collected at %v, want %v", collected, want)
	}

	// A release counts as a collection.
	trigger = newReleaseTrigger(10 * mib)
	for i, r := range repeat(3, memReading{HeapHeld: 100 * mib, Garbage: 2 * collectSlack}) {
		now := start.Add(time.Duration(i) * time.Second)
		released := trigger.tick(now, r)
		if i == 1 && !released {
			t.Fatal("no release at 1")
		}
		if !released && trigger.collect(now, r) {
			t.Fatalf("collected at %d, within the cooldown of the release", i)
		}
	}
}
