package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// metricName finds wsalive metric names in PromQL or prose.
var metricName = regexp.MustCompile(`\bwsalive_[a-z_]+\b`)

// series turns a name as a query uses it into the metric registered: a
// histogram is queried through its _bucket, _sum and _count series.
func series(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(base, "_seconds") {
			return base
		}
	}
	return name
}

// TestDashboardQueries checks every query of the Grafana dashboard in
// examples/grafana against the names the Prometheus implementation
// registers, so a renamed metric cannot leave a panel silently empty.
func TestDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile("../../examples/grafana/wsalive.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	registered := NewPrometheus(PrometheusOptions{}).Names()
	queries := 0
	check := func(where, expr string) {
		t.Helper()
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q names no wsalive metric", where, expr)
		}
		for _, n := range names {
			if !slices.Contains(registered, series(n)) {
				t.Errorf("%s: query uses %s, which is not registered", where, n)
			}
		}
		queries++
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && strings.Contains(q, "wsalive_") {
			check("variable "+v.Name, q)
		}
	}
	if queries < 10 {
		t.Fatalf("only %d queries found: the dashboard's shape changed?", queries)
	}
}

// TestMetricsDocument checks METRICS.md both ways: every registered
// metric is documented, and every metric the document names (in its
// table and its PromQL) exists.
func TestMetricsDocument(t *testing.T) {
	raw, err := os.ReadFile("../../METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	registered := NewPrometheus(PrometheusOptions{}).Names()
	for _, n := range registered {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("METRICS.md does not document %s", n)
		}
	}
	for _, n := range metricName.FindAllString(doc, -1) {
		if !slices.Contains(registered, series(n)) {
			t.Errorf("METRICS.md names %s, which is not registered", n)
		}
	}
}
