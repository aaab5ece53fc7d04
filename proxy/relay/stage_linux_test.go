package relay

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wsalive/wsalive/proxy/metrics"
)

// stageLoop is a loop that is never run: the test drives its stage by
// hand. useRing picks io_uring batching or one system call per write.
func stageLoop(t *testing.T, useRing bool) *loop {
	t.Helper()
	v := &env{}
	v.init(Options{})
	l, err := newLoop(v, 16<<10, useRing, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	d := &epollDriver{env: v, loops: []*loop{l}}
	t.Cleanup(d.closeFDs)
	if useRing && l.ring == nil {
		t.Skipf("io_uring unavailable here: %v", l.ringErr)
	}
	return l
}

// stagePair builds a pair owned by l with real sockets; cli and ups are
// the peers' ends.
func stagePair(t *testing.T, l *loop) (p *epair, cli, ups net.Conn) {
	t.Helper()
	cli, proxyCli := tcpPair(t)
	proxyUps, ups := tcpPair(t)
	t.Cleanup(func() { cli.Close(); ups.Close() })
	p = &epair{}
	p.init(1, &Handoff{CloseTimeout: time.Second}, &routeInfo{metrics: metrics.Nop{}.Route("")})
	p.timer.Value = p
	for s, c := range []net.Conn{proxyCli, proxyUps} {
		p.setAddr(side(s), &p.ep[s].addr, c.RemoteAddr())
		fd, err := dupFD(c)
		if err != nil {
			t.Fatal(err)
		}
		p.ep[s].fd = int32(fd)
		p.ep[s].writable = true
		t.Cleanup(func() { unix.Close(fd) })
	}
	l.npairs++
	return p, cli, ups
}

// TestPairFitsItsSizeClass: an idle pair is most of what wsalive holds per
// connection pair, and 512 B is a Go allocation size class; one byte more
// costs 64.
func TestPairFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(epair{}); n > 512 {
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
			p    *epair
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
		if len(l.stage) != 0 || l.used != 0 || len(l.fx.ctl) != 0 {
			t.Fatalf("stage not empty after flush: %d writes, arena %d, ctl %d", len(l.stage), l.used, len(l.fx.ctl))
		}
		for i, pr := range peers {
			if got := readExactly(t, pr.ups, len(pr.want)); !bytes.Equal(got, pr.want) {
				t.Fatalf("socket %d got %q, want %q", i, got, pr.want)
			}
			if pr.p.ep[upstream].staged || pr.p.ep[upstream].pending != nil {
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
		d := &p.ep[upstream]
		if d.pending == nil {
			t.Fatal("8 MiB went into a loopback socket at once; the test proves nothing")
		}
		if p.ep[upstream].writable {
			t.Fatal("sink still marked writable after a short write")
		}
		if got := l.env.buffered.Load(); got != int64(d.pendingLen()) || got == 0 {
			t.Fatalf("buffered %d, pending %d", got, d.pendingLen())
		}
		done := make(chan []byte)
		go func() { done <- readExactly(t, ups, len(big)) }()
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
		if got := readExactly(t, ups2, 1); string(got) != "x" {
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
		if !p.side[upstream].dead {
			t.Fatal("the failed write did not mark the upstream dead")
		}
		expectClose(t, cli, 1001, "upstream gone")
		if got := readExactly(t, okUps, 4); string(got) != "fine" {
			t.Fatalf("the healthy pair got %q", got)
		}
		if ok.side[upstream].dead || ok.done {
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
		l.event(p).sendClose(client, 4000, "bye", &l.fx)
		l.apply(p)
		if !p.ep[client].staged {
			t.Fatal("close frame not staged")
		}
		l.event(p).cut(ReasonShutdown, &l.fx)
		l.apply(p)
		expectClose(t, cli, 4000, "bye")
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := cli.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the close frame: %v, want EOF", err)
		}
		l.flushStage() // nothing left for the dead pair's closed socket
	})
}

// TestReadBatch reads many sockets in one batch: small messages go through
// whole, a message larger than a batch read is finished by pump with the
// full buffer, and a socket at EOF ends its pair with the other side told.
func TestReadBatch(t *testing.T) {
	l := stageLoop(t, true)
	const n = 40
	type peer struct {
		p        *epair
		cli, ups net.Conn
		want     []byte
	}
	peers := make([]peer, n)
	for i := range peers {
		p, cli, ups := stagePair(t, l)
		size := 100 + i
		if i == 7 {
			size = 10 * batchReadSize // more than one batch read takes
		}
		msg := clientFrame(ws.OpBinary, true, bytes.Repeat([]byte{byte(i)}, size))
		if i != 13 {
			if _, err := cli.Write(msg); err != nil {
				t.Fatal(err)
			}
		} else {
			cli.Close() // FIN: the batch read finds EOF
			msg = nil
		}
		p.ep[client].readable = true // what the epoll edge does
		peers[i] = peer{p: p, cli: cli, ups: ups, want: msg}
	}
	// Loopback writes land in the receiving socket before Write returns,
	// so every socket now has its bytes (or its FIN) waiting.
	ready := make([]*epair, n)
	for i := range peers {
		ready[i] = peers[i].p
	}
	l.readBatch(ready)
	if l.used < n*batchReadSize {
		t.Fatalf("arena used %d after the batch, want >= %d: the reads were not batched", l.used, n*batchReadSize)
	}
	if !peers[7].p.ep[client].bulk || !peers[7].p.ep[client].readable {
		t.Fatal("the large message's socket is not marked bulk and still readable after its batch read filled")
	}
	for _, pr := range peers {
		if !pr.p.done {
			l.service(pr.p) // pump goes on where the batch stopped
		}
	}
	for len(l.ready) > 0 { // the rounds that follow, for what is left
		l.flushStage()
		l.serveReady()
	}
	l.flushStage()
	for i, pr := range peers {
		if i == 13 {
			if !pr.p.side[client].dead {
				t.Fatal("EOF in the batch did not mark the client gone")
			}
			expectClose(t, pr.ups, ws.StatusGoingAway, "client gone")
			continue
		}
		if got := readExactly(t, pr.ups, len(pr.want)); !bytes.Equal(got, pr.want) {
			t.Fatalf("upstream %d got %d bytes that differ from the %d sent", i, len(got), len(pr.want))
		}
	}
}

// TestYieldBacksOff: a long yield after which little was ready turns
// yielding off for a while; a long one that brought work does not.
func TestYieldBacksOff(t *testing.T) {
	l := stageLoop(t, false)
	l.now = int64(time.Hour)

	l.yieldTook = int64(2 * yieldTooLong)
	l.yielded(yieldBelow + 1) // it ran the loop's own traffic: worth it
	if l.noYieldUntil != 0 || l.yieldTook != 0 {
		t.Fatalf("a productive yield turned yielding off (until %d) or was not cleared (%d)", l.noYieldUntil, l.yieldTook)
	}

	l.yieldTook = int64(yieldTooLong / 2)
	l.yielded(0) // short: nothing else wanted the CPU for long
	if l.noYieldUntil != 0 {
		t.Fatal("a short yield turned yielding off")
	}

	l.yieldTook = int64(2 * yieldTooLong)
	l.yielded(1) // long, and little came of it: something CPU-bound
	if want := l.now + int64(yieldBackoff); l.noYieldUntil != want {
		t.Fatalf("noYieldUntil %d, want %d", l.noYieldUntil, want)
	}
	l.yield()
	if l.yieldTook != 0 {
		t.Fatal("yielded while backing off")
	}
	l.now = l.noYieldUntil
	l.yield()
	if l.yieldTook == 0 {
		t.Fatal("did not yield after the backoff ended")
	}
}

// TestRingFailureFallsBack: when io_uring_enter fails in the middle of a
// flush, the loop drops the ring and writes everything staged the plain
// way; no peer loses a byte.
func TestRingFailureFallsBack(t *testing.T) {
	l := stageLoop(t, true)
	// The warning is part of what is tested, and kept out of the test
	// output, where it looked like a failure of its own.
	var logged bytes.Buffer
	l.env.logger = slog.New(slog.NewTextHandler(&logged, nil))
	fd := l.ring.fd
	t.Cleanup(func() { unix.Close(fd) })
	const n = ringEntries + 50
	type peer struct {
		p   *epair
		ups net.Conn
	}
	peers := make([]peer, n)
	for i := range peers {
		p, _, ups := stagePair(t, l)
		peers[i] = peer{p, ups}
		l.send(p, upstream, segs([]byte{byte(i), byte(i >> 8), 0xAB}))
	}
	l.ring.fd = -1 // every io_uring_enter now fails with EBADF
	l.flushStage()
	if l.ring != nil {
		t.Fatal("the loop kept a ring that failed")
	}
	if w := logged.String(); !strings.Contains(w, "level=WARN") || !strings.Contains(w, "io_uring failed") || strings.Count(w, "\n") != 1 {
		t.Errorf("want one warning that io_uring failed, logged %q", w)
	}
	for i, pr := range peers {
		if got := readExactly(t, pr.ups, 3); got[0] != byte(i) || got[1] != byte(i>>8) || got[2] != 0xAB {
			t.Fatalf("peer %d got %x", i, got)
		}
		if pr.p.done || pr.p.side[upstream].dead {
			t.Fatalf("peer %d's pair was ended by the ring's failure", i)
		}
	}
}

// TestBlockedSinkHoldsOneRead: a batched read that fills its slot is not
// followed by a second read in the same round, so a sink that turns out
// to be blocked leaves at most one read's worth pending.
func TestBlockedSinkHoldsOneRead(t *testing.T) {
	l := stageLoop(t, true)
	p, cli, _ := stagePair(t, l)
	other, otherCli, _ := stagePair(t, l) // so that the batch has two reads
	// Fill the socket toward the upstream, which never reads: the next
	// write to it will fail with EAGAIN, which the loop does not know yet.
	junk := make([]byte, 64<<10)
	for {
		if _, err := unix.Write(p.ep[upstream].sock(), junk); err != nil {
			break
		}
	}
	big := clientFrame(ws.OpBinary, true, make([]byte, 40<<10))
	if _, err := cli.Write(big); err != nil {
		t.Fatal(err)
	}
	otherCli.Write(clientFrame(ws.OpText, true, []byte("hi")))
	p.ep[client].readable, other.ep[client].readable = true, true
	for _, q := range []*epair{p, other} {
		l.enqueue(q)
	}
	l.serveReady()
	l.flushStage()
	readSize := l.slotSize - carryRoom
	if got := p.ep[upstream].pendingLen(); got == 0 || got > readSize {
		t.Fatalf("%d bytes pending for the blocked sink, want 1..%d (one read)", got, readSize)
	}
}

// TestYieldOnlyAfterControlRounds: the loop yields after a round with few
// events that relayed nothing between the peers, never after one that
// carried their bytes, and never with pairs still waiting.
func TestYieldOnlyAfterControlRounds(t *testing.T) {
	l := stageLoop(t, false)
	p, cli, _ := stagePair(t, l)
	if !l.wantsYield(1) {
		t.Fatal("no yield after a quiet round")
	}
	if l.wantsYield(yieldBelow + 1) {
		t.Fatal("yield after a busy round")
	}
	// A round that relays a client's message.
	cli.Write(clientFrame(ws.OpText, true, []byte("data")))
	p.ep[client].readable = true
	l.enqueue(p)
	l.serveReady()
	l.flushStage()
	if !l.forwarded || l.wantsYield(1) {
		t.Fatal("yield after a round that relayed application bytes")
	}
	l.forwarded = false
	l.enqueue(p)
	if l.wantsYield(1) {
		t.Fatal("yield with a pair waiting to be served")
	}
}

// TestWriteIovecsFullAtAChunkEdge: when the sink fills up exactly at the
// end of one IOV_MAX chunk, the next chunk's EAGAIN must not hide the
// bytes already written, or settle would send them a second time.
func TestWriteIovecsFullAtAChunkEdge(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	const room = 4096 // one page: the smallest pipe
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, room); err != nil {
		t.Skipf("F_SETPIPE_SZ: %v", err)
	}
	data := make([]byte, room+1)
	v := make([]unix.Iovec, 0, iovMax+1)
	for i := range iovMax { // the first chunk: exactly the pipe's room
		v = append(v, unix.Iovec{Base: &data[i*4]})
		v[i].SetLen(4)
	}
	v = append(v, unix.Iovec{Base: &data[room]})
	v[iovMax].SetLen(1)
	n, err := writeIovecs(fds[1], v)
	if n != room || err != nil {
		t.Fatalf("writeIovecs = %d, %v; want %d, nil (a short write)", n, err, room)
	}
}

// TestRingProbe: the ring is only used where the kernel has the
// operations the loop queues (send and recv arrived in 5.6, a kernel
// after rings themselves).
func TestRingProbe(t *testing.T) {
	r, err := newRing(8)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.close()
	if err := r.probe(uringOpSend, uringOpRecv, uringOpSendmsg); err != nil {
		t.Fatalf("a ring that newRing accepted fails its own probe: %v", err)
	}
	if err := r.probe(255); err == nil {
		t.Fatal("the probe accepts operation 255, which no kernel has")
	}
}

// TestRingShortSubmit: without IORING_SETUP_SUBMIT_ALL (kernels before
// 5.18), the kernel stops submitting at a request that fails to start.
// submit must not wait for completions that will never come, must store
// the results of the requests that ran, and must leave the others marked
// as not attempted, so that the loop writes them the plain way.
func TestRingShortSubmit(t *testing.T) {
	r, err := newRingFlags(8, 0)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.close()
	cli, srv := tcpPair(t)
	defer cli.Close()
	defer srv.Close()
	fd, err := dupFD(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	first, last := []byte("ran"), []byte("never")
	r.send(fd, &first[0], len(first), 0)
	r.queue(uringSQE{opcode: 255, fd: int32(fd), userData: 1}) // fails to start
	r.send(fd, &last[0], len(last), 2)
	res := []int32{resultSkipped, resultSkipped, resultSkipped}
	done := make(chan error, 1)
	go func() { done <- r.submit(res) }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("submit waits for requests the kernel never took")
	}
	if err == nil {
		t.Fatal("a short submission was not reported")
	}
	if res[0] != int32(len(first)) || res[1] >= 0 || res[2] != resultSkipped {
		t.Fatalf("results %v: want %d, an error, and not attempted", res, len(first))
	}
	if got := readExactly(t, cli, len(first)); string(got) != "ran" {
		t.Fatalf("peer got %q", got)
	}
}
