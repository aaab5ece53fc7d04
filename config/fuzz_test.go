package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// FuzzParse feeds Parse arbitrary files. It must not panic; a file it
// accepts gives a usable Config; every problem it reports points at a place
// in the file (file:line:col, within the source) so the user can find it;
// and the same file gives the same answer twice.
//
// Short run (CI): go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 20s -fuzzminimizetime 100x ./config
// Long run:       go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 30m -fuzzminimizetime 100x ./config
//
// Seeds: every testdata/*.hcl (the golden files, so new settings are
// fuzzed as soon as they have a golden test) plus testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatal("no testdata/*.hcl to seed from")
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkParse(t, src)
	})
}

// fuzzFilename is the name FuzzParse gives its input.
const fuzzFilename = "fuzz.hcl"

func checkParse(t *testing.T, src []byte) {
	cfg, err := Parse(fuzzFilename, src)
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither a Config nor an error")
		}
		if len(cfg.Listeners) == 0 || len(cfg.Routes) == 0 {
			t.Fatalf("accepted a configuration with %d listeners and %d routes", len(cfg.Listeners), len(cfg.Routes))
		}
		for _, r := range cfg.Routes {
			if r == nil || r.Upstream.Address == "" {
				t.Fatalf("accepted a route without an upstream address: %+v", r)
			}
		}
		again, err := Parse(fuzzFilename, src)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("the same file parsed twice gives different answers: %v", err)
		}
		return
	}
	if cfg != nil {
		t.Fatalf("Parse returned a Config and an error: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not a *config.Error: %v", err, err)
	}
	diags := e.Diagnostics()
	if len(diags) == 0 {
		t.Fatalf("an error without diagnostics: %v", err)
	}
	for _, d := range diags {
		checkDiagPosition(t, d, map[string][]byte{fuzzFilename: src})
	}
	var e2 *Error
	if _, err2 := Parse(fuzzFilename, src); !errors.As(err2, &e2) || !sameDiagnostics(diags, e2.Diagnostics()) {
		t.Fatalf("the same file parsed twice gives different errors:\n%v\n---\n%v", diags, err2)
	}
	// The rendering leads with the position: a problem can be found from
	// its first line alone. Rendering shows each problem's source line, so
	// its size grows with problems times line length (a long line of bad
	// characters renders megabytes: TestErrorTextSize); only render where
	// that stays small, so the fuzzer spends its time on parsing.
	if len(diags)*len(src) <= 1<<20 {
		if text := err.Error(); !strings.HasPrefix(text, fuzzFilename+":") {
			t.Fatalf("the error text does not start with the position:\n%s", text)
		}
	}
}

// sameDiagnostics compares what the user is told: summaries, details and
// places.
func sameDiagnostics(a, b hcl.Diagnostics) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Summary != b[i].Summary || a[i].Detail != b[i].Detail || (a[i].Subject == nil) != (b[i].Subject == nil) ||
			(a[i].Subject != nil && *a[i].Subject != *b[i].Subject) {
			return false
		}
	}
	return true
}

// checkDiagPosition: d points at a place in one of files, as file:line:col
// with the line and column counted as hcl counts them (from 1, columns in
// characters), and with its byte offsets inside that file.
func checkDiagPosition(t *testing.T, d *hcl.Diagnostic, files map[string][]byte) {
	t.Helper()
	if d.Severity != hcl.DiagError {
		return // warnings are not the reason of the error
	}
	s := d.Subject
	if s == nil {
		t.Fatalf("diagnostic without a position: %s: %s", d.Summary, d.Detail)
	}
	src, ok := files[s.Filename]
	if !ok {
		t.Fatalf("diagnostic %q points into %q, which is not the input", d.Summary, s.Filename)
	}
	if s.Start.Line < 1 || s.Start.Column < 1 || s.End.Line < s.Start.Line {
		t.Fatalf("diagnostic %q at a position that does not exist: %s", d.Summary, s)
	}
	if s.Start.Byte < 0 || s.Start.Byte > len(src) || s.End.Byte < s.Start.Byte || s.End.Byte > len(src) {
		t.Fatalf("diagnostic %q at bytes %d-%d of a %d-byte file", d.Summary, s.Start.Byte, s.End.Byte, len(src))
	}
	// The line and column agree with the byte offset. Not after invalid
	// UTF-8: hcl then miscounts lines (and so columns), an open defect
	// pinned by TestParseLineAfterInvalidUTF8.
	before := src[:s.Start.Byte]
	if !utf8.Valid(before) {
		return
	}
	line := 1 + strings.Count(string(before), "\n")
	if line != s.Start.Line {
		t.Fatalf("diagnostic %q says line %d; byte %d is on line %d", d.Summary, s.Start.Line, s.Start.Byte, line)
	}
	lineStart := strings.LastIndexByte(string(before), '\n') + 1
	// hcl counts columns in grapheme clusters, so only check lines of
	// ASCII before the position, where each byte is one.
	if col := string(before[lineStart:]); isASCII(col) && !strings.ContainsAny(col, "\r\t") && len(col)+1 != s.Start.Column {
		t.Fatalf("diagnostic %q says column %d; byte %d is column %d", d.Summary, s.Start.Column, s.Start.Byte, len(col)+1)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzMinimal feeds Minimal (the configuration `wsalive run -listen ...
// -upstream ...` builds) arbitrary flag values: no panic, and every problem
// points into the flag it is about, as if the flag were a one-line file.
//
// Short run: go test -run '^$' -fuzz '^FuzzMinimal$' -fuzztime 20s -fuzzminimizetime 100x ./config
func FuzzMinimal(f *testing.F) {
	f.Add("127.0.0.1:8080", "ws://127.0.0.1:3000")
	f.Add(":0", "localhost:3000")
	f.Add("[::1]:http", "wss://[::1]:443/path?q")
	f.Add("", "ftp://x")
	f.Add("127.0.0.1:99999", "ws://h\x00st:3000")
	f.Fuzz(func(t *testing.T, listen, upstream string) {
		cfg, err := Minimal(listen, upstream)
		if err == nil {
			if cfg == nil || len(cfg.Listeners) != 1 || len(cfg.Routes) != 1 || cfg.Routes[0].Upstream.Address == "" {
				t.Fatalf("accepted, but the Config is not one listener and one routed upstream: %+v", cfg)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Diagnostics()) == 0 {
			t.Fatalf("error without diagnostics: %T %v", err, err)
		}
		for _, d := range e.Diagnostics() {
			checkDiagPosition(t, d, map[string][]byte{"-listen": []byte(listen), "-upstream": []byte(upstream)})
		}
	})
}

// openInvalidUTF8Lines names the open defect TestParseLineAfterInvalidUTF8
// pins; empty once fixed.
var openInvalidUTF8Lines = "new: hcl miscounts lines after invalid UTF-8 (reported by the fuzz branch, no issue yet)"

// TestParseLineAfterInvalidUTF8 pins a defect FuzzParse found: after two
// invalid UTF-8 bytes that end a line, hcl's scanner loses that newline, so
// every later problem is reported one line too early. Here "t" is on line
// 3 and reported on line 2. The bytes are what a Latin-1 editor writes for
// "ê" twice. Open: the case is skipped while the defect is there and fails
// once it is gone (clear openInvalidUTF8Lines then, so it guards the fix).
// A fix on wsalive's side: refuse a file that is not UTF-8 up front, with
// the position of its first bad byte.
func TestParseLineAfterInvalidUTF8(t *testing.T) {
	src := []byte("m = 1\xea\xea\na = false\nt")
	_, err := Parse(fuzzFilename, src)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *config.Error, got %v", err)
	}
	wrong := false
	for _, d := range e.Diagnostics() {
		if s := d.Subject; s != nil && s.Start.Line != 1+strings.Count(string(src[:s.Start.Byte]), "\n") {
			wrong = true
			if openInvalidUTF8Lines == "" {
				t.Errorf("%q reported on line %d; byte %d is on line %d", d.Summary, s.Start.Line, s.Start.Byte,
					1+strings.Count(string(src[:s.Start.Byte]), "\n"))
			}
		}
	}
	switch {
	case wrong && openInvalidUTF8Lines != "":
		t.Skipf("known defect (%s)", openInvalidUTF8Lines)
	case !wrong && openInvalidUTF8Lines != "":
		t.Fatalf("every line is right now: the defect (%s) is fixed; clear openInvalidUTF8Lines", openInvalidUTF8Lines)
	}
}

// openErrorTextSize names the open defect TestErrorTextSize pins; empty
// once fixed.
var openErrorTextSize = "new: error text grows with problems times line length (reported by the fuzz branch, no issue yet)"

// TestErrorTextSize pins a defect FuzzParse found (its worker ran out of
// time rendering the error): hcl reports every bad character of a line as
// its own problem, and the error text shows the whole line under each, so
// a 2 KB line of control characters becomes some 4 MB of text (16 MB for
// 4 KB: it grows with the square of the line), printed by
// `wsalive validate` and logged on reload. Expected: the text stays within
// a small multiple of the file (here 256 KB), e.g. by listing the first
// problems of a line and counting the rest. Skipped while open; fails once
// fixed, so that openErrorTextSize is cleared and the case guards the fix.
func TestErrorTextSize(t *testing.T) {
	src := []byte("$\xfd" + strings.Repeat("\x1e", 2000) + "\xf3\xfd\xfd$")
	_, err := Parse(fuzzFilename, src)
	if err == nil {
		t.Fatal("accepted")
	}
	const limit = 256 << 10
	size := len(err.Error())
	switch {
	case size > limit && openErrorTextSize == "":
		t.Fatalf("a %d-byte file gives %d bytes of error text; want at most %d", len(src), size, limit)
	case size > limit:
		t.Skipf("known defect (%s): a %d-byte file gives %d bytes of error text", openErrorTextSize, len(src), size)
	case openErrorTextSize != "":
		t.Fatalf("%d bytes of error text now: the defect (%s) is fixed; clear openErrorTextSize", size, openErrorTextSize)
	}
}
