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

// countedTicket is a ticket of g in its upstream phase.
func countedTicket(g *acceptGate) *gateTicket {
	t := g.ticket()
	t.count()
	return t
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
	a, b := countedTicket(g), countedTicket(g)
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

// A handshake that leaves its upstream phase leaves the count, and the
// accept loop goes on; counted again, it counts again; after end it
// never does.
func TestAcceptGateUncount(t *testing.T) {
	g := newAcceptGate(2)
	g.maxWait = time.Hour
	a, b := countedTicket(g), countedTicket(g)
	w := g.waiter()
	res := gateWait(t, g, w, nil)
	b.uncount()
	gateResult(t, res, true)
	b.uncount() // twice changes nothing
	if g.counted() != 1 {
		t.Fatalf("counted %d after b's uncount, want 1", g.counted())
	}
	b.count()
	b.count()
	if g.counted() != 2 {
		t.Fatalf("counted %d once b counts again, want 2", g.counted())
	}
	a.end()
	a.count() // after the end: nothing
	b.uncount()
	b.end()
	b.count()
	if g.counted() != 0 {
		t.Fatalf("counted %d after both ended, want 0", g.counted())
	}
	var none *gateTicket // an upgrade on a plain HTTP connection
	none.count()
	none.uncount()
	none.end()
}

func TestAcceptGateShutdown(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = time.Hour
	countedTicket(g)
	done := make(chan struct{})
	res := gateWait(t, g, g.waiter(), done)
	close(done)
	gateResult(t, res, false)
}

// A gate shut for maxWait opens for the loop until the count falls below
// the bound: an upstream that answers nothing cannot stall accept.
func TestAcceptGateTimeout(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = 20 * time.Millisecond
	a := countedTicket(g)
	w := g.waiter()
	start := time.Now()
	if !w.wait(nil) {
		t.Fatal("wait returned false")
	}
	if took := time.Since(start); took < g.maxWait {
		t.Fatalf("wait returned after %v, before its bound %v", took, g.maxWait)
	}
	countedTicket(g) // accepted: 2 counted, over the bound
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
	countedTicket(g)
	res := gateWait(t, g, w, nil)
	g.put()
	gateResult(t, res, true)
}

// Several accept loops (listeners) waiting at once are all woken.
func TestAcceptGateWakesEveryLoop(t *testing.T) {
	g := newAcceptGate(1)
	g.maxWait = time.Hour
	a := countedTicket(g)
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
	ts := []*gateTicket{countedTicket(g), countedTicket(g), countedTicket(g), countedTicket(g)}
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
	countedTicket(g)
	if !w.wait(nil) || g.waiting.Load() != 0 {
		t.Fatal("at 3 of 4, wait should return at once")
	}
}

func TestOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80":          true,
		"127.9.8.7:8080":        true,
		"[::1]:80":              true,
		"[::ffff:127.0.0.1]:80": true,
		"localhost:3000":        true,
		"LocalHost:3000":        true,
		"10.0.0.7:80":           false,
		"[2001:db8::1]:80":      false,
		"backend:80":            false,
		"localhost.example:80":  false,
		"127.0.0.1":             false, // no port: not an address the pool has
	} {
		if got := onLoopback(addr); got != want {
			t.Errorf("onLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
