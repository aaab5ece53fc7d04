package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsalive/wsalive/config"
)

// The pass-through benchmarks measure what one small plain HTTP request
// costs through the proxy with keep-alive on both sides: the client keeps
// its connection, the proxy its upstream connections. As for the
// handshake benchmarks, testing's B/op and allocs/op count the whole
// process, so the client and the upstream are raw pre-built bytes and one
// reused buffer each; BenchmarkDirectGet is the same client against the
// same upstream without the proxy, and the difference is the proxy's.
//
//	go test -run '^$' -bench 'PassThrough|DirectGet' -benchmem -cpuprofile cpu.out ./proxy

// benchGet is a browser-like small GET.
var benchGet = []byte("GET /app/page?id=7 HTTP/1.1\r\n" +
	"Host: app.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=0123456789abcdef\r\n" +
	"\r\n")

// benchOK is the upstream's answer: 13 bytes, as nginx's figures in
// bench/notes.md were taken with.
var benchOK = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n")

// startKeepAliveUpstream serves benchOK to every request head, as many as
// each connection sends, until the listener closes.
func startKeepAliveUpstream(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 8192)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					n += m
					// Every complete head gets one answer; requests carry
					// no body.
					for {
						i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(benchOK); err != nil {
							return
						}
						n = copy(buf, buf[i+4:n])
					}
					if err != nil || n == len(buf) {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln
}

// keepAliveClient sends benchGet on one connection and reads each answer
// whole (its head, then Content-Length bytes).
type keepAliveClient struct {
	c   net.Conn
	buf []byte
}

func dialKeepAlive(b *testing.B, addr string) *keepAliveClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &keepAliveClient{c: c, buf: make([]byte, 4096)}
}

var contentLength13 = []byte("\r\nContent-Length: 13\r\n")

func (k *keepAliveClient) get() error {
	if _, err := k.c.Write(benchGet); err != nil {
		return err
	}
	n := 0
	for {
		m, err := k.c.Read(k.buf[n:])
		n += m
		if i := bytes.Index(k.buf[:n], []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(k.buf, []byte("HTTP/1.1 200 ")) || !bytes.Contains(k.buf[:i+2], contentLength13) {
				return io.ErrUnexpectedEOF
			}
			if n >= i+4+13 {
				return nil
			}
		}
		if err != nil {
			return err
		}
	}
}

func runKeepAliveClients(b *testing.B, addr string) {
	k := dialKeepAlive(b, addr)
	if err := k.get(); err != nil { // warm the pools and the upstream connection
		b.Fatal(err)
	}
	_ = k.c.Close()
	b.ReportAllocs()
	b.SetParallelism(4) // 4×GOMAXPROCS connections, as wrk -c keeps several per core
	b.RunParallel(func(pb *testing.PB) {
		k := dialKeepAlive(b, addr)
		defer k.c.Close()
		for pb.Next() {
			if err := k.get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPassThroughGet is one small GET through the proxy per
// iteration, on kept-alive client connections.
func BenchmarkPassThroughGet(b *testing.B) {
	up := startKeepAliveUpstream(b)
	route := testRoute("app", up.Addr().String(), 2*time.Second)
	route.HTTP = config.HTTPProxy
	route.PathPrefix = "/app"
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := NewServer([]*config.Route{route}, &closingRelay{}, logger)
	if err != nil {
		b.Fatal(err)
	}
	s := serveOn(b, srv, config.Listener{})
	defer s.shutdown(b)
	runKeepAliveClients(b, s.addr)
}

// BenchmarkDirectGet is the baseline for BenchmarkPassThroughGet: the
// same clients and upstream, no proxy in between.
func BenchmarkDirectGet(b *testing.B) {
	up := startKeepAliveUpstream(b)
	runKeepAliveClients(b, up.Addr().String())
}
