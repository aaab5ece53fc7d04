package proxy

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
)

// parseHeadCases are valid heads of the shapes parseHead takes itself.
var parseHeadCases = map[string]string{
	"upgrade":        wsHead("GET /chat?room=1 HTTP/1.1", ""),
	"bench":          string(benchRequest),
	"lf-only":        strings.ReplaceAll(wsHead("GET /chat?x=1 HTTP/1.1", "X-A: b\r\n"), "\r\n", "\n"),
	"ows":            wsHead("GET / HTTP/1.1", "X-A: \t b \t\r\nX-Empty:\r\nX-Tab:\tv\r\n"),
	"repeated":       wsHead("GET / HTTP/1.1", "X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nCookie: a=1\r\nCookie: b=2\r\n"),
	"lower-case":     "GET /x HTTP/1.1\r\nhost: example.com\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nSEC-WEBSOCKET-PROTOCOL: a, b\r\nsec-WebSocket-extensions: x; y=1\r\n\r\n",
	"pragma":         wsHead("GET / HTTP/1.1", "Pragma: no-cache\r\n"),
	"pragma-and-cc":  wsHead("GET / HTTP/1.1", "Pragma: no-cache\r\nCache-Control: max-age=0\r\n"),
	"escaped-path":   wsHead("GET /a%20b/%2F/c?q=%41&r HTTP/1.1", ""),
	"obs-text":       wsHead("GET / HTTP/1.1", "X-Latin: caf\xe9\r\n"),
	"http10":         "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"http10-ka":      "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
	"close":          "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"http18":         wsHead("GET / HTTP/1.8", ""),
	"no-fields":      "GET / HTTP/1.1\r\n\r\n",
	"odd-method":     "M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n",
	"ipv6-host":      strings.Replace(wsHead("GET / HTTP/1.1", ""), "example.com", "[::1]:8080", 1),
	"canonical-mess": wsHead("GET / HTTP/1.1", "x-a-B-c: 1\r\nX_Under: 2\r\nX--Dash: 3\r\n"),
}

// TestParseHeadMatchesReadRequest: for valid heads, parseHead yields what
// http.ReadRequest does: method, target, version, host, header, close.
func TestParseHeadMatchesReadRequest(t *testing.T) {
	for name, head := range parseHeadCases {
		t.Run(name, func(t *testing.T) {
			got, ok := parseHead([]byte(head))
			if !ok {
				t.Fatalf("parseHead refused a head it should take:\n%q", head)
			}
			sameRequest(t, []byte(head), got)
		})
	}
}

// sameRequest fails t unless got is what http.ReadRequest makes of head.
func sameRequest(t *testing.T, head []byte, got *http.Request) {
	t.Helper()
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("parseHead took a head http.ReadRequest refuses (%v):\n%q", err, head)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"method", got.Method, want.Method},
		{"URL", *got.URL, *want.URL},
		{"RequestURI", got.RequestURI, want.RequestURI},
		{"proto", got.Proto, want.Proto},
		{"major", got.ProtoMajor, want.ProtoMajor},
		{"minor", got.ProtoMinor, want.ProtoMinor},
		{"host", got.Host, want.Host},
		{"close", got.Close, want.Close},
		{"content length", got.ContentLength, want.ContentLength},
		{"transfer encoding", got.TransferEncoding, want.TransferEncoding},
		{"body", got.Body, want.Body},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: %#v, http.ReadRequest: %#v", f.name, f.got, f.want)
		}
	}
	if !maps.EqualFunc(got.Header, want.Header, func(a, b []string) bool { return reflect.DeepEqual(a, b) }) {
		t.Errorf("header:\n%q\nhttp.ReadRequest:\n%q", got.Header, want.Header)
	}
}

// TestParseHeadLeavesToReadRequest: the shapes parseHead does not parse
// itself go to http.ReadRequest (readHead's fallback).
func TestParseHeadLeavesToReadRequest(t *testing.T) {
	for name, head := range map[string]string{
		"absolute-form":      wsHead("GET http://example.com/chat HTTP/1.1", ""),
		"asterisk":           "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"authority":          "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"content-length":     wsHead("GET / HTTP/1.1", "Content-Length: 0\r\n"),
		"transfer-encoding":  wsHead("GET / HTTP/1.1", "Transfer-Encoding: chunked\r\n"),
		"obs-fold":           wsHead("GET / HTTP/1.1", "X-Folded: one\r\n\ttwo\r\n"),
		"two-hosts":          wsHead("GET / HTTP/1.1", "Host: other.example\r\n"),
		"bare-cr":            wsHead("GET / HTTP/1.1", "X-Foo: a\rb\r\n"),
		"nul":                wsHead("GET / HTTP/1.1", "X-Foo: a\x00b\r\n"),
		"space-in-name":      wsHead("GET / HTTP/1.1", "X Foo: bar\r\n"),
		"space-before-colon": wsHead("GET / HTTP/1.1", "X-Foo : bar\r\n"),
		"bad-version":        wsHead("GET / HTTP/1.x", ""),
		"double-space":       wsHead("GET  / HTTP/1.1", ""),
		"ctl-in-target":      wsHead("GET /\x01 HTTP/1.1", ""),
		"no-end":             "GET / HTTP/1.1\r\nHost: a\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := parseHead([]byte(head)); ok {
				t.Fatalf("parseHead took it:\n%q", head)
			}
		})
	}
}

// FuzzParseHead checks parseHead against http.ReadRequest on any input:
// whatever parseHead takes, http.ReadRequest takes too and reads the
// same; and the front door's head reading accepts exactly the heads it
// accepted with http.ReadRequest. The seeds are parseHeadCases and
// FuzzRequestHead's seed table.
//
// go test -run '^$' -fuzz '^FuzzParseHead$' -fuzztime 60s ./proxy
func FuzzParseHead(f *testing.F) {
	for _, head := range parseHeadCases {
		f.Add([]byte(head))
	}
	for _, head := range headSeeds() {
		f.Add([]byte(head))
	}
	for _, d := range headDefects {
		f.Add([]byte(d.raw))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		if got, ok := parseHead(head); ok {
			sameRequest(t, head, got)
		}
		// The front door (readHead, then checkHeadLines) accepts what it
		// accepted when it read heads with http.ReadRequest, and reads the
		// same request from it.
		got, accepted := acceptedHead(head, func(c *headFuzzConn, hr *headReader) (*http.Request, bool) {
			req, rej, err := readHead(c, hr, time.Now().Add(time.Hour))
			return req, err == nil && rej == nil
		})
		want, wasAccepted := acceptedHead(head, func(_ *headFuzzConn, hr *headReader) (*http.Request, bool) {
			req, err := http.ReadRequest(hr.br)
			return req, err == nil
		})
		if accepted != wasAccepted {
			t.Fatalf("accepted %v, with http.ReadRequest %v:\n%q", accepted, wasAccepted, head)
		}
		if accepted && (got.Method != want.Method || *got.URL != *want.URL || got.Host != want.Host ||
			!maps.EqualFunc(got.Header, want.Header, slices.Equal)) {
			t.Fatalf("read %v %v %v %q, with http.ReadRequest %v %v %v %q:\n%q",
				got.Method, got.URL, got.Host, got.Header, want.Method, want.URL, want.Host, want.Header, head)
		}
	})
}

// acceptedHead reads raw with read as the front door does, and reports
// whether the head passed (checkHeadLines included).
func acceptedHead(raw []byte, read func(*headFuzzConn, *headReader) (*http.Request, bool)) (*http.Request, bool) {
	c := &headFuzzConn{r: bytes.NewReader(raw)}
	hr := getHeadReader(c, fuzzHeadLimit)
	defer putHeadReader(hr)
	req, ok := read(c, hr)
	if !ok || checkHeadLines(hr.head(), config.DefaultMaxHeaderLines) != nil {
		return nil, false
	}
	return req, true
}

func BenchmarkParseHead(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseHead(benchRequest); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkReadRequestHead(b *testing.B) {
	b.ReportAllocs()
	r := bytes.NewReader(benchRequest)
	br := bufio.NewReader(r)
	for b.Loop() {
		r.Reset(benchRequest)
		br.Reset(r)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadHeadRefusesAtTheLine: a line http.ReadRequest refuses is
// answered 400 as soon as it has arrived, not after the head's end (here
// the client sends no more: it would be a timeout, or an EOF).
func TestReadHeadRefusesAtTheLine(t *testing.T) {
	for name, raw := range map[string]string{
		"request-line":          "BAD\r\n",
		"double-space":          "GET  / HTTP/1.1\r\n",
		"bad-version":           "GET / HTTP/1.x\r\n",
		"control-in-target":     "GET /\x01 HTTP/1.1\r\n",
		"method-not-token":      "G(T / HTTP/1.1\r\n",
		"space-in-name":         "GET / HTTP/1.1\r\nX Foo: bar\r\n",
		"no-colon":              "GET / HTTP/1.1\r\nHost: a\r\nX-Foo\r\n",
		"nul-in-value":          "GET / HTTP/1.1\r\nX-Foo: a\x00b\r\n",
		"bare-cr-in-value":      "GET / HTTP/1.1\r\nX-Foo: a\rb\r\n",
		"first-field-folded":    "GET / HTTP/1.1\r\n Host: a\r\n",
		"control-in-continued":  "GET / HTTP/1.1\r\nX-Foo: a\r\n b\x01\r\n",
		"empty-name":            "GET / HTTP/1.1\r\n: a\r\n",
		"leading-empty-line":    "\r\nGET / HTTP/1.1\r\n",
		"line-longer-than-buf":  "GET / HTTP/1.1\r\nX-Long: " + strings.Repeat("a", 2*headReaderSize) + "\x00\r\n",
		"request-line-over-buf": "GET /" + strings.Repeat("a", 2*headReaderSize) + " HTTP/1.x\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := &headFuzzConn{r: bytes.NewReader([]byte(raw))}
			hr := getHeadReader(c, fuzzHeadLimit)
			defer putHeadReader(hr)
			_, rej, err := readHead(c, hr, time.Now().Add(time.Hour))
			if err != nil || rej == nil || rej.status != http.StatusBadRequest {
				t.Fatalf("rejection %v, err %v; want 400 at the line", rej, err)
			}
		})
	}
}
