package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/proxy/relay"
)

// nodeDir holds the Node peers and their package.json / package-lock.json.
const nodeDir = "testdata/node"

// requireNodeEnv, set to 1 (as CI does), turns a missing Node setup into a
// failure instead of a skip.
const requireNodeEnv = "WSALIVE_E2E_REQUIRE_NODE"

var (
	nodeOnce  sync.Once
	nodeSetup error
)

// requireNode makes sure node runs and the ws package is installed
// (running "npm ci" once when node_modules is missing), or skips the test;
// with WSALIVE_E2E_REQUIRE_NODE=1 it fails it instead.
func requireNode(t *testing.T) {
	t.Helper()
	nodeOnce.Do(func() { nodeSetup = setUpNode() })
	if nodeSetup == nil {
		return
	}
	if os.Getenv(requireNodeEnv) == "1" {
		t.Fatalf("Node peers unavailable and %s=1: %v", requireNodeEnv, nodeSetup)
	}
	t.Skipf("skipping, Node peers unavailable: %v (set %s=1 to fail instead)", nodeSetup, requireNodeEnv)
}

func setUpNode() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not on PATH: %w", err)
	}
	wsPackage := filepath.Join(nodeDir, "node_modules", "ws", "package.json")
	// socket.io came later: a node_modules from before it needs npm ci too.
	sioPackage := filepath.Join(nodeDir, "node_modules", "socket.io-client", "package.json")
	_, errWS := os.Stat(wsPackage)
	_, errSIO := os.Stat(sioPackage)
	if errWS == nil && errSIO == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("%s is missing and npm is not on PATH to install it: %w", wsPackage, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", nodeDir, err, out)
	}
	if _, err := os.Stat(wsPackage); err != nil {
		return fmt.Errorf("npm ci did not install ws: %w", err)
	}
	return nil
}

// nodeProc is a running Node script. Its stdout arrives line by line on
// lines, which is closed at EOF; exited is closed once it has ended, and
// then waitErr and stderr are final.
type nodeProc struct {
	cmd     *exec.Cmd
	lines   chan string
	exited  chan struct{}
	waitErr error
	stderr  syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the copying goroutine of exec and
// a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode runs "node script args..." in nodeDir (see startProc).
func startNode(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	return startProc(t, nodeDir, "node", append([]string{script}, args...)...)
}

// waitLine returns the next stdout line that starts with prefix, skipping
// (and logging) others.
func (p *nodeProc) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(waitBound)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				t.Fatalf("node ended (%v) before printing %q; stderr:\n%s", p.waitErr, prefix, p.stderr.String())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			t.Logf("node: %s", line)
		case <-deadline:
			t.Fatalf("node printed no %q line within %v; stderr:\n%s", prefix, waitBound, p.stderr.String())
		}
	}
}

// TestNodeUpstream puts Node's ws package behind wsalive as the upstream,
// with coder/websocket as the client.
func TestNodeUpstream(t *testing.T) {
	requireNode(t)
	srv := startNode(t, "echo-server.js", "0", "b.v2")
	port := strings.TrimPrefix(srv.waitLine(t, "LISTENING "), "LISTENING ")
	f := newFixture(t, fixtureOptions{routes: map[string]string{"/node": "127.0.0.1:" + port}})
	opts := &websocket.DialOptions{
		Subprotocols: []string{"a.v1", "b.v2"},
		HTTPHeader:   http.Header{"X-Test": {"from-go"}},
	}

	t.Run("handshake", func(t *testing.T) {
		c, resp := f.dial(t, "/node/echo", opts)
		if got := c.Subprotocol(); got != "b.v2" {
			t.Errorf("subprotocol %q, want b.v2", got)
		}
		if got := resp.Header.Get("X-Test-Echo"); got != "from-go" {
			t.Errorf("X-Test-Echo %q, want from-go (the 101's own headers reach the client)", got)
		}
		if got, want := srv.waitLine(t, "CONNECTED "), "CONNECTED x-test=from-go protocol=b.v2"; got != want {
			t.Errorf("node printed %q, want %q", got, want)
		}
		closeNormally(t, f, c, relay.ReasonClientClosed)
		srv.waitLine(t, "CLOSED ")
	})

	t.Run("echo", func(t *testing.T) {
		c, _ := f.dial(t, "/node/echo", opts)
		srv.waitLine(t, "CONNECTED ")
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		for i, m := range []messageCase{
			{websocket.MessageText, 0},
			{websocket.MessageText, 126},
			{websocket.MessageBinary, 1},
			{websocket.MessageBinary, 65536},
			{websocket.MessageText, 1 << 20},
			{websocket.MessageBinary, 1 << 20},
		} {
			if err := roundTrip(ctx, c, m.typ, payload(m.typ, m.size, uint64(i))); err != nil {
				t.Fatalf("%s: %v", m.name(), err)
			}
		}
		if err := c.Close(4001, "bye"); err != nil {
			t.Errorf("close: %v", err)
		}
		if got := srv.waitLine(t, "CLOSED "); got != "CLOSED 4001 bye" {
			t.Errorf("node printed %q, want CLOSED 4001 bye", got)
		}
		if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
			t.Errorf("pair ended with %v, want client_closed", st.Reason)
		}
	})

	t.Run("upstream-closes", func(t *testing.T) {
		c, _ := f.dial(t, "/node/echo", opts)
		srv.waitLine(t, "CONNECTED ")
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("close 4002 later")); err != nil {
			t.Fatalf("write: %v", err)
		}
		_, _, err := c.Read(ctx)
		if code, reason := closeError(err); code != 4002 || reason != "later" {
			t.Errorf("client saw %v, want close 4002 %q", err, "later")
		}
		srv.waitLine(t, "CLOSED ")
		if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamClosed {
			t.Errorf("pair ended with %v, want upstream_closed", st.Reason)
		}
	})

	t.Run("refused-without-x-test", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws://"+f.proxyAddr+"/node/echo", nil)
		if err == nil {
			c.CloseNow()
			t.Fatal("dial succeeded, want the upstream's 400")
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("dial: %v (response %v), want the upstream's 400", err, resp)
		}
		if n := f.engine.Stats().Pairs; n != 0 {
			t.Errorf("engine has %d pairs, want 0", n)
		}
		f.noPairClosed(t)
	})
}

// TestNodeClient runs Node's ws package as the client, with
// permessage-deflate, through wsalive to a coder/websocket upstream.
func TestNodeClient(t *testing.T) {
	requireNode(t)
	ended := make(chan error, 1)
	xTest := make(chan string, 1)
	echoDeflate := watchEcho(ended, &websocket.AcceptOptions{CompressionMode: websocket.CompressionContextTakeover})
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		xTest <- r.Header.Get("X-Test")
		echoDeflate(w, r)
	}})

	cli := startNode(t, "client.js", "ws://"+f.proxyAddr+"/from-node")
	ext := cli.waitLine(t, "EXTENSIONS ")
	if !strings.Contains(ext, "permessage-deflate") {
		t.Errorf("node client saw %q, want permessage-deflate", ext)
	}
	if got := recv(t, xTest, "upstream request"); got != "node-client" {
		t.Errorf("upstream saw X-Test %q, want node-client", got)
	}
	for i := range 7 {
		line := cli.waitLine(t, "ECHO ")
		if !strings.HasPrefix(line, fmt.Sprintf("ECHO %d ", i)) {
			t.Errorf("node client printed %q, want echo %d", line, i)
		}
	}
	closed := cli.waitLine(t, "CLOSED ")
	select {
	case <-cli.exited:
	case <-time.After(waitBound):
		t.Fatalf("node client did not exit after %q", closed)
	}
	if cli.waitErr != nil {
		var ee *exec.ExitError
		if errors.As(cli.waitErr, &ee) {
			t.Fatalf("node client failed (%v); stderr:\n%s", cli.waitErr, cli.stderr.String())
		}
		t.Fatalf("node client: %v", cli.waitErr)
	}

	err := recv(t, ended, "end of the upstream's connection")
	if code, reason := closeError(err); code != 4001 || reason != "node-bye" {
		t.Errorf("upstream saw %v, want close 4001 %q", err, "node-bye")
	}
	st := f.nextClosed(t)
	if st.Reason != relay.ReasonClientClosed {
		t.Errorf("pair ended with %v, want client_closed", st.Reason)
	}
	// The client sent over 1.25 MiB of payload, 1 MiB of it compressible;
	// compressed both ways, well under half a MiB crosses the relay.
	const limit = 512 << 10
	if st.BytesToUpstream > limit || st.BytesToClient > limit {
		t.Errorf("relayed %d bytes to the upstream and %d to the client, want under %d each: not compressed",
			st.BytesToUpstream, st.BytesToClient, limit)
	}
	t.Logf("node client: %s; %s; relayed %d bytes up, %d down", ext, closed, st.BytesToUpstream, st.BytesToClient)
}
