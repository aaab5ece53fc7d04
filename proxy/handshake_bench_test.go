package proxy

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// The handshake benchmarks measure what one proxied handshake allocates.
// testing's B/op and allocs/op count the whole process, so the client and
// the upstream below are kept cheap and constant: raw pre-built bytes, one
// reused read buffer, no HTTP parsing. BenchmarkDirectHandshake runs the
// same client against the same upstream without the proxy; the difference
// between the two is what the proxy itself costs per handshake (its accept,
// its goroutine, both handshakes, the handoff).

// benchRequest is a browser-like upgrade request: the usual end-to-end
// headers (forwarded upstream) and an extension offer.
var benchRequest = []byte(upgradeRequest("/ws/room?user=7", "chat.example.com",
	"Origin: https://app.example.com\r\n"+
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"+
		"Accept-Language: en-US,en;q=0.5\r\n"+
		"Accept-Encoding: gzip, deflate, br\r\n"+
		"Cache-Control: no-cache\r\n"+
		"Pragma: no-cache\r\n"+
		"Cookie: session=0123456789abcdef\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate\r\n"))

// benchUpstream is a minimal WebSocket upstream: per connection it reads
// the request head into a pooled buffer, answers 101 with the accept for
// the Sec-WebSocket-Key it finds, and waits for the peer to close.
type benchUpstream struct {
	ln   net.Listener
	bufs sync.Pool
	wg   sync.WaitGroup
}

func startBenchUpstream(b *testing.B) *benchUpstream {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	u := &benchUpstream{ln: ln}
	u.bufs.New = func() any { return new([4096]byte) }
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		u.wg.Wait()
	})
	return u
}

var (
	benchKeyHeader = []byte("\r\nSec-WebSocket-Key: ")
	benchSwitching = []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
)

func (u *benchUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer c.Close()
	buf := u.bufs.Get().(*[4096]byte)
	defer u.bufs.Put(buf)
	head, ok := readHeadInto(c, buf[:])
	if !ok {
		return
	}
	i := bytes.Index(head, benchKeyHeader)
	if i < 0 {
		return
	}
	key := head[i+len(benchKeyHeader):]
	key = key[:bytes.IndexByte(key, '\r')]
	// The answer is built in the tail of buf, behind the head. The accept
	// is computed here rather than with the package's acceptKey, so that
	// the upstream's cost does not change with the code under test.
	out := append(buf[len(head):len(head)], benchSwitching...)
	var in [128]byte
	n := copy(in[:], key)
	n += copy(in[n:], "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
	sum := sha1.Sum(in[:n])
	out = base64.StdEncoding.AppendEncode(out, sum[:])
	out = append(out, "\r\n\r\n"...)
	if _, err := c.Write(out); err != nil {
		return
	}
	_, _ = c.Read(buf[:]) // until the proxy (here: the relay) closes
}

// readHeadInto reads from c into buf until it holds a complete HTTP head,
// and returns the head.
func readHeadInto(c net.Conn, buf []byte) ([]byte, bool) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], true
		}
		if err != nil {
			return nil, false
		}
	}
	return nil, false
}

// closingRelay stands in for the relay engine: it takes each pair and
// closes it at once, so the benchmark measures the handshake alone.
type closingRelay struct{ n atomic.Uint64 }

func (r *closingRelay) Attach(h relay.Handoff) (uint64, error) {
	_ = h.Client.Close()
	_ = h.Upstream.Close()
	return r.n.Add(1), nil
}

// benchClient performs one handshake per call on a fresh connection to
// addr: it writes benchRequest, reads the answer head and closes.
func benchClient(b *testing.B, addr string, buf []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(benchRequest); err != nil {
		b.Fatal(err)
	}
	head, ok := readHeadInto(c, buf)
	if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) || !bytes.Contains(head, []byte(sampleAccept)) {
		b.Fatalf("handshake failed: %q", head)
	}
}

// BenchmarkProxiedHandshake is one client handshake through the proxy per
// iteration, over loopback TCP. Both log levels are measured: info is the
// default (one "pair attached" line per handshake), warn shows the cost
// when nothing on the success path is logged.
func BenchmarkProxiedHandshake(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run("log="+level.String(), func(b *testing.B) {
			up := startBenchUpstream(b)
			route := testRoute("bench", up.ln.Addr().String(), 2*time.Second)
			route.PathPrefix = "/ws"
			logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: level}))
			srv, err := NewServer([]*config.Route{route}, &closingRelay{}, logger)
			if err != nil {
				b.Fatal(err)
			}
			s := serveOn(b, srv, config.Listener{})
			defer s.shutdown(b)

			addr := s.addr
			buf := make([]byte, 4096)
			benchClient(b, addr, buf) // warm the pools
			b.ReportAllocs()
			for b.Loop() {
				benchClient(b, addr, buf)
			}
		})
	}
}

// BenchmarkDirectHandshake is the baseline for BenchmarkProxiedHandshake:
// the same client and upstream, no proxy in between.
func BenchmarkDirectHandshake(b *testing.B) {
	up := startBenchUpstream(b)
	addr := up.ln.Addr().String()
	buf := make([]byte, 4096)
	benchClient(b, addr, buf)
	b.ReportAllocs()
	for b.Loop() {
		benchClient(b, addr, buf)
	}
}

// BenchmarkProxiedHandshakeRelay is BenchmarkProxiedHandshake (log=warn)
// with the real relay engine instead of closingRelay, one loop, and a
// listener without Go's default keepalive as cmd/wsalive opens it: the
// hand-off (epoll registration, the route's keepalive) is measured
// too, and so is the pair's end when the client closes. Pairs end
// asynchronously, so a few may still be open when the timer stops.
func BenchmarkProxiedHandshakeRelay(b *testing.B) {
	up := startBenchUpstream(b)
	route := testRoute("bench", up.ln.Addr().String(), 2*time.Second)
	route.PathPrefix = "/ws"
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var srv *Server
	eng, err := relay.New(relay.Options{Loops: 1, Logger: logger, OnClose: func(st relay.PairStats) { srv.PairClosed(st) }})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(context.Background())
	srv, err = NewServer([]*config.Route{route}, eng, logger)
	if err != nil {
		b.Fatal(err)
	}
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln = eng.Listener(ln) // as cmd/wsalive's: its connections are the engine's Sockets
	s := &servedServer{addr: ln.Addr().String(), srv: srv, served: make(chan error, 1)}
	go func() { s.served <- srv.Serve(ln, config.Listener{}) }()
	defer s.shutdown(b)

	buf := make([]byte, 4096)
	benchClient(b, s.addr, buf) // warm the pools
	b.ReportAllocs()
	for b.Loop() {
		benchClient(b, s.addr, buf)
	}
}
