package config

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Error is the error Load, Parse and Minimal return for a configuration that
// cannot be used. It holds every problem found, not just the first, each as
// an hcl.Diagnostic pointing at the offending text, plus the sources needed
// to show that text.
type Error struct {
	diags hcl.Diagnostics
	files map[string]*hcl.File
	cause error
}

// newError sorts diags by position, so that they read top to bottom: they
// are found in several passes (syntax, schema, values, checks across
// blocks), each in its own order.
// cause, when not nil, is the underlying error that Unwrap returns.
func newError(diags hcl.Diagnostics, files map[string]*hcl.File, cause error) *Error {
	sorted := slices.Clone(diags)
	slices.SortStableFunc(sorted, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil || b.Subject == nil:
			// Problems without a place (an unreadable file) come first.
			return cmp.Compare(btoi(a.Subject != nil), btoi(b.Subject != nil))
		case a.Subject.Filename != b.Subject.Filename:
			return strings.Compare(a.Subject.Filename, b.Subject.Filename)
		default:
			return cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte)
		}
	})
	return &Error{diags: sorted, files: files, cause: cause}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Diagnostics returns every problem, ordered by position in the file.
func (e *Error) Diagnostics() hcl.Diagnostics {
	return e.diags
}

// Unwrap returns the error that stopped loading before the file could be
// read, such as one matching fs.ErrNotExist; nil for problems in the file.
func (e *Error) Unwrap() error {
	return e.cause
}

// Error renders every problem as WriteText does, without wrapping or color.
func (e *Error) Error() string {
	if len(e.diags) == 0 {
		return "invalid configuration"
	}
	var b strings.Builder
	_ = e.WriteText(&b, 0, false) // a strings.Builder does not fail
	return strings.TrimRight(b.String(), "\n")
}

// WriteText writes every problem to w, each starting with its position as
// file:line,col-col, followed by hcl's rendering: the message, the source
// line with the offending text, and the detail. The first line of the output
// is thus a complete, grep-able message. width wraps the detail text (0 for
// no wrapping); color adds terminal escape codes, for `wsalive validate` on
// a terminal.
func (e *Error) WriteText(w io.Writer, width uint, color bool) error {
	tw := hcl.NewDiagnosticTextWriter(w, e.files, width, color)
	for _, d := range e.diags {
		if d.Subject != nil {
			if _, err := fmt.Fprintf(w, "%s: ", d.Subject); err != nil {
				return err
			}
		}
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
	}
	return nil
}
