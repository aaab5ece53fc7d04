package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// This file holds the per-attribute conversions shared by every block: a
// string, a duration, a size, an integer in a range, a listen address. Each
// one evaluates the attribute, converts it, checks it, and on failure records
// a diagnostic whose Subject is the value as written, then reports ok=false
// so that the caller keeps the default and carries on: every problem in a
// file is gathered before Load returns.
//
// An absent attribute and one set to null (HCL's spelling of "not set") both
// leave the default in place.

// scope names the block being converted, such as `route "api"`, so that every
// message says which setting is wrong, and collects the problems found.
// Copies share the same diagnostics.
type scope struct {
	diags *hcl.Diagnostics
	path  string
}

// child returns the scope of a block nested in s, such as
// `route "api": heartbeat "client"`.
func (s scope) child(name string) scope {
	if s.path == "" {
		return scope{diags: s.diags, path: name}
	}
	return scope{diags: s.diags, path: s.path + ": " + name}
}

// fail records an error about setting (which may be empty for the block as
// a whole) at subject. The summary reads `path: setting: summary`, so it is
// complete on its own line; detail, optional, says how to fix it.
func (s scope) fail(subject hcl.Range, setting, summary, detail string) {
	var b strings.Builder
	for _, part := range []string{s.path, setting} {
		if part != "" {
			b.WriteString(part)
			b.WriteString(": ")
		}
	}
	b.WriteString(summary)
	*s.diags = append(*s.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  b.String(),
		Detail:   detail,
		Subject:  subject.Ptr(),
	})
}

// eval returns the value of attr. ok is false when attr is absent or its
// expression could not be evaluated; the latter is reported (a variable or
// function call, for instance, since the configuration holds constants
// only). A null value is returned as is.
func (s scope) eval(attr *hcl.Attribute) (v cty.Value, ok bool) {
	if attr == nil {
		return cty.NilVal, false
	}
	v, diags := attr.Expr.Value(nil)
	*s.diags = append(*s.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// value returns the value of attr when it is present, not null, and could
// be evaluated.
func (s scope) value(attr *hcl.Attribute) (cty.Value, bool) {
	v, ok := s.eval(attr)
	if !ok || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

// str converts an optional string attribute. hint, shown when the value is
// not a string, is an example of a good value.
func (s scope) str(attr *hcl.Attribute, hint string) (string, bool) {
	v, ok := s.value(attr)
	if !ok {
		return "", false
	}
	return s.asString(attr, v, hint)
}

// requiredStr is str for a setting without a default: absent or null, it
// is reported at block, the header of the block that misses it.
func (s scope) requiredStr(attr *hcl.Attribute, block hcl.Range, setting, hint string) (string, bool) {
	if attr == nil {
		s.fail(block, setting, "required setting is missing", "Add "+setting+" = "+hint+" to this block.")
		return "", false
	}
	v, ok := s.eval(attr)
	if !ok {
		return "", false
	}
	if v.IsNull() {
		s.fail(attr.Expr.Range(), setting, "required setting is null", "Set it to a value such as "+hint+".")
		return "", false
	}
	return s.asString(attr, v, hint)
}

// asString insists on a string rather than converting, because a number
// quietly turned into a string ("8080") makes a worse message later than
// "must be a string" does here.
func (s scope) asString(attr *hcl.Attribute, v cty.Value, hint string) (string, bool) {
	if v.Type() != cty.String {
		s.fail(attr.Expr.Range(), attr.Name,
			"must be a string, got "+v.Type().FriendlyName(),
			"Write it in quotes, such as "+hint+".")
		return "", false
	}
	return v.AsString(), true
}

// durationHelp explains the accepted duration syntax.
const durationHelp = `A duration is a decimal number followed by a unit ("ms", "s", "m" or "h"; also "ns", "us"), in quotes, such as "500ms", "10s" or "1m30s".`

// duration converts an optional duration attribute, written as a string
// that time.ParseDuration accepts. A bare number is refused: "5" could mean
// seconds or milliseconds, and guessing wrong is silent.
func (s scope) duration(attr *hcl.Attribute) (time.Duration, bool) {
	v, ok := s.value(attr)
	if !ok {
		return 0, false
	}
	rng := attr.Expr.Range()
	switch v.Type() {
	case cty.String:
	case cty.Number:
		s.fail(rng, attr.Name,
			fmt.Sprintf("a duration needs a unit, got the bare number %s", numberText(v)),
			durationHelp)
		return 0, false
	default:
		s.fail(rng, attr.Name, "must be a duration string, got "+v.Type().FriendlyName(), durationHelp)
		return 0, false
	}
	text := v.AsString()
	d, err := time.ParseDuration(strings.TrimSpace(text))
	if err != nil {
		// time's own message repeats the value and adds nothing that
		// durationHelp does not say.
		s.fail(rng, attr.Name,
			fmt.Sprintf("invalid duration %q: want a number with a unit, such as \"5s\"", text),
			durationHelp)
		return 0, false
	}
	return d, true
}

// positiveDuration is duration for timeouts and intervals, which must be
// greater than zero: a zero timeout would fire at once, and turning a
// safety limit off should not be one typo away.
func (s scope) positiveDuration(attr *hcl.Attribute) (time.Duration, bool) {
	d, ok := s.duration(attr)
	if !ok {
		return 0, false
	}
	if d <= 0 {
		s.fail(attr.Expr.Range(), attr.Name,
			fmt.Sprintf("must be greater than 0, got %s", d), durationHelp)
		return 0, false
	}
	return d, true
}

// durationIn is duration for a setting bounded to [lo, hi]; hi < 0 means
// no upper bound.
func (s scope) durationIn(attr *hcl.Attribute, lo, hi time.Duration) (time.Duration, bool) {
	d, ok := s.duration(attr)
	if !ok {
		return 0, false
	}
	var problem string
	switch {
	case d < 0:
		problem = fmt.Sprintf("must not be negative, got %s", d)
	case d < lo:
		problem = fmt.Sprintf("must be at least %s, got %s", lo, d)
	case hi >= 0 && d > hi:
		problem = fmt.Sprintf("must be at most %s, got %s", hi, d)
	default:
		return d, true
	}
	s.fail(attr.Expr.Range(), attr.Name, problem, "")
	return 0, false
}

// boolean converts an optional true/false attribute. The string "true" is
// refused, as a number is for a string: it is a sign of a misunderstanding
// that a silent conversion would hide.
func (s scope) boolean(attr *hcl.Attribute) (bool, bool) {
	v, ok := s.value(attr)
	if !ok {
		return false, false
	}
	if v.Type() != cty.Bool {
		s.fail(attr.Expr.Range(), attr.Name, "must be true or false, got "+v.Type().FriendlyName(),
			"Write true or false without quotes.")
		return false, false
	}
	return v.True(), true
}

// integer converts an optional whole-number attribute and checks that it
// lies in [lo, hi].
func (s scope) integer(attr *hcl.Attribute, lo, hi int64) (int64, bool) {
	v, ok := s.value(attr)
	if !ok {
		return 0, false
	}
	rng := attr.Expr.Range()
	if v.Type() != cty.Number {
		s.fail(rng, attr.Name, "must be a number, got "+v.Type().FriendlyName(), "")
		return 0, false
	}
	n, exact := wholeNumber(v)
	if !exact {
		s.fail(rng, attr.Name, "must be a whole number, got "+numberText(v), "")
		return 0, false
	}
	if n < lo || n > hi {
		s.fail(rng, attr.Name, fmt.Sprintf("must be between %d and %d, got %s", lo, hi, numberText(v)), "")
		return 0, false
	}
	return n, true
}

// sizeHelp explains the accepted size syntax.
const sizeHelp = `A size is a whole number of bytes, either as a number (16384) or as a string with a unit: "B", "KiB", "MiB", "GiB" (powers of 1024) or "KB", "MB", "GB" (powers of 1000), such as "16MiB".`

// size converts an optional size attribute, a number of bytes or a string
// with a unit, and checks that it lies in [lo, hi] bytes.
func (s scope) size(attr *hcl.Attribute, lo, hi int64) (int64, bool) {
	v, ok := s.value(attr)
	if !ok {
		return 0, false
	}
	rng := attr.Expr.Range()
	var n int64
	switch v.Type() {
	case cty.Number:
		var exact bool
		if n, exact = wholeNumber(v); !exact {
			s.fail(rng, attr.Name, "must be a whole number of bytes, got "+numberText(v), sizeHelp)
			return 0, false
		}
	case cty.String:
		var err error
		if n, err = parseSize(v.AsString()); err != nil {
			s.fail(rng, attr.Name, fmt.Sprintf("invalid size %q: %v", v.AsString(), err), sizeHelp)
			return 0, false
		}
	default:
		s.fail(rng, attr.Name, "must be a size, got "+v.Type().FriendlyName(), sizeHelp)
		return 0, false
	}
	if n < lo || n > hi {
		s.fail(rng, attr.Name,
			fmt.Sprintf("must be between %s and %s bytes, got %s", sizeText(lo), sizeText(hi), sizeText(n)), "")
		return 0, false
	}
	return n, true
}

// requiredListenAddress converts the host:port attribute that a listener
// or the admin endpoint listens on.
func (s scope) requiredListenAddress(attr *hcl.Attribute, block hcl.Range) (string, bool) {
	addr, ok := s.requiredStr(attr, block, "address", `"127.0.0.1:8080"`)
	if !ok {
		return "", false
	}
	if err := checkListenAddress(addr); err != nil {
		s.fail(attr.Expr.Range(), attr.Name, fmt.Sprintf("invalid address %q: %v", addr, err),
			`An address is host:port, such as "127.0.0.1:8080", "[::1]:8080", or ":8080" for every interface.`)
		return "", false
	}
	return addr, true
}

// checkListenAddress accepts host:port with a numeric port. The host may be
// empty (every interface) and port 0 asks the system for a free port, which
// tests use. Names are not resolved here: that is the listener's job, and a
// name that does not resolve yet at load time may well resolve at start.
func checkListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return unwrapAddrError(err)
	}
	_, err = parsePort(port)
	return err
}

// parsePort accepts a decimal port from 0 to 65535. Service names ("http")
// are refused: they depend on the host's /etc/services.
func parsePort(port string) (int, error) {
	if port == "" {
		return 0, errors.New("missing port")
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range: want 0 to 65535", port)
	}
	return n, nil
}

// sizeUnits maps a lower-cased unit to its multiplier. Matching ignores
// case: "mib" and "MiB" mean the same, and nobody configures millibits.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
}

// parseSize parses a whole number of bytes with an optional unit, such as
// "125", "64KiB", "16 MiB" or "1GB". Fractions are refused ("1.5MiB") so
// that every size is an exact byte count.
func parseSize(text string) (int64, error) {
	t := strings.TrimSpace(text)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	digits, unit := t[:i], strings.TrimSpace(t[i:])
	if digits == "" {
		return 0, errors.New("want a whole number of bytes, optionally followed by a unit")
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		if strings.HasPrefix(unit, ".") {
			return 0, errors.New("fractions are not allowed: use a smaller unit")
		}
		return 0, fmt.Errorf("unknown unit %q: want B, KiB, MiB, GiB, KB, MB or GB", unit)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// sizeText writes n bytes for a message: "125", or "16777216 (16 MiB)" when
// n is a whole number of a binary unit.
func sizeText(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d (%d %s)", n, n/u.mult, u.name)
		}
	}
	return strconv.FormatInt(n, 10)
}

// wholeNumber returns v as an int64 and whether that is exact.
func wholeNumber(v cty.Value) (int64, bool) {
	f := v.AsBigFloat()
	if !f.IsInt() {
		return 0, false
	}
	n, acc := f.Int64()
	return n, acc == big.Exact
}

// numberText writes a number value as the user would have written it.
func numberText(v cty.Value) string {
	return v.AsBigFloat().Text('g', -1)
}

// hasSpace reports whether s contains white space, which no host name, path
// prefix or address can.
func hasSpace(s string) bool {
	return strings.ContainsFunc(s, unicode.IsSpace)
}

// suggest returns the candidate that name was most likely meant to be, or
// "" when none is close: one within two edits (ignoring case), as hcl's own
// suggestions for misspelled attributes are, or else the only candidate
// that contains name ("nlb" for "aws-nlb").
func suggest(name string, candidates []string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(lower, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" || len(lower) < 3 {
		return best
	}
	for _, c := range candidates {
		if strings.Contains(c, lower) {
			if best != "" {
				return "" // ambiguous, as "aws" is
			}
			best = c
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
