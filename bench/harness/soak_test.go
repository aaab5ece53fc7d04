package harness

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSoakSmoke runs the soak for 10 s with a handful of every kind of
// connection and a flood every 5 s: the whole path (build, backend,
// wsalive, load, sampling, drift, soak.json) works and a short soak of a
// healthy wsalive passes.
func TestSoakSmoke(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Soak(ctx, SoakOptions{
		Root:        root,
		OutDir:      out,
		Duration:    10 * time.Second,
		Sample:      time.Second,
		Warmup:      2 * time.Second,
		EchoPairs:   4,
		IdlePairs:   20,
		ChurnPerSec: 10,
		DeadEvery:   2 * time.Second,
		FloodEvery:  5 * time.Second,
		FloodN:      200,
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Soak: %v", err)
	}
	text := rep.Text()
	t.Log("\n" + text)
	if len(rep.Samples) < 8 {
		t.Errorf("%d samples in 10 s every second after a 2 s warmup, want at least 8", len(rep.Samples))
	}
	end := rep.RestAfter
	if end.Echoes == 0 || end.Churned == 0 || end.Floods == 0 || end.HeartbeatCut == 0 {
		t.Errorf("some load did not run: %+v", end.SoakCounts)
	}
	if !rep.Passed() {
		t.Errorf("the smoke soak failed: %v", rep.Failures)
	}
	if !strings.Contains(text, "drift under load") || !strings.Contains(text, "drift at rest") {
		t.Errorf("the report lacks its drift lines:\n%s", text)
	}
	if _, err := os.Stat(filepath.Join(out, "soak.json")); err != nil {
		t.Errorf("soak.json: %v", err)
	}
}
