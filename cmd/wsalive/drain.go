package main

import (
	"context"
	"errors"
	"time"

	"github.com/wsalive/wsalive/proxy/relay"
)

// The drain, step by step (SIGTERM, SIGINT or POST /drain):
//
//  1. The state turns draining: /readyz answers 503 and wsalive_draining
//     is 1, so load balancers take the pod out of rotation.
//  2. For drain.delay the listeners keep accepting, because balancers
//     notice readiness only after a probe period or two; a client they
//     still send here is served, not refused.
//  3. The listeners close. Handshakes in flight get handshakeGrace to
//     finish and are then abandoned (their connections closed), with a
//     bound of their own: an idle pre-connected client must never use up
//     the time the live pairs need (issue 12, defect 1).
//  4. The engine drains its live pairs with a bound of its own, window +
//     the longest close_timeout (+1 s): each pair is closed at a random
//     moment within drain.window with drain.close_code "service restart"
//     toward the client (1001 toward the upstream), so clients reconnect
//     spread out rather than as one storm.
//  5. The report says how many pairs were drained, ended by themselves or
//     cut. A signal-started drain then exits 0; a POST /drain answers with
//     the report and the process waits, drained, for its stop signal.
//
// A second stop signal ends every wait at once: the remaining pairs are
// closed without waiting for their close handshake.

// handshakeGrace is how long handshakes in flight when the listeners close
// may take to finish. A handshake to a healthy upstream takes
// milliseconds; one still waiting after a second is waiting on a silent
// client (a pre-connect or a probe) or a stuck upstream, and the live
// pairs' drain should not wait on it.
const handshakeGrace = time.Second

// drainReason is the close reason clients receive with the drain's code.
const drainReason = "service restart"

// engineDrainer is the engine's drain: close every live pair at a random
// moment within window, sending clients code and reason, and return when
// all are closed or ctx ends (then the rest are cut). *relay.Engine
// provides it; tests stand in for it.
type engineDrainer interface {
	Drain(ctx context.Context, code uint16, reason string, window time.Duration) (relay.DrainReport, error)
}

// engineLiveness is the engine's loop-liveness probe: an error when an
// event loop has stopped turning. It is registered for /healthz when the
// engine provides it.
type engineLiveness interface {
	Live() error
}

// drainOutcome is what a drain did, logged and answered to POST /drain.
type drainOutcome struct {
	Trigger string `json:"trigger"`
	relay.DrainReport
	// HandshakesAbandoned is set when handshakes in flight did not finish
	// within handshakeGrace and were closed unanswered.
	HandshakesAbandoned bool   `json:"handshakes_abandoned"`
	Took                string `json:"took"`
	Error               string `json:"error,omitempty"`
}

// startDrain starts the drain unless one has started; trigger says why,
// for the log.
func (a *app) startDrain(trigger string) {
	a.drainOnce.Do(func() {
		// Readiness turns off before anyone can see the drain started.
		a.state.advance(stateDraining)
		a.metrics.Draining(true)
		close(a.drainStarted)
		go a.runDrain(trigger)
	})
}

// force ends every wait of a drain under way (a second stop signal).
func (a *app) force() { a.forceCancel() }

// drainRequest serves POST /drain: it starts the drain (or joins the one
// under way) and returns its outcome once it is complete.
func (a *app) drainRequest(ctx context.Context) (any, error) {
	a.startDrain("admin /drain")
	select {
	case <-a.drainDone:
		out := a.drainResult
		if out.Error != "" {
			return out, errors.New(out.Error)
		}
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *app) runDrain(trigger string) {
	defer close(a.drainDone)
	started := time.Now()
	cfg := a.config()
	d := cfg.Drain
	a.logger.Info("draining: not ready; still accepting during the delay",
		"trigger", trigger, "delay", d.Delay.String(), "window", d.Window.String(), "close_code", d.CloseCode)

	delay := time.NewTimer(d.Delay)
	select {
	case <-delay.C:
	case <-a.forceCtx.Done():
		delay.Stop()
	}

	out := drainOutcome{Trigger: trigger}
	a.logger.Info("draining: closing the listeners", "handshake_grace", handshakeGrace.String())
	hctx, cancel := context.WithTimeout(a.forceCtx, handshakeGrace)
	if err := a.server.Shutdown(hctx); err != nil {
		out.HandshakesAbandoned = true
		a.logger.Warn("draining: handshakes in flight did not finish in time; abandoned", "grace", handshakeGrace.String())
	}
	cancel()

	bound := d.Window + maxCloseTimeout(cfg) + time.Second
	a.logger.Info("draining: closing live pairs", "pairs", a.engine.Stats().Pairs, "bound", bound.String())
	ectx, cancel := context.WithTimeout(a.forceCtx, bound)
	rep, err := a.drainer.Drain(ectx, d.CloseCode, drainReason, d.Window)
	cancel()
	out.DrainReport = rep
	out.Took = time.Since(started).Round(time.Millisecond).String()
	log := a.logger.Info
	if err != nil {
		out.Error = err.Error()
		log = a.logger.Warn
	}
	log("drained", "drained", rep.Drained, "ended", rep.Ended, "cut", rep.Cut,
		"handshakes_abandoned", out.HandshakesAbandoned, "took", out.Took, "err", err)
	a.drainResult = out
}
