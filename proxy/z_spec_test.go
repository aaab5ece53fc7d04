package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wsalive/wsalive/config"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// This file says which requirements of RFC 9112 §2-§5 (message format,
// request line, field lines) on a request head the tests cover, in the
// manner of golang.org/x/net/http2's z_spec_test.go, and lists the ones
// they do not. The sentences are paraphrased, one MUST/SHOULD each, with
// their section; wsalive is the server that parses the head (§4, the
// status line, is what it writes: TestClientRejections reads every answer
// with net/http, which refuses a malformed status line).
//
// Read it with: go test -run TestSpecCoverage -v ./proxy
//
// TestSpecCoverage fails when a test named here does not exist. Names are
// "TestX" or "TestX/subtest" of this package; a subtest element must appear
// in a string literal of its tests. The helpers are a copy of
// proxy/relay/z_spec_test.go's: test code cannot be shared between
// packages without a package of its own.

// specSentence is one requirement and the tests that check it.
type specSentence struct {
	section string
	level   string // MUST, MUST NOT, SHOULD, SHOULD NOT; "defines" for the grammar a rule rests on, "wsalive" for its own rules
	text    string
	tests   []string // empty: not covered
	note    string
}

var rfc9112Spec = []specSentence{
	{"2.2", "MUST", "A bare CR (not followed by LF) makes the element invalid, or is replaced with SP.",
		[]string{"TestRequestHeadDefects/bare-cr-in-value", "FuzzRequestHead"}, ""},
	{"2.2", "SHOULD", "A server ignores at least one empty line before the request-line.", nil,
		"not done: Go's http.ReadRequest reads an empty first line as a malformed request, answered 400"},
	{"2.2", "MUST", "Whitespace between the start-line and the first field line is rejected, or those lines are consumed unprocessed.",
		[]string{"TestRequestHeadDefects/whitespace-before-first-field", "FuzzRequestHead"}, ""},
	{"2.2", "SHOULD", "A request that does not match the HTTP-message grammar is answered 400 and the connection closed.",
		[]string{"TestClientRejections/malformed-request-line", "FuzzRequestHead"}, ""},
	{"2.3", "defines", "HTTP-version is \"HTTP/\" DIGIT \".\" DIGIT, case-sensitive (an upgrade needs HTTP/1.1, RFC 6455 §4.1).",
		[]string{"TestClientRejections/http-1.0", "FuzzRequestHead"}, ""},
	{"3", "SHOULD", "An invalid request-line is answered 400 (or 301), never autocorrected.",
		[]string{"TestClientRejections/malformed-request-line", "TestRequestHeadDefects/double-space-in-request-line", "FuzzRequestHead"}, ""},
	{"3", "SHOULD", "Request-lines of at least 8000 octets are supported.",
		[]string{"TestHeadRulesAcceptValid/target-8000-octets"}, "the default max_header_bytes is 16 KiB"},
	{"3", "MUST", "A request-target longer than the server will parse is answered 414.", nil,
		"a target that overflows max_header_bytes is answered 431 for the whole head (TestOversizedHead), not 414"},
	{"3.1", "defines", "The method is a token.",
		[]string{"FuzzRequestHead"}, ""},
	{"3.2", "MUST", "A request with no Host field line (HTTP/1.1), more than one, or an invalid Host value is answered 400.",
		[]string{"TestClientRejections/missing-host", "TestRequestHeadDefects/two-hosts", "TestRequestHeadDefects/absolute-form-without-host", "TestRequestHeadDefects/host-with-invalid-character", "FuzzRequestHead"},
		"open: an absolute-form target without Host, and Host values outside uri-host[:port], are accepted (TestRequestHeadDefects)"},
	{"3.2.2", "MUST", "A server accepts the absolute-form.",
		[]string{"TestHeadRulesAcceptValid/absolute-form"}, ""},
	{"3.2.2", "MUST", "With an absolute-form target, the Host field is ignored for the target's host.",
		[]string{"TestHeadRulesAcceptValid/absolute-form"}, ""},
	{"5.1", "defines", "A field name is a token.",
		[]string{"TestRequestHeadDefects/space-inside-field-name", "FuzzRequestHead"},
		"open: a space inside a name is accepted (issue 12 defect 3)"},
	{"5.1", "MUST", "A request with whitespace between a field name and the colon is answered 400.",
		[]string{"TestRequestHeadDefects/space-before-colon", "TestRequestHeadDefects/tab-before-colon", "FuzzRequestHead"},
		"open for SP (issue 12 defect 3); a tab is refused"},
	{"5.1", "MUST", "A proxy removes whitespace between field name and colon from a response before forwarding it.",
		[]string{"TestUpstreamAnswerFieldSyntax/space-before-colon"},
		"net/http's Header.Write drops a field whose name is not a token, which removes the whitespace with the field"},
	{"5.1", "defines", "Leading and trailing OWS is not part of the field value.",
		[]string{"TestHeadRulesAcceptValid/ows-around-value"}, ""},
	{"5.2", "MUST", "An obs-fold in a request is rejected with 400, or replaced with SP before the value is used or forwarded.",
		[]string{"TestHeadRulesAcceptValid/obs-fold", "FuzzRequestHead"}, "replaced with SP"},
	{"5.2", "MUST", "A proxy receiving an obs-fold in a response answers 502, or replaces it with SP before forwarding.",
		[]string{"TestUpstreamAnswerFieldSyntax/obs-fold"}, ""},
	{"5.5", "MUST", "CR, LF or NUL in a field value makes the request rejected, or is replaced with SP (RFC 9110 §5.5).",
		[]string{"TestRequestHeadDefects/nul-in-value", "FuzzRequestHead"}, ""},
	{"6.3", "wsalive", "An upgrade request carries no body: neither Content-Length (other than 0) nor Transfer-Encoding; both together \"ought to be handled as an error\" (§6.3) in any request.",
		[]string{"TestClientRejections/with-body", "TestRequestHeadDefects/transfer-encoding", "TestRequestHeadDefects/content-length-and-transfer-encoding", "TestRequestHeadDefects/content-length-with-space-before-colon", "FuzzRequestHead"},
		"open: \"Content-Length : 5\" slips past (issue 12 defect 3)"},
	{"-", "wsalive", "The number of header lines is bounded (issue 12 defect 3; not an RFC sentence).",
		[]string{"TestRequestHeadDefects/3000-header-lines", "FuzzRequestHead"}, "open (issue 12 defect 3)"},
}

// TestUpstreamAnswerFieldSyntax has the upstream refuse the upgrade with
// field lines a proxy must not forward as they came (RFC 9112 §5.1, §5.2):
// the client must get them repaired (or dropped) or a 502.
func TestUpstreamAnswerFieldSyntax(t *testing.T) {
	for _, c := range []struct{ name, field string }{
		{"space-before-colon", "X-Foo : bar\r\n"},
		{"obs-fold", "X-Folded: a\r\n b\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := startRawUpstream(t, answerWith(func(*http.Request) string {
				return "HTTP/1.1 403 Forbidden\r\n" + c.field + "Content-Length: 2\r\n\r\nno"
			}))
			p := startProxy(t, []*config.Route{testRoute(c.name, u.addr, 2*time.Second)}, config.Listener{}, true)
			ex := roundTrip(t, p.addr, upgradeRequest("/", "x", ""))
			defer expectClosed(t, ex.conn, ex.br)
			if ex.resp.StatusCode == http.StatusBadGateway {
				return // refused whole: allowed
			}
			var bad []string
			for _, line := range strings.Split(ex.head, "\r\n")[1:] {
				name, _, _ := strings.Cut(line, ":")
				if line != "" && (line[0] == ' ' || line[0] == '\t' || strings.TrimRight(name, " \t") != name) {
					bad = append(bad, line)
				}
			}
			if len(bad) > 0 {
				t.Fatalf("forwarded %q as it came; want it repaired or 502", bad)
			}
		})
	}
}

func TestSpecCoverage(t *testing.T) {
	problems, report := checkSpecTable(t, "RFC 9112", rfc9112Spec, map[string]string{"": "."})
	for _, p := range problems {
		t.Error(p)
	}
	for _, line := range report {
		t.Log(line)
	}
}

// testIndex is what the tests of one package are called.
type testIndex struct {
	funcs    map[string]bool // top-level Test and Fuzz functions
	literals []string        // string literals, as subtest names are made of them
}

func indexTests(t *testing.T, dir string) testIndex {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no tests in %s: %v", dir, err)
	}
	idx := testIndex{funcs: map[string]bool{}}
	fset := token.NewFileSet()
	for _, name := range files {
		// The tables name every subtest; they must not vouch for them.
		tables := filepath.Base(name) == "z_spec_test.go"
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Recv == nil && (strings.HasPrefix(n.Name.Name, "Test") || strings.HasPrefix(n.Name.Name, "Fuzz")) {
					idx.funcs[n.Name.Name] = true
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING && !tables {
					if s, err := strconv.Unquote(n.Value); err == nil {
						// t.Run turns spaces into underscores.
						idx.literals = append(idx.literals, strings.ReplaceAll(s, " ", "_"))
					}
				}
			}
			return true
		})
	}
	return idx
}

// checkSpecTable returns a problem for every test the table names that does
// not exist, and a report: the coverage, then every sentence no test
// covers.
func checkSpecTable(t *testing.T, rfc string, table []specSentence, packages map[string]string) (problems, report []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	indexes := map[string]testIndex{}
	covered := 0
	for _, s := range table {
		if s.section == "" || s.level == "" || s.text == "" {
			errorf("incomplete entry: %+v", s)
		}
		for _, name := range s.tests {
			prefix := ""
			if i := strings.Index(name, "."); i >= 0 && i < strings.Index(name+"/", "/") {
				prefix = name[:i+1]
			}
			dir, ok := packages[prefix]
			if !ok {
				errorf("§%s: %q names an unknown package", s.section, name)
				continue
			}
			idx, ok := indexes[prefix]
			if !ok {
				idx = indexTests(t, dir)
				indexes[prefix] = idx
			}
			parts := strings.Split(strings.TrimPrefix(name, prefix), "/")
			if !idx.funcs[parts[0]] {
				errorf("§%s: no test %s in %s", s.section, parts[0], dir)
				continue
			}
			for _, sub := range parts[1:] {
				found := false
				for _, lit := range idx.literals {
					if strings.Contains(lit, sub) {
						found = true
						break
					}
				}
				if !found {
					errorf("§%s: no subtest %q of %s in %s", s.section, sub, parts[0], dir)
				}
			}
		}
		if len(s.tests) > 0 {
			covered++
		}
	}
	report = append(report, fmt.Sprintf("%s: %d of %d sentences covered by tests", rfc, covered, len(table)))
	for _, s := range table {
		if len(s.tests) == 0 {
			report = append(report, fmt.Sprintf("not covered: §%s %s: %s (%s)", s.section, s.level, s.text, s.note))
		}
	}
	return problems, report
}
