package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy"
	"github.com/wsalive/wsalive/proxy/relay"
	"github.com/wsalive/wsalive/proxy/tlsconf"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// TestResumeNetworkSwitch is the phone moving from Wi-Fi to 4G
// (examples/client/RESUME.md): a Node client using wsalive's helper
// (examples/client/wsalive-client.js over the ws package) lives in a
// network namespace with two links to the host. It reaches wsalive over
// the first ("Wi-Fi") and exchanges numbered messages every 10 ms with a
// Node ws upstream that knows nothing of sessions. The first link is then
// blackholed for 3 s, the route to wsalive moved to the second link
// ("4G"), and the client's connection reset: the helper reconnects from
// the second link's address and resumes. Afterwards every number has
// arrived exactly once and in order in both directions, and the upstream
// counted one connection. The same over a TLS listener.
func TestResumeNetworkSwitch(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { testResumeNetworkSwitch(t, useTLS) })
	}
}

func testResumeNetworkSwitch(t *testing.T, useTLS bool) {
	requireNode(t)
	wifi := newNetns(t)
	lte := addLink(t, wifi)

	upstream := startNode(t, "resume-upstream.js", "0")
	upPort := strings.TrimPrefix(upstream.waitLine(t, "LISTENING "), "LISTENING ")

	// wsalive listens on the second link's host address; at first the
	// namespace reaches it over the first link, as a host route says.
	listen := net.JoinHostPort(lte.hostIP, "0")
	var listenerTLS *config.ListenerTLS
	var caFile string
	if useTLS {
		m := newTLSMaterial(t)
		leaf := m.ca.Leaf(t, tlstest.LeafOptions{Names: []string{lte.hostIP}})
		cert, key := leaf.WriteFiles(t, m.dir, "switch")
		listenerTLS = &config.ListenerTLS{
			Certificates: []config.CertFiles{{CertFile: cert, KeyFile: key}},
			MinVersion:   config.DefaultTLSMinVersion,
		}
		caFile = m.caFile
	}
	rp := startResumeProxy(t, "127.0.0.1:"+upPort, listen, listenerTLS)
	nsRun(t, "ip", "-n", wifi.name, "route", "add", lte.hostIP+"/32", "via", wifi.hostIP, "dev", wifi.nsIf)

	scheme := "ws"
	if useTLS {
		scheme = "wss"
	}
	args := []string{"netns", "exec", wifi.name, "node", "resume-client.mjs", scheme + "://" + rp.addr + "/resume?room=1"}
	if caFile != "" {
		args = append(args, caFile)
	}
	client := startProc(t, nodeDir, "ip", args...)
	if line := client.waitLine(t, "OPEN "); line != "OPEN resumable=true" {
		t.Fatalf("client: %q", line)
	}
	upstream.waitLine(t, "CONNECTED ")
	client.waitLine(t, "RECEIVED 50")

	// The switch: the first link goes silent (nothing in or out of its
	// address, so not even the reset below gets through), for 3 s while
	// both sides keep sending; then the route moves to the second link
	// and the client's connection is reset.
	nsRun(t, "ip", "netns", "exec", wifi.name, "iptables", "-w", "-I", "OUTPUT", "-s", wifi.nsIP, "-j", "DROP")
	nsRun(t, "ip", "netns", "exec", wifi.name, "iptables", "-w", "-I", "INPUT", "-d", wifi.nsIP, "-j", "DROP")
	time.Sleep(3 * time.Second) // the scenario's blackhole, not a synchronisation
	nsRun(t, "ip", "-n", wifi.name, "route", "del", lte.hostIP+"/32")
	if err := client.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	client.waitLine(t, "CUT")
	resumed := client.waitLine(t, "RESUMED ")
	up := upstream.waitLine(t, "UPSTREAM ")
	cl := client.waitLine(t, "CLIENT ")
	t.Logf("%s; %s; %s", resumed, up, cl)
	if !strings.HasPrefix(up, "UPSTREAM connections=1 ") || !strings.Contains(up, " ok=true") {
		t.Errorf("upstream: %s", up)
	}
	if !strings.Contains(cl, " ok=true") {
		t.Errorf("client: %s", cl)
	}
	client.waitExit(t, waitBound)
	if got := upstream.waitLine(t, "CLOSED "); got != "CLOSED 1000" {
		t.Errorf("upstream: %s, want the client's 1000", got)
	}

	// wsalive saw the session start from the first link's address and
	// resume from the second's, and holds nothing for it any more.
	logs := rp.logs.String()
	if !strings.Contains(logs, `msg="pair attached" client=`+wifi.nsIP) {
		t.Errorf("no pair attached from %s in the log:\n%s", wifi.nsIP, logs)
	}
	if !strings.Contains(logs, `msg="session resumed" client=`+lte.nsIP) {
		t.Errorf("no session resumed from %s in the log:\n%s", lte.nsIP, logs)
	}
	if strings.Contains(logs, "wsalive_resume=") || strings.Contains(logs, "wsalive_recv=") {
		t.Errorf("the log shows a resume parameter:\n%s", logs)
	}
	deadline := time.Now().Add(waitBound)
	for {
		st := rp.engine.Stats()
		if st.Pairs == 0 && st.Sessions == 0 && st.ReplayBytes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine still holds %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resumeProxy is a wsalive with one route, "/resume" and everything
// else, that allows sessions.
type resumeProxy struct {
	addr   string
	engine *relay.Engine
	logs   *syncBuffer
}

// startResumeProxy serves listen (plain, or TLS with listenerTLS) in
// front of upstream.
func startResumeProxy(t *testing.T, upstream, listen string, listenerTLS *config.ListenerTLS) *resumeProxy {
	t.Helper()
	rp := &resumeProxy{logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(rp.logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := config.Minimal("127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	route := cfg.Routes[0]
	route.CloseTimeout = closeTimeout
	route.Resume = &config.Resume{Window: 30 * time.Second, Buffer: config.DefaultResumeBuffer}

	var srv *proxy.Server
	rp.engine, err = relay.New(relay.Options{
		Loops:        2,
		ResumeMemory: cfg.Limits.ResumeMemory,
		OnClose:      func(st relay.PairStats) { srv.PairClosed(st) },
		Logger:       logger,
	})
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	srv, err = proxy.NewServer(cfg.Routes, rp.engine, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	rp.addr = ln.Addr().String()
	lcfg := cfg.Listeners[0]
	var tlsSrv *tlsconf.Server
	if listenerTLS != nil {
		tlsSrv, err = tlsconf.NewServer(listenerTLS, tlsconf.Options{Logger: logger})
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		lcfg.TLS = listenerTLS
		ln = tlsconf.NewListener(ln, tlsSrv)
	}
	stop := serveProxy(t, srv, rp.engine, ln, lcfg)
	t.Cleanup(func() {
		stop()
		if tlsSrv != nil {
			tlsSrv.Close()
		}
	})
	return rp
}

// addLink joins n to the host by a second veth pair, in a /30 of its own;
// it is removed with the namespace.
func addLink(t *testing.T, n *netns) *netns {
	t.Helper()
	pid, seq := os.Getpid(), nsSeq.Add(1)-1
	l := &netns{
		name:   n.name,
		hostIf: fmt.Sprintf("%s%dh%d", nsPrefix, pid, seq),
		nsIf:   fmt.Sprintf("%s%dn%d", nsPrefix, pid, seq),
	}
	l.hostIP, l.nsIP = freeSubnet(t, pid, int(seq))
	t.Cleanup(func() {
		if _, err := nsCmd("ip", "link", "show", l.hostIf); err == nil {
			if out, err := nsCmd("ip", "link", "del", l.hostIf); err != nil {
				t.Errorf("remove veth %s: %v: %s", l.hostIf, err, out)
			}
		}
	})
	for _, args := range [][]string{
		{"ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", l.nsIf, "netns", n.name},
		{"ip", "addr", "add", l.hostIP + "/30", "dev", l.hostIf},
		{"ip", "link", "set", l.hostIf, "up"},
		{"ip", "-n", n.name, "addr", "add", l.nsIP + "/30", "dev", l.nsIf},
		{"ip", "-n", n.name, "link", "set", l.nsIf, "up"},
	} {
		nsRun(t, args[0], args[1:]...)
	}
	return l
}

// nsRun runs an ip or iptables command and fails the test if it fails.
func nsRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := nsCmd(name, args...); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
