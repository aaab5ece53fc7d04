package wsload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/examples/legacyecho"
)

// startTLSEcho runs a legacyecho server behind a TLS listener on
// 127.0.0.1:0 with a fresh self-signed ECDSA P-256 certificate for
// 127.0.0.1. It returns the wss:// URL, the certificate's PEM file and a
// function that reports the TLS versions and key exchanges the server
// negotiated.
func startTLSEcho(t *testing.T) (url, caFile string, negotiated func() map[string]int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsload test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := make(map[string]int)
	srvTLS := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		VerifyConnection: func(cs tls.ConnectionState) error {
			mu.Lock()
			seen[tls.VersionName(cs.Version)+" "+cs.CurveID.String()]++
			mu.Unlock()
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := legacyecho.New(nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, srvTLS)) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "wss://" + ln.Addr().String() + "/", caFile, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		m := make(map[string]int, len(seen))
		for k, v := range seen {
			m[k] = v
		}
		return m
	}
}

func TestEchoOverTLS(t *testing.T) { forEachClient(t, testEchoOverTLS) }

// testEchoOverTLS: with BenchTLSConfig, wss:// echo traffic verifies, and
// every connection made its own TLS 1.3 handshake with X25519.
func testEchoOverTLS(t *testing.T, client string) {
	url, caFile, negotiated := startTLSEcho(t)
	tc, err := BenchTLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	sum := run(t, Config{
		Mode:      ModeEcho,
		Client:    client,
		URL:       url,
		TLSConfig: tc,
		N:         n,
		Inflight:  2,
		Size:      1024,
		Duration:  200 * time.Millisecond,
	})
	st := sum.Echo
	if sum.Opened != n || st.Messages == 0 || sum.Errors != 0 || st.Mismatches != 0 || st.Lost != 0 {
		t.Fatalf("opened %d, messages %d, mismatches %d, lost %d, errors %v",
			sum.Opened, st.Messages, st.Mismatches, st.Lost, sum.ErrorKinds)
	}
	if got := negotiated(); len(got) != 1 || got["TLS 1.3 X25519"] != n {
		t.Fatalf("negotiated %v, want %d × TLS 1.3 X25519", got, n)
	}
}

// TestTLSWithoutTheCAFails: the test certificate is not in the system's
// roots, so without a TLSConfig every wss:// dial fails verification.
func TestTLSWithoutTheCAFails(t *testing.T) {
	url, _, _ := startTLSEcho(t)
	sum := run(t, Config{Mode: ModeIdle, URL: url, N: 2, Hold: time.Nanosecond})
	unknown := 0
	for kind, n := range sum.ErrorKinds {
		if strings.Contains(kind, "certificate signed by unknown authority") {
			unknown += n
		}
	}
	if sum.Opened != 0 || sum.DialFailed != 2 || unknown != 2 {
		t.Fatalf("opened %d, failed %d, errors %v", sum.Opened, sum.DialFailed, sum.ErrorKinds)
	}
}

func TestBenchTLSConfigRejectsAFileWithoutCertificates(t *testing.T) {
	f := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(f, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := BenchTLSConfig(f); err == nil {
		t.Fatal("BenchTLSConfig accepted a file without certificates")
	}
}
