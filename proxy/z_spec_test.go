package proxy

import (
	"net/http"
	"time"

	"strings"
	"testing"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/internal/spectable"
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

var rfc9112Spec = []spectable.Sentence{
	spectable.S("2.2", "MUST", "A bare CR (not followed by LF) makes the element invalid, or is replaced with SP.",
		[]string{"TestRequestHeadDefects/bare-cr-in-value", "FuzzRequestHead"}, ""),
	spectable.S("2.2", "SHOULD", "A server ignores at least one empty line before the request-line.", nil,
		"not done: Go's http.ReadRequest reads an empty first line as a malformed request, answered 400"),
	spectable.S("2.2", "MUST", "Whitespace between the start-line and the first field line is rejected, or those lines are consumed unprocessed.",
		[]string{"TestRequestHeadDefects/whitespace-before-first-field", "FuzzRequestHead"}, ""),
	spectable.S("2.2", "SHOULD", "A request that does not match the HTTP-message grammar is answered 400 and the connection closed.",
		[]string{"TestClientRejections/malformed-request-line", "FuzzRequestHead"}, ""),
	spectable.S("2.3", "defines", "HTTP-version is \"HTTP/\" DIGIT \".\" DIGIT, case-sensitive (an upgrade needs HTTP/1.1 or higher, RFC 6455 §4.1; a higher 1.x minor is read as 1.1, RFC 9110 §2.5).",
		[]string{"TestClientRejections/http-1.0", "FuzzRequestHead"}, ""),
	spectable.S("3", "SHOULD", "An invalid request-line is answered 400 (or 301), never autocorrected.",
		[]string{"TestClientRejections/malformed-request-line", "TestRequestHeadDefects/double-space-in-request-line", "FuzzRequestHead"}, ""),
	spectable.S("3", "SHOULD", "Request-lines of at least 8000 octets are supported.",
		[]string{"TestHeadRulesAcceptValid/target-8000-octets"}, "the default max_header_bytes is 16 KiB"),
	spectable.S("3", "MUST", "A request-target longer than the server will parse is answered 414.", nil,
		"a target that overflows max_header_bytes is answered 431 for the whole head (TestOversizedHead), not 414"),
	spectable.S("3.1", "defines", "The method is a token.",
		[]string{"FuzzRequestHead"}, ""),
	spectable.S("3.2", "MUST", "A request with no Host field line (HTTP/1.1), more than one, or an invalid Host value is answered 400.",
		[]string{"TestClientRejections/missing-host", "TestRequestHeadDefects/two-hosts", "TestRequestHeadDefects/absolute-form-without-host", "TestRequestHeadDefects/host-with-invalid-character", "FuzzRequestHead"},
		"open: an absolute-form target without Host, and Host values outside uri-host[:port], are accepted (TestRequestHeadDefects)"),
	spectable.S("3.2.2", "MUST", "A server accepts the absolute-form.",
		[]string{"TestHeadRulesAcceptValid/absolute-form"}, ""),
	spectable.S("3.2.2", "MUST", "With an absolute-form target, the Host field is ignored for the target's host.",
		[]string{"TestHeadRulesAcceptValid/absolute-form"}, ""),
	spectable.S("5.1", "defines", "A field name is a token.",
		[]string{"TestRequestHeadDefects/space-inside-field-name", "FuzzRequestHead"},
		"open: a space inside a name is accepted (issue 12 defect 3)"),
	spectable.S("5.1", "MUST", "A request with whitespace between a field name and the colon is answered 400.",
		[]string{"TestRequestHeadDefects/space-before-colon", "TestRequestHeadDefects/tab-before-colon", "FuzzRequestHead"},
		"open for SP (issue 12 defect 3); a tab is refused"),
	spectable.S("5.1", "MUST", "A proxy removes whitespace between field name and colon from a response before forwarding it.",
		[]string{"TestUpstreamAnswerFieldSyntax/space-before-colon"},
		"net/http's Header.Write drops a field whose name is not a token, which removes the whitespace with the field"),
	spectable.S("5.1", "defines", "Leading and trailing OWS is not part of the field value.",
		[]string{"TestHeadRulesAcceptValid/ows-around-value"}, ""),
	spectable.S("5.2", "MUST", "An obs-fold in a request is rejected with 400, or replaced with SP before the value is used or forwarded.",
		[]string{"TestHeadRulesAcceptValid/obs-fold", "FuzzRequestHead"}, "replaced with SP"),
	spectable.S("5.2", "MUST", "A proxy receiving an obs-fold in a response answers 502, or replaces it with SP before forwarding.",
		[]string{"TestUpstreamAnswerFieldSyntax/obs-fold"}, ""),
	spectable.S("5.5", "MUST", "CR, LF or NUL in a field value makes the request rejected, or is replaced with SP (RFC 9110 §5.5).",
		[]string{"TestRequestHeadDefects/nul-in-value", "FuzzRequestHead"}, ""),
	spectable.S("6.3", "wsalive", "An upgrade request carries no body: neither Content-Length (other than 0) nor Transfer-Encoding; both together \"ought to be handled as an error\" (§6.3) in any request.",
		[]string{"TestClientRejections/with-body", "TestRequestHeadDefects/transfer-encoding", "TestRequestHeadDefects/content-length-and-transfer-encoding", "TestRequestHeadDefects/content-length-with-space-before-colon", "FuzzRequestHead"},
		"open: \"Content-Length : 5\" slips past (issue 12 defect 3)"),
	spectable.S("-", "wsalive", "The number of header lines is bounded (issue 12 defect 3; not an RFC sentence).",
		[]string{"TestRequestHeadDefects/3000-header-lines", "FuzzRequestHead"}, "open (issue 12 defect 3)"),
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
	problems, report := spectable.Check(t, "RFC 9112", rfc9112Spec, map[string]string{"": "."})
	for _, p := range problems {
		t.Error(p)
	}
	for _, line := range report {
		t.Log(line)
	}
}
