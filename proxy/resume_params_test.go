package proxy

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/wsalive/wsalive/config"
)

func TestTakeResumeParams(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		rest     string
		mode     resumeMode
		token    string
		recv     uint64
		recvOK   bool
		rejected bool
	}{
		{name: "none", query: "room=1&x=%20y", rest: "room=1&x=%20y"},
		{name: "empty", query: "", rest: ""},
		{name: "opt-in alone", query: "wsalive_resume=new", rest: "", mode: resumeOptIn},
		{name: "opt-in kept order", query: "a=1&wsalive_resume=new&b=2;c&d", rest: "a=1&b=2;c&d", mode: resumeOptIn},
		{name: "opt-in recv ignored", query: "wsalive_resume=new&wsalive_recv=3&a", rest: "a", mode: resumeOptIn},
		{name: "resume", query: "room=1&wsalive_resume=x3Jq0bTg7WcKpZ5r1mVh9A&wsalive_recv=41", rest: "room=1",
			mode: resumeTarget, token: "x3Jq0bTg7WcKpZ5r1mVh9A", recv: 41, recvOK: true},
		{name: "resume recv first", query: "wsalive_recv=0&wsalive_resume=tok", rest: "", mode: resumeTarget, token: "tok", recvOK: true},
		{name: "resume without recv", query: "wsalive_resume=tok", rest: "", mode: resumeTarget, token: "tok"},
		{name: "recv not a number", query: "wsalive_resume=tok&wsalive_recv=-1", mode: resumeTarget, token: "tok"},
		{name: "recv leading zero", query: "wsalive_resume=tok&wsalive_recv=01", mode: resumeTarget, token: "tok"},
		{name: "recv too large", query: "wsalive_resume=tok&wsalive_recv=18446744073709551616", mode: resumeTarget, token: "tok"},
		{name: "recv max", query: "wsalive_resume=tok&wsalive_recv=18446744073709551615", mode: resumeTarget, token: "tok", recv: 1<<64 - 1, recvOK: true},
		{name: "recv twice", query: "wsalive_resume=tok&wsalive_recv=1&wsalive_recv=1", mode: resumeTarget, token: "tok"},
		{name: "recv alone stripped", query: "wsalive_recv=5&z=1", rest: "z=1"},
		{name: "other wsalive_ names kept", query: "wsalive_resumex=1&wsalive_recv2=3", rest: "wsalive_resumex=1&wsalive_recv2=3"},
		{name: "resume twice", query: "wsalive_resume=new&wsalive_resume=tok", rejected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, p, rej := takeResumeParams(tt.query)
			if tt.rejected {
				if rej == nil || rej.status != 400 {
					t.Fatalf("got %q %+v %v, want 400", rest, p, rej)
				}
				return
			}
			if rej != nil {
				t.Fatalf("rejected: %v", rej.msg)
			}
			if rest != tt.rest || p.mode != tt.mode || p.token != tt.token || p.recv != tt.recv || p.recvOK != tt.recvOK {
				t.Errorf("got rest=%q %+v, want rest=%q mode=%d token=%q recv=%d recvOK=%t",
					rest, p, tt.rest, tt.mode, tt.token, tt.recv, tt.recvOK)
			}
			if got := stripResumeParams(tt.query); got != tt.rest {
				t.Errorf("stripResumeParams = %q, want %q", got, tt.rest)
			}
		})
	}
}

// TestTakeResumeParamsNoAlloc: an ordinary client's query costs nothing.
func TestTakeResumeParamsNoAlloc(t *testing.T) {
	q := "room=1&user=abc"
	if n := testing.AllocsPerRun(100, func() { _, _, _ = takeResumeParams(q) }); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}

// TestPairCounterResumed: a session's pair keeps one place against
// max_pairs and one listener slot through its resumes, and is given back
// once, whichever client address the engine reports it with, even when
// another connection has taken over an address it had.
func TestPairCounterResumed(t *testing.T) {
	route := &config.Route{Name: "r"}
	addr := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	for _, report := range []string{"first address", "new address", "no address", "before resumed"} {
		t.Run(report, func(t *testing.T) {
			var live atomic.Int64
			slot := func() *connSlot { live.Add(1); return &connSlot{live: &live} }
			pc := newPairCounter()
			if reason := pc.reserve(route, "1.2.3.4"); reason != "" {
				t.Fatal(reason)
			}
			pc.attach("r", addr(1000), "1.2.3.4", slot())
			pc.identify("r", addr(1000), 7)
			// The session's first address is reused by an ordinary pair.
			if reason := pc.reserve(route, "1.2.3.4"); reason != "" {
				t.Fatal(reason)
			}
			pc.attach("r", addr(1000), "1.2.3.4", slot())
			second := slot()
			if report == "before resumed" {
				if !pc.closed("r", addr(2000), 7) {
					t.Fatal("pair not found by its ID")
				}
				pc.resumed(7, second)
			} else {
				pc.resumed(7, second)
				if n := live.Load(); n != 2 {
					t.Fatalf("%d slots held after the resume, want 2", n)
				}
				var ok bool
				switch report {
				case "first address":
					ok = pc.closed("r", addr(1000), 7)
				case "new address":
					ok = pc.closed("r", addr(2000), 7)
				case "no address":
					ok = pc.closed("r", netip.AddrPort{}, 7)
				}
				if !ok {
					t.Fatal("pair not found")
				}
			}
			if n, byIP := pc.count("r", "1.2.3.4"); n != 1 || byIP != 1 {
				t.Errorf("counts %d %d after the session's close, want 1 1 (the other pair)", n, byIP)
			}
			if n := live.Load(); n != 1 {
				t.Errorf("%d slots held after the session's close, want 1", n)
			}
			if !pc.closed("r", addr(1000), 8) {
				t.Fatal("the ordinary pair was lost")
			}
			if n := live.Load(); n != 0 || len(pc.plain) != 0 || len(pc.live) != 0 || len(pc.sessions) != 0 {
				t.Errorf("left behind: slots=%d plain=%d live=%d sessions=%d", n, len(pc.plain), len(pc.live), len(pc.sessions))
			}
			if pc.closed("r", addr(2000), 7) || pc.closed("r", addr(1000), 7) {
				t.Error("pair given back twice")
			}
		})
	}
}

// TestResumeParamsStrippedFromPlainHTTP: plain HTTP pass-through hides
// the wsalive_* parameters from the upstream too, with and without an
// upstream path.
func TestResumeParamsStrippedFromPlainHTTP(t *testing.T) {
	up := startHTTPUpstream(t)
	route := passRoute(up)
	mapped := passRoute(up)
	mapped.Name, mapped.PathPrefix, mapped.Upstream.Path = "mapped", "/m", "/"
	p := startProxy(t, []*config.Route{mapped, route}, config.Listener{}, true)
	for _, target := range []string{
		"/hello?n=1&wsalive_resume=new",
		"/hello?wsalive_resume=x3Jq0bTg7WcKpZ5r1mVh9A&n=1&wsalive_recv=41",
		"/m/hello?n=1&wsalive_recv=3",
	} {
		e := roundTrip(t, p.addr, "GET "+target+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if e.resp.StatusCode != 200 || e.body != "hello 1" {
			t.Errorf("%s: %d %q", target, e.resp.StatusCode, e.body)
		}
	}
	for _, r := range up.requests() {
		if r.RequestURI != "/hello?n=1" {
			t.Errorf("upstream saw %q, want /hello?n=1", r.RequestURI)
		}
	}
}
