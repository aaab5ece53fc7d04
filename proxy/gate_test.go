package proxy

import (
	"testing"
	"time"
)

// gateWait runs w.wait(done) on its own goroutine, and returns what it
// returned once it has, after checking that it is blocked at the gate.
func gateWait(t *testing.T, g *acceptGate, w *gateWaiter, done <-chan struct{}) <-chan bool {
	t.Helper()
	res := make(chan bool, 1)
	go func() { res <- w.wait(done) }()
	waitFor(t, "the accept loop waiting at the gate", func() bool { return g.waiting.Load() == 1 })
	select {
	case r := <-res:
		t.Fatalf("wait returned %v with the gate full", r)
	default:
	}
	return res
}

func gateResult(t *testing.T, res <-chan bool, want bool) {
	t.Helper()
	select {
	case r := <-res:
		if r != want {
			t.Fatalf("wait returned %v, want %v", r, want)
		}
	case <-time.After(waitBound):
		t.Fatal("wait did not return")
	}
}

func TestAcceptGateWakesOnEnd(t *testing.T) {
	g := newAcceptGate(2)
	g.maxWait = time.Hour
	a, b := g.ticket(), g.ticket()
	w := g.waiter()
	res := gateWait(t, g, w, nil)
	a.end()
	gateResult(t, res, true)
	if g.counted() != 1 || g.waiting.Load() != 0 || len(g.wakes) != 0 {
		t.Fatalf("after: counted %d, waiting %d, wakes %d; want 1, 0, 0", g.counted(), g.waiting.Load(), len(g.wakes))
	}
	b.end()
	a.end() // a second end changes nothing
	if g.counted() != 0 {
		t.Fatalf("counted %d after both ended, want 0", g.counted())
	}
}

// A handshake that starts waiting for a peer leaves the count, and the
// accept loop goes on; when it wakes it counts again.
func TestAcceptGateWakesOnPeerWait(t *testing.T) {
	g := newAcceptGate(2)
	g.maxWait = time.Hour
	a, b := g.ticket(), g.ticket()
	w := g.waiter()
	res := gateWait(t, g, w, nil)
	b.Waiting()
	gateResult(t, res, true)
	b.Waiting() // nested: a dial's Socket waiting inside the dial's wait
	b.Woken()
	if g.counted() != 1 {
		t.Fatalf("counted %d while b waits, want 1", g.counted())
	}
	b.Woken()
	if g.counted() != 2 {
		t.Fatalf("counted %d once b woke, want 2", g.counted())
	}
	// Ending while waiting, and a wake after the end, count nothing.
	a.Waiting()
	a.end()
	a.Woken()
	a.Waiting()
	b.end()
	if g.counted() != 0 {
		t.Fatalf("counted %d after both ended, want 0", g.counted())
	}
}

func TestAcceptGateShutdown(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = time.Hour
	g.ticket()
	done := make(chan struct{})
	res := gateWait(t, g, g.waiter(), done)
	close(done)
	gateResult(t, res, false)
}

// A gate shut for maxWait opens for the loop until the count falls below
// the bound: a handshake stuck where no Socket tells cannot stall accept.
func TestAcceptGateTimeout(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = 20 * time.Millisecond
	a := g.ticket()
	w := g.waiter()
	start := time.Now()
	if !w.wait(nil) {
		t.Fatal("wait returned false")
	}
	if took := time.Since(start); took < g.maxWait {
		t.Fatalf("wait returned after %v, before its bound %v", took, g.maxWait)
	}
	g.ticket() // accepted: 2 counted, over the bound
	g.maxWait = time.Hour
	if !w.wait(nil) {
		t.Fatal("open gate: wait returned false")
	}
	a.end() // 1 counted: at the bound, but the gate stays open for the loop
	if !w.wait(nil) || !w.open {
		t.Fatalf("at the bound after a timeout: open %v, want true", w.open)
	}
	g.put() // the other ends: below the bound, the gate works again
	if !w.wait(nil) || w.open {
		t.Fatalf("below the bound: open %v, want false", w.open)
	}
	g.ticket()
	res := gateWait(t, g, w, nil)
	g.put()
	gateResult(t, res, true)
}

// Several accept loops (listeners) waiting at once are all woken.
func TestAcceptGateWakesEveryLoop(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = time.Hour
	a := g.ticket()
	r1 := make(chan bool, 1)
	r2 := make(chan bool, 1)
	w1, w2 := g.waiter(), g.waiter()
	go func() { r1 <- w1.wait(nil) }()
	go func() { r2 <- w2.wait(nil) }()
	waitFor(t, "two loops waiting", func() bool { return g.waiting.Load() == 2 })
	a.end()
	gateResult(t, r1, true)
	gateResult(t, r2, true)
}

// A loop that waited at a full gate goes on only at half the bound, so
// that it accepts a batch back to back rather than one per wake.
func TestAcceptGateLowWater(t *testing.T) {
	g := newAcceptGate(4)
	g.maxWait = time.Hour
	ts := []*gateTicket{g.ticket(), g.ticket(), g.ticket(), g.ticket()}
	w := g.waiter()
	res := gateWait(t, g, w, nil)
	ts[0].end()          // 3: above low water (2)
	w.wake <- struct{}{} // a wake at 3 (put sends none): the loop looks and waits on
	waitFor(t, "the wake taken", func() bool { return len(w.wake) == 0 })
	select {
	case r := <-res:
		t.Fatalf("wait returned %v at 3 counted, above low water", r)
	default:
	}
	if g.waiting.Load() != 1 {
		t.Fatal("the loop stopped waiting above low water")
	}
	ts[1].end() // 2: low water
	gateResult(t, res, true)
	// Below the bound the loop does not wait at all.
	g.ticket()
	if !w.wait(nil) || g.waiting.Load() != 0 {
		t.Fatal("at 3 of 4, wait should return at once")
	}
}
