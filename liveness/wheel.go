package liveness

import (
	"cmp"
	"slices"
	"time"
)

// Timer is an intrusive wheel entry: embed one in the object that needs a
// deadline, so that scheduling allocates nothing and a connection never owns
// more than this struct. Value is handed back when the timer fires.
type Timer[T any] struct {
	next, prev *Timer[T]
	when       int64 // tick number at which the timer fires
	armed      bool
	firing     bool // collected by Advance and not yet fired
	Value      T
}

// Armed reports whether the timer is scheduled.
func (t *Timer[T]) Armed() bool { return t.armed }

// Wheel is a hashed timing wheel owned by one event loop; it is not safe for
// concurrent use. Deadlines are rounded up to the next tick, so a timer never
// fires early and fires at most one tick late (plus however late Advance is
// called). Scheduling and stopping are O(1); Advance costs O(slots visited +
// timers in them).
type Wheel[T any] struct {
	tick  int64 // nanoseconds per tick
	slots []Timer[T]
	mask  int64
	cur   int64 // the next tick to process
	n     int
	due   []*Timer[T]
}

// NewWheel returns a wheel with the given tick and at least slots slots
// (rounded up to a power of two), whose clock starts at now.
func NewWheel[T any](tick time.Duration, slots int, now int64) *Wheel[T] {
	if tick <= 0 {
		panic("liveness: wheel tick must be positive")
	}
	size := 1
	for size < slots {
		size <<= 1
	}
	w := &Wheel[T]{tick: int64(tick), slots: make([]Timer[T], size), mask: int64(size - 1)}
	for i := range w.slots {
		s := &w.slots[i]
		s.next, s.prev = s, s // each slot is a circular list with a sentinel
	}
	w.cur = now/w.tick + 1
	return w
}

// Len returns the number of armed timers.
func (w *Wheel[T]) Len() int { return w.n }

// Tick returns the wheel's resolution.
func (w *Wheel[T]) Tick() time.Duration { return time.Duration(w.tick) }

// Schedule arms t to fire at the first tick at or after at (nanoseconds),
// replacing any earlier schedule. A deadline in the past fires on the next
// Advance.
func (w *Wheel[T]) Schedule(t *Timer[T], at int64) {
	if t.armed {
		w.unlink(t)
	}
	t.firing = false
	when := at / w.tick // rounded up without overflowing near MaxInt64
	if at%w.tick > 0 {
		when++
	}
	if when < w.cur {
		when = w.cur
	}
	t.when = when
	s := &w.slots[when&w.mask]
	t.prev = s.prev
	t.next = s
	s.prev.next = t
	s.prev = t
	t.armed = true
	w.n++
}

// Stop disarms t; stopping a disarmed timer does nothing.
func (w *Wheel[T]) Stop(t *Timer[T]) {
	if t.armed {
		w.unlink(t)
	}
	t.firing = false
}

func (w *Wheel[T]) unlink(t *Timer[T]) {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
	t.armed = false
	w.n--
}

// Advance fires, in deadline order by tick, every timer due at or before
// now. fire may schedule or stop any timer, including the one it was given.
func (w *Wheel[T]) Advance(now int64, fire func(*Timer[T])) {
	target := now / w.tick
	if target < w.cur {
		return
	}
	if w.n == 0 {
		w.cur = target + 1
		return
	}
	// Visit each slot at most once: after a full turn every remaining due
	// timer has been found, since each lives in the slot of its tick.
	steps := target - w.cur + 1
	wrapped := steps > int64(len(w.slots))
	if wrapped {
		steps = int64(len(w.slots))
	}
	due := w.due[:0]
	for i := int64(0); i < steps; i++ {
		s := &w.slots[(w.cur+i)&w.mask]
		for t := s.next; t != s; {
			next := t.next
			if t.when <= target {
				w.unlink(t)
				t.firing = true
				due = append(due, t)
			}
			t = next
		}
	}
	w.cur = target + 1
	if wrapped {
		// More than a turn passed, so slots were not visited in tick
		// order: restore it (stable, so one tick keeps schedule order).
		slices.SortStableFunc(due, func(a, b *Timer[T]) int { return cmp.Compare(a.when, b.when) })
	}
	// Fire after collecting, so callbacks that reschedule or stop timers
	// cannot disturb the walk above.
	for i, t := range due {
		due[i] = nil
		if t.firing {
			t.firing = false
			fire(t)
		}
	}
	w.due = due[:0]
}

// NextTick returns the time (nanoseconds) at which Advance should next be
// called, and false when no timer is armed.
func (w *Wheel[T]) NextTick() (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	return w.cur * w.tick, true
}
