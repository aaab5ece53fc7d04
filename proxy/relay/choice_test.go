package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// testTLS returns a server and a client configuration that trust each
// other: a fresh self-signed ECDSA certificate for 127.0.0.1.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// tlsPair returns the two ends of a loopback TLS connection, handshakes
// done: a is the client end, b the server end.
func tlsPair(t *testing.T) (a, b *tls.Conn) {
	t.Helper()
	sc, cc := testTLS(t)
	rawA, rawB := tcpPair(t)
	a, b = tls.Client(rawA, cc), tls.Server(rawB, sc)
	errs := make(chan error, 1)
	go func() { errs <- b.Handshake() }()
	if err := a.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestDriverChosenPerPair: on one engine, a TLS client with a plain
// upstream runs on the net.Conn driver (where epoll runs plain pairs),
// relays both ways byte for byte, and closes cleanly.
func TestDriverChosenPerPair(t *testing.T) {
	e, closed := newTestEngine(t, Options{Loops: 1})
	cli, proxyCli := tlsPair(t)
	proxyUps, ups := tcpPair(t)
	t.Cleanup(func() { cli.Close(); ups.Close() })
	if _, err := e.Attach(Handoff{Client: proxyCli, Upstream: proxyUps, CloseTimeout: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.conns.mu.Lock()
	onConn := len(e.conns.pairs)
	e.conns.mu.Unlock()
	if onConn != 1 {
		t.Fatalf("%d pairs on the net.Conn driver, want the TLS pair there", onConn)
	}
	msg := clientFrame(ws.OpBinary, true, bytes.Repeat([]byte("tls"), 30000))
	go cli.Write(msg)
	if got := readExactly(t, ups, len(msg)); !bytes.Equal(got, msg) {
		t.Fatal("upstream did not get the client's frame byte for byte")
	}
	back := serverFrame(ws.OpText, true, []byte("plain to tls"))
	ups.Write(back)
	if got := readExactly(t, cli, len(back)); !bytes.Equal(got, back) {
		t.Fatalf("client got %x", got)
	}
	cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "bye")))
	expectClose(t, ups, 1000, "bye")
	ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "bye")))
	expectClose(t, cli, 1000, "bye")
	if st := waitClosed(t, closed); st.Reason != ReasonClientClosed {
		t.Fatalf("reason %v", st.Reason)
	}
}
