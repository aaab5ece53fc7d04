package relay

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// benchReadSize is the read buffer the benchmarks model: the engine's
// default ReadBufferSize.
const benchReadSize = 64 << 10

var benchFrameSizes = []struct {
	name string
	size int
}{
	{"frame=64B", 64},
	{"frame=1KiB", 1 << 10},
	{"frame=64KiB", 64 << 10},
}

// benchBlock returns whole masked binary frames with payloads of size
// bytes, as many as fit in one read buffer (at least one), and their count.
func benchBlock(size int) ([]byte, int) {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	f := wireFrame(true, 0, ws.OpBinary, &key, payloadPattern(size, 1))
	n := max(1, benchReadSize/len(f))
	block := make([]byte, 0, n*len(f))
	for range n {
		block = append(block, f...)
	}
	return block, n
}

// nopHandler forwards every control frame and records nothing.
type nopHandler struct{}

func (nopHandler) control(*stream, *header, []byte, []byte) (bool, violation) {
	return true, violation{}
}
func (nopHandler) data(*stream, *header) {}

// BenchmarkStream measures the frame parser alone on the client→upstream
// direction (masked frames): one iteration parses one 64 KiB read buffer
// full of frames, as the loop does after a read. A 64 KiB frame does not
// fit in one read, so its iteration is the two reads that carry it.
func BenchmarkStream(b *testing.B) {
	for _, fs := range benchFrameSizes {
		b.Run(fs.name, func(b *testing.B) {
			block, frames := benchBlock(fs.size)
			buf := make([]byte, carryRoom+len(block))
			copy(buf[carryRoom:], block)
			s := stream{rules: rulesFor(true, nil, 0)}
			var out batch
			var h frameHandler = nopHandler{}
			run := func() {
				for off := 0; off < len(block); off += benchReadSize {
					n := min(benchReadSize, len(block)-off)
					out.reset()
					if v := s.process(s.withCarry(buf[off:], carryRoom, n), &out, h); !v.ok() || out.total != n {
						b.Fatalf("violation %v, %d of %d bytes out", v, out.total, n)
					}
				}
			}
			run() // grow out.segs once
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64(frames*b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestStreamProcessAllocs pins what BenchmarkStream shows: parsing a read
// buffer of frames allocates nothing, whatever the frame size.
func TestStreamProcessAllocs(t *testing.T) {
	for _, fs := range benchFrameSizes {
		t.Run(fs.name, func(t *testing.T) {
			block, frames := benchBlock(fs.size)
			buf := make([]byte, carryRoom+len(block))
			copy(buf[carryRoom:], block)
			s := stream{rules: rulesFor(true, nil, 0)}
			var out batch
			var h frameHandler = nopHandler{}
			run := func() {
				for off := 0; off < len(block); off += benchReadSize {
					out.reset()
					s.process(s.withCarry(buf[off:], carryRoom, min(benchReadSize, len(block)-off)), &out, h)
				}
			}
			run()
			if n := testing.AllocsPerRun(20, run); n != 0 {
				t.Fatalf("%v allocations per read buffer of %d frames, want 0", n, frames)
			}
		})
	}
}

// BenchmarkRelay measures the whole engine (one loop) over loopback TCP:
// a writer goroutine sends pre-built masked frames on the client side; the
// benchmark goroutine plays the upstream, reading and discarding until
// everything arrived. One iteration is one block of about 64 KiB of frames
// (one 64 KiB frame for frame=64KiB).
//
// allocs/op counts every allocation in the process while the timer runs:
// the engine's loop, the writer and the reader. The harness itself
// allocates nothing per iteration: the writer and the reader make plain
// net.Conn Write and Read calls with fixed buffers, and the read deadline
// is set once. Its only allocations in the timed region are one-off (the
// writer goroutine's start, the runtime's poller), a few bytes spread
// over b.N iterations, which round to 0 allocs/op. So any allocs/op shown
// are the engine's. Setup (engine, sockets, warm-up) and teardown are
// outside the timer.
func BenchmarkRelay(b *testing.B) {
	for _, driver := range []string{"epoll", "conn"} {
		for _, fs := range benchFrameSizes {
			b.Run("driver="+driver+"/"+fs.name, func(b *testing.B) {
				if driver == "epoll" && runtime.GOOS != "linux" {
					b.Skip("the epoll driver is Linux's")
				}
				benchRelay(b, fs.size, Options{Loops: 1, ForceConnDriver: driver == "conn"})
			})
		}
	}
}

// BenchmarkRelayMetrics is BenchmarkRelay with metrics off (metrics.Nop)
// and on (the Prometheus implementation the binary uses), for issue 11's
// bound: the relay's CPU per message with metrics on within 3 % of off.
// Compare cpu-ns/frame (the process's CPU, user and system, per frame;
// Unix only) between metrics=off and metrics=on of one driver and size:
//
//	go test -run XXX -bench RelayMetrics -count 6 ./proxy/relay
func BenchmarkRelayMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		for _, driver := range []string{"epoll", "conn"} {
			for _, fs := range benchFrameSizes[:2] {
				name := fmt.Sprintf("metrics=%s/driver=%s/%s", map[bool]string{false: "off", true: "on"}[on], driver, fs.name)
				b.Run(name, func(b *testing.B) {
					if driver == "epoll" && runtime.GOOS != "linux" {
						b.Skip("the epoll driver is Linux's")
					}
					var m metrics.Metrics = metrics.Nop{}
					if on {
						m = metrics.NewPrometheus(metrics.PrometheusOptions{})
					}
					benchRelay(b, fs.size, Options{Loops: 1, ForceConnDriver: driver == "conn", Metrics: m})
				})
			}
		}
	}
}

// benchRelay is one BenchmarkRelay case: frames of size through an
// engine made with opts.
func benchRelay(b *testing.B, size int, opts Options) {
	block, frames := benchBlock(size)
	e, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			b.Errorf("engine close: %v", err)
		}
	}()
	cli, proxyCli := benchConnPair(b)
	proxyUps, ups := benchConnPair(b)
	defer cli.Close()
	defer ups.Close()
	// A named route, so that metrics on count into a route's series.
	if _, err := e.Attach(Handoff{Client: proxyCli, Upstream: proxyUps, CloseTimeout: time.Second, Route: "bench"}); err != nil {
		b.Fatal(err)
	}
	rbuf := make([]byte, 256<<10)
	// Prove the path before timing: one block through.
	if _, err := cli.Write(block); err != nil {
		b.Fatal(err)
	}
	if err := readN(ups, rbuf, len(block)); err != nil {
		b.Fatal(err)
	}

	n := b.N
	writeErr := make(chan error, 1)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	cpuBefore, cpuOK := processCPU()
	b.ResetTimer()
	go func() {
		for range n {
			if _, err := cli.Write(block); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	if err := readN(ups, rbuf, n*len(block)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := <-writeErr; err != nil {
		b.Fatal(err)
	}
	reportFrameCost(b, frames*n, cpuBefore, cpuOK)
	// Tear down without a close handshake to wait for.
	cli.Close()
	ups.Close()
}

// readN reads and discards n bytes from c, within a bound.
func readN(c net.Conn, buf []byte, n int) error {
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		return err
	}
	for n > 0 {
		m, err := c.Read(buf[:min(len(buf), n)])
		n -= m
		if err != nil {
			if n > 0 {
				return fmt.Errorf("reading with %d bytes to go: %w", n, err)
			}
			if err != io.EOF {
				return err
			}
		}
	}
	return nil
}

// benchConnPair returns the two ends of a loopback TCP connection.
func benchConnPair(b *testing.B) (net.Conn, net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		b.Fatal(r.err)
	}
	return a, r.c
}

// reportFrameCost reports frames/s and, where the process's CPU time can
// be read, cpu-ns/frame since cpuBefore. The timer must be stopped. The
// CPU is the whole process's: the engine's loop, and the benchmark's
// writer and reader, which are the same work in the variants compared.
func reportFrameCost(b *testing.B, frames int, cpuBefore time.Duration, cpuOK bool) {
	cpuAfter, _ := processCPU()
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
	if cpuOK {
		b.ReportMetric(float64(cpuAfter-cpuBefore)/float64(frames), "cpu-ns/frame")
	}
}
