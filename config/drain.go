package config

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// buildDrain converts the drain block into d, which holds the defaults.
func (s scope) buildDrain(b *drainBlock, d *Drain) {
	if v, ok := s.durationIn(b.Delay, 0, maxDrainDuration); ok {
		d.Delay = v
	}
	if v, ok := s.durationIn(b.Window, 0, maxDrainDuration); ok {
		d.Window = v
	}
	if n, ok := s.integer(b.CloseCode, 1000, 4999); ok {
		if err := checkDrainCloseCode(n); err != nil {
			s.fail(b.CloseCode.Expr.Range(), b.CloseCode.Name, err.Error(),
				"Use 1012 (service restart, the default), 1001 (going away), or an application code from 4000 to 4999.")
		} else {
			d.CloseCode = uint16(n)
		}
	}
}

// checkDrainCloseCode refuses the codes RFC 6455 §7.4.1 reserves for
// endpoints to report, never to send: 1004 (reserved), 1005 (no status),
// 1006 (abnormal closure) and 1015 (TLS handshake failure).
func checkDrainCloseCode(n int64) error {
	switch n {
	case 1004, 1005, 1006, 1015:
		return fmt.Errorf("close code %d must not be sent in a close frame (RFC 6455 §7.4.1)", n)
	}
	return nil
}

// logLevel converts the optional top-level log_level attribute.
func (s scope) logLevel(attr *hcl.Attribute) (slog.Level, bool) {
	text, ok := s.str(attr, `"info"`)
	if !ok {
		return 0, false
	}
	var lvl slog.Level
	switch strings.ToLower(text) {
	case "debug", "info", "warn", "error":
		lvl.UnmarshalText([]byte(text))
		return lvl, true
	}
	s.fail(attr.Expr.Range(), attr.Name, fmt.Sprintf("invalid log level %q", text),
		`The log level is one of "debug", "info", "warn" or "error".`)
	return 0, false
}

// StaticChanges lists, one line each, the static settings that differ
// between the running configuration old and a newly loaded next: what a
// reload cannot apply and must report as needing a restart.
func StaticChanges(old, next *Config) []string {
	var out []string
	change := func(setting string, from, to any) {
		if from != to {
			out = append(out, fmt.Sprintf("%s: %v -> %v", setting, from, to))
		}
	}
	adminAddr := func(a *Admin) string {
		if a == nil {
			return "(none)"
		}
		return a.Address
	}
	adminPprof := func(a *Admin) bool { return a != nil && a.Pprof }
	change("admin.address", adminAddr(old.Admin), adminAddr(next.Admin))
	change("admin.pprof", adminPprof(old.Admin), adminPprof(next.Admin))
	change("engine.loops", old.Engine.Loops, next.Engine.Loops)
	change("engine.io_uring", old.Engine.IOUring, next.Engine.IOUring)
	change("limits.max_handshakes", old.Limits.MaxHandshakes, next.Limits.MaxHandshakes)
	change("limits.max_handshakes_per_client_ip", old.Limits.MaxHandshakesPerClientIP, next.Limits.MaxHandshakesPerClientIP)
	change("limits.resume_memory", old.Limits.ResumeMemory, next.Limits.ResumeMemory)
	return out
}
