package relay

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stageLoop is a loop that is never run: the test drives its stage by
// hand. useRing picks io_uring batching or one system call per write.
func stageLoop(t *testing.T, useRing bool) *loop {
	t.Helper()
	e := &Engine{logger: slog.Default(), start: time.Now()}
	l, err := newLoop(e, 16<<10, useRing, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if useRing && l.ring == nil {
		t.Skipf("io_uring unavailable here: %v", l.ringErr)
	}
	e.loops = []*loop{l}
	t.Cleanup(e.closeFDs)
	return l
}

// stagePair builds a pair owned by l with real sockets; cli and ups are
// the peers' ends.
func stagePair(t *testing.T, l *loop) (p *pair, cli, ups net.Conn) {
	t.Helper()
	cli, proxyCli := tcpPair(t)
	proxyUps, ups := tcpPair(t)
	t.Cleanup(func() { cli.Close(); ups.Close() })
	p = &pair{loop: l, pol: noPolicy, closeTimeout: time.Second}
	for s, c := range []net.Conn{proxyCli, proxyUps} {
		fd, err := takeFD(c, &p.ep[s].addr)
		if err != nil {
			t.Fatal(err)
		}
		p.ep[s].fd = int32(fd)
		p.ep[s].writable = true
		t.Cleanup(func() { unix.Close(fd) })
	}
	p.dir[client].rules = rulesFor(true, nil, 0)
	p.dir[upstream].rules = rulesFor(false, nil, 0)
	l.npairs++
	return p, cli, ups
}

// TestPairFitsItsSizeClass: an idle pair is most of what wsalive holds per
// connection pair, and 512 B is a Go allocation size class; one byte more
// costs 64.
func TestPairFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(pair{}); n > 512 {
		t.Fatalf("pair is %d bytes, want <= 512", n)
	}
}

func segs(b ...[]byte) *batch {
	var out batch
	for _, s := range b {
		out.add(s)
	}
	return &out
}

func readAll(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func bothWays(t *testing.T, f func(t *testing.T, useRing bool)) {
	t.Run("io_uring", func(t *testing.T) { f(t, true) })
	t.Run("syscalls", func(t *testing.T) { f(t, false) })
}

// TestStageFlushesManyPairsInOrder stages writes for many sockets, some
// twice with another socket's write between, and checks that every peer
// gets exactly its bytes, in order, after one flush.
func TestStageFlushesManyPairsInOrder(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		const n = 300 // more than one ring's worth
		type peer struct {
			p    *pair
			ups  net.Conn
			want []byte
		}
		peers := make([]peer, n)
		for i := range peers {
			p, _, ups := stagePair(t, l)
			peers[i] = peer{p: p, ups: ups}
		}
		for i := range peers {
			a := bytes.Repeat([]byte{byte(i)}, 100+i)
			b := []byte{0xEE, byte(i >> 8), byte(i)}
			l.send(peers[i].p, upstream, segs(a[:50], a[50:], b))
			peers[i].want = append(append([]byte(nil), a...), b...)
		}
		// A second write for every third socket, after others were staged:
		// it joins that socket's write, which moves to the end.
		for i := 0; i < n; i += 3 {
			c := []byte("later")
			l.send(peers[i].p, upstream, segs(c))
			peers[i].want = append(peers[i].want, c...)
		}
		if len(l.stage) != n {
			t.Fatalf("%d staged writes for %d sockets, want one each", len(l.stage), n)
		}
		l.flushStage()
		if len(l.stage) != 0 || l.used != 0 || len(l.ctl) != 0 {
			t.Fatalf("stage not empty after flush: %d writes, arena %d, ctl %d", len(l.stage), l.used, len(l.ctl))
		}
		for i, pr := range peers {
			if got := readAll(t, pr.ups, len(pr.want)); !bytes.Equal(got, pr.want) {
				t.Fatalf("socket %d got %q, want %q", i, got, pr.want)
			}
			if pr.p.ep[upstream].staged || pr.p.dir[client].pending != nil {
				t.Fatalf("socket %d still staged or pending after a complete write", i)
			}
		}
	})
}

// TestStageShortWriteKeepsTheRest: a staged write larger than the socket
// takes leaves the rest pending, counted as buffered, and the sink marked
// unwritable; nothing is lost once the peer reads.
func TestStageShortWriteKeepsTheRest(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		p, _, ups := stagePair(t, l)
		other, _, ups2 := stagePair(t, l) // a second write, so io_uring batches
		big := make([]byte, 8<<20)
		for i := range big {
			big[i] = byte(i * 7)
		}
		l.send(p, upstream, segs(big[:1<<20], big[1<<20:]))
		l.send(other, upstream, segs([]byte("x")))
		l.flushStage()
		d := &p.dir[client]
		if d.pending == nil {
			t.Fatal("8 MiB went into a loopback socket at once; the test proves nothing")
		}
		if p.ep[upstream].writable {
			t.Fatal("sink still marked writable after a short write")
		}
		if got := l.e.buffered.Load(); got != int64(d.pendingLen()) || got == 0 {
			t.Fatalf("buffered %d, pending %d", got, d.pendingLen())
		}
		done := make(chan []byte)
		go func() { done <- readAll(t, ups, len(big)) }()
		for d.pending != nil {
			// Wait for room as the loop would, then flush as the
			// EPOLLOUT edge makes it do.
			fds := []unix.PollFd{{Fd: int32(p.ep[upstream].sock()), Events: unix.POLLOUT}}
			if n, err := unix.Poll(fds, 5000); n == 0 && err == nil {
				t.Fatal("the socket never drained")
			}
			p.ep[upstream].writable = true
			l.flush(p, upstream)
		}
		if got := <-done; !bytes.Equal(got, big) {
			t.Fatal("bytes lost or reordered across the short write")
		}
		if got := readAll(t, ups2, 1); string(got) != "x" {
			t.Fatalf("other socket got %q", got)
		}
	})
}

// TestStageFailedWriteBreaksThePair: a write to a reset peer fails in the
// flush and ends the pair with the upstream gone and a 1001 to the client.
func TestStageFailedWriteBreaksThePair(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		p, cli, ups := stagePair(t, l)
		ok, _, okUps := stagePair(t, l)
		ups.(*net.TCPConn).SetLinger(0)
		ups.Close() // RST, delivered within the close on loopback: the next write fails
		l.send(p, upstream, segs([]byte("into the void")))
		l.send(ok, upstream, segs([]byte("fine")))
		l.flushStage()
		if !p.ep[upstream].dead {
			t.Fatal("the failed write did not mark the upstream dead")
		}
		expectClose(t, cli, 1001, "upstream gone")
		if got := readAll(t, okUps, 4); string(got) != "fine" {
			t.Fatalf("the healthy pair got %q", got)
		}
		if ok.ep[upstream].dead || ok.done {
			t.Fatal("the healthy pair was hurt by its neighbour's failure")
		}
	})
}

// TestTeardownWritesStagedFirst: a pair torn down with a staged close
// frame still delivers it before its socket closes.
func TestTeardownWritesStagedFirst(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		p, cli, _ := stagePair(t, l)
		l.sendClose(p, client, 4000, "bye")
		if !p.ep[client].staged {
			t.Fatal("close frame not staged")
		}
		l.teardown(p)
		expectClose(t, cli, 4000, "bye")
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := cli.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the close frame: %v, want EOF", err)
		}
		l.flushStage() // nothing left for the dead pair's closed socket
	})
}
