package relay

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLive: an idle engine's loops, parked in the runtime's poller, answer
// the probe; a loop held inside a pair's OnClose (a callback that broke
// its promise not to block) makes Live fail, and once it returns Live
// passes again; a drained engine, whose loops exited by design, is live.
func TestLive(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	e, err := New(Options{
		Loops:          2,
		DisableIOUring: os.Getenv("WSALIVE_TEST_IO_URING") == "off",
		OnClose: func(PairStats) {
			entered <- struct{}{}
			<-release
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Close(ctx)
	}()

	// Idle: nothing to do, every loop parked.
	for i := range 3 {
		if err := e.Live(); err != nil {
			t.Fatalf("idle engine, probe %d: %v", i, err)
		}
	}

	tp := attachPair(t, e, nil, Handoff{})
	tp.cli.Close() // the pair ends; its loop calls OnClose, which blocks
	tp.ups.Close()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the pair did not end")
	}
	started := time.Now()
	err = e.Live()
	if err == nil || !strings.Contains(err.Error(), "did not turn") {
		t.Fatalf("Live with a loop held in OnClose: %v, want a loop that did not turn", err)
	}
	if took := time.Since(started); took > liveBound+time.Second {
		t.Fatalf("Live took %s to notice, want about %s", took, liveBound)
	}
	// Only the blocked loop is named: the other one still turns.
	if n := strings.Count(err.Error(), "did not turn"); n != 1 {
		t.Fatalf("Live named %d stuck loops, want 1: %v", n, err)
	}

	close(release)
	released = true
	if err := e.Live(); err != nil {
		t.Fatalf("Live after the loop was released: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Live(); err != nil {
		t.Fatalf("Live after the engine was closed: %v", err)
	}
}

// TestLiveConnDriver: the net.Conn driver has no loops to stall; Live is
// nil with a pair on it.
func TestLiveConnDriver(t *testing.T) {
	e, closed := newTestEngine(t, Options{ForceConnDriver: true})
	attachPair(t, e, closed, Handoff{})
	if err := e.Live(); err != nil {
		t.Fatal(err)
	}
}
