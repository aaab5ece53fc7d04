package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Measurements of resumable sessions (issue 13's closing note). They run
// on the net.Conn driver, where sessions always run. Each prints its
// figures with b.ReportMetric:
//
//	go test -run XXX -bench 'RelaySession' -count 6 ./proxy/relay
//	go test -run XXX -bench 'SessionMemory|SessionResumeLatency' -benchtime 1x ./proxy/relay

// BenchmarkRelaySession is BenchmarkRelay on the net.Conn driver with and
// without a session, for the CPU cost of counting, acknowledging and
// keeping messages for replay. dir=up: the client sends (wsalive counts
// and acknowledges every 32 messages); dir=down: the upstream sends (with
// a session every frame is also copied into the replay buffer, and the
// client acknowledges each block, which trims it). Both runs drain the
// opposite direction, so they do the same reading.
func BenchmarkRelaySession(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		for _, on := range []bool{false, true} {
			for _, fs := range benchFrameSizes[:2] {
				name := fmt.Sprintf("dir=%s/session=%v/%s", dir, on, fs.name)
				b.Run(name, func(b *testing.B) { benchRelaySession(b, dir == "up", on, fs.size) })
			}
		}
	}
}

func benchRelaySession(b *testing.B, up, on bool, size int) {
	e, err := New(Options{Loops: 1, ForceConnDriver: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Close(ctx)
	}()
	cli, proxyCli := benchConnPair(b)
	proxyUps, ups := benchConnPair(b)
	defer cli.Close()
	defer ups.Close()
	h := Handoff{Client: proxyCli, Upstream: proxyUps, CloseTimeout: time.Second, Route: "bench"}
	if on {
		h.Session = &SessionOptions{Window: time.Minute, Buffer: 32 << 20}
	}
	if _, err := e.Attach(h); err != nil {
		b.Fatal(err)
	}
	var prefix string
	if on {
		f, err := ws.ReadFrame(cli)
		if err != nil {
			b.Fatal(err)
		}
		i := len(`"control":"`) + strings.Index(string(f.Payload), `"control":"`)
		prefix = string(f.Payload[i : i+prefixLen])
	}
	var block []byte
	var frames int
	src, sink := cli, ups
	if up {
		block, frames = benchBlock(size)
	} else {
		src, sink = ups, cli
		f := wireFrame(true, 0, ws.OpBinary, nil, payloadPattern(size, 1))
		frames = max(1, benchReadSize/len(f))
		for range frames {
			block = append(block, f...)
		}
	}
	// The opposite direction is drained: wsalive's acks toward the
	// client (up), the client's acks reaching the upstream when the
	// session is off (down).
	other := ups
	if up {
		other = cli
	}
	go drain(other)

	rbuf := make([]byte, 256<<10)
	n := b.N
	writeErr := make(chan error, 1)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	cpuBefore, cpuOK := processCPU()
	b.ResetTimer()
	go func() {
		for range n {
			if _, err := src.Write(block); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	if up {
		if err := readN(sink, rbuf, n*len(block)); err != nil {
			b.Fatal(err)
		}
	} else {
		for i := 1; i <= n; i++ {
			if err := readN(sink, rbuf, len(block)); err != nil {
				b.Fatal(err)
			}
			// The helper acknowledges what it delivered (off: the same
			// message goes to the upstream, which drains it).
			ack := clientFrame(ws.OpText, true, []byte(prefix+"a"+strconv.Itoa(i*frames)))
			if !on {
				ack = clientFrame(ws.OpText, true, []byte("Qm9vc3Rlci1jb250cm9sLTEya"+strconv.Itoa(i*frames)))
			}
			if _, err := cli.Write(ack); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if err := <-writeErr; err != nil {
		b.Fatal(err)
	}
	reportFrameCost(b, frames*n, cpuBefore, cpuOK)
	cli.Close()
	ups.Close()
}

// drain reads c until it fails.
func drain(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// sessionBenchEngine returns an engine on the net.Conn driver, closed
// when b ends.
func sessionBenchEngine(b *testing.B) *Engine {
	e, err := New(Options{Loops: 1, ForceConnDriver: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return e
}

// benchWait polls cond within a generous bound.
func benchWait(b *testing.B, what string, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// memNow returns the heap and goroutine stack bytes in use after a GC.
func memNow() (heap, stack int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// BenchmarkSessionMemory measures what a pair costs on the net.Conn
// driver, ordinary and resumable (attached, then parked with its client
// gone), and what a replayed byte costs: the engine's heap and goroutine
// stacks per pair, the test's own sockets (made before the first
// reading) excluded. It runs once per b.N; use -benchtime 1x.
func BenchmarkSessionMemory(b *testing.B) {
	const pairs = 500
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("session=%v", on), func(b *testing.B) {
			e := sessionBenchEngine(b)
			var clis, upss, pc, pu []net.Conn
			for range pairs {
				c, p := benchConnPair(b)
				q, u := benchConnPair(b)
				clis, pc, pu, upss = append(clis, c), append(pc, p), append(pu, q), append(upss, u)
			}
			defer func() {
				for i := range clis {
					clis[i].Close()
					upss[i].Close()
				}
			}()
			h0, s0 := memNow()
			for i := range pairs {
				h := Handoff{Client: pc[i], Upstream: pu[i], CloseTimeout: time.Second, Route: "bench"}
				if on {
					h.Session = &SessionOptions{Window: time.Hour, Buffer: 1 << 20}
				}
				if _, err := e.Attach(h); err != nil {
					b.Fatal(err)
				}
				if on {
					if _, err := ws.ReadFrame(clis[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			pc, pu = nil, nil
			h1, s1 := memNow()
			b.ReportMetric(float64(h1-h0)/pairs, "heap-B/pair")
			b.ReportMetric(float64(s1-s0)/pairs, "stack-B/pair")
			if !on {
				return
			}
			for _, c := range clis {
				c.Close()
			}
			benchWait(b, "every session to park", func() bool { return e.Stats().ParkedSessions == pairs })
			h2, s2 := memNow()
			b.ReportMetric(float64(h2-h0)/pairs, "parked-heap-B/pair")
			b.ReportMetric(float64(s2-s0)/pairs, "parked-stack-B/pair")
			// 64 KiB of 1 KiB messages for each parked session.
			msg := serverFrame(ws.OpBinary, true, make([]byte, 1<<10))
			block := bytes.Repeat(msg, 64)
			for _, u := range upss {
				if _, err := u.Write(block); err != nil {
					b.Fatal(err)
				}
			}
			want := int64(pairs * len(block))
			benchWait(b, "the replay buffers", func() bool { return e.Stats().ReplayBytes == want })
			h3, _ := memNow()
			b.ReportMetric(float64(h3-h2)/float64(want), "heap-B/replay-B")
		})
	}
}

// BenchmarkSessionResumeLatency measures the time from Claim.Attach to
// the client's reading the first replayed message (the welcome before
// it), over loopback: median and 90th percentile of 200 resumes of parked
// sessions holding one message. Use -benchtime 1x.
func BenchmarkSessionResumeLatency(b *testing.B) {
	const n = 200
	e := sessionBenchEngine(b)
	var took []time.Duration
	for range n {
		c, p := benchConnPair(b)
		q, u := benchConnPair(b)
		if _, err := e.Attach(Handoff{Client: p, Upstream: q, CloseTimeout: time.Second, Route: "bench",
			Session: &SessionOptions{Window: time.Hour, Buffer: 1 << 20}}); err != nil {
			b.Fatal(err)
		}
		f, err := ws.ReadFrame(c)
		if err != nil {
			b.Fatal(err)
		}
		var w welcome
		if err := json.Unmarshal(f.Payload, &w); err != nil {
			b.Fatal(err)
		}
		c.Close()
		benchWait(b, "the session to park", func() bool { return e.Stats().ParkedSessions == 1 })
		u.Write(serverFrame(ws.OpText, true, []byte("gap")))
		benchWait(b, "the replay buffer", func() bool { return e.Stats().ReplayBytes > 0 })
		c2, p2 := benchConnPair(b)
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		claim, err := e.Resume(ResumeRequest{Token: w.Token, Route: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := claim.Attach(p2, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := ws.ReadFrame(c2); err != nil { // the welcome
			b.Fatal(err)
		}
		if f, err := ws.ReadFrame(c2); err != nil || string(f.Payload) != "gap" {
			b.Fatalf("first replayed message %q, %v", f.Payload, err)
		}
		took = append(took, time.Since(start))
		c2.Close()
		u.Close()
		benchWait(b, "the pair to end", func() bool { return e.Stats().Sessions == 0 })
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[n/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(took[n*9/10].Microseconds()), "p90-µs")
}
