package pool

import (
	"testing"
)

// stateOf returns the state of the server at addr.
func stateOf(t *testing.T, p *Pool, addr string) ServerState {
	t.Helper()
	for _, st := range p.States() {
		if st.Address == addr {
			return st
		}
	}
	t.Fatalf("no server %s in %+v", addr, p.States())
	return ServerState{}
}

func TestAdoptKeepsUnchangedServersState(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	fn.setDown("10.0.0.2:80", true)
	o := Options{Balance: "least_pairs", Dial: fn.dial, Now: clock.Now}
	old := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), o)
	// Three pairs: 10.0.0.2 refuses once (skipped), the others take them.
	var remotes []string
	for range 3 {
		_, conn := dialOK(t, old, "")
		remotes = append(remotes, conn.RemoteAddr().String())
	}
	before := map[string]ServerState{}
	for _, st := range old.States() {
		before[st.Address] = st
	}
	if before["10.0.0.2:80"].State != "skipped" {
		t.Fatalf("refusing server not skipped before the reload: %+v", before["10.0.0.2:80"])
	}

	// The reload keeps .1 and .2 as they were, changes .3's max_fails
	// and adds .4.
	next := servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	next[2].MaxFails = 5
	p := New(next, o)
	p.Adopt(old, true)

	for _, addr := range []string{"10.0.0.1:80", "10.0.0.2:80"} {
		got, want := stateOf(t, p, addr), before[addr]
		if got.State != want.State || got.Fails != want.Fails || got.Pairs != want.Pairs || got.LastError != want.LastError {
			t.Errorf("%s after the reload: %+v, want %+v", addr, got, want)
		}
	}
	if st := stateOf(t, p, "10.0.0.3:80"); st.Pairs != before["10.0.0.3:80"].Pairs {
		t.Errorf("changed server lost its live pairs: %+v, had %+v", st, before["10.0.0.3:80"])
	}
	if st := stateOf(t, p, "10.0.0.4:80"); st.Pairs != 0 || st.Fails != 0 || st.State != "up" {
		t.Errorf("new server does not start afresh: %+v", st)
	}

	// The pairs from before the reload end through the new pool.
	for _, r := range remotes {
		p.Release(r)
	}
	for _, st := range p.States() {
		if st.Pairs != 0 {
			t.Errorf("%s still counts %d pairs after every release", st.Address, st.Pairs)
		}
	}
	// The skip adopted ends when it would have: fail_timeout after the
	// failure, not after the reload.
	clock.Advance(before["10.0.0.2:80"].SkippedUntil.Sub(clock.Now()))
	if st := stateOf(t, p, "10.0.0.2:80"); st.State != "up" {
		t.Errorf("adopted skip outlives its fail_timeout: %+v", st)
	}
}

func TestAdoptForgetsHealthWhenDialingChanged(t *testing.T) {
	fn := newFakeNet()
	fn.setDown("10.0.0.2:80", true)
	o := Options{Dial: fn.dial, Now: newFakeClock().Now}
	old := New(servers("10.0.0.1:80", "10.0.0.2:80"), o)
	dialOK(t, old, "")
	dialOK(t, old, "")
	if stateOf(t, old, "10.0.0.2:80").State != "skipped" {
		t.Fatal("refusing server not skipped")
	}
	p := New(servers("10.0.0.1:80", "10.0.0.2:80"), o)
	p.Adopt(old, false) // say, upstream_tls changed
	if st := stateOf(t, p, "10.0.0.2:80"); st.State != "up" || st.Fails != 0 {
		t.Errorf("health kept although the route dials differently now: %+v", st)
	}
	if st := stateOf(t, p, "10.0.0.1:80"); st.Pairs != 2 {
		t.Errorf("live pairs not kept: %+v", st)
	}
}

func TestPickOther(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Balance: "hash", Dial: fn.dial, Now: newFakeClock().Now})
	first := p.Pick("k").Address
	other, ok := p.PickOther("k", first)
	if !ok || other.Address == first {
		t.Fatalf("PickOther(%s) = %s, %v", first, other.Address, ok)
	}
	// The next in the key's order, every time: a client's retries stick
	// together as its first tries do.
	for range 10 {
		if again, _ := p.PickOther("k", first); again.Address != other.Address {
			t.Fatalf("PickOther moved from %s to %s", other.Address, again.Address)
		}
	}
	one := New(servers("10.0.0.1:80"), Options{Dial: fn.dial})
	if _, ok := one.PickOther("", "10.0.0.1:80"); ok {
		t.Error("a pool of one server found another")
	}
}
