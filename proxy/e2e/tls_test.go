package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// pythonScript is the Python peer (testdata/python/wss_client.py).
const pythonScript = "wss_client.py"

// xTest is the header Node's echo-server.js insists on.
var xTest = http.Header{"X-Test": {"go-client"}}

// pythonSizes mirrors SIZES in wss_client.py: every frame length
// encoding, and payloads that span many reads, up to 16 MiB.
var pythonSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20}

// waitLineWithin is waitLine with its own bound, for lines that follow a
// 16 MiB message.
func (p *nodeProc) waitLineWithin(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				t.Fatalf("peer ended (%v) before printing %q; stderr:\n%s", p.waitErr, prefix, p.stderr.String())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			t.Logf("peer: %s", line)
		case <-deadline:
			t.Fatalf("peer printed no %q line within %v; stderr:\n%s", prefix, d, p.stderr.String())
		}
	}
}

// listeningPort waits for a Node server's "LISTENING <port>" line.
func listeningPort(t *testing.T, p *nodeProc) string {
	t.Helper()
	return strings.TrimPrefix(p.waitLine(t, "LISTENING "), "LISTENING ")
}

// TestTLSPython runs Python's websockets as the client and Node's ws as
// the upstream through wsalive, with TLS on the client side, the upstream
// side, or both: every message size byte-exact both ways, the subprotocol
// and permessage-deflate negotiated end to end, close codes both ways.
func TestTLSPython(t *testing.T) {
	requireNode(t)
	py := requirePython(t)
	m := newTLSMaterial(t)
	wssNode := startNode(t, "wss-server.js", "0", m.serverCert, m.serverKey, "-", "b.v2")
	wssPort := listeningPort(t, wssNode)
	wsNode := startNode(t, "echo-server.js", "0", "b.v2")
	wsPort := listeningPort(t, wsNode)
	trusting := func() *config.UpstreamTLS {
		return &config.UpstreamTLS{CAFile: m.caFile, ServerName: "127.0.0.1"}
	}

	for _, tc := range []struct {
		name        string
		clientTLS   bool
		upstream    string
		upstreamTLS *config.UpstreamTLS
		node        *nodeProc
		deflate     bool // the upstream offers permessage-deflate
	}{
		{"wss-client-wss-upstream", true, "wss://127.0.0.1:" + wssPort, trusting(), wssNode, true},
		{"wss-client-ws-upstream", true, "ws://127.0.0.1:" + wsPort, nil, wsNode, false},
		{"ws-client-wss-upstream", false, "wss://127.0.0.1:" + wssPort, trusting(), wssNode, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tlsFixtureOptions{upstream: tc.upstream, upstreamTLS: tc.upstreamTLS}
			// A 16 MiB random message compressed by permessage-deflate is
			// a frame a little over 16 MiB, which the default
			// max_frame_size (16 MiB) rightly refuses with 1009; the
			// limit is policy, so the byte-exact test raises it.
			opts.route = func(r *config.Route) { r.MaxFrameSize = 32 << 20 }
			var probeTLS *tls.Config
			if tc.clientTLS {
				opts.listener = m.listenerTLS()
				probeTLS = m.clientTLS(nil, nil)
			}
			f := newTLSFixture(t, opts)
			f.requireRelay(t, probeTLS, xTest)
			tc.node.waitLine(t, "CLOSED ") // the probe's

			t.Run("messages", func(t *testing.T) {
				p := startPython(t, py, pythonScript, f.url("/py"), m.caFile, "echo")
				connected := p.waitLine(t, "CONNECTED ")
				if !strings.Contains(connected, "protocol=b.v2") {
					t.Errorf("python saw %q, want subprotocol b.v2", connected)
				}
				if got := strings.Contains(connected, "permessage-deflate"); got != tc.deflate {
					t.Errorf("python saw %q: permessage-deflate negotiated %v, want %v", connected, got, tc.deflate)
				}
				if line := tc.node.waitLine(t, "CONNECTED "); !strings.Contains(line, "protocol=b.v2") {
					t.Errorf("node saw %q, want subprotocol b.v2", line)
				}
				for _, kind := range []string{"text", "binary"} {
					for _, size := range pythonSizes {
						want := fmt.Sprintf("ECHO %s %d", kind, size)
						if got := p.waitLineWithin(t, "ECHO ", messageBound); got != want {
							t.Fatalf("python printed %q, want %q", got, want)
						}
					}
				}
				if got := p.waitLine(t, "CLOSED "); got != "CLOSED 4001 py-bye" {
					t.Errorf("python printed %q, want CLOSED 4001 py-bye", got)
				}
				if got := tc.node.waitLine(t, "CLOSED "); got != "CLOSED 4001 py-bye" {
					t.Errorf("node printed %q, want CLOSED 4001 py-bye", got)
				}
				if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
					t.Errorf("pair ended with %v, want client_closed", st.Reason)
				}
				p.waitExit(t, waitBound)
			})

			t.Run("upstream-closes", func(t *testing.T) {
				p := startPython(t, py, pythonScript, f.url("/py"), m.caFile, "upstream-close")
				p.waitLine(t, "CONNECTED ")
				tc.node.waitLine(t, "CONNECTED ")
				if got := p.waitLine(t, "CLOSED "); got != "CLOSED 4002 later" {
					t.Errorf("python printed %q, want CLOSED 4002 later", got)
				}
				if got := tc.node.waitLine(t, "CLOSED "); got != "CLOSED 4002 later" {
					t.Errorf("node printed %q, want CLOSED 4002 later", got)
				}
				if st := f.nextClosed(t); st.Reason != relay.ReasonUpstreamClosed {
					t.Errorf("pair ended with %v, want upstream_closed", st.Reason)
				}
				p.waitExit(t, waitBound)
			})
		})
	}
}

// TestTLSPythonClientCertificates puts a listener that requires client
// certificates in front of a Node upstream: Python without a certificate,
// or with one from another CA, is refused in the TLS handshake and no
// pair is made; with one from the clients CA it is relayed.
func TestTLSPythonClientCertificates(t *testing.T) {
	requireNode(t)
	py := requirePython(t)
	m := newTLSMaterial(t)
	node := startNode(t, "echo-server.js", "0", "b.v2")
	lt := m.listenerTLS()
	lt.ClientCAFile = m.clientsCAFile
	f := newTLSFixture(t, tlsFixtureOptions{listener: lt, upstream: "ws://127.0.0.1:" + listeningPort(t, node)})
	alice, aliceCert, aliceKey := m.clientLeaf(t, "alice")
	strangers := tlstest.NewCA(t, "strangers CA")
	mallory := strangers.Leaf(t, tlstest.LeafOptions{Names: []string{"mallory"}, Client: true})
	malloryCert, malloryKey := mallory.WriteFiles(t, m.dir, "mallory")

	// The refusals happen in the TLS handshake, before any pair exists:
	// they need no relaying.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"refused-without-certificate", nil},
		{"refused-with-a-strangers-certificate", []string{malloryCert, malloryKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPython(t, py, pythonScript, append([]string{f.url("/py"), m.caFile, "connect"}, tc.args...)...)
			line := p.waitLine(t, "ERROR ")
			<-p.exited
			if p.waitErr == nil {
				t.Errorf("python exited 0 after %q", line)
			}
			select {
			case err := <-f.attached:
				t.Errorf("a pair was attached (%v) for a refused client", err)
			default:
			}
			t.Logf("python: %s", line)
		})
	}

	f.requireRelay(t, m.clientTLS(&alice.TLS, nil), xTest)
	node.waitLine(t, "CLOSED ") // the probe's
	t.Run("accepted", func(t *testing.T) {
		p := startPython(t, py, pythonScript, f.url("/py"), m.caFile, "connect", aliceCert, aliceKey)
		p.waitLine(t, "CONNECTED ")
		if got := p.waitLine(t, "CLOSED "); got != "CLOSED 1000 " {
			t.Errorf("python printed %q, want CLOSED 1000", got)
		}
		if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
			t.Errorf("pair ended with %v, want client_closed", st.Reason)
		}
		p.waitExit(t, waitBound)
	})
}

// TestTLSUpstreamClientCertificate has a Node upstream that requires a
// client certificate: wsalive's upstream_tls cert_file is presented and
// accepted; without it the upstream refuses and the client gets 502.
func TestTLSUpstreamClientCertificate(t *testing.T) {
	requireNode(t)
	m := newTLSMaterial(t)
	node := startNode(t, "wss-server.js", "0", m.serverCert, m.serverKey, m.clientsCAFile, "b.v2")
	port := listeningPort(t, node)
	_, certFile, keyFile := m.clientLeaf(t, "wsalive")

	t.Run("presented", func(t *testing.T) {
		f := newTLSFixture(t, tlsFixtureOptions{upstream: "wss://127.0.0.1:" + port, upstreamTLS: &config.UpstreamTLS{
			CAFile: m.caFile, ServerName: "127.0.0.1",
			ClientCert: &config.CertFiles{CertFile: certFile, KeyFile: keyFile},
		}})
		c, err := f.dial(t, "/mtls", nil, nil)
		if err != nil {
			t.Fatalf("dial through wsalive: %v", err)
		}
		// The upstream saw wsalive's certificate before it answered 101.
		if line := node.waitLine(t, "CONNECTED "); !strings.Contains(line, "client=wsalive") {
			t.Errorf("node saw %q, want client=wsalive", line)
		}
		if err := recv(t, f.attached, "Attach"); err != nil {
			if refusedTLS(err) {
				t.Skipf("the upstream accepted wsalive's certificate; relaying the pair needs the net.Conn driver (issue 10, parts 1-2): %v", err)
			}
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		if err := roundTrip(ctx, c, websocket.MessageText, []byte("mutual")); err != nil {
			t.Fatal(err)
		}
		closeNormallyTLS(t, f, c)
		node.waitLine(t, "CLOSED ")
	})

	t.Run("not-presented", func(t *testing.T) {
		f := newTLSFixture(t, tlsFixtureOptions{upstream: "wss://127.0.0.1:" + port,
			upstreamTLS: &config.UpstreamTLS{CAFile: m.caFile, ServerName: "127.0.0.1"}})
		_, err := f.dial(t, "/mtls", nil, nil)
		if err == nil || !strings.Contains(err.Error(), "502") {
			t.Fatalf("dial: %v, want a 502", err)
		}
		// TLS 1.3 finishes the client's side of the handshake before the
		// server checks the certificate: the refusal arrives as an alert
		// on the first read, and the log line quotes it.
		if logs := f.logs.String(); !strings.Contains(logs, "certificate required") {
			t.Errorf("log does not say the upstream required a certificate:\n%s", logs)
		}
	})
}

// TestTLSUpstreamErrors has Node serve certificates wsalive must refuse;
// Python, the client, gets a 502, and wsalive's log line says why.
func TestTLSUpstreamErrors(t *testing.T) {
	requireNode(t)
	py := requirePython(t)
	m := newTLSMaterial(t)
	strangers := tlstest.NewCA(t, "strangers CA")
	for _, tc := range []struct {
		name   string
		leaf   *tlstest.Leaf
		reason string
	}{
		{"unknown-ca", strangers.Leaf(t, tlstest.LeafOptions{Names: []string{"127.0.0.1"}}), "unknown authority"},
		{"wrong-name", m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{"other.internal"}}), "name mismatch"},
		{"expired", m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{"127.0.0.1"},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certFile, keyFile := tc.leaf.WriteFiles(t, t.TempDir(), "upstream")
			node := startNode(t, "wss-server.js", "0", certFile, keyFile, "-")
			f := newTLSFixture(t, tlsFixtureOptions{upstream: "wss://127.0.0.1:" + listeningPort(t, node),
				upstreamTLS: &config.UpstreamTLS{CAFile: m.caFile, ServerName: "127.0.0.1"}})
			p := startPython(t, py, pythonScript, f.url("/py"), "-", "connect")
			if line := p.waitLine(t, "ERROR "); !strings.Contains(line, "502") {
				t.Errorf("python printed %q, want a 502 refusal", line)
			}
			<-p.exited
			want := "TLS handshake with the upstream failed: " + tc.reason
			if logs := f.logs.String(); !strings.Contains(logs, want) {
				t.Errorf("log lacks %q:\n%s", want, logs)
			}
		})
	}
}

// rotationPairs is how many pairs stay open across a certificate
// rotation.
const rotationPairs = 100

// TestTLSRotationWithPairsOpen replaces the listener's certificate on disk
// while 100 TLS pairs are open: new handshakes get the new certificate,
// and every pair opened before keeps relaying.
func TestTLSRotationWithPairsOpen(t *testing.T) {
	requireNode(t)
	m := newTLSMaterial(t)
	node := startNode(t, "echo-server.js", "0")
	reloads := make(chan error, 64)
	f := newTLSFixture(t, tlsFixtureOptions{
		listener: m.listenerTLS(),
		onReload: func(err error) { reloads <- err },
		upstream: "ws://127.0.0.1:" + listeningPort(t, node),
	})
	seen := make(chan *x509.Certificate, rotationPairs+2)
	conf := m.clientTLS(nil, seen)
	f.requireRelay(t, conf, xTest)
	<-seen // the probe's

	ctx, cancel := context.WithTimeout(context.Background(), 3*waitBound)
	defer cancel()
	pairs := make([]*websocket.Conn, rotationPairs)
	for i := range pairs {
		c, err := f.dial(t, "/rotation", conf, xTest)
		if err != nil {
			t.Fatalf("pair %d: %v", i, err)
		}
		if cert := <-seen; !cert.Equal(m.server.Cert) {
			t.Fatalf("pair %d got a certificate other than the first", i)
		}
		if err := recv(t, f.attached, "Attach"); err != nil {
			t.Fatalf("pair %d: Attach: %v", i, err)
		}
		pairs[i] = c
	}
	roundTrips := func(when string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(pairs))
		for i, c := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := roundTrip(ctx, c, websocket.MessageText, []byte(fmt.Sprintf("%s %d", when, i))); err != nil {
					errs <- fmt.Errorf("pair %d %s the rotation: %w", i, when, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	roundTrips("before")

	second := m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost", "127.0.0.1"}})
	for _, file := range []struct {
		path string
		data []byte
	}{{m.serverCert, second.CertPEM}, {m.serverKey, second.KeyPEM}} {
		tmp := file.path + ".new"
		if err := os.WriteFile(tmp, file.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file.path); err != nil {
			t.Fatal(err)
		}
	}
	// The certificate and the key are renamed one after the other; the
	// reload between them fails (new certificate, old key) and keeps the
	// old material until the second event.
	deadline := time.After(waitBound)
	for done := false; !done; {
		select {
		case err := <-reloads:
			done = err == nil
		case <-deadline:
			t.Fatalf("no successful reload within %v", waitBound)
		}
	}

	fresh, err := f.dial(t, "/rotation", conf, xTest)
	if err != nil {
		t.Fatalf("a handshake after the rotation: %v", err)
	}
	if cert := <-seen; !cert.Equal(second.Cert) {
		t.Error("a handshake after the rotation did not get the new certificate")
	}
	if err := recv(t, f.attached, "Attach"); err != nil {
		t.Fatal(err)
	}
	roundTrips("after")
	if n := f.engine.Stats().Pairs; n != rotationPairs+1 {
		t.Errorf("engine has %d pairs, want %d: a rotation must not drop any", n, rotationPairs+1)
	}
	for _, c := range append(pairs, fresh) {
		closeNormallyTLS(t, f, c)
	}
}

// closeNormallyTLS closes c with 1000 and checks that its pair ended
// client_closed.
func closeNormallyTLS(t *testing.T, f *tlsFixture, c *websocket.Conn) {
	t.Helper()
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
	if st := f.nextClosed(t); st.Reason != relay.ReasonClientClosed {
		t.Errorf("pair ended with %v, want client_closed", st.Reason)
	}
}
