package proxy

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLog rate-limits the info lines of refused requests. Each refusal
// says something an operator may need (a limit reached, an origin
// refused, an upstream failing), so they are logged at info, not debug;
// but a flood of them must not become a flood of log lines. Up to
// refusalBurst lines are written per second; the rest are counted, and the
// count is written once the second is over.
type refusalLog struct {
	mu         sync.Mutex
	window     time.Time
	written    int
	suppressed int
}

const refusalBurst = 100

// allow reports whether a refusal line may be written now, and how many
// were suppressed in the window that just ended (to be reported once).
func (r *refusalLog) allow(now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.window) >= time.Second {
		suppressed = r.suppressed
		r.window, r.written, r.suppressed = now, 0, 0
	}
	if r.written >= refusalBurst {
		r.suppressed++
		return false, suppressed
	}
	r.written++
	return true, suppressed
}

// refused logs one refused handshake or HTTP error answer at info: status,
// route, client and reason, rate-limited.
func (s *Server) refused(log *handshakeLog, status int, reason string, attrs ...slog.Attr) {
	if !log.enabled(slog.LevelInfo) {
		return
	}
	ok, suppressed := s.refusals.allow(time.Now())
	if suppressed > 0 {
		s.log.Info("refusal lines suppressed", "count", suppressed, "window", "1s")
	}
	if !ok {
		return
	}
	log.write(slog.LevelInfo, "request refused",
		append([]slog.Attr{slog.Int("status", status), slog.String("reason", reason)}, attrs...)...)
}
