package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// socketEngine is an engine on the epoll driver whatever the test
// environment asks (Sockets exist only there).
func socketEngine(t *testing.T, loops int) (*Engine, chan PairStats) {
	t.Helper()
	if os.Getenv("WSALIVE_TEST_DRIVER") == "conn" {
		t.Skip("Sockets belong to the epoll driver")
	}
	return newTestEngine(t, Options{Loops: loops})
}

// acceptSocket returns a plain client connection and the Socket the
// engine's listener accepted for it.
func acceptSocket(t *testing.T, ln net.Listener) (cli net.Conn, s *Socket) {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		ch <- c
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c := <-ch
	s, ok := c.(*Socket)
	if !ok {
		t.Fatalf("accepted a %T, want a *Socket", c)
	}
	t.Cleanup(func() { s.Close() })
	return cli, s
}

func socketListen(t *testing.T, e *Engine) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := e.Listener(ln)
	if _, ok := sl.(*socketListener); !ok {
		t.Fatalf("Engine.Listener gave a %T", sl)
	}
	t.Cleanup(func() { sl.Close() })
	return sl
}

func nodelay(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v := -1
	raw.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) })
	return v
}

// A Socket carries TCP_NODELAY as net's connections do: a connection that
// completed before the listener had it (queued before Engine.Listener)
// gets its own, later ones inherit the listener's.
func TestSocketListenerNoDelay(t *testing.T) {
	e, _ := socketEngine(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	early, err := net.Dial("tcp", ln.Addr().String()) // queued, cloned without TCP_NODELAY
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	sl := e.Listener(ln)
	defer sl.Close()
	c1, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if got := nodelay(t, c1); got != 1 {
		t.Errorf("connection queued before the listener had TCP_NODELAY: %d, want 1", got)
	}
	// An Accept with nothing queued finds EAGAIN: from then on sockets
	// are not given TCP_NODELAY, they inherit it.
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := sl.Accept()
		ch <- c
	}()
	for end := time.Now().Add(10 * time.Second); !sl.(*socketListener).nodelay.Load(); runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatal("Accept never found the queue empty")
		}
	}
	later, err := net.Dial("tcp", sl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	c2 := <-ch
	defer c2.Close()
	if got := nodelay(t, c2); got != 1 {
		t.Errorf("later connection: TCP_NODELAY %d, want 1 (inherited)", got)
	}
}

// Read and Write work through the loop's waits, and addresses are net's.
func TestSocketReadWrite(t *testing.T) {
	e, _ := socketEngine(t, 1)
	cli, s := acceptSocket(t, socketListen(t, e))
	if s.RemoteAddr().String() != cli.LocalAddr().String() || s.LocalAddr().String() != cli.RemoteAddr().String() {
		t.Fatalf("addresses %v %v, want %v %v", s.LocalAddr(), s.RemoteAddr(), cli.RemoteAddr(), cli.LocalAddr())
	}
	done := make(chan []byte)
	go func() {
		b := make([]byte, 5)
		_, err := io.ReadFull(s, b) // waits: nothing was sent yet
		if err != nil {
			t.Error(err)
		}
		done <- b
	}()
	cli.Write([]byte("hello"))
	if got := <-done; string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	// A write larger than the socket buffers waits for the peer to read.
	big := bytes.Repeat([]byte("x"), 8<<20)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(big)
		werr <- err
	}()
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(big))
	if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("peer read %d bytes, %v", len(got), err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the peer's close: %d, %v, want io.EOF", n, err)
	}
}

// Deadlines behave as net's: a past one fails at once, one set while a
// Read waits ends it, and both say timeout.
func TestSocketDeadlines(t *testing.T) {
	e, _ := socketEngine(t, 1)
	_, s := acceptSocket(t, socketListen(t, e))
	s.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := s.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	res := readLater(s)
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) // while it waits
	if err := readEnded(t, res, "a deadline set during the Read"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline set during the Read: %v", err)
	}
}

// Close ends a waiting Read with net.ErrClosed.
func TestSocketCloseWakesRead(t *testing.T) {
	e, _ := socketEngine(t, 1)
	_, s := acceptSocket(t, socketListen(t, e))
	res := readLater(s)
	waitRegistered(t, s) // the Read waits in the loop
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := readEnded(t, res, "Close"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// readLater reads one byte from s on a goroutine of its own.
func readLater(s *Socket) <-chan error {
	res := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		res <- err
	}()
	return res
}

// readEnded returns how the Read of res ended, within a bound; what
// should have ended it names it.
func readEnded(t *testing.T, res <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not end the waiting Read", what)
		return nil
	}
}

// readAfterWait makes s wait in its loop: a Read finds nothing, waits,
// and gets the byte peer sends once it does.
func readAfterWait(t *testing.T, s *Socket, peer net.Conn) {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := io.ReadFull(s, b)
		res <- err
	}()
	waitRegistered(t, s)
	peer.Write([]byte{'x'})
	if err := readEnded(t, res, "the peer's byte"); err != nil {
		t.Fatal(err)
	}
}

// waitRegistered returns once s is in its loop's epoll set, which a Read
// that found nothing to read does before it waits.
func waitRegistered(t *testing.T, s *Socket) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		s.mu.RLock()
		r := s.registered
		s.mu.RUnlock()
		if r {
			return
		}
		if time.Now().After(end) {
			t.Fatal("the Read never waited")
		}
	}
}

// Closing the listener ends a waiting Accept with net.ErrClosed, as a
// net.Listener's does.
func TestSocketListenerClose(t *testing.T) {
	e, _ := socketEngine(t, 1)
	sl := socketListen(t, e)
	res := make(chan error, 1)
	go func() {
		_, err := sl.Accept()
		res <- err
	}()
	sl.Close()
	select {
	case err := <-res:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end Accept")
	}
	if _, err := net.Dial("tcp", sl.Addr().String()); err == nil {
		t.Fatal("the port still takes connections after Close")
	}
}

// The engine's dial: refused is ECONNREFUSED, an ended context is its
// error, names go to the fallback.
func TestSocketDial(t *testing.T) {
	e, _ := socketEngine(t, 1)
	fellBack := ""
	dial := e.DialFunc(func(ctx context.Context, network, address string) (net.Conn, error) {
		fellBack = address
		return nil, errors.New("fallback")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	c, err := dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Socket); !ok {
		t.Fatalf("dialed a %T", c)
	}
	if c.RemoteAddr().String() != addr {
		t.Fatalf("remote %v, want %s", c.RemoteAddr(), addr)
	}
	c.Close()
	ln.Close()
	if _, err := dial(context.Background(), "tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dial(ctx, "tcp", addr); err == nil {
		t.Fatal("dial with an ended context succeeded")
	}
	if _, err := dial(context.Background(), "tcp", "localhost:1"); err == nil || fellBack != "localhost:1" {
		t.Fatalf("a name: %v, fallback got %q", err, fellBack)
	}
}

// A connect toward loopback is done inside the call: dial returns the
// Socket at once, without a trip through the loop (it is in no epoll
// set yet). One still in progress (its SYN dropped by a full accept
// queue) waits in the loop for the handshake or for its context.
func TestSocketDialInProgress(t *testing.T) {
	e, _ := socketEngine(t, 1)
	dial := e.DialFunc(nil)
	fast, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	c, err := dial(context.Background(), "tcp", fast.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if c.(*Socket).registered {
		t.Fatal("a connect done inside the call waited in the loop")
	}
	c.Close()

	// A listener with a backlog of 0 holds one connection; the kernel
	// drops the next one's SYN until it is accepted.
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := dial(ctx, "tcp", addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial into a full accept queue: %v, want the context's deadline", err)
	}

	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", addr)
		res <- result{c, err}
	}()
	// Once that dial's SYN is out (and dropped), room in the queue: the
	// SYN's retransmission (after about a second) completes it.
	waitSynSent(t, sa.(*unix.SockaddrInet4).Port)
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	r := <-res
	if r.err != nil {
		t.Fatalf("dial once the queue had room: %v", r.err)
	}
	defer r.c.Close()
	s := r.c.(*Socket)
	s.mu.RLock()
	waited := s.registered
	s.mu.RUnlock()
	if !waited {
		t.Fatal("a connect in progress did not wait in the loop")
	}
}

// waitSynSent waits until a connection toward 127.0.0.1:port is in
// SYN-SENT (/proc/net/tcp's state 02).
func waitSynSent(t *testing.T, port int) {
	t.Helper()
	want := fmt.Sprintf("0100007F:%04X 02", port)
	for start := time.Now(); time.Since(start) < 10*time.Second; {
		tab, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skip(err)
		}
		for _, line := range strings.Split(string(tab), "\n") {
			if f := strings.Fields(line); len(f) > 3 && f[2]+" "+f[3] == want {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no connection toward port %d in SYN-SENT", port)
}

// fdCount is the number of open descriptors of the process.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// A pair of Sockets is attached as it is, relays both ways, and leaves
// no descriptor behind; with several loops, the upstream dialed near the
// client waits in the client's loop, and one dialed elsewhere moves.
func TestSocketPairAttached(t *testing.T) {
	for _, loops := range []int{1, 3} {
		for _, near := range []bool{true, false} {
			e, closed := socketEngine(t, loops)
			upLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer upLn.Close()
			sl := socketListen(t, e)
			before := fdCount(t)
			cli, cs := acceptSocket(t, sl)
			// The client's socket waits once, so that it is in its
			// loop's epoll set before the attach.
			readAfterWait(t, cs, cli)
			upCh := make(chan net.Conn, 1)
			go func() {
				c, _ := upLn.Accept()
				upCh <- c
			}()
			ctx := context.Background()
			if near {
				ctx = NearConn(ctx, cs)
			}
			uc, err := e.DialFunc(nil)(ctx, "tcp", upLn.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			us := uc.(*Socket)
			ups := <-upCh
			// And the upstream's too.
			readAfterWait(t, us, ups)
			if near && us.set != cs.set {
				t.Fatalf("loops=%d: the upstream waits in another loop than its client", loops)
			}
			if _, err := e.Attach(Handoff{Client: cs, Upstream: us, CloseTimeout: 2 * time.Second}); err != nil {
				t.Fatal(err)
			}
			msg := clientFrame(ws.OpText, true, []byte("to upstream"))
			cli.Write(msg)
			if got := readExactly(t, ups, len(msg)); !bytes.Equal(got, msg) {
				t.Fatalf("loops=%d near=%v: upstream got %x", loops, near, got)
			}
			back := serverFrame(ws.OpText, true, []byte("to client"))
			ups.Write(back)
			if got := readExactly(t, cli, len(back)); !bytes.Equal(got, back) {
				t.Fatalf("loops=%d near=%v: client got %x", loops, near, got)
			}
			cli.Close()
			ups.Close()
			waitClosed(t, closed)
			// The pair's two descriptors are closed; the test's own
			// client and upstream connections are too.
			if after := fdCount(t); after > before {
				t.Fatalf("loops=%d near=%v: %d descriptors before the pair, %d after", loops, near, before, after)
			}
		}
	}
}

// When the engine's loops have exited, a Socket that would wait in one
// fails instead of waiting for edges no loop passes on.
func TestSocketAfterEngineClose(t *testing.T) {
	e, _ := socketEngine(t, 1)
	_, s := acceptSocket(t, socketListen(t, e))
	res := readLater(s)
	waitRegistered(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Close(ctx)
	if err := readEnded(t, res, "the engine's Close"); err == nil {
		t.Fatal("Read succeeded after the engine closed")
	}
}

// NetConn moves a Socket that waited in a loop to the runtime's poller:
// the loop's epoll set lets go of it, and it keeps working after the
// engine's loops have exited.
func TestSocketNetConn(t *testing.T) {
	e, _ := socketEngine(t, 1)
	cli, s := acceptSocket(t, socketListen(t, e))
	readAfterWait(t, s, cli)
	fd, l := s.fd, s.set.(*loop)
	nc, err := NetConn(s)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := nc.(*net.TCPConn); !ok {
		t.Fatalf("NetConn gave a %T", nc)
	}
	// The kernel lists an epoll set's registrations in its fdinfo.
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", l.poll.fd))
	if err != nil {
		t.Skip(err)
	}
	if regexp.MustCompile(fmt.Sprintf(`(?m)^tfd:\s+%d\s`, fd)).Match(info) {
		t.Fatalf("the loop's epoll set still has the socket (fd %d):\n%s", fd, info)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the Socket after NetConn: %v, want net.ErrClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Close(ctx)
	go cli.Write([]byte("after"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readExactly(t, nc, 5); string(got) != "after" {
		t.Fatalf("read %q", got)
	}
	if _, err := nc.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if got := readExactly(t, cli, 4); string(got) != "back" {
		t.Fatalf("client read %q", got)
	}
}
