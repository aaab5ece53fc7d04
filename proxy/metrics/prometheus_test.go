package metrics

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape serves one scrape of p's handler in the text format and parses it
// with the Prometheus text parser.
func scrape(t *testing.T, p *Prometheus) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	p.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	return fams
}

// sample finds the one sample of family name whose labels are exactly
// labels ("k=v" pairs, in any order).
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
	want := append([]string(nil), labels...)
	sort.Strings(want)
	for _, m := range f.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(got)
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return m
		}
	}
	t.Fatalf("%s has no sample with labels %v", name, labels)
	return nil
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := sample(t, fams, name, labels...)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// TestPrometheusScenario reports a scenario with known counts and checks
// every figure in a real scrape: N pairs opened, K of them closed by a
// client heartbeat timeout, M handshakes refused, and so on.
func TestPrometheusScenario(t *testing.T) {
	const (
		opened  = 7
		timeout = 3 // closed by client heartbeat timeout
		closed  = 1 // closed by the client
		refused = 4 // answered 502
	)
	p := NewPrometheus(PrometheusOptions{Version: "v1.2.3", Revision: "abc123", BufferedBytes: func() float64 { return 4096 },
		ResumeSessions: func() (float64, float64) { return 5, 2 }, ResumeReplayBytes: func() float64 { return 777 }})
	p.Resume("resumed")
	p.Resume("refused_4903")
	chat := p.Route("chat")
	for range opened {
		chat.Handshake("ok", 2*time.Millisecond)
		chat.PairOpened()
	}
	for range refused {
		chat.Handshake("502", 30*time.Millisecond)
	}
	for range timeout {
		chat.Ping(Client)
		chat.Miss(Client)
		chat.Miss(Client)
		chat.PairClosed("client_heartbeat_timeout")
	}
	chat.PairClosed("client_closed")
	chat.Ping(Upstream)
	chat.Pong(Upstream, 300*time.Microsecond)
	chat.Ping(Client)
	chat.Pong(Client, 40*time.Millisecond)
	chat.Relayed(ToUpstream, 1000, 10)
	chat.Relayed(ToUpstream, 24, 1)
	chat.Relayed(ToClient, 500, 5)
	chat.HTTPRequest(200)
	chat.HTTPRequest(200)
	chat.HTTPRequest(404)
	p.Route(UnknownRoute).Handshake("404", time.Millisecond)
	p.ConfigReload(true)
	p.ConfigReload(false)
	p.ConfigReload(false)
	p.Draining(true)
	p.UpstreamServerUp("chat", "10.0.0.1:80", true)

	fams := scrape(t, p)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsalive_pairs_open", []string{"route=chat"}, opened - timeout - closed},
		{"wsalive_pairs_closed_total", []string{"route=chat", "reason=client_heartbeat_timeout"}, timeout},
		{"wsalive_pairs_closed_total", []string{"route=chat", "reason=client_closed"}, closed},
		{"wsalive_handshakes_total", []string{"route=chat", "result=ok"}, opened},
		{"wsalive_handshakes_total", []string{"route=chat", "result=502"}, refused},
		{"wsalive_handshakes_total", []string{"route=_unknown", "result=404"}, 1},
		{"wsalive_heartbeat_pings_total", []string{"route=chat", "side=client"}, timeout + 1},
		{"wsalive_heartbeat_pings_total", []string{"route=chat", "side=upstream"}, 1},
		{"wsalive_heartbeat_pongs_total", []string{"route=chat", "side=client"}, 1},
		{"wsalive_heartbeat_pongs_total", []string{"route=chat", "side=upstream"}, 1},
		{"wsalive_heartbeat_misses_total", []string{"route=chat", "side=client"}, 2 * timeout},
		{"wsalive_heartbeat_misses_total", []string{"route=chat", "side=upstream"}, 0},
		{"wsalive_relayed_bytes_total", []string{"route=chat", "direction=to_upstream"}, 1024},
		{"wsalive_relayed_bytes_total", []string{"route=chat", "direction=to_client"}, 500},
		{"wsalive_relayed_frames_total", []string{"route=chat", "direction=to_upstream"}, 11},
		{"wsalive_relayed_frames_total", []string{"route=chat", "direction=to_client"}, 5},
		{"wsalive_http_requests_total", []string{"route=chat", "code=200"}, 2},
		{"wsalive_http_requests_total", []string{"route=chat", "code=404"}, 1},
		{"wsalive_config_reloads_total", []string{"result=ok"}, 1},
		{"wsalive_config_reloads_total", []string{"result=error"}, 2},
		{"wsalive_draining", nil, 1},
		{"wsalive_buffered_bytes", nil, 4096},
		{"wsalive_resume_sessions", []string{"state=attached"}, 5},
		{"wsalive_resume_sessions", []string{"state=parked"}, 2},
		{"wsalive_resume_replay_bytes", nil, 777},
		{"wsalive_resumes_total", []string{"result=resumed"}, 1},
		{"wsalive_resumes_total", []string{"result=refused_4903"}, 1},
		{"wsalive_resumes_total", []string{"result=refused_4900"}, 0},
		{"wsalive_upstream_server_up", []string{"route=chat", "server=10.0.0.1:80"}, 1},
	}
	for _, c := range checks {
		t.Run(c.name+"{"+strings.Join(c.labels, ",")+"}", func(t *testing.T) {
			if got := value(t, fams, c.name, c.labels...); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}

	t.Run("histograms", func(t *testing.T) {
		h := sample(t, fams, "wsalive_handshake_duration_seconds", "route=chat").Histogram
		if h.GetSampleCount() != opened+refused {
			t.Fatalf("handshake histogram count %d, want %d", h.GetSampleCount(), opened+refused)
		}
		if want := opened*0.002 + refused*0.030; !near(h.GetSampleSum(), want) {
			t.Fatalf("handshake histogram sum %v, want %v", h.GetSampleSum(), want)
		}
		up := sample(t, fams, "wsalive_heartbeat_rtt_seconds", "route=chat", "side=upstream").Histogram
		if up.GetSampleCount() != 1 || !near(up.GetSampleSum(), 0.0003) {
			t.Fatalf("upstream rtt histogram count %d sum %v", up.GetSampleCount(), up.GetSampleSum())
		}
		// 300µs lands in the 500µs bucket, not the 250µs one.
		for _, b := range up.Bucket {
			want := uint64(0)
			if b.GetUpperBound() >= 0.0005 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Fatalf("rtt bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	})

	t.Run("build_info", func(t *testing.T) {
		f := fams["wsalive_build_info"]
		if f == nil || len(f.Metric) != 1 || f.Metric[0].Gauge.GetValue() != 1 {
			t.Fatalf("build_info %v", f)
		}
		labels := map[string]string{}
		for _, l := range f.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != "v1.2.3" || labels["revision"] != "abc123" || !strings.HasPrefix(labels["goversion"], "go") {
			t.Fatalf("build_info labels %v", labels)
		}
	})

	t.Run("runtime-collectors", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes"} {
			if fams[name] == nil {
				t.Fatalf("%s is missing: the Go collector is not registered", name)
			}
		}
	})
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// TestPrometheusRegistriesAreIndependent: two instances (two tests, two
// engines in one process) never share figures or collide on registration.
func TestPrometheusRegistriesAreIndependent(t *testing.T) {
	a := NewPrometheus(PrometheusOptions{})
	b := NewPrometheus(PrometheusOptions{})
	a.Route("r").PairOpened()
	if got := value(t, scrape(t, a), "wsalive_pairs_open", "route=r"); got != 1 {
		t.Fatalf("a: pairs_open %v, want 1", got)
	}
	if fams := scrape(t, b); fams["wsalive_pairs_open"] != nil {
		t.Fatalf("b sees a's pairs: %v", fams["wsalive_pairs_open"])
	}
}

// TestPrometheusRouteHandleIsShared: a route's handle is resolved once and
// shared, and concurrent reporters (several loops) add up exactly.
func TestPrometheusRouteHandleIsShared(t *testing.T) {
	p := NewPrometheus(PrometheusOptions{})
	if p.Route("x") != p.Route("x") {
		t.Fatal("Route returned two handles for one route")
	}
	const loops, rounds = 4, 1000
	var wg sync.WaitGroup
	for range loops {
		wg.Go(func() {
			r := p.Route("x")
			for range rounds {
				r.Relayed(ToClient, 3, 1)
				r.PairOpened()
				r.PairClosed("idle_timeout")
			}
		})
	}
	wg.Wait()
	fams := scrape(t, p)
	if got := value(t, fams, "wsalive_relayed_bytes_total", "route=x", "direction=to_client"); got != 3*loops*rounds {
		t.Fatalf("bytes %v, want %d", got, 3*loops*rounds)
	}
	if got := value(t, fams, "wsalive_pairs_closed_total", "route=x", "reason=idle_timeout"); got != loops*rounds {
		t.Fatalf("closed %v, want %d", got, loops*rounds)
	}
	if got := value(t, fams, "wsalive_pairs_open", "route=x"); got != 0 {
		t.Fatalf("open %v, want 0", got)
	}
}

// TestRegisteredNames pins the public names: renaming one breaks
// dashboards and alerts, so it must be a deliberate change here and in
// METRICS.md.
func TestRegisteredNames(t *testing.T) {
	want := []string{
		"wsalive_buffered_bytes", "wsalive_build_info", "wsalive_config_reloads_total",
		"wsalive_draining", "wsalive_handshake_duration_seconds", "wsalive_handshakes_total",
		"wsalive_heartbeat_misses_total", "wsalive_heartbeat_pings_total", "wsalive_heartbeat_pongs_total",
		"wsalive_heartbeat_rtt_seconds", "wsalive_http_requests_total", "wsalive_pairs_closed_total",
		"wsalive_pairs_open", "wsalive_relayed_bytes_total", "wsalive_relayed_frames_total",
		"wsalive_resume_replay_bytes", "wsalive_resume_sessions", "wsalive_resumes_total",
		"wsalive_upstream_server_up",
	}
	got := NewPrometheus(PrometheusOptions{}).Names()
	var own []string
	for _, n := range got {
		if strings.HasPrefix(n, Namespace+"_") {
			own = append(own, n)
		}
	}
	if strings.Join(own, " ") != strings.Join(want, " ") {
		t.Fatalf("registered wsalive metrics:\n%v\nwant:\n%v", own, want)
	}
}

// BenchmarkRouteHandle measures what each Route method costs the caller
// (the relay's loop and the handshake goroutine), so the hot-path cost of
// metrics can be judged. Relayed is called once per loop round per pair
// that moved bytes, Ping/Pong once per heartbeat, the rest once per pair or
// handshake.
func BenchmarkRouteHandle(b *testing.B) {
	p := NewPrometheus(PrometheusOptions{})
	r := p.Route("bench")
	r.PairClosed("client_closed") // warm the caches, as a running proxy has
	r.Handshake("ok", time.Millisecond)
	cases := []struct {
		name string
		call func()
	}{
		{"Relayed", func() { r.Relayed(ToClient, 1500, 3) }},
		{"Ping", func() { r.Ping(Client) }},
		{"Pong", func() { r.Pong(Upstream, 800*time.Microsecond) }},
		{"Miss", func() { r.Miss(Client) }},
		{"PairOpened", func() { r.PairOpened() }},
		{"PairClosed", func() { r.PairClosed("client_closed") }},
		{"Handshake", func() { r.Handshake("ok", 2*time.Millisecond) }},
		{"HTTPRequest", func() { r.HTTPRequest(200) }},
		{"Nop/Relayed", func() { Nop{}.Route("").Relayed(ToClient, 1500, 3) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
		})
	}
	b.Run("Relayed/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.Relayed(ToClient, 1500, 3)
			}
		})
	})
}

// BenchmarkScrape measures one scrape of a registry with every series a
// busy process has: routes × close reasons, handshake results, both sides
// and directions, histograms filled, plus the Go and process collectors.
// The number of pairs does not matter: no series is per pair.
func BenchmarkScrape(b *testing.B) {
	for _, routes := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			p := NewPrometheus(PrometheusOptions{Version: "v1", Revision: "r"})
			reasons := []string{"client_closed", "upstream_closed", "client_gone", "upstream_gone",
				"client_protocol_error", "upstream_protocol_error", "client_frame_too_big",
				"upstream_frame_too_big", "shutdown", "client_heartbeat_timeout",
				"upstream_heartbeat_timeout", "idle_timeout", "max_lifetime"}
			for i := range routes {
				r := p.Route(fmt.Sprintf("route-%d", i))
				for _, reason := range reasons {
					r.PairOpened()
					r.PairClosed(reason)
				}
				for _, res := range []string{"ok", "404", "502", "504", "426"} {
					r.Handshake(res, time.Millisecond)
				}
				for _, s := range []Side{Client, Upstream} {
					r.Ping(s)
					r.Pong(s, time.Millisecond)
					r.Miss(s)
				}
				r.Relayed(ToClient, 1, 1)
				r.Relayed(ToUpstream, 1, 1)
			}
			h := p.Handler()
			var size int
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", "text/plain; version=0.0.4")
				h.ServeHTTP(rec, req)
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
