package relay

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// env is what an Engine shares with its drivers: its settings, its clock,
// the engine-wide gauges the drivers keep, and the account of ended pairs.
// A driver is given the env, never the Engine, so that it only reports
// what happened (a pair ended, bytes were buffered) into state the engine
// reads; it never reaches back into the engine that owns it.
type env struct {
	opts    Options
	logger  *slog.Logger
	metrics metrics.Metrics
	start   time.Time
	// pairs and buffered are the live pairs and the bytes held for slow
	// sinks, kept by the drivers (Engine.Stats).
	pairs    atomic.Int64
	buffered atomic.Int64
	// closed is set once Drain or Close has started.
	closed   atomic.Bool
	byReason [numReasons]atomic.Uint64
	sessions sessionTable // resumable sessions (session.go)
}

// init sets v up from opts, whose defaults the caller has applied.
func (v *env) init(opts Options) {
	v.opts, v.logger, v.metrics, v.start = opts, opts.Logger, opts.Metrics, time.Now()
	if v.logger == nil {
		v.logger = slog.Default()
	}
	if v.metrics == nil {
		v.metrics = metrics.Nop{}
	}
	v.sessions.init(opts.ResumeMemory)
}

// clock is the engine's monotonic clock in nanoseconds.
func (v *env) clock() int64 { return int64(time.Since(v.start)) }

// report accounts for a pair that ended: once per pair, by the driver
// that ended it.
func (v *env) report(st PairStats) {
	v.byReason[st.Reason].Add(1)
	if v.opts.OnClose != nil {
		v.opts.OnClose(st)
	}
}

// countResume reports a resume's result to metrics that count them.
func (v *env) countResume(code uint16) {
	if m, ok := v.metrics.(metrics.ResumeCounter); ok {
		if code == 0 {
			m.Resume("resumed")
		} else {
			m.Resume(fmt.Sprintf("refused_%d", code))
		}
	}
}
