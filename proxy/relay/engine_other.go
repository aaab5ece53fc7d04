//go:build !linux

package relay

import (
	"context"
	"errors"
)

// ErrUnsupported is returned by New on platforms without epoll.
var ErrUnsupported = errors.New("relay: the relay engine needs Linux (epoll); other platforms are not supported yet")

// Engine is unavailable on this platform; New always fails.
type Engine struct{}

// New reports ErrUnsupported: the engine is built on epoll.
func New(Options) (*Engine, error) { return nil, ErrUnsupported }

// Attach always fails on this platform.
func (e *Engine) Attach(Handoff) (uint64, error) { return 0, ErrUnsupported }

// Close does nothing on this platform.
func (e *Engine) Close(context.Context) error { return nil }

// Stats is always zero on this platform.
func (e *Engine) Stats() Stats { return Stats{} }

// Closed is always zero on this platform.
func (e *Engine) Closed(Reason) uint64 { return 0 }
