package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLifecycleOnlyMovesForward(t *testing.T) {
	var l lifecycle
	steps := []struct {
		to       state
		moved    bool
		now      state
		ready    bool
		whyNotOK string
	}{
		{stateStarting, false, stateStarting, false, "not ready: starting"},
		{stateServing, true, stateServing, true, ""},
		{stateDraining, true, stateDraining, false, "not ready: draining"},
		{stateServing, false, stateDraining, false, "not ready: draining"},
		{stateStopped, true, stateStopped, false, "not ready: stopped"},
		{stateDraining, false, stateStopped, false, "not ready: stopped"},
	}
	for _, s := range steps {
		t.Run("to "+s.to.String(), func(t *testing.T) {
			if got := l.advance(s.to); got != s.moved {
				t.Fatalf("advance(%s) = %v, want %v", s.to, got, s.moved)
			}
			if l.get() != s.now {
				t.Fatalf("state %s, want %s", l.get(), s.now)
			}
			err := l.ready()
			if (err == nil) != s.ready || (err != nil && err.Error() != s.whyNotOK) {
				t.Fatalf("ready() = %v, want ready=%v %q", err, s.ready, s.whyNotOK)
			}
		})
	}
}

func TestLivenessChecks(t *testing.T) {
	t.Run("no probes", func(t *testing.T) {
		var c livenessChecks
		if err := c.check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("failing probe", func(t *testing.T) {
		var c livenessChecks
		c.add("ok", func() error { return nil })
		c.add("relay", func() error { return errors.New("loop 1 has not turned for 12s") })
		err := c.check()
		if err == nil || !strings.Contains(err.Error(), "relay: loop 1 has not turned") {
			t.Fatalf("check() = %v, want the relay probe's failure", err)
		}
	})
	t.Run("hung probe", func(t *testing.T) {
		c := livenessChecks{timeout: 20 * time.Millisecond}
		release := make(chan struct{})
		defer close(release)
		c.add("stuck", func() error { <-release; return nil })
		err := c.check()
		if err == nil || !strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("check() = %v, want a timeout", err)
		}
	})
}
