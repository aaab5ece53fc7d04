package relay

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// Frames wsalive injects (pongs, application replies, closes) against
// peers that stop reading, fail mid-parse or vanish mid-frame. Found by a
// review of the engine; each test failed before its fix.

// answeringPolicy makes wsalive answer the client's pings itself.
func answeringPolicy() *Policy {
	return NewPolicy(PolicyConfig{Client: SidePolicy{AnswerPings: true}})
}

// TestCloseNeverOvertakesEarlierData: the client sends a data frame
// and a ping in one read and then resets. Answering the ping writes toward
// the client (bytes already wait for it), that write fails, and the pair
// sends the upstream 1001 "client gone" — from inside the client stream's
// processing, before the data frame that preceded the ping was handed on.
// The upstream must get the data frame first and nothing after the close.
func TestCloseNeverOvertakesEarlierData(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		p, cli, ups := stagePair(t, l)
		p.pol = answeringPolicy()

		// Bytes from the upstream wait for the client (it was slow).
		p.ep[client].writable = false
		l.send(p, client, segs(serverFrame(ws.OpText, true, []byte("to the client"))))
		if p.ep[client].pending == nil {
			t.Fatal("setup: nothing pending toward the client")
		}

		data := clientFrame(ws.OpText, true, []byte("last words"))
		ping := clientFrame(ws.OpPing, true, []byte("p"))
		if _, err := cli.Write(append(append([]byte(nil), data...), ping...)); err != nil {
			t.Fatal(err)
		}
		cli.(*net.TCPConn).SetLinger(0)
		cli.Close() // RST: the proxy can still read what came before it
		waitReadable(t, p.ep[client].sock())

		// What EPOLLIN|EPOLLHUP|EPOLLERR does.
		p.ep[client].readable, p.ep[client].writable, p.ep[client].hangup = true, true, true
		l.enqueue(p)
		l.serveReady()
		l.flushStage()

		f := readFrame(t, ups)
		if f.Header.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.Payload)
			// What follows the close?
			ups.SetReadDeadline(time.Now().Add(time.Second))
			next, err := ws.ReadFrame(ups)
			after := "nothing"
			if err == nil {
				after = fmt.Sprintf("opcode %d frame", next.Header.OpCode)
				if next.Header.Masked {
					next = ws.UnmaskFrameInPlace(next)
				}
				after += " " + string(next.Payload)
			}
			t.Fatalf("upstream got close %d %q before the client's data frame; then %s", code, reason, after)
		}
		if f.Header.OpCode != ws.OpText || string(f.Payload) != "last words" {
			t.Fatalf("upstream got %v %q, want the text frame", f.Header.OpCode, f.Payload)
		}
		expectClose(t, ups, ws.StatusGoingAway, "client gone")
	})
}

// TestManyInjectedFramesOneWrite: a client sends a burst of pings
// (answered by wsalive) in one read. Each pong is one iovec of the write
// toward the client; over IOV_MAX of them must still be written, not end
// the pair as if the client were gone.
func TestManyInjectedFramesOneWrite(t *testing.T) {
	bothWays(t, func(t *testing.T, useRing bool) {
		l := stageLoop(t, useRing)
		p, cli, ups := stagePair(t, l)
		p.pol = answeringPolicy()

		const n = 1500 // > IOV_MAX (1024); 9 KB fits one 16 KiB read
		ping := clientFrame(ws.OpPing, true, nil)
		var burst []byte
		for range n {
			burst = append(burst, ping...)
		}
		text := clientFrame(ws.OpText, true, []byte("x")) // a write toward the upstream too, so the round has two
		burst = append(burst, text...)
		if _, err := cli.Write(burst); err != nil {
			t.Fatal(err)
		}
		waitReadable(t, p.ep[client].sock())
		p.ep[client].readable = true
		l.enqueue(p)
		l.serveReady()
		l.flushStage()

		if p.side[client].dead || p.done {
			t.Fatalf("the pair ended (reason %v) after a burst of %d pings; client dead=%v", p.reason, n, p.side[client].dead)
		}
		pong := serverFrame(ws.OpPong, true, nil)
		if got := readExactly(t, cli, n*len(pong)); !bytes.Equal(got, bytes.Repeat(pong, n)) {
			t.Fatal("client did not get its pongs")
		}
		if got := readExactly(t, ups, len(text)); !bytes.Equal(got, text) {
			t.Fatalf("upstream got %x", got)
		}
	})
}

// TestPongsToBlockedClientAreBounded: a client that never reads but
// keeps sending pings (answered by wsalive) must not make wsalive buffer
// without bound: the documented bound is 64 KiB plus one read per
// direction. Only the latest ping needs an answer (RFC 6455 §5.5.3).
func TestPongsToBlockedClientAreBounded(t *testing.T) {
	l := stageLoop(t, false)
	p, cli, _ := stagePair(t, l)
	p.pol = answeringPolicy()

	// The client never reads: fill the proxy's socket toward it.
	junk := make([]byte, 64<<10)
	for {
		if _, err := unix.Write(p.ep[client].sock(), junk); err != nil {
			break
		}
	}
	ping := clientFrame(ws.OpPing, true, bytes.Repeat([]byte{'p'}, 125))
	burst := bytes.Repeat(ping, 100) // 13 KB, within one 16 KiB read
	readSize := l.slotSize - carryRoom
	bound := 64<<10 + readSize
	for round := 0; round < 40; round++ {
		cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := cli.Write(burst); err != nil {
			t.Fatalf("round %d: client write: %v", round, err)
		}
		waitReadable(t, p.ep[client].sock())
		p.ep[client].readable = true // the EPOLLIN edge
		l.enqueue(p)
		l.serveReady()
		l.flushStage()
		if p.done {
			t.Fatalf("pair ended: %v", p.reason)
		}
	}
	got := p.ep[client].pendingLen()
	if got > bound {
		t.Fatalf("%d bytes pending toward a client that does not read, want <= %d (64 KiB + one read): pongs grow without bound", got, bound)
	}

	// The client reads again: what was pending goes, and then the pong
	// held back for the latest ping.
	done := make(chan []byte)
	go func() {
		var tail []byte
		buf := make([]byte, 64<<10)
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, err := cli.Read(buf)
			tail = append(tail, buf[:n]...)
			if len(tail) > 1<<10 {
				tail = tail[len(tail)-1<<10:]
			}
			if err != nil || bytes.HasSuffix(tail, serverFrame(ws.OpPong, true, bytes.Repeat([]byte{'p'}, 125))) {
				done <- tail
				return
			}
		}
	}()
	for p.ep[client].pending != nil || p.dir[upstream].hasQueued() {
		fds := []unix.PollFd{{Fd: int32(p.ep[client].sock()), Events: unix.POLLOUT}}
		if n, err := unix.Poll(fds, 5000); n == 0 && err == nil {
			t.Fatal("the client reads, but its socket never became writable")
		}
		p.ep[client].writable = true // the EPOLLOUT edge
		l.enqueue(p)
		l.serveReady()
		l.flushStage()
	}
	pong := serverFrame(ws.OpPong, true, bytes.Repeat([]byte{'p'}, 125))
	if tail := <-done; !bytes.HasSuffix(tail, pong) {
		t.Fatalf("the client's stream does not end with the held pong: ...%x", tail[max(0, len(tail)-32):])
	}
}

// serveRound runs one loop round for p once one of its sockets has
// something to read, as epoll would report it.
func serveRound(t *testing.T, l *loop, p *epair) {
	t.Helper()
	if p.done {
		return // its sockets are closed
	}
	waitReadable(t, p.ep[client].sock(), p.ep[upstream].sock())
	for s := range p.ep {
		p.ep[s].readable = true
	}
	l.enqueue(p)
	l.serveReady()
	l.flushStage()
}

// waitReadable waits until one of fds has something to read (or an error
// to report), as epoll would tell the loop.
func waitReadable(t *testing.T, fds ...int) {
	t.Helper()
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	if n, err := unix.Poll(pfds, 5000); n == 0 && err == nil {
		t.Fatal("nothing to read within 5 s")
	}
}

// TestQueuedReplyDoesNotHoldTheCloseOpen: an application ping reply
// waits for the end of the upstream's fragmented message toward the
// client; the upstream then closes between fragments (allowed, §5.4), the
// client answers, the upstream hangs up. Nothing may follow a close, so
// the waiting reply is moot: the pair must end now, not at its close
// deadline.
func TestQueuedReplyDoesNotHoldTheCloseOpen(t *testing.T) {
	l := stageLoop(t, false)
	p, cli, ups := stagePair(t, l)
	p.pol = NewPolicy(PolicyConfig{AppPingMatch: "ping", AppPingReply: "pong"})
	p.dir[client].rules.wholeText = uint64(p.pol.appMatchLen)
	p.closeTimeout = uint32(time.Hour / time.Millisecond)
	round := func() { serveRound(t, l, p) }
	first := serverFrame(ws.OpText, false, []byte("part1"))
	ups.Write(first)
	round()
	if got := readExactly(t, cli, len(first)); !bytes.Equal(got, first) {
		t.Fatalf("client got %x", got)
	}
	cli.Write(clientFrame(ws.OpText, true, []byte("ping")))
	round()
	if !p.dir[upstream].hasQueued() {
		t.Fatal("setup: the reply was not queued behind the fragmented message")
	}
	ups.Write(serverFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "bye")))
	round()
	expectClose(t, cli, 1000, "bye")
	cli.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "bye")))
	round()
	expectClose(t, ups, 1000, "bye")
	ups.Close()
	round()
	if !p.done {
		t.Fatalf("close handshake complete and the upstream gone, but the pair lives on until its close deadline (queued: %d frames toward the client, client finished=%v)",
			len(p.dir[upstream].queued), p.finished(client, p.busy()[client]))
	}
}

// TestSourceDiesMidFrameAfterQueuedClose: a close toward the client
// waits (queued) for the end of a frame the upstream is still sending; the
// upstream then vanishes mid-frame. That frame can never finish, so the
// queued close can never go: the client must be aborted now (as sendClose
// does when the source is already dead), not left until the close
// deadline.
func TestSourceDiesMidFrameAfterQueuedClose(t *testing.T) {
	l := stageLoop(t, false)
	p, cli, ups := stagePair(t, l)
	p.closeTimeout = uint32(time.Hour / time.Millisecond)
	round := func() { serveRound(t, l, p) }
	whole := serverFrame(ws.OpBinary, true, make([]byte, 100))
	ups.Write(whole[:12]) // header and 10 of 100 payload bytes
	round()
	readExactly(t, cli, 12)
	l.event(p).closeRequested(ReasonIdleTimeout, 1001, "idle timeout", "idle timeout", &l.fx)
	l.apply(p)
	l.flushStage()
	if !p.dir[upstream].hasQueued() {
		t.Fatal("setup: the close toward the client is not waiting for the frame's end")
	}
	ups.Close()
	round()
	if !p.side[upstream].dead {
		t.Fatal("setup: upstream EOF not seen")
	}
	if !p.done {
		t.Fatalf("upstream gone mid-frame with a close queued behind that frame; pair still open (client abort=%v, queued=%d), it waits for its close deadline",
			p.side[client].abort, len(p.dir[upstream].queued))
	}
}
