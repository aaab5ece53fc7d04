package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/wsalive/wsalive/config"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeConn is a connection that only knows its remote address: all the
// pool looks at.
type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c fakeConn) Close() error         { return nil }

// fakeNet records every dial and fails the addresses marked down with
// ECONNREFUSED, as a closed port does.
type fakeNet struct {
	mu     sync.Mutex
	down   map[string]bool
	dialed []string
}

func newFakeNet() *fakeNet { return &fakeNet{down: map[string]bool{}} }

func (n *fakeNet) setDown(addr string, down bool) {
	n.mu.Lock()
	n.down[addr] = down
	n.mu.Unlock()
}

func (n *fakeNet) dial(_ context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialed = append(n.dialed, addr)
	if n.down[addr] {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	return fakeConn{remote: ap}, nil
}

// takeDialed returns the addresses dialed since the last call.
func (n *fakeNet) takeDialed() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dialed
	n.dialed = nil
	return d
}

func servers(addrs ...string) []config.UpstreamServer {
	var out []config.UpstreamServer
	for _, a := range addrs {
		out = append(out, config.UpstreamServer{
			Upstream:    config.Upstream{Raw: "ws://" + a, Address: a},
			MaxFails:    config.DefaultMaxFails,
			FailTimeout: config.DefaultFailTimeout,
		})
	}
	return out
}

// dialOK dials and returns the server reached, failing the test on error.
func dialOK(t *testing.T, p *Pool, key string) (string, net.Conn) {
	t.Helper()
	conn, picked, err := p.Dial(context.Background(), key)
	if err != nil {
		t.Fatalf("Dial(%q): %v", key, err)
	}
	if picked.Remote != conn.RemoteAddr().String() {
		t.Fatalf("Picked.Remote %q, connection's %q", picked.Remote, conn.RemoteAddr())
	}
	return picked.Server.Address, conn
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Dial: fn.dial, Now: newFakeClock().Now})
	counts := map[string]int{}
	for range 3000 {
		addr, conn := dialOK(t, p, "")
		counts[addr]++
		p.Release(conn.RemoteAddr().String())
	}
	for _, a := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		if counts[a] != 1000 {
			t.Errorf("%s got %d dials of 3000, want 1000 (all: %v)", a, counts[a], counts)
		}
	}
}

func TestRoundRobinStaysEvenAroundASkippedServer(t *testing.T) {
	fn := newFakeNet()
	fn.setDown("10.0.0.2:80", true)
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Dial: fn.dial, Now: newFakeClock().Now})
	counts := map[string]int{}
	for range 3000 {
		addr, conn := dialOK(t, p, "")
		counts[addr]++
		p.Release(conn.RemoteAddr().String())
	}
	// The first dial that tries 10.0.0.2 fails over; after that it is
	// skipped and the other two share every dial.
	if d := counts["10.0.0.1:80"] - counts["10.0.0.3:80"]; d < -1 || d > 1 {
		t.Errorf("uneven spread around a skipped server: %v", counts)
	}
}

// primary returns the server a key's pick goes to first.
func primary(p *Pool, key string) string { return p.order(key)[0].cfg.Address }

func TestHashIsStickyAndEven(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Balance: config.BalanceHash, Dial: fn.dial, Now: newFakeClock().Now})
	counts := map[string]int{}
	for i := range 3000 {
		key := "192.0.2." + strconv.Itoa(i)
		first, c1 := dialOK(t, p, key)
		again, c2 := dialOK(t, p, key)
		if first != again {
			t.Fatalf("key %q went to %s, then to %s", key, first, again)
		}
		p.Release(c1.RemoteAddr().String())
		p.Release(c2.RemoteAddr().String())
		counts[first]++
	}
	for a, n := range counts {
		if n < 900 || n > 1100 { // 1000 ± 10 %
			t.Errorf("%s got %d of 3000 keys, want about 1000: %v", a, n, counts)
		}
	}
}

func TestHashMovesAboutOneNthOfTheKeys(t *testing.T) {
	const keys = 10000
	before := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"), Options{Balance: config.BalanceHash})
	after := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"), Options{Balance: config.BalanceHash})
	t.Run("adding a server", func(t *testing.T) {
		moved := 0
		for i := range keys {
			key := fmt.Sprintf("client-%d", i)
			from, to := primary(before, key), primary(after, key)
			if from == to {
				continue
			}
			moved++
			if to != "10.0.0.5:80" {
				t.Fatalf("key %q moved from %s to %s, not to the new server", key, from, to)
			}
		}
		// N = 5 after the change: 1/N is 2,000 keys, plus 10 % of 10,000.
		if limit := keys/5 + keys/10; moved > limit || moved == 0 {
			t.Errorf("%d of %d keys moved, want at most %d (and some)", moved, keys, limit)
		}
		t.Logf("%d of %d keys moved (1/N = %d)", moved, keys, keys/5)
	})
	t.Run("removing a server", func(t *testing.T) {
		for i := range keys {
			key := fmt.Sprintf("client-%d", i)
			from, to := primary(after, key), primary(before, key)
			if from != to && from != "10.0.0.5:80" {
				t.Fatalf("key %q moved from %s to %s, though its server stayed", key, from, to)
			}
		}
	})
	t.Run("order of the configuration", func(t *testing.T) {
		reversed := New(servers("10.0.0.5:80", "10.0.0.4:80", "10.0.0.3:80", "10.0.0.2:80", "10.0.0.1:80"), Options{Balance: config.BalanceHash})
		for i := range 1000 {
			key := fmt.Sprintf("client-%d", i)
			if a, b := primary(after, key), primary(reversed, key); a != b {
				t.Fatalf("key %q goes to %s or %s depending on the order servers are listed in", key, a, b)
			}
		}
	})
}

func TestHashFailsOverToTheKeysSecondChoice(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Balance: config.BalanceHash, Dial: fn.dial, Now: newFakeClock().Now})
	key := "203.0.113.7"
	order := p.order(key)
	fn.setDown(order[0].cfg.Address, true)
	for range 3 {
		got, conn := dialOK(t, p, key)
		if got != order[1].cfg.Address {
			t.Fatalf("with %s down, key went to %s, want its second choice %s", order[0].cfg.Address, got, order[1].cfg.Address)
		}
		p.Release(conn.RemoteAddr().String())
	}
}

func TestLeastPairs(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Balance: config.BalanceLeastPairs, Dial: fn.dial, Now: newFakeClock().Now})
	var open []net.Conn
	for range 6 {
		_, c := dialOK(t, p, "")
		open = append(open, c)
	}
	for _, st := range p.States() {
		if st.Pairs != 2 {
			t.Fatalf("after 6 pairs, %s has %d, want 2 each: %+v", st.Address, st.Pairs, p.States())
		}
	}
	// Two pairs of one server end: the next two go there.
	freed := open[0].RemoteAddr().String()
	n := 0
	for _, c := range open {
		if c.RemoteAddr().String() == freed {
			p.Release(freed)
			n++
		}
	}
	if n != 2 {
		t.Fatalf("expected two pairs on %s, found %d", freed, n)
	}
	for range 2 {
		got, _ := dialOK(t, p, "")
		if got != freed {
			t.Errorf("least_pairs picked %s, want %s, which has the fewest pairs: %+v", got, freed, p.States())
		}
	}
	// Releasing an unknown address, or one twice, changes nothing.
	p.Release("192.0.2.1:1")
	total := 0
	for _, st := range p.States() {
		total += st.Pairs
	}
	if total != 6 {
		t.Errorf("pairs total %d, want 6", total)
	}
}

func TestMaxFailsSkipsAServerForFailTimeout(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	srvs := servers("10.0.0.1:80", "10.0.0.2:80")
	srvs[0].MaxFails, srvs[0].FailTimeout = 3, 10*time.Second
	p := New(srvs, Options{Dial: fn.dial, Now: clock.Now})
	fn.setDown("10.0.0.1:80", true)

	// Round robin tries 10.0.0.1 on every other dial; each try fails
	// over to 10.0.0.2. Three failures within 10 s get it skipped.
	tries := 0
	for range 10 {
		dialOK(t, p, "")
		for _, a := range fn.takeDialed() {
			if a == "10.0.0.1:80" {
				tries++
			}
		}
		clock.Advance(time.Second)
	}
	if tries != 3 {
		t.Errorf("10.0.0.1 was tried %d times, want max_fails = 3 before it is skipped", tries)
	}
	st := p.States()[0]
	if st.State != "skipped" || st.Fails != 3 || st.LastError == "" {
		t.Errorf("state of the failing server: %+v", st)
	}

	// Still skipped just before fail_timeout ends; tried again after.
	// (The third failure came at t=4s, so it is skipped until t=14s.)
	clock.Advance(14*time.Second - 10*time.Second - time.Nanosecond)
	dialOK(t, p, "")
	dialOK(t, p, "")
	if d := fn.takeDialed(); slices.Contains(d, "10.0.0.1:80") {
		t.Errorf("skipped server dialed before fail_timeout ended: %v", d)
	}
	clock.Advance(time.Nanosecond)
	fn.setDown("10.0.0.1:80", false)
	counts := map[string]int{}
	for range 4 {
		a, _ := dialOK(t, p, "")
		counts[a]++
	}
	if counts["10.0.0.1:80"] != 2 {
		t.Errorf("after fail_timeout, the recovered server got %d of 4 dials: %v", counts["10.0.0.1:80"], counts)
	}
	if st := p.States()[0]; st.State != "up" || st.Fails != 0 {
		t.Errorf("recovered server's state: %+v", st)
	}
}

func TestFailuresOutsideTheWindowDoNotAddUp(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	srvs := servers("10.0.0.1:80", "10.0.0.2:80")
	srvs[0].MaxFails, srvs[0].FailTimeout = 2, 10*time.Second
	p := New(srvs, Options{Balance: config.BalanceHash, Dial: fn.dial, Now: clock.Now})
	fn.setDown("10.0.0.1:80", true)
	key := keyFor(t, p, "10.0.0.1:80")
	dialOK(t, p, key) // failure 1 at t=0
	clock.Advance(10 * time.Second)
	dialOK(t, p, key) // at t=10s the first one is out of the window
	if st := p.States()[0]; st.State != "up" || st.Fails != 1 {
		t.Errorf("two failures 10s apart with fail_timeout 10s: %+v", st)
	}
	clock.Advance(time.Second)
	dialOK(t, p, key)
	if st := p.States()[0]; st.State != "skipped" {
		t.Errorf("two failures within fail_timeout: %+v", st)
	}
}

func TestMaxFailsZeroNeverSkips(t *testing.T) {
	fn := newFakeNet()
	srvs := servers("10.0.0.1:80", "10.0.0.2:80")
	srvs[0].MaxFails = 0
	p := New(srvs, Options{Balance: config.BalanceHash, Dial: fn.dial, Now: newFakeClock().Now})
	fn.setDown("10.0.0.1:80", true)
	key := keyFor(t, p, "10.0.0.1:80")
	for range 5 {
		dialOK(t, p, key)
		if d := fn.takeDialed(); d[0] != "10.0.0.1:80" {
			t.Fatalf("server with max_fails = 0 was skipped: dialed %v", d)
		}
	}
}

// keyFor returns a hash key whose first choice is addr.
func keyFor(t *testing.T, p *Pool, addr string) string {
	t.Helper()
	for i := range 1000 {
		if k := strconv.Itoa(i); primary(p, k) == addr {
			return k
		}
	}
	t.Fatalf("no key found for %s", addr)
	return ""
}

func TestBackupOnlyWhenEveryPrimaryIsDown(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	srvs := servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80")
	srvs[2].Backup = true
	p := New(srvs, Options{Dial: fn.dial, Now: clock.Now})

	t.Run("primaries up", func(t *testing.T) {
		for range 100 {
			if a, _ := dialOK(t, p, ""); a == "10.0.0.9:80" {
				t.Fatal("backup used while the primaries are up")
			}
		}
		fn.takeDialed()
	})
	t.Run("one primary down", func(t *testing.T) {
		fn.setDown("10.0.0.1:80", true)
		for range 10 {
			if a, _ := dialOK(t, p, ""); a != "10.0.0.2:80" {
				t.Fatalf("with one primary down, got %s", a)
			}
		}
		fn.takeDialed()
	})
	t.Run("every primary down", func(t *testing.T) {
		fn.setDown("10.0.0.2:80", true)
		if a, _ := dialOK(t, p, ""); a != "10.0.0.9:80" {
			t.Fatalf("with every primary down, got %s", a)
		}
		// 10.0.0.1 is skipped; 10.0.0.2 failed in this very dial.
		if d := fn.takeDialed(); !slices.Equal(d, []string{"10.0.0.2:80", "10.0.0.9:80"}) {
			t.Errorf("dialed %v, want the live primary, then the backup", d)
		}
		// Both primaries are skipped now: straight to the backup.
		dialOK(t, p, "")
		if d := fn.takeDialed(); !slices.Equal(d, []string{"10.0.0.9:80"}) {
			t.Errorf("dialed %v, want only the backup", d)
		}
	})
	t.Run("a primary recovers", func(t *testing.T) {
		fn.setDown("10.0.0.1:80", false)
		clock.Advance(config.DefaultFailTimeout)
		for range 10 {
			if a, _ := dialOK(t, p, ""); a != "10.0.0.1:80" {
				t.Fatalf("after a primary recovered, got %s", a)
			}
		}
	})
}

func TestEverythingSkippedIsStillTried(t *testing.T) {
	fn := newFakeNet()
	p := New(servers("10.0.0.1:80"), Options{Dial: fn.dial, Now: newFakeClock().Now})
	fn.setDown("10.0.0.1:80", true)
	_, _, err := p.Dial(context.Background(), "")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial to a refusing server: %v, want ECONNREFUSED", err)
	}
	// The lone server is skipped now, yet a dial still tries it.
	fn.setDown("10.0.0.1:80", false)
	if a, _ := dialOK(t, p, ""); a != "10.0.0.1:80" {
		t.Fatalf("got %s", a)
	}
}

func TestDialErrorNamesEveryServer(t *testing.T) {
	fn := newFakeNet()
	fn.setDown("10.0.0.1:80", true)
	fn.setDown("10.0.0.2:80", true)
	p := New(servers("10.0.0.1:80", "10.0.0.2:80"), Options{Dial: fn.dial, Now: newFakeClock().Now})
	_, _, err := p.Dial(context.Background(), "")
	var de *DialError
	if !errors.As(err, &de) || len(de.Tried) != 2 || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestDeadlineIsSharedAmongServers(t *testing.T) {
	var deadlines []time.Duration
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		d, _ := ctx.Deadline()
		deadlines = append(deadlines, time.Until(d))
		return nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	}
	p := New(servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Dial: dial, Now: newFakeClock().Now})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, _ = p.Dial(ctx, "")
	if len(deadlines) != 3 {
		t.Fatalf("dialed %d servers, want 3", len(deadlines))
	}
	// The first of three gets about a third; the last whatever is left.
	if d := deadlines[0]; d > 10*time.Second || d < 9*time.Second {
		t.Errorf("first server's time %v, want about 10s of 30s", d)
	}
	if d := deadlines[2]; d < 29*time.Second {
		t.Errorf("last server's time %v, want what is left, about 30s", d)
	}
}

func TestAttemptTimeout(t *testing.T) {
	tests := []struct {
		left    time.Duration
		servers int
		want    time.Duration
	}{
		{10 * time.Second, 2, 5 * time.Second},
		{10 * time.Second, 10, 2 * time.Second}, // the floor
		{time.Second, 3, time.Second},           // less than the floor is left
		{10 * time.Second, 1, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v among %d", tt.left, tt.servers), func(t *testing.T) {
			if got := AttemptTimeout(tt.left, tt.servers); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCanceledDialIsNotTheServersFault(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dial := func(context.Context, string, string) (net.Conn, error) {
		cancel() // a shutdown while the dial runs
		return nil, context.Canceled
	}
	p := New(servers("10.0.0.1:80", "10.0.0.2:80"), Options{Dial: dial, Now: newFakeClock().Now})
	_, _, err := p.Dial(ctx, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	for _, st := range p.States() {
		if st.Fails != 0 || st.State != "up" {
			t.Errorf("a canceled dial counted against %+v", st)
		}
	}
}

// fakeResolver answers from a table and counts lookups.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups int
}

func (r *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	a, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

func TestNamesAreResolvedAgainAfterTheTTL(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	res := &fakeResolver{answers: map[string][]string{"api.internal": {"10.0.0.1", "10.0.0.2"}}}
	p := New(servers("api.internal:3000", "other.internal:3000"), Options{
		Balance: config.BalanceHash, DNSTTL: 30 * time.Second, Dial: fn.dial, Now: clock.Now, Resolver: res,
	})
	key := keyFor(t, p, "api.internal:3000")

	dialOK(t, p, key)
	dialOK(t, p, key)
	if d := fn.takeDialed(); !slices.Equal(d, []string{"10.0.0.1:3000", "10.0.0.2:3000"}) {
		t.Errorf("dialed %v, want each address of the answer in turn", d)
	}
	if res.lookups != 1 {
		t.Errorf("%d lookups within the TTL, want 1", res.lookups)
	}
	if got := p.States()[0].Resolved; !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("States().Resolved = %v", got)
	}

	// The name moves; within the TTL the old answer is used.
	res.mu.Lock()
	res.answers["api.internal"] = []string{"10.0.0.7"}
	res.mu.Unlock()
	clock.Advance(30*time.Second - time.Nanosecond)
	dialOK(t, p, key)
	clock.Advance(time.Nanosecond)
	dialOK(t, p, key)
	if d := fn.takeDialed(); !slices.Equal(d, []string{"10.0.0.1:3000", "10.0.0.7:3000"}) {
		t.Errorf("dialed %v, want the old answer until the TTL, then the new one", d)
	}
	if res.lookups != 2 {
		t.Errorf("%d lookups, want 2", res.lookups)
	}

	// A name that no longer resolves fails over, and counts as a failure.
	res.mu.Lock()
	delete(res.answers, "api.internal")
	clock.Advance(30 * time.Second)
	res.answers["other.internal"] = []string{"10.0.0.8"}
	res.mu.Unlock()
	if a, _ := dialOK(t, p, key); a != "other.internal:3000" {
		t.Errorf("with the name gone, got %s", a)
	}
	if st := p.States()[0]; st.State != "skipped" || st.LastError == "" {
		t.Errorf("state after a failed lookup: %+v", st)
	}
}

func TestKey(t *testing.T) {
	req := &http.Request{Header: http.Header{
		"X-Room": {"42"},
		"Cookie": {"sid=abc; other=1"},
	}, URL: &url.URL{RawQuery: "EIO=4&sid=xyz"}}
	tests := []struct {
		key  config.HashKey
		want string
	}{
		{config.HashKey{Source: config.HashClientIP}, "192.0.2.1"},
		{config.HashKey{Source: config.HashHeader, Name: "X-Room"}, "42"},
		{config.HashKey{Source: config.HashHeader, Name: "X-Absent"}, "192.0.2.1"},
		{config.HashKey{Source: config.HashCookie, Name: "sid"}, "abc"},
		{config.HashKey{Source: config.HashCookie, Name: "absent"}, "192.0.2.1"},
		{config.HashKey{Source: config.HashQuery, Name: "sid"}, "xyz"},
		{config.HashKey{Source: config.HashQuery, Name: "absent"}, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.key.String(), func(t *testing.T) {
			p := New(servers("10.0.0.1:80"), Options{Balance: config.BalanceHash, HashKey: tt.key})
			if got := p.Key(req, "192.0.2.1"); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("not hashing", func(t *testing.T) {
		p := New(servers("10.0.0.1:80"), Options{HashKey: config.HashKey{Source: config.HashClientIP}})
		if got := p.Key(req, "192.0.2.1"); got != "" {
			t.Errorf("Key = %q for round robin, want \"\"", got)
		}
	})
}

// TestFailoverWithRealSockets dials through the real dialer: one server's
// port is closed (its listener was closed, so the kernel refuses), the
// other accepts. Every dial must succeed.
func TestFailoverWithRealSockets(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()

	clock := newFakeClock()
	p := New(servers(refused, live.Addr().String()), Options{Now: clock.Now})
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, picked, err := p.Dial(ctx, "")
		cancel()
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if picked.Server.Address != live.Addr().String() {
			t.Fatalf("dial %d reached %s", i, picked.Server.Address)
		}
		select {
		case c := <-accepted:
			c.Close()
		case <-time.After(5 * time.Second):
			t.Fatal("the live server saw no connection")
		}
		p.Release(conn.RemoteAddr().String())
		conn.Close()
		if i == 9 {
			// Let the refusing server back into rotation: it must be
			// refused and skipped again, with no dial failing.
			clock.Advance(config.DefaultFailTimeout)
		}
	}
	st := p.States()
	if st[0].State != "skipped" || !strings.Contains(st[0].LastError, "refused") {
		t.Errorf("refusing server: %+v", st[0])
	}
	if st[1].Pairs != 0 {
		t.Errorf("live server still counts %d pairs after every release", st[1].Pairs)
	}
}

func TestFailedAfterConnectingCountsTowardMaxFails(t *testing.T) {
	clock := newFakeClock()
	fn := newFakeNet()
	srvs := servers("10.0.0.1:80", "10.0.0.2:80")
	srvs[0].MaxFails = 2
	p := New(srvs, Options{Dial: fn.dial, Now: clock.Now})
	timeout := errors.New("handshake timed out")
	p.Failed("10.0.0.1:80", timeout)
	if st := p.States()[0]; st.State != "up" || st.Fails != 1 || st.LastError != timeout.Error() {
		t.Fatalf("after one failure: %+v", st)
	}
	p.Failed("10.0.0.1:80", timeout)
	if st := p.States()[0]; st.State != "skipped" {
		t.Fatalf("after max_fails failures: %+v", st)
	}
	p.Failed("192.0.2.1:80", timeout) // not in the pool: ignored
	for range 4 {
		if a, _ := dialOK(t, p, ""); a != "10.0.0.2:80" {
			t.Fatalf("skipped server picked: %s", a)
		}
	}
}

func TestDialTimedOutAtTheDeadlineIsTheServersFault(t *testing.T) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done() // a server that never answers the SYN
		return nil, ctx.Err()
	}
	p := New(servers("10.0.0.1:80", "10.0.0.2:80"), Options{Balance: config.BalanceHash, Dial: dial, Now: newFakeClock().Now})
	key := keyFor(t, p, "10.0.0.1:80")
	// Already expired: the first try runs out of time at once, with no
	// time left for the second.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	_, _, err := p.Dial(ctx, key)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if st := p.States(); st[0].Fails != 1 || st[1].Fails != 0 {
		t.Errorf("want the timed-out server charged, the untried one not: %+v", st)
	}
}

// blockingResolver answers every lookup once release is closed, and
// reports each call on calls.
type blockingResolver struct {
	calls   chan string
	release chan struct{}
	answer  []string
}

func (r *blockingResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	r.calls <- host
	select {
	case <-r.release:
		return r.answer, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestConcurrentDialsShareOneLookup(t *testing.T) {
	const dials = 8
	fn := newFakeNet()
	res := &blockingResolver{calls: make(chan string, dials), release: make(chan struct{}), answer: []string{"10.0.0.1", "10.0.0.2"}}
	p := New(servers("api.internal:3000"), Options{DNSTTL: 0, Dial: fn.dial, Now: newFakeClock().Now, Resolver: res})
	waiting := make(chan struct{}, dials)
	p.waiting = func() { waiting <- struct{}{} }

	type result struct {
		addr string
		err  error
	}
	results := make(chan result, dials)
	dial := func() {
		_, picked, err := p.Dial(context.Background(), "")
		results <- result{picked.Server.Address, err}
	}
	go dial()
	select {
	case <-res.calls: // the first dial is resolving
	case <-time.After(5 * time.Second):
		t.Fatal("no lookup")
	}
	for range dials - 1 {
		go dial()
	}
	for range dials - 1 {
		select {
		case <-waiting:
		case <-time.After(5 * time.Second):
			t.Fatal("a dial did not wait for the lookup in flight")
		}
	}
	close(res.release)
	for range dials {
		if r := <-results; r.err != nil {
			t.Fatalf("dial: %v", r.err)
		}
	}
	select {
	case h := <-res.calls:
		t.Fatalf("a second lookup of %s", h)
	default:
	}
	// Even with dns_ttl 0 the shared answer is used by every waiter, and
	// the dials rotate among its addresses.
	d := fn.takeDialed()
	n := map[string]int{}
	for _, a := range d {
		n[a]++
	}
	if n["10.0.0.1:3000"] != dials/2 || n["10.0.0.2:3000"] != dials/2 {
		t.Errorf("dials per address %v, want %d each", n, dials/2)
	}
}

func weighted(weights map[string]int, addrs ...string) []config.UpstreamServer {
	srvs := servers(addrs...)
	for i := range srvs {
		srvs[i].Weight = weights[srvs[i].Address]
	}
	return srvs
}

func TestWeightedRoundRobin(t *testing.T) {
	fn := newFakeNet()
	w := map[string]int{"10.0.0.1:80": 5, "10.0.0.2:80": 1, "10.0.0.3:80": 1}
	p := New(weighted(w, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), Options{Dial: fn.dial, Now: newFakeClock().Now})
	var seq []string
	for range 7 * 100 {
		a, conn := dialOK(t, p, "")
		p.Release(conn.RemoteAddr().String())
		seq = append(seq, a)
	}
	counts := map[string]int{}
	for _, a := range seq {
		counts[a]++
	}
	for a, weight := range w {
		if counts[a] != weight*100 {
			t.Errorf("%s (weight %d) got %d of 700 dials, want %d", a, weight, counts[a], weight*100)
		}
	}
	// Smooth: the other servers are interleaved into the heavy one's
	// turns, the sequence nginx documents for weights 5, 1, 1.
	a, b, c := "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
	if want := []string{a, a, b, a, c, a, a}; !slices.Equal(seq[:7], want) {
		t.Errorf("first seven picks %v, want %v", seq[:7], want)
	}
}

func TestWeightedHash(t *testing.T) {
	w := map[string]int{"10.0.0.1:80": 3, "10.0.0.2:80": 1}
	p := New(weighted(w, "10.0.0.1:80", "10.0.0.2:80"), Options{Balance: config.BalanceHash})
	counts := map[string]int{}
	for i := range 10000 {
		counts[primary(p, fmt.Sprintf("client-%d", i))]++
	}
	if n := counts["10.0.0.1:80"]; n < 7200 || n > 7800 {
		t.Errorf("weight 3 of 4 got %d of 10000 keys, want about 7500", n)
	}
	// Raising one server's weight moves keys only to it.
	w["10.0.0.2:80"] = 2
	heavier := New(weighted(w, "10.0.0.1:80", "10.0.0.2:80"), Options{Balance: config.BalanceHash})
	for i := range 10000 {
		k := fmt.Sprintf("client-%d", i)
		if from, to := primary(p, k), primary(heavier, k); from != to && to != "10.0.0.2:80" {
			t.Fatalf("key %q moved from %s to %s", k, from, to)
		}
	}
}

func TestWeightedLeastPairs(t *testing.T) {
	fn := newFakeNet()
	w := map[string]int{"10.0.0.1:80": 2, "10.0.0.2:80": 1}
	p := New(weighted(w, "10.0.0.1:80", "10.0.0.2:80"), Options{Balance: config.BalanceLeastPairs, Dial: fn.dial, Now: newFakeClock().Now})
	for range 9 {
		dialOK(t, p, "")
	}
	if st := p.States(); st[0].Pairs != 6 || st[1].Pairs != 3 {
		t.Errorf("9 pairs on weights 2 and 1 spread as %d and %d, want 6 and 3", st[0].Pairs, st[1].Pairs)
	}
}

// TestRemoteStringIsRemoteAddrString: the key a pair is counted under is
// conn.RemoteAddr().String() whatever form the dialed address had; the
// dialed string is reused only when it is exactly that.
func TestRemoteStringIsRemoteAddrString(t *testing.T) {
	v4 := net.ParseIP("10.0.0.1") // 16-byte form, as accepted sockets give
	for _, c := range []struct {
		dialed string
		remote net.Addr
		reused bool
	}{
		{"10.0.0.1:8080", &net.TCPAddr{IP: v4, Port: 8080}, true},
		{"10.0.0.1:8080", &net.TCPAddr{IP: v4.To4(), Port: 8080}, true},
		{"[2001:db8::1]:443", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}, true},
		{"[2001:DB8::1]:443", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}, false},
		{"[2001:db8:0::1]:443", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}, false},
		{"[::ffff:10.0.0.1]:80", &net.TCPAddr{IP: v4, Port: 80}, false},
		{"10.0.0.1:080", &net.TCPAddr{IP: v4, Port: 80}, false},
		{"10.0.0.1:8080", &net.TCPAddr{IP: v4, Port: 8081}, false},
		{"10.0.0.2:8080", &net.TCPAddr{IP: v4, Port: 8080}, false},
		{"[fe80::1%eth0]:80", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, false},
		{"localhost:80", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 80}, false},
	} {
		got := remoteString(fakeConn{remote: c.remote}, c.dialed)
		if want := c.remote.String(); got != want {
			t.Errorf("dialed %q, remote %v: %q, want %q", c.dialed, c.remote, got, want)
		}
		if reused := unsafe.StringData(got) == unsafe.StringData(c.dialed); reused != c.reused {
			t.Errorf("dialed %q, remote %v: reused %v, want %v", c.dialed, c.remote, reused, c.reused)
		}
	}
}
