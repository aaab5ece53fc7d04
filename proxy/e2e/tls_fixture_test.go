package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy"
	"github.com/wsalive/wsalive/proxy/relay"
	"github.com/wsalive/wsalive/proxy/tlsconf"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// The TLS end-to-end tests put peers we did not write on both sides of a
// TLS pair: Python's websockets as a wss:// client, Node's ws (over
// https) as a wss:// upstream, coder/websocket over crypto/tls where many
// pairs are needed.
//
// Relaying a TLS pair needs the relay engine's net.Conn driver; until it
// exists the epoll engine refuses a *tls.Conn at Attach. requireRelay
// finds that out with one real pair and skips the tests that need
// relaying, naming the missing driver; the handshake-level parts (what
// happens before Attach) run either way.

// requirePythonEnv, set to 1 (as CI does), turns a missing Python
// websockets package into a failure instead of a skip.
const requirePythonEnv = "WSALIVE_E2E_REQUIRE_PYTHON"

// pythonDir holds the Python peers.
const pythonDir = "testdata/python"

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// requirePython returns a python3 that can import websockets (Debian's
// python3-websockets installs it for the system interpreter, which a
// version manager's python3 on PATH may shadow), or skips the test; with
// WSALIVE_E2E_REQUIRE_PYTHON=1 it fails it instead.
func requirePython(t *testing.T) string {
	t.Helper()
	pythonOnce.Do(func() {
		pythonErr = errors.New("no python3 on PATH or in /usr/bin")
		for _, candidate := range []string{"python3", "/usr/bin/python3"} {
			path, err := exec.LookPath(candidate)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			out, err := exec.CommandContext(ctx, path, "-c", "import websockets").CombinedOutput()
			cancel()
			if err == nil {
				pythonPath, pythonErr = path, nil
				return
			}
			pythonErr = fmt.Errorf("%s cannot import websockets (apt-get install python3-websockets): %v %s", path, err, bytes.TrimSpace(out))
		}
	})
	if pythonErr == nil {
		return pythonPath
	}
	if os.Getenv(requirePythonEnv) == "1" {
		t.Fatalf("Python peer unavailable and %s=1: %v", requirePythonEnv, pythonErr)
	}
	t.Skipf("skipping, Python peer unavailable: %v (set %s=1 to fail instead)", pythonErr, requirePythonEnv)
	return ""
}

// startPython runs the Python peer script with args, as startNode runs a
// Node one.
func startPython(t *testing.T, python, script string, args ...string) *nodeProc {
	t.Helper()
	return startProc(t, pythonDir, python, append([]string{script}, args...)...)
}

// startProc runs prog with args in dir; stdout arrives line by line on
// the returned nodeProc's lines. Cleanup kills that process (and only it)
// if it is still running, and waits for it.
func startProc(t *testing.T, dir, prog string, args ...string) *nodeProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &nodeProc{
		cmd:    exec.CommandContext(ctx, prog, args...),
		lines:  make(chan string, 256),
		exited: make(chan struct{}),
	}
	p.cmd.Dir = dir
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = waitBound
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", prog, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
		}
		cancel()
		select {
		case <-p.exited:
		case <-time.After(2 * waitBound):
			t.Errorf("%s did not exit after being killed", prog)
		}
	})
	return p
}

// waitExit waits for p to end and fails the test unless it exited 0.
func (p *nodeProc) waitExit(t *testing.T, bound time.Duration) {
	t.Helper()
	// Drain stdout so that the process never blocks on a full pipe.
	go func() {
		for line := range p.lines {
			t.Logf("peer: %s", line)
		}
	}()
	select {
	case <-p.exited:
	case <-time.After(bound):
		t.Fatalf("peer did not exit within %v", bound)
	}
	if p.waitErr != nil {
		t.Fatalf("peer failed (%v); stderr:\n%s", p.waitErr, p.stderr.String())
	}
}

// tlsMaterial is a CA and the certificates of one test, as files: a
// server certificate for localhost and 127.0.0.1 (used by wsalive's TLS
// listener and by the Node upstream alike), and a CA for client
// certificates.
type tlsMaterial struct {
	dir                   string
	ca                    *tlstest.CA
	caFile                string
	server                *tlstest.Leaf
	serverCert, serverKey string
	clients               *tlstest.CA
	clientsCAFile         string
}

func newTLSMaterial(t *testing.T) *tlsMaterial {
	t.Helper()
	m := &tlsMaterial{dir: t.TempDir(), ca: tlstest.NewCA(t, "e2e CA"), clients: tlstest.NewCA(t, "e2e clients CA")}
	m.caFile = m.ca.WriteFile(t, m.dir, "ca.crt")
	m.clientsCAFile = m.clients.WriteFile(t, m.dir, "clients-ca.crt")
	m.server = m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost", "127.0.0.1"}})
	m.serverCert, m.serverKey = m.server.WriteFiles(t, m.dir, "server")
	return m
}

// clientLeaf makes a client certificate with common name cn, signed by
// the clients CA, and writes it to files named after cn.
func (m *tlsMaterial) clientLeaf(t *testing.T, cn string) (leaf *tlstest.Leaf, certFile, keyFile string) {
	t.Helper()
	leaf = m.clients.Leaf(t, tlstest.LeafOptions{Names: []string{cn}, Client: true})
	certFile, keyFile = leaf.WriteFiles(t, m.dir, cn)
	return leaf, certFile, keyFile
}

// listenerTLS is a TLS listener setting serving the material's server
// certificate.
func (m *tlsMaterial) listenerTLS() *config.ListenerTLS {
	return &config.ListenerTLS{
		Certificates: []config.CertFiles{{CertFile: m.serverCert, KeyFile: m.serverKey}},
		MinVersion:   config.DefaultTLSMinVersion,
	}
}

// tlsFixtureOptions configures a tlsFixture.
type tlsFixtureOptions struct {
	// listener, when not nil, makes the listener TLS.
	listener *config.ListenerTLS
	// onReload is the listener's tlsconf.Options.OnReload.
	onReload func(error)
	// upstream is the one route's upstream URL (ws:// or wss://).
	upstream string
	// upstreamTLS, for a wss:// upstream, replaces the default settings
	// (system roots).
	upstreamTLS *config.UpstreamTLS
	// route, when not nil, is applied to the route before the server is
	// built: it sets liveness policies (see withLiveness).
	route func(*config.Route)
	// readBufferSize is the engine's ReadBufferSize; 0 means 64 KiB.
	readBufferSize int
}

// tlsFixture is a running wsalive (TLS listener or plain, one route) in
// front of an upstream the test started.
type tlsFixture struct {
	proxyAddr string
	engine    *relay.Engine
	tlsSrv    *tlsconf.Server // nil for a plain listener
	logs      *syncBuffer

	closed  chan relay.PairStats
	dropped atomic.Int64
	// attached receives the result of every Attach, in order.
	attached chan error
}

// attachWatcher passes pairs to the engine and reports every Attach's
// result, so that a test can tell a pair the engine refused from one it
// relays.
type attachWatcher struct {
	engine   *relay.Engine
	attached chan error
}

func (w attachWatcher) Attach(h relay.Handoff) (uint64, error) {
	id, err := w.engine.Attach(h)
	select {
	case w.attached <- err:
	default:
	}
	return id, err
}

func newTLSFixture(t *testing.T, opts tlsFixtureOptions) *tlsFixture {
	t.Helper()
	f := &tlsFixture{
		closed:   make(chan relay.PairStats, 4096),
		attached: make(chan error, 4096),
		logs:     &syncBuffer{},
	}
	// Info, so that a failed upstream handshake's line (and its reason)
	// is in logs.
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(f.logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))

	cfg, err := config.Minimal("127.0.0.1:0", opts.upstream)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	route := cfg.Routes[0]
	route.CloseTimeout = closeTimeout
	if opts.upstreamTLS != nil {
		route.UpstreamTLS = opts.upstreamTLS
	}
	if opts.route != nil {
		opts.route(route)
	}

	f.engine, err = relay.New(relay.Options{
		Loops:          2,
		ReadBufferSize: opts.readBufferSize,
		OnClose:        f.onClose,
		Logger:         logger,
		DisableIOUring: os.Getenv("WSALIVE_TEST_IO_URING") == "off",
	})
	if err != nil {
		if runtime.GOOS != "linux" {
			t.Skipf("the relay engine runs on Linux only: %v", err)
		}
		t.Fatalf("relay.New: %v", err)
	}
	srv, err := proxy.NewServer(cfg.Routes, attachWatcher{f.engine, f.attached}, logger)
	if err != nil {
		t.Fatalf("proxy.NewServer: %v", err)
	}
	var ln net.Listener
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.proxyAddr = ln.Addr().String()
	lcfg := cfg.Listeners[0]
	if opts.listener != nil {
		f.tlsSrv, err = tlsconf.NewServer(opts.listener, tlsconf.Options{Logger: logger, OnReload: opts.onReload})
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		if err := f.tlsSrv.Watch(); err != nil {
			ln.Close()
			t.Fatal(err)
		}
		lcfg.TLS = opts.listener
		ln = tlsconf.NewListener(ln, f.tlsSrv)
	}
	stop := serveProxy(t, srv, f.engine, ln, lcfg)
	t.Cleanup(func() {
		stop()
		if f.tlsSrv != nil {
			f.tlsSrv.Close()
		}
		if n := f.dropped.Load(); n > 0 {
			t.Errorf("%d PairStats dropped: the test did not consume them", n)
		}
	})
	return f
}

func (f *tlsFixture) onClose(st relay.PairStats) {
	select {
	case f.closed <- st:
	default:
		f.dropped.Add(1)
	}
}

// nextClosed returns the stats of the next pair that ends.
func (f *tlsFixture) nextClosed(t *testing.T) relay.PairStats {
	t.Helper()
	return recv(t, f.closed, "pair end")
}

// url is the proxy's URL for path: wss:// for a TLS listener.
func (f *tlsFixture) url(path string) string {
	if f.tlsSrv != nil {
		return "wss://" + f.proxyAddr + path
	}
	return "ws://" + f.proxyAddr + path
}

// dial connects a coder/websocket client through the proxy, with conf for
// a TLS listener; the connection is closed (without handshake) when the
// test ends.
func (f *tlsFixture) dial(t *testing.T, path string, conf *tls.Config, header http.Header) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: header}
	if conf != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	}
	c, _, err := websocket.Dial(ctx, f.url(path), opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(maxMessage)
	return c, nil
}

// refusedTLS reports whether err is the engine refusing a TLS connection
// it cannot relay (no descriptor to take, or no driver for it).
func refusedTLS(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no file descriptor") || errors.Is(err, errors.ErrUnsupported))
}

// requireRelay proves the engine relays this fixture's TLS pairs with one
// round trip through a fresh pair, closed normally. When the engine
// refuses the pair at Attach because it cannot relay TLS, the test is
// skipped, naming the missing driver; any other failure fails it.
func (f *tlsFixture) requireRelay(t *testing.T, conf *tls.Config, header http.Header) {
	t.Helper()
	c, err := f.dial(t, "/probe", conf, header)
	if err != nil {
		t.Fatalf("probe dial through wsalive: %v", err)
	}
	if err := recv(t, f.attached, "Attach of the probe pair"); err != nil {
		if refusedTLS(err) {
			t.Skipf("the relay engine refused a TLS pair at Attach (%v): relaying TLS pairs needs the net.Conn driver (issue 10, parts 1-2)", err)
		}
		t.Fatalf("Attach of the probe pair: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := roundTrip(ctx, c, websocket.MessageText, []byte("probe")); err != nil {
		t.Fatalf("probe round trip: %v", err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "probe done"); err != nil {
		t.Fatalf("probe close: %v", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
		t.Fatalf("probe pair ended with %v, want client_closed", st.Reason)
	}
}

// clientTLS is the configuration of a Go client trusting m's CA, with
// cert presented when not nil. seen, when not nil, receives the leaf
// certificate of every handshake.
func (m *tlsMaterial) clientTLS(cert *tls.Certificate, seen chan<- *x509.Certificate) *tls.Config {
	conf := &tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost"}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	if seen != nil {
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			select {
			case seen <- cs.PeerCertificates[0]:
			default:
			}
			return nil
		}
	}
	return conf
}
