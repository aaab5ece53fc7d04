package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf/tlstest"
)

// TestAppTLSListener starts the program's assembly from a file with a tls
// block: the listener speaks TLS with the configured certificate and
// answers plain HTTP with 400; a certificate that does not load stops the
// start with the file's name.
func TestAppTLSListener(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the relay engine runs on Linux only")
	}
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "app CA")
	certFile, keyFile := ca.Leaf(t, tlstest.LeafOptions{Names: []string{"localhost"}}).WriteFiles(t, dir, "server")
	file := filepath.Join(dir, "wsalive.hcl")
	src := fmt.Sprintf(`listener {
  address = "127.0.0.1:0"
  tls {
    cert_file = %q
    key_file  = %q
  }
}
route "default" {
  upstream = "ws://127.0.0.1:1"
}
`, certFile, keyFile)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run("validate", "-config", file); code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("-listen keeps the file's TLS", func(t *testing.T) {
		over, err := loadConfig(file, "127.0.0.1:0", "")
		if err != nil {
			t.Fatal(err)
		}
		if l := over.Listeners[0]; l.Address != "127.0.0.1:0" || !l.IsTLS() {
			t.Errorf("listener %+v, want the -listen address with the file's tls block", l)
		}
	})

	t.Run("serves TLS", func(t *testing.T) {
		a, err := startApp(cfg, slog.New(slog.DiscardHandler), appOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.finish(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}()
		addr := a.listenerAddrs()[0].String()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatalf("TLS handshake with wsalive: %v", err)
		}
		c.Close()

		raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(raw, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
		if err != nil {
			t.Fatalf("plain HTTP on the TLS port: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port got %d, want 400", resp.StatusCode)
		}
	})

	t.Run("a certificate that does not load stops the start", func(t *testing.T) {
		bad := *cfg
		bad.Listeners = []config.Listener{cfg.Listeners[0]}
		lt := *cfg.Listeners[0].TLS
		lt.Certificates = []config.CertFiles{{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: keyFile}}
		bad.Listeners[0].TLS = &lt
		a, err := startApp(&bad, slog.New(slog.DiscardHandler), appOptions{})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.finish(ctx)
			t.Fatal("startApp succeeded")
		}
		if !strings.Contains(err.Error(), "missing.crt") {
			t.Errorf("error %q does not name the file", err)
		}
	})
}
