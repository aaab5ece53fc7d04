package client_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// requireNodeEnv, set to 1 (as CI does), turns a missing node into a
// failure instead of a skip; it is the end-to-end tests' variable.
const requireNodeEnv = "WSALIVE_E2E_REQUIRE_NODE"

// TestHelperUnit runs the helper's own unit tests (wsalive-client.test.js,
// node:test under a fake clock and a fake WebSocket), so that README's one
// test command covers them. They need node (>= 18) and no package.
func TestHelperUnit(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv(requireNodeEnv) == "1" {
			t.Fatalf("node is not on PATH and %s=1: %v", requireNodeEnv, err)
		}
		t.Skipf("skipping, node is not on PATH (set %s=1 to fail instead)", requireNodeEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "wsalive-client.test.js")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
