// Package spectable checks tables that say which sentences of an RFC the
// tests of a package cover, in the manner of golang.org/x/net/http2's
// z_spec_test.go: every test a table names must exist (so the table cannot
// rot when tests are renamed), and the sentences no test covers are
// listed. It is used by the z_spec_test.go files of proxy and proxy/relay.
package spectable

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Sentence is one requirement and the tests that check it.
type Sentence struct {
	Section string
	Level   string // MUST, MUST NOT, SHOULD, SHOULD NOT; MAY or "defines" for the few definitions a rule rests on
	Text    string
	Tests   []string // empty: not covered
	Note    string
}

// S is a Sentence: section, level, the sentence, the tests that cover it
// (nil: none) and a note. Tables are long; positional entries keep them
// readable.
func S(section, level, text string, tests []string, note string) Sentence {
	return Sentence{Section: section, Level: level, Text: text, Tests: tests, Note: note}
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

// Check returns a problem for every test the table names that does
// not exist, and a report: the coverage, then every sentence no test
// covers.
func Check(t *testing.T, rfc string, table []Sentence, packages map[string]string) (problems, report []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	indexes := map[string]testIndex{}
	covered := 0
	for _, s := range table {
		if s.Section == "" || s.Level == "" || s.Text == "" {
			errorf("incomplete entry: %+v", s)
		}
		for _, name := range s.Tests {
			prefix := ""
			if i := strings.Index(name, "."); i >= 0 && i < strings.Index(name+"/", "/") {
				prefix = name[:i+1]
			}
			dir, ok := packages[prefix]
			if !ok {
				errorf("§%s: %q names an unknown package", s.Section, name)
				continue
			}
			idx, ok := indexes[prefix]
			if !ok {
				idx = indexTests(t, dir)
				indexes[prefix] = idx
			}
			parts := strings.Split(strings.TrimPrefix(name, prefix), "/")
			if !idx.funcs[parts[0]] {
				errorf("§%s: no test %s in %s", s.Section, parts[0], dir)
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
					errorf("§%s: no subtest %q of %s in %s", s.Section, sub, parts[0], dir)
				}
			}
		}
		if len(s.Tests) > 0 {
			covered++
		}
	}
	report = append(report, fmt.Sprintf("%s: %d of %d sentences covered by tests", rfc, covered, len(table)))
	for _, s := range table {
		if len(s.Tests) == 0 {
			report = append(report, fmt.Sprintf("not covered: §%s %s: %s (%s)", s.Section, s.Level, s.Text, s.Note))
		}
	}
	return problems, report
}
