package proxy

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// acceptErrorLog makes the accept loop's temporary errors (EMFILE, ENFILE,
// ECONNABORTED) one warning per burst instead of one per retry: the first
// failure of a burst is logged, the retries are counted, and the end of
// the burst (the next successful accept) is logged with the count.
type acceptErrorLog struct {
	mu     sync.Mutex
	burst  map[string]*acceptBurst // by listener address
	logged int                     // bursts logged, for tests
}

type acceptBurst struct {
	first    time.Time
	failures int
}

func (a *acceptErrorLog) failed(log *slog.Logger, ln net.Addr, err error, delay time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.burst == nil {
		a.burst = map[string]*acceptBurst{}
	}
	key := ln.String()
	b := a.burst[key]
	if b == nil {
		b = &acceptBurst{first: time.Now()}
		a.burst[key] = b
		a.logged++
		log.Warn("accept failing; backing off until it recovers", "listener", key, "err", err, "delay", delay.String())
	}
	b.failures++
}

func (a *acceptErrorLog) recovered(log *slog.Logger, ln net.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := ln.String()
	if b := a.burst[key]; b != nil {
		delete(a.burst, key)
		log.Warn("accept recovered", "listener", key, "failures", b.failures, "took", time.Since(b.first).String())
	}
}

// bursts returns how many bursts were logged.
func (a *acceptErrorLog) bursts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logged
}
