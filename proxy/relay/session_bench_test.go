package relay

import (
	"context"
	"fmt"
	"net"
	"strconv"
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
		i := len(`"control":"`) + indexOf(string(f.Payload), `"control":"`)
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
	cpuAfter, _ := processCPU()
	if err := <-writeErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(frames*n)/b.Elapsed().Seconds(), "frames/s")
	if cpuOK {
		b.ReportMetric(float64(cpuAfter-cpuBefore)/float64(frames*n), "cpu-ns/frame")
	}
	cli.Close()
	ups.Close()
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
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
