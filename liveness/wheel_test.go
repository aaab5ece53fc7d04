package liveness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The tests drive the wheel with a fake clock: plain int64 nanoseconds.
const (
	wheelTick  = int64(10 * time.Millisecond)
	wheelSlots = 8 // small, so that tests cross many revolutions
	wheelRev   = wheelTick * wheelSlots
)

// wheelCeil is the first tick boundary at or after at: when a timer for at
// must have fired.
func wheelCeil(at int64) int64 {
	return (at + wheelTick - 1) / wheelTick * wheelTick
}

// wheelEntry is a test timer's payload.
type wheelEntry struct {
	id int
	at int64
}

func newTestWheel(start int64) *Wheel[*wheelEntry] {
	return NewWheel[*wheelEntry](time.Duration(wheelTick), wheelSlots, start)
}

func TestWheelNew(t *testing.T) {
	for _, c := range []struct{ slots, want int }{{1, 1}, {3, 4}, {8, 8}, {9, 16}, {4096, 4096}} {
		t.Run(fmt.Sprintf("slots=%d", c.slots), func(t *testing.T) {
			w := NewWheel[int](time.Second, c.slots, 0)
			if len(w.slots) != c.want {
				t.Fatalf("%d slots, want %d", len(w.slots), c.want)
			}
			if w.Tick() != time.Second || w.Len() != 0 {
				t.Fatalf("tick %v len %d", w.Tick(), w.Len())
			}
		})
	}
	t.Run("tick=0", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic for a zero tick")
			}
		}()
		NewWheel[int](0, 8, 0)
	})
}

// TestWheelDeadline: a timer never fires before its deadline, and fires on
// the first Advance at or after the tick boundary that follows it: at most
// one tick late.
func TestWheelDeadline(t *testing.T) {
	const start = 5*wheelTick + 3 // not on a tick
	var ats []int64
	for _, base := range []int64{start, 6 * wheelTick, 7 * wheelTick, 13 * wheelTick, start + wheelRev, start + 3*wheelRev + wheelTick} {
		ats = append(ats, base-1, base, base+1, base+wheelTick/2, base+wheelTick-1)
	}
	ats = append(ats, start-wheelRev, 0, -wheelTick) // already past
	for _, at := range ats {
		t.Run(fmt.Sprintf("at=%d", at), func(t *testing.T) {
			w := newTestWheel(start)
			var tm Timer[*wheelEntry]
			tm.Value = &wheelEntry{at: at}
			w.Schedule(&tm, at)
			if !tm.Armed() || w.Len() != 1 {
				t.Fatal("not armed")
			}
			due := max(wheelCeil(at), wheelCeil(start+1))
			fired := false
			fire := func(*Timer[*wheelEntry]) { fired = true }
			// Just before: nothing, however it is approached.
			for _, now := range []int64{start, (start + due) / 2, due - 1} {
				w.Advance(now, fire)
				if fired {
					t.Fatalf("fired at %d, before %d (deadline %d)", now, due, at)
				}
			}
			w.Advance(due, fire)
			if !fired {
				t.Fatalf("not fired at %d (deadline %d)", due, at)
			}
			if due < at || due >= max(at, start)+wheelTick {
				t.Fatalf("test setup: fire time %d for deadline %d is not within a tick", due, at)
			}
			if tm.Armed() || w.Len() != 0 {
				t.Fatal("still armed after firing")
			}
			if _, ok := w.NextTick(); ok {
				t.Fatal("NextTick reports a timer after the last one fired")
			}
		})
	}
}

// TestWheelManyTimers spreads timers over several revolutions and moves
// the clock in uneven steps, sometimes by more than a revolution at once:
// each fires exactly once, on the first Advance that reaches its tick.
func TestWheelManyTimers(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			start := rng.Int64N(1 << 40)
			w := newTestWheel(start)
			const n = 500
			timers := make([]Timer[*wheelEntry], n)
			for i := range timers {
				at := start + rng.Int64N(5*wheelRev)
				timers[i].Value = &wheelEntry{id: i, at: at}
				w.Schedule(&timers[i], at)
			}
			if w.Len() != n {
				t.Fatalf("Len %d, want %d", w.Len(), n)
			}
			firedAt := make([]int64, n)
			prev, now := start, start
			left := n
			for left > 0 {
				switch rng.IntN(10) {
				case 0:
					now += wheelRev + rng.Int64N(2*wheelRev) // a long gap
				case 1, 2:
					now += rng.Int64N(wheelTick) // within a tick
				default:
					now += rng.Int64N(3 * wheelTick)
				}
				w.Advance(now, func(tm *Timer[*wheelEntry]) {
					e := tm.Value
					if firedAt[e.id] != 0 {
						t.Fatalf("timer %d fired twice", e.id)
					}
					firedAt[e.id] = now
					due := max(wheelCeil(e.at), wheelCeil(start+1))
					if now < due || prev >= due {
						t.Fatalf("timer %d (deadline %d, due %d) fired at %d; previous Advance at %d",
							e.id, e.at, due, now, prev)
					}
					left--
				})
				if w.Len() != left {
					t.Fatalf("Len %d, want %d", w.Len(), left)
				}
				prev = now
			}
		})
	}
}

// TestWheelStop: a stopped timer does not fire, even when it was already
// collected as due by the Advance that is running.
func TestWheelStop(t *testing.T) {
	t.Run("before-due", func(t *testing.T) {
		w := newTestWheel(0)
		var a, b Timer[*wheelEntry]
		a.Value, b.Value = &wheelEntry{id: 1}, &wheelEntry{id: 2}
		w.Schedule(&a, 3*wheelTick)
		w.Schedule(&b, 3*wheelTick)
		w.Stop(&a)
		w.Stop(&a) // twice is fine
		if a.Armed() || w.Len() != 1 {
			t.Fatalf("armed=%v Len=%d", a.Armed(), w.Len())
		}
		var got []int
		w.Advance(10*wheelTick, func(tm *Timer[*wheelEntry]) { got = append(got, tm.Value.id) })
		if fmt.Sprint(got) != "[2]" {
			t.Fatalf("fired %v, want [2]", got)
		}
		var never Timer[*wheelEntry]
		w.Stop(&never) // never scheduled
		if w.Len() != 0 {
			t.Fatalf("Len %d", w.Len())
		}
	})
	// In each case a's callback acts on b, which the same Advance has
	// already collected as due: stop it, stop and reschedule it, or
	// reschedule it directly. b must not fire in that Advance.
	const (
		stop = iota
		stopReschedule
		reschedule
	)
	for _, c := range []struct {
		name     string
		atA, atB int64
		advance  int64
		action   int
	}{
		{"same-tick/stop", 2 * wheelTick, 2 * wheelTick, 2 * wheelTick, stop},
		{"later-tick/stop", 2 * wheelTick, 5 * wheelTick, 6 * wheelTick, stop},
		{"after-a-revolution/stop", 2 * wheelTick, 2*wheelTick + wheelRev, 4 * wheelRev, stop},
		{"same-tick/stop-reschedule", 2 * wheelTick, 2 * wheelTick, 2 * wheelTick, stopReschedule},
		{"later-tick/stop-reschedule", 2 * wheelTick, 5 * wheelTick, 6 * wheelTick, stopReschedule},
		{"same-tick/reschedule", 2 * wheelTick, 2 * wheelTick, 2 * wheelTick, reschedule},
		{"later-tick/reschedule", 2 * wheelTick, 5 * wheelTick, 6 * wheelTick, reschedule},
	} {
		t.Run("collected/"+c.name, func(t *testing.T) {
			w := newTestWheel(0)
			var a, b Timer[*wheelEntry]
			a.Value, b.Value = &wheelEntry{id: 1}, &wheelEntry{id: 2}
			w.Schedule(&a, c.atA)
			w.Schedule(&b, c.atB)
			var got []int
			fire := func(tm *Timer[*wheelEntry]) {
				got = append(got, tm.Value.id)
				if tm == &a {
					if c.action != reschedule {
						w.Stop(&b)
					}
					if c.action != stop {
						w.Schedule(&b, c.advance+3*wheelTick)
					}
				}
			}
			w.Advance(c.advance, fire)
			if fmt.Sprint(got) != "[1]" {
				t.Fatalf("fired %v, want only timer 1", got)
			}
			if c.action == stop {
				if b.Armed() || w.Len() != 0 {
					t.Fatalf("b armed=%v Len=%d", b.Armed(), w.Len())
				}
				w.Advance(c.advance+10*wheelRev, fire)
				if len(got) != 1 {
					t.Fatalf("stopped timer fired later: %v", got)
				}
				return
			}
			if !b.Armed() || w.Len() != 1 {
				t.Fatalf("rescheduled b armed=%v Len=%d", b.Armed(), w.Len())
			}
			w.Advance(c.advance+2*wheelTick, fire)
			if len(got) != 1 {
				t.Fatalf("rescheduled timer fired early: %v", got)
			}
			w.Advance(c.advance+3*wheelTick, fire)
			if fmt.Sprint(got) != "[1 2]" {
				t.Fatalf("rescheduled timer did not fire on time: %v", got)
			}
		})
	}
}

// TestWheelRescheduleInFire: a periodic timer rescheduled from its own
// callback fires once per period across many revolutions; a deadline in
// the past set from a callback fires on the next tick, not in a loop.
func TestWheelRescheduleInFire(t *testing.T) {
	for _, period := range []int64{wheelTick, 3*wheelTick + 1, wheelRev + wheelTick, 2*wheelRev + 5} {
		t.Run(fmt.Sprintf("period=%d", period), func(t *testing.T) {
			w := newTestWheel(0)
			var tm Timer[*wheelEntry]
			next := period
			w.Schedule(&tm, next)
			fires := 0
			for now := int64(0); now <= 20*wheelRev; now += wheelTick / 2 {
				w.Advance(now, func(got *Timer[*wheelEntry]) {
					if got != &tm {
						t.Fatal("wrong timer")
					}
					if now < next || now >= next+wheelTick {
						t.Fatalf("fired at %d for deadline %d", now, next)
					}
					fires++
					next += period
					w.Schedule(&tm, next)
				})
			}
			if want := int(20 * wheelRev / period); fires != want && fires != want-1 {
				t.Fatalf("%d fires in %d ns, want about %d", fires, 20*wheelRev, want)
			}
			if w.Len() != 1 {
				t.Fatalf("Len %d, want 1", w.Len())
			}
		})
	}
	t.Run("past-deadline", func(t *testing.T) {
		w := newTestWheel(0)
		var tm Timer[*wheelEntry]
		w.Schedule(&tm, wheelTick)
		fires := 0
		fire := func(got *Timer[*wheelEntry]) {
			fires++
			w.Schedule(got, 0) // long past
		}
		w.Advance(5*wheelTick, fire)
		if fires != 1 {
			t.Fatalf("%d fires in one Advance, want 1", fires)
		}
		w.Advance(5*wheelTick+wheelTick-1, fire)
		if fires != 1 {
			t.Fatal("fired again within the same tick")
		}
		w.Advance(6*wheelTick, fire)
		if fires != 2 {
			t.Fatalf("%d fires, want 2 after the next tick", fires)
		}
	})
}

// TestWheelLongIdle: Advance called once after ten revolutions fires
// every due timer, in tick order, timers of one tick in the order they
// were scheduled.
func TestWheelLongIdle(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			const start = 3*wheelTick + 1
			w := newTestWheel(start)
			const n = 200
			timers := make([]Timer[*wheelEntry], n)
			for i := range timers {
				at := start + rng.Int64N(4*wheelRev)
				timers[i].Value = &wheelEntry{id: i, at: at}
				w.Schedule(&timers[i], at)
			}
			var late Timer[*wheelEntry] // due after the idle gap: stays
			late.Value = &wheelEntry{id: -1}
			w.Schedule(&late, start+11*wheelRev)
			var got []*wheelEntry
			w.Advance(start+10*wheelRev, func(tm *Timer[*wheelEntry]) { got = append(got, tm.Value) })
			if len(got) != n {
				t.Fatalf("%d timers fired, want %d", len(got), n)
			}
			for i := 1; i < len(got); i++ {
				a, b := got[i-1], got[i]
				ta, tb := wheelCeil(a.at), wheelCeil(b.at)
				if ta > tb || (ta == tb && a.id > b.id) {
					t.Fatalf("fire %d: timer %d (tick %d) fired before timer %d (tick %d)",
						i, a.id, ta/wheelTick, b.id, tb/wheelTick)
				}
			}
			if !late.Armed() || w.Len() != 1 {
				t.Fatalf("later timer armed=%v, Len %d", late.Armed(), w.Len())
			}
		})
	}
	t.Run("two-timers", func(t *testing.T) {
		// The smallest case: y is two revolutions out in a slot walked
		// before x's.
		w := newTestWheel(0)
		var x, y Timer[*wheelEntry]
		x.Value, y.Value = &wheelEntry{id: 1}, &wheelEntry{id: 2}
		w.Schedule(&y, 2*wheelRev+wheelTick)
		w.Schedule(&x, 5*wheelTick)
		var got []int
		w.Advance(10*wheelRev, func(tm *Timer[*wheelEntry]) { got = append(got, tm.Value.id) })
		if fmt.Sprint(got) != "[1 2]" {
			t.Fatalf("fired %v, want [1 2] (tick 5 before tick %d)", got, 2*wheelSlots+1)
		}
	})
}

// TestWheelNextTick: NextTick reports false with nothing armed, and
// otherwise a time after the last Advance and no later than the earliest
// deadline's tick.
func TestWheelNextTick(t *testing.T) {
	w := newTestWheel(0)
	if _, ok := w.NextTick(); ok {
		t.Fatal("NextTick true on an empty wheel")
	}
	var a, b, c Timer[*wheelEntry]
	w.Schedule(&a, 7*wheelTick+1)
	w.Schedule(&b, 3*wheelRev)
	w.Schedule(&c, 1) // due at the very first tick
	now := int64(0)
	for w.Len() > 0 {
		at, ok := w.NextTick()
		if !ok {
			t.Fatal("NextTick false with timers armed")
		}
		if at <= now {
			t.Fatalf("NextTick %d is not after the last Advance at %d", at, now)
		}
		earliest := int64(math.MaxInt64)
		for _, tm := range []*Timer[*wheelEntry]{&a, &b, &c} {
			if tm.Armed() {
				earliest = min(earliest, tm.when*wheelTick)
			}
		}
		if at > earliest {
			t.Fatalf("NextTick %d is after the earliest due tick %d", at, earliest)
		}
		now = at
		w.Advance(now, func(*Timer[*wheelEntry]) {})
	}
	if _, ok := w.NextTick(); ok {
		t.Fatal("NextTick true after every timer fired")
	}
	w.Schedule(&a, now+wheelTick)
	w.Stop(&a)
	if _, ok := w.NextTick(); ok {
		t.Fatal("NextTick true after the only timer was stopped")
	}
}

// TestWheelLen: Len counts armed timers through every way in and out.
func TestWheelLen(t *testing.T) {
	w := newTestWheel(0)
	ts := make([]Timer[*wheelEntry], 5)
	for i := range ts {
		ts[i].Value = &wheelEntry{id: i}
		w.Schedule(&ts[i], int64(i+1)*wheelTick)
	}
	expect := func(n int, what string) {
		t.Helper()
		if w.Len() != n {
			t.Fatalf("%s: Len %d, want %d", what, w.Len(), n)
		}
	}
	expect(5, "scheduled")
	w.Schedule(&ts[0], 2*wheelRev) // reschedule an armed timer
	expect(5, "rescheduled")
	w.Stop(&ts[1])
	w.Stop(&ts[1])
	expect(4, "stopped twice")
	w.Advance(3*wheelTick, func(tm *Timer[*wheelEntry]) {
		// ts[2] fires; from its callback: stop ts[3], which is not
		// due, and schedule the stopped ts[1] again.
		expect(3, "in the callback")
		w.Stop(&ts[3])
		w.Schedule(&ts[1], 4*wheelTick)
		expect(3, "after stop and schedule in the callback")
	})
	expect(3, "after Advance") // ts[0], ts[1], ts[4]
	w.Advance(10*wheelRev, func(*Timer[*wheelEntry]) {})
	expect(0, "all fired")
}

// TestWheelFarDeadline: a deadline far in the future, up to the largest
// int64 (a common "never"), does not fire early.
func TestWheelFarDeadline(t *testing.T) {
	for _, at := range []int64{math.MaxInt64 / 2, math.MaxInt64 - wheelTick, math.MaxInt64 - 1, math.MaxInt64} {
		t.Run(fmt.Sprintf("at=%d", at), func(t *testing.T) {
			w := newTestWheel(0)
			var tm Timer[*wheelEntry]
			w.Schedule(&tm, at)
			fired := false
			w.Advance(100*wheelRev, func(*Timer[*wheelEntry]) { fired = true })
			if fired {
				t.Fatalf("timer for %d fired at %d", at, 100*wheelRev)
			}
		})
	}
}
