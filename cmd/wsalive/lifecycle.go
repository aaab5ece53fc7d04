package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// state is where the process is in its life. It only moves forward:
//
//	starting -> serving -> draining -> stopped
//
// and readiness follows it: only a serving process is ready. A process
// that drained on POST /drain stays in draining (no listeners, not ready)
// until a signal stops it, so that an orchestrator restarting "exited"
// sidecars does not bring it back mid-termination.
type state int32

const (
	stateStarting state = iota
	stateServing
	stateDraining
	stateStopped
)

func (s state) String() string {
	switch s {
	case stateStarting:
		return "starting"
	case stateServing:
		return "serving"
	case stateDraining:
		return "draining"
	case stateStopped:
		return "stopped"
	}
	return "unknown"
}

// lifecycle holds the process state; safe for concurrent use.
type lifecycle struct{ s atomic.Int32 }

func (l *lifecycle) get() state { return state(l.s.Load()) }

// advance moves to next if that is forward, and reports whether it moved.
func (l *lifecycle) advance(next state) bool {
	for {
		cur := l.s.Load()
		if state(cur) >= next {
			return false
		}
		if l.s.CompareAndSwap(cur, int32(next)) {
			return true
		}
	}
}

// ready is the readiness check: nil only while serving.
func (l *lifecycle) ready() error {
	if s := l.get(); s != stateServing {
		return fmt.Errorf("not ready: %s", s)
	}
	return nil
}

// probeTimeout bounds one liveness probe. A probe that does not answer in
// time is itself the sign of a stuck process.
const probeTimeout = time.Second

// livenessChecks is the /healthz check: every registered probe must
// answer nil within probeTimeout. The engine's loop-liveness probe is
// registered here once the engine provides one.
type livenessChecks struct {
	// timeout bounds each check; 0 means probeTimeout.
	timeout time.Duration

	mu     sync.Mutex
	probes map[string]func() error
}

// add registers probe under name.
func (c *livenessChecks) add(name string, probe func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probes == nil {
		c.probes = map[string]func() error{}
	}
	c.probes[name] = probe
}

// check runs every probe, each on its own goroutine so that a hung probe
// cannot hang the liveness endpoint, and returns every failure.
func (c *livenessChecks) check() error {
	c.mu.Lock()
	probes := make(map[string]func() error, len(c.probes))
	for k, v := range c.probes {
		probes[k] = v
	}
	c.mu.Unlock()
	timeout := c.timeout
	if timeout == 0 {
		timeout = probeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(probes))
	for name, probe := range probes {
		go func() { results <- result{name, probe()} }()
	}
	var errs []error
	for range probes {
		select {
		case r := <-results:
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("a probe did not answer within %s", timeout))
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}
