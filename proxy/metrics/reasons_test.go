package metrics_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wsalive/wsalive/proxy/relay"
)

// TestMetricsDocumentReasons checks METRICS.md's close-reason list against
// the relay's taxonomy both ways, so a reason the engine gains (drain did)
// cannot reach dashboards undocumented. It lives outside package metrics
// because the relay imports metrics.
func TestMetricsDocumentReasons(t *testing.T) {
	raw, err := os.ReadFile("../../METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "### Close reasons (`reason`)")
	if !ok {
		t.Fatal("METRICS.md has no close reasons section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	// The reasons are the first column of the section's table.
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	var want []string
	for _, r := range relay.Reasons() {
		want = append(want, r.String())
		if !slices.Contains(documented, r.String()) {
			t.Errorf("METRICS.md does not list close reason %q", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(want, d) {
			t.Errorf("METRICS.md lists close reason %q, which the relay does not have", d)
		}
	}
}
