package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// This file holds the settings of resumable sessions
// (examples/client/RESUME.md): a route's resume block, which lets its
// clients that opt in come back to the same upstream connection within a
// window, and limits.resume_memory, which bounds what all sessions hold
// for replay together.

// Resume is a route's resume block: what a session of the route may wait
// and hold while its client is away. Route.Resume is nil when the route
// has no resume block; its opted-in clients then get an ordinary pair.
type Resume struct {
	// Window is how long the upstream connection waits for its client to
	// come back.
	Window time.Duration
	// Buffer bounds the upstream-to-client bytes a session keeps for
	// replay; a session that would keep more ends.
	Buffer int
}

// Resume defaults and bounds.
const (
	// DefaultResumeWindow outlasts a Wi-Fi to mobile handover and a
	// browser's reconnect backoff, and is short enough that a backend does
	// not hold many abandoned sessions.
	DefaultResumeWindow = 30 * time.Second
	// DefaultResumeBuffer holds the few seconds of chat or market data a
	// phone misses during a network switch.
	DefaultResumeBuffer = 256 << 10
	// DefaultResumeMemory bounds the replay bytes of all sessions: 256
	// full buffers of the default size, a small share of a proxy's memory.
	DefaultResumeMemory = 64 << 20

	// A window above an hour keeps an upstream connection for a client
	// that will not come back: that is a new session, not a resume.
	maxResumeWindow = time.Hour
	// A buffer under 1 KiB cannot hold one ordinary message; above 64 MiB
	// one session could take what thousands need.
	minResumeBuffer = 1 << 10
	maxResumeBuffer = 64 << 20
	// resume_memory at least one smallest buffer, at most 64 GiB (above
	// that it is a typo).
	minResumeMemory = minResumeBuffer
	maxResumeMemory = 64 << 30
)

// resumeBlock is the `resume { ... }` block inside a route.
type resumeBlock struct {
	Window *hcl.Attribute
	Buffer *hcl.Attribute

	DefRange hcl.Range
}

var resumeSchema = attributes("window", "buffer")

// decodeResume decodes a route's resume block into *slot, reporting a
// second one.
func decodeResume(s scope, b *hcl.Block, slot **resumeBlock, diags *hcl.Diagnostics) {
	if *slot != nil {
		s.fail(b.DefRange, "resume",
			fmt.Sprintf("duplicate block: a route has at most one resume block, the first is on line %d",
				(*slot).DefRange.Start.Line),
			"Merge the settings of both resume blocks into the first one.")
		return
	}
	c, d := b.Body.Content(resumeSchema)
	*diags = append(*diags, d...)
	*slot = &resumeBlock{
		Window:   c.Attributes["window"],
		Buffer:   c.Attributes["buffer"],
		DefRange: b.DefRange,
	}
}

// buildResume converts a route's resume block; nil when there is none.
func (s scope) buildResume(b *resumeBlock) *Resume {
	if b == nil {
		return nil
	}
	sc := s.child("resume")
	r := &Resume{Window: DefaultResumeWindow, Buffer: DefaultResumeBuffer}
	if d, ok := sc.positiveDuration(b.Window); ok {
		if d > maxResumeWindow {
			sc.fail(b.Window.Expr.Range(), b.Window.Name,
				fmt.Sprintf("must be at most %s, got %s", maxResumeWindow, d),
				"The window is how long an upstream connection waits for its client to come back; a client away longer starts a new session.")
		} else {
			r.Window = d
		}
	}
	if n, ok := sc.size(b.Buffer, minResumeBuffer, maxResumeBuffer); ok {
		r.Buffer = int(n)
	}
	return r
}

// checkResumeMemory reports a route whose buffer exceeds resume_memory:
// one session could never fill it, which is surely not what was meant.
func (s scope) checkResumeMemory(b *resumeBlock, r *Resume, memory int64) {
	if b == nil || b.Buffer == nil || r == nil || int64(r.Buffer) <= memory {
		return
	}
	s.child("resume").fail(b.Buffer.Expr.Range(), b.Buffer.Name,
		fmt.Sprintf("%s bytes is more than limits.resume_memory, %s bytes, which bounds all sessions together",
			sizeText(int64(r.Buffer)), sizeText(memory)),
		"Lower buffer, or raise resume_memory in the limits block.")
}
