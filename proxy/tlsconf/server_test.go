package tlsconf

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// waitBound is how long a test waits for something that should happen
// promptly (a handshake, a reload after a file event).
const waitBound = 10 * time.Second

// quietLogger drops everything below error, so that the expected reload
// failures do not clutter the output.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
}

// handshakeResult is what the test server saw of one connection.
type handshakeResult struct {
	err   error
	state tls.ConnectionState
}

// tlsServer is a TLS echo server on 127.0.0.1 behind NewListener.
type tlsServer struct {
	addr    string
	results chan handshakeResult
}

// serve runs an echo server with srv's material; every connection's
// handshake result is sent on results. Cleanup closes the listener and
// waits for every connection goroutine.
func serve(t *testing.T, srv *Server) *tlsServer {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, srv)
	ts := &tlsServer{addr: inner.Addr().String(), results: make(chan handshakeResult, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(waitBound))
				err := tc.Handshake()
				ts.results <- handshakeResult{err: err, state: tc.ConnectionState()}
				if err != nil {
					return
				}
				_ = tc.SetDeadline(time.Time{})
				_, _ = io.Copy(tc, tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ts
}

// result returns the next handshake result the server saw.
func (ts *tlsServer) result(t *testing.T) handshakeResult {
	t.Helper()
	select {
	case r := <-ts.results:
		return r
	case <-time.After(waitBound):
		t.Fatalf("the server saw no handshake within %v", waitBound)
		return handshakeResult{}
	}
}

// dial makes a TLS client connection with conf and completes its
// handshake; the connection is closed at cleanup.
func (ts *tlsServer) dial(t *testing.T, conf *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: waitBound}
	c, err := tls.DialWithDialer(d, "tcp", ts.addr, conf)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// echo checks a round trip on c.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitBound))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

func mustServer(t *testing.T, cfg *config.ListenerTLS, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	s, err := NewServer(cfg, opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sameCert(a, b *x509.Certificate) bool {
	return a != nil && b != nil && a.Equal(b)
}

func TestSNI(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "sni CA")
	def := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"default.test"}})
	chat := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"chat.example.com", "Chat2.Example.com"}})
	api := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"*.api.example.com"}})
	// Names chat.example.com too, after chat: the earlier certificate
	// keeps the name.
	late := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"chat.example.com", "late.example.com"}})
	cfg := &config.ListenerTLS{MinVersion: tls.VersionTLS12}
	for i, l := range []*tlstest.Leaf{def, chat, api, late} {
		c, k := l.WriteFiles(t, dir, strings.Repeat("x", i+1))
		cfg.Certificates = append(cfg.Certificates, config.CertFiles{CertFile: c, KeyFile: k})
	}
	ts := serve(t, mustServer(t, cfg, Options{}))

	for _, tc := range []struct {
		name, sni string
		want      *tlstest.Leaf
	}{
		{"exact", "chat.example.com", chat},
		{"exact second name", "chat2.example.com", chat},
		{"case and trailing dot", "CHAT.Example.COM.", chat},
		{"wildcard", "eu.api.example.com", api},
		{"wildcard covers one label only", "a.eu.api.example.com", def},
		{"wildcard does not cover its parent", "api.example.com", def},
		{"first certificate keeps a shared name", "late.example.com", late},
		{"unknown name gets the default", "other.test", def},
		{"no SNI gets the default", "", def},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Verification is by comparing the leaf: the point is which
			// certificate was chosen, not whether it covers the name.
			c, err := ts.dial(t, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if r := ts.result(t); r.err != nil {
				t.Fatalf("server handshake: %v", r.err)
			}
			if got := c.ConnectionState().PeerCertificates[0]; !sameCert(got, tc.want.Cert) {
				t.Errorf("SNI %q got the certificate for %v, want %v", tc.sni, got.DNSNames, tc.want.Cert.DNSNames)
			}
			echo(t, c, "hello")
		})
	}
}

// oneCert writes a leaf for localhost and returns a config serving it.
func oneCert(t *testing.T, dir string, ca *tlstest.CA) (*config.ListenerTLS, *tlstest.Leaf) {
	t.Helper()
	leaf := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost", "127.0.0.1"}})
	c, k := leaf.WriteFiles(t, dir, "server")
	return &config.ListenerTLS{
		Certificates: []config.CertFiles{{CertFile: c, KeyFile: k}},
		MinVersion:   config.DefaultTLSMinVersion,
	}, leaf
}

func TestMinVersion(t *testing.T) {
	ca := tlstest.NewCA(t, "version CA")
	for _, tc := range []struct {
		name       string
		min        uint16
		clientMax  uint16
		wantOK     bool
		wantedVers uint16
	}{
		{"default accepts 1.3", config.DefaultTLSMinVersion, tls.VersionTLS13, true, tls.VersionTLS13},
		{"default accepts 1.2", config.DefaultTLSMinVersion, tls.VersionTLS12, true, tls.VersionTLS12},
		{"default refuses 1.1", config.DefaultTLSMinVersion, tls.VersionTLS11, false, 0},
		{"1.3 accepts 1.3", tls.VersionTLS13, tls.VersionTLS13, true, tls.VersionTLS13},
		{"1.3 refuses 1.2", tls.VersionTLS13, tls.VersionTLS12, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := oneCert(t, t.TempDir(), ca)
			cfg.MinVersion = tc.min
			ts := serve(t, mustServer(t, cfg, Options{}))
			c, err := ts.dial(t, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost",
				MinVersion: tls.VersionTLS10, MaxVersion: tc.clientMax})
			r := ts.result(t)
			if !tc.wantOK {
				if err == nil || r.err == nil {
					t.Fatalf("handshake succeeded (client err %v, server err %v), want it refused", err, r.err)
				}
				if !strings.Contains(r.err.Error(), "unsupported versions") {
					t.Errorf("server error %q, want a protocol version refusal", r.err)
				}
				return
			}
			if err != nil || r.err != nil {
				t.Fatalf("handshake: client %v, server %v", err, r.err)
			}
			if got := c.ConnectionState().Version; got != tc.wantedVers {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(tc.wantedVers))
			}
		})
	}
}

func TestALPN(t *testing.T) {
	ca := tlstest.NewCA(t, "alpn CA")
	cfg, _ := oneCert(t, t.TempDir(), ca)
	ts := serve(t, mustServer(t, cfg, Options{}))
	for _, tc := range []struct {
		name    string
		offered []string
		want    string // "" with wantErr false: no ALPN
		wantErr bool
	}{
		{"browser offers h2 and http/1.1", []string{"h2", "http/1.1"}, "http/1.1", false},
		{"http/1.1 only", []string{"http/1.1"}, "http/1.1", false},
		{"no ALPN", nil, "", false},
		{"h2 only is refused", []string{"h2"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ts.dial(t, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: tc.offered})
			r := ts.result(t)
			if tc.wantErr {
				if err == nil || r.err == nil {
					t.Fatalf("handshake succeeded, want it refused (client %v, server %v)", err, r.err)
				}
				return
			}
			if err != nil || r.err != nil {
				t.Fatalf("handshake: client %v, server %v", err, r.err)
			}
			if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("negotiated %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server CA")
	clients := tlstest.NewCA(t, "clients CA")
	strangers := tlstest.NewCA(t, "strangers CA")
	cfg, _ := oneCert(t, dir, ca)
	cfg.ClientCAFile = clients.WriteFile(t, dir, "clients.crt")
	ts := serve(t, mustServer(t, cfg, Options{}))

	member := clients.Leaf(t, tlstest.LeafOptions{Names: []string{"alice"}, Client: true})
	stranger := strangers.Leaf(t, tlstest.LeafOptions{Names: []string{"mallory"}, Client: true})
	expired := clients.Leaf(t, tlstest.LeafOptions{Names: []string{"bob"}, Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})

	for _, tc := range []struct {
		name    string
		cert    *tlstest.Leaf
		wantErr string // in the server's handshake error; "" for success
	}{
		{"certificate from the client CA", member, ""},
		{"no certificate", nil, "didn't provide a certificate"},
		{"certificate from another CA", stranger, "unknown authority"},
		{"expired certificate", expired, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
			if tc.cert != nil {
				// Presented whatever CAs the server lists as acceptable:
				// crypto/tls would otherwise hold back a stranger's
				// certificate itself, and the server would never see it.
				conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return &tc.cert.TLS, nil
				}
			}
			c, err := ts.dial(t, conf)
			r := ts.result(t)
			if tc.wantErr == "" {
				if err != nil || r.err != nil {
					t.Fatalf("handshake: client %v, server %v", err, r.err)
				}
				if got := r.state.PeerCertificates; len(got) == 0 || !sameCert(got[0], tc.cert.Cert) {
					t.Errorf("server saw client certificates %v, want %v", got, tc.cert.Cert.Subject)
				}
				echo(t, c, "mutual")
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("server handshake error %v, want one containing %q", r.err, tc.wantErr)
			}
			// With TLS 1.3 the client learns of the refusal on its first
			// read; either way it must not get a working connection.
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(waitBound))
				if _, err = c.Read(make([]byte, 1)); err == nil {
					t.Fatal("the refused client could read from the connection")
				}
			}
		})
	}
}

// replaceFile writes b to path by renaming a temporary file over it, as
// certificate renewal tools do.
func replaceFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// kubernetesVolume lays out dir as the kubelet mounts a Secret: tls.crt and
// tls.key are symlinks through ..data to a timestamped directory.
type kubernetesVolume struct {
	dir string
	gen int
}

func (v *kubernetesVolume) write(t *testing.T, leaf *tlstest.Leaf) {
	t.Helper()
	v.gen++
	ts := filepath.Join(v.dir, "..2026_12_03_0"+string(rune('0'+v.gen)))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	leaf.WriteFiles(t, ts, "tls")
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.gen == 1 {
		for _, f := range []string{"tls.crt", "tls.key"} {
			if err := os.Symlink(filepath.Join("..data", f), filepath.Join(v.dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	old := filepath.Join(v.dir, "..2026_12_03_0"+string(rune('0'+v.gen-1)))
	if err := os.RemoveAll(old); err != nil {
		t.Fatal(err)
	}
}

func TestRotation(t *testing.T) {
	for _, layout := range []string{"rename", "kubernetes"} {
		t.Run(layout, func(t *testing.T) {
			if layout == "kubernetes" && runtime.GOOS == "windows" {
				t.Skip("the Kubernetes layout uses symlinks, which Windows restricts")
			}
			dir := t.TempDir()
			ca := tlstest.NewCA(t, "rotation CA")
			first := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost"}})
			second := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost"}})

			var certFile, keyFile string
			var rotate func()
			switch layout {
			case "rename":
				certFile, keyFile = first.WriteFiles(t, dir, "server")
				rotate = func() {
					replaceFile(t, certFile, second.CertPEM)
					replaceFile(t, keyFile, second.KeyPEM)
				}
			case "kubernetes":
				v := &kubernetesVolume{dir: dir}
				v.write(t, first)
				certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
				rotate = func() { v.write(t, second) }
			}

			reloads := make(chan error, 64)
			srv := mustServer(t, &config.ListenerTLS{
				Certificates: []config.CertFiles{{CertFile: certFile, KeyFile: keyFile}},
				MinVersion:   tls.VersionTLS12,
			}, Options{OnReload: func(err error) { reloads <- err }})
			if err := srv.Watch(); err != nil {
				t.Fatal(err)
			}
			ts := serve(t, srv)
			client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}

			old, err := ts.dial(t, client)
			if err != nil {
				t.Fatal(err)
			}
			ts.result(t)
			if !sameCert(old.ConnectionState().PeerCertificates[0], first.Cert) {
				t.Fatal("the first connection did not get the first certificate")
			}
			echo(t, old, "before")

			rotate()
			// A rename layout passes through a state where the new
			// certificate meets the old key: that reload fails and is
			// retried on the next event.
			deadline := time.After(waitBound)
			for reloaded := false; !reloaded; {
				select {
				case err := <-reloads:
					reloaded = err == nil
				case <-deadline:
					t.Fatalf("no successful reload within %v of the rotation", waitBound)
				}
			}
			if !sameCert(srv.Current("localhost"), second.Cert) {
				t.Fatal("after the reload the server does not offer the second certificate")
			}

			fresh, err := ts.dial(t, client)
			if err != nil {
				t.Fatal(err)
			}
			ts.result(t)
			if !sameCert(fresh.ConnectionState().PeerCertificates[0], second.Cert) {
				t.Error("a handshake after the rotation did not get the second certificate")
			}
			echo(t, fresh, "after")
			// The connection made before the rotation is untouched.
			echo(t, old, "still open")
		})
	}
}

func TestReloadKeepsPreviousOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "reload CA")
	cfg, leaf := oneCert(t, dir, ca)
	reloads := make(chan error, 4)
	srv := mustServer(t, cfg, Options{OnReload: func(err error) { reloads <- err }})

	t.Run("unchanged files are no reload", func(t *testing.T) {
		if err := srv.Reload(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-reloads:
			t.Fatalf("OnReload(%v) for unchanged files", err)
		default:
		}
	})
	t.Run("a broken certificate keeps the previous one", func(t *testing.T) {
		replaceFile(t, cfg.Certificates[0].CertFile, []byte("not a certificate"))
		err := srv.Reload()
		if err == nil || !strings.Contains(err.Error(), cfg.Certificates[0].CertFile) {
			t.Fatalf("Reload = %v, want an error naming %s", err, cfg.Certificates[0].CertFile)
		}
		if got := <-reloads; got == nil {
			t.Error("OnReload(nil) for a failed reload")
		}
		if !sameCert(srv.Current("localhost"), leaf.Cert) {
			t.Error("the previous certificate is no longer offered")
		}
	})
	t.Run("a missing key keeps the previous one", func(t *testing.T) {
		replaceFile(t, cfg.Certificates[0].CertFile, leaf.CertPEM)
		if err := os.Remove(cfg.Certificates[0].KeyFile); err != nil {
			t.Fatal(err)
		}
		err := srv.Reload()
		if err == nil || !strings.Contains(err.Error(), "key_file") {
			t.Fatalf("Reload = %v, want a key_file error", err)
		}
		<-reloads
		if !sameCert(srv.Current("localhost"), leaf.Cert) {
			t.Error("the previous certificate is no longer offered")
		}
	})
}

func TestNewServerErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "errors CA")
	a := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"a.test"}})
	b := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"b.test"}})
	aCert, aKey := a.WriteFiles(t, dir, "a")
	_, bKey := b.WriteFiles(t, dir, "b")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")

	for _, tc := range []struct {
		name string
		cfg  config.ListenerTLS
		want []string
	}{
		{"missing cert_file", config.ListenerTLS{Certificates: []config.CertFiles{{CertFile: missing, KeyFile: aKey}}},
			[]string{"cert_file", missing}},
		{"key of another certificate", config.ListenerTLS{Certificates: []config.CertFiles{{CertFile: aCert, KeyFile: bKey}}},
			[]string{aCert, bKey, "private key does not match public key"}},
		{"client_ca_file without a certificate", config.ListenerTLS{Certificates: []config.CertFiles{{CertFile: aCert, KeyFile: aKey}}, ClientCAFile: notPEM},
			[]string{"client_ca_file", notPEM, "no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(&tc.cfg, Options{Logger: quietLogger(t)})
			if err == nil {
				t.Fatal("NewServer succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPlainHTTPOnTLSPort(t *testing.T) {
	ca := tlstest.NewCA(t, "plain CA")
	cfg, _ := oneCert(t, t.TempDir(), ca)
	ts := serve(t, mustServer(t, cfg, Options{}))

	t.Run("an HTTP request is answered 400", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", ts.addr, waitBound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(waitBound))
		req := "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "TLS") || !resp.Close {
			t.Errorf("answer %d %q (close %v), want a closing 400 that mentions TLS", resp.StatusCode, body, resp.Close)
		}
		if r := ts.result(t); !errors.Is(r.err, ErrPlainHTTP) {
			t.Errorf("server handshake error %v, want ErrPlainHTTP", r.err)
		}
	})
	t.Run("other bytes just fail the handshake", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", ts.addr, waitBound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(waitBound))
		if _, err := c.Write([]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06}); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		if strings.HasPrefix(string(got), "HTTP/") {
			t.Errorf("got an HTTP answer %q to bytes that are not HTTP", got)
		}
		if r := ts.result(t); r.err == nil || errors.Is(r.err, ErrPlainHTTP) {
			t.Errorf("server handshake error %v, want a TLS error", r.err)
		}
	})
	t.Run("TLS still works", func(t *testing.T) {
		c, err := ts.dial(t, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.result(t); r.err != nil {
			t.Fatal(r.err)
		}
		echo(t, c, "tls")
	})
}

func TestRelevantEvents(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "tls.crt")
	names := map[string]bool{cert: true}
	for _, tc := range []struct {
		name string
		ev   fsnotify.Event
		want bool
	}{
		{"the file written", fsnotify.Event{Name: cert, Op: fsnotify.Write}, true},
		{"a file renamed over it", fsnotify.Event{Name: cert, Op: fsnotify.Create}, true},
		{"the file removed", fsnotify.Event{Name: cert, Op: fsnotify.Remove}, true},
		{"the Kubernetes ..data swap", fsnotify.Event{Name: filepath.Join(dir, "..data"), Op: fsnotify.Create}, true},
		{"a new Kubernetes timestamped directory", fsnotify.Event{Name: filepath.Join(dir, "..2026_12_03_09_00_00.1"), Op: fsnotify.Create}, true},
		{"only its mode changed", fsnotify.Event{Name: cert, Op: fsnotify.Chmod}, false},
		{"another file in the directory", fsnotify.Event{Name: filepath.Join(dir, "other.crt"), Op: fsnotify.Write}, false},
		{"an editor's swap file", fsnotify.Event{Name: filepath.Join(dir, ".tls.crt.swp"), Op: fsnotify.Write}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := relevant(tc.ev, names); got != tc.want {
				t.Errorf("relevant(%v) = %v, want %v", tc.ev, got, tc.want)
			}
		})
	}
}

func TestValidityWarnings(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "validity CA")
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter := notBefore.Add(90 * 24 * time.Hour)
	c, k := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost"}, NotBefore: notBefore, NotAfter: notAfter}).WriteFiles(t, dir, "server")
	cfg := &config.ListenerTLS{Certificates: []config.CertFiles{{CertFile: c, KeyFile: k}}, MinVersion: tls.VersionTLS12}
	for _, tc := range []struct {
		name string
		now  time.Time
		want string // in the log; "" for no warning
	}{
		{"valid", notBefore.Add(time.Hour), ""},
		{"expired", notAfter.Add(time.Second), "certificate has expired"},
		{"not valid yet", notBefore.Add(-time.Second), "certificate is not valid yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			s, err := NewServer(cfg, Options{
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Now:    func() time.Time { return tc.now },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := logs.String()
			if tc.want == "" {
				if strings.Contains(got, "level=WARN") {
					t.Errorf("unexpected warning:\n%s", got)
				}
				return
			}
			if !strings.Contains(got, "level=WARN") || !strings.Contains(got, tc.want) || !strings.Contains(got, c) {
				t.Errorf("log lacks a warning %q naming %s:\n%s", tc.want, c, got)
			}
		})
	}
}
