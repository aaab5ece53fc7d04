package wsload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	// poolSlack is how far into the random pool a message may start. Every
	// message is a window of one shared random buffer at a random offset,
	// so payloads are random without generating random bytes per message,
	// and the expected echo can be rebuilt from (offset, stamp) alone.
	poolSlack = 64 << 10

	// stampSize is the identity written over the start of every payload:
	// connection id (4 bytes) and sequence number (8 bytes). It makes every
	// message unique, so an echo delivered to the wrong connection or out of
	// order is caught as a mismatch.
	stampSize = 12

	// echoReadBuffer is the per-connection read buffer. Payloads bigger
	// than it are read straight into the message buffer by bufio.
	echoReadBuffer = 4 << 10
)

// EchoStats is what echo mode measured.
type EchoStats struct {
	Inflight int `json:"inflight"`
	Size     int `json:"size"`
	// Seconds is the traffic window: from the first send to the last echo.
	Seconds float64 `json:"duration_s"`
	// Messages counts echoes received and found byte-exact.
	Messages int64 `json:"messages"`
	// MessagesPerSec is Messages over Seconds.
	MessagesPerSec float64 `json:"msgs_per_s"`
	// PayloadMiBPerSec is the payload rate of one direction.
	PayloadMiBPerSec float64 `json:"payload_mib_per_s"`
	// RTT is the round trip of byte-exact echoes, from just before the
	// write to the last byte of the echo read.
	RTT LatencyStats `json:"rtt"`
	// Mismatches counts echoes that differ from what was sent: length,
	// opcode or bytes.
	Mismatches int64 `json:"mismatches"`
	// Lost counts messages sent whose echo never came.
	Lost int64 `json:"lost"`
	// Unexpected counts data messages received with nothing in flight.
	Unexpected int64 `json:"unexpected"`
	// ServerClosed counts connections the server closed with a close frame
	// during the run; Dropped those that ended without one.
	ServerClosed int64 `json:"server_closed"`
	Dropped      int64 `json:"dropped"`
	// PingsAnswered counts pings received and answered.
	PingsAnswered int64 `json:"pings_answered"`
	// ClosedClean and ClosedUnclean count how the final close went.
	ClosedClean   int64 `json:"closed_clean"`
	ClosedUnclean int64 `json:"closed_unclean"`
}

// inflightMsg is a message sent and not yet echoed.
type inflightMsg struct {
	seq uint64
	off int
	t0  time.Time
}

// echoPeer is one connection of echo mode, whichever client implements it.
type echoPeer interface {
	// write sends messages until ctx is done, then begins the close; it
	// calls r.wg.Done when it returns.
	write(ctx context.Context, writeDeadline time.Time)
	// lost counts the messages still in flight once the connection ended.
	lost() int
}

type echoRun struct {
	cfg  Config
	errs *errorCounter
	pool []byte
	rtt  Histogram
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []echoPeer

	messages, mismatches, unexpected, serverClosed, dropped, pings, clean, unclean atomic.Int64

	// lastEcho is when the last echo arrived, in Unix nanoseconds: the end
	// of the traffic window.
	lastEcho atomic.Int64
}

// echoConn is one connection of echo mode: a writer goroutine keeps up to
// Inflight messages outstanding, a reader goroutine matches echoes to them
// in order. Writes from either (messages, pongs, the close) go under wmu.
type echoConn struct {
	run *echoRun
	id  uint32
	clientConn
	br *bufio.Reader

	// slots holds one token per message that may still be sent; pending
	// holds the messages in flight, oldest first. Together they bound the
	// in-flight count to Inflight without locks.
	slots   chan struct{}
	pending chan inflightMsg
	// dead is closed when the reader has ended.
	dead chan struct{}

	rng  *rand.Rand
	send []byte // frame header (mask last) followed by the payload
	hlen int
	recv []byte // Size+1, to notice an echo longer than sent
}

func runEcho(ctx context.Context, cfg Config, sum *Summary, errs *errorCounter) error {
	seed := uint64(time.Now().UnixNano())
	r := &echoRun{
		cfg:  cfg,
		errs: errs,
		pool: make([]byte, cfg.Size+poolSlack),
	}
	fill := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16)})
	fill.Read(r.pool)

	var lat Histogram
	var res dialResult
	var err error
	if cfg.Client == ClientGorilla {
		res, err = dialEach(ctx, cfg, &lat, errs, r.gorillaConnect(seed))
	} else {
		res, err = dialAll(ctx, cfg, &lat, errs, func(i int, c net.Conn, rd io.Reader) {
			ec := r.newConn(uint32(i), c, rd, seed)
			r.add(ec)
			// The reader starts at once, so that pings during the dial
			// phase are answered.
			r.wg.Add(1)
			go ec.read()
		})
	}
	if err != nil {
		return err
	}
	sum.setDial(res, &lat)
	if cfg.Ready != nil {
		cfg.Ready(res.opened, res.failed)
	}

	tctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	if res.canceled {
		cancel()
	}
	defer cancel()
	start := time.Now()
	r.mu.Lock()
	for _, ec := range r.conns {
		r.wg.Add(1)
		go ec.write(tctx, start.Add(cfg.Duration+cfg.CloseTimeout))
	}
	r.mu.Unlock()
	r.wg.Wait()
	if ctx.Err() != nil {
		sum.Interrupted = true
	}

	st := &EchoStats{
		Inflight:      cfg.Inflight,
		Size:          cfg.Size,
		Messages:      r.messages.Load(),
		RTT:           r.rtt.Stats(),
		Mismatches:    r.mismatches.Load(),
		Unexpected:    r.unexpected.Load(),
		ServerClosed:  r.serverClosed.Load(),
		Dropped:       r.dropped.Load(),
		PingsAnswered: r.pings.Load(),
		ClosedClean:   r.clean.Load(),
		ClosedUnclean: r.unclean.Load(),
	}
	for _, ec := range r.conns {
		st.Lost += int64(ec.lost())
	}
	if st.Lost > 0 {
		errs.add(fmt.Sprintf("lost: %d messages never echoed", st.Lost))
	}
	if last := r.lastEcho.Load(); last > 0 {
		st.Seconds = time.Unix(0, last).Sub(start).Seconds()
	}
	if st.Seconds > 0 {
		st.MessagesPerSec = float64(st.Messages) / st.Seconds
		st.PayloadMiBPerSec = float64(st.Messages) * float64(cfg.Size) / st.Seconds / (1 << 20)
	}
	sum.Echo = st
	return nil
}

// add records an opened connection.
func (r *echoRun) add(p echoPeer) {
	r.mu.Lock()
	r.conns = append(r.conns, p)
	r.mu.Unlock()
}

// fill writes the payload of message seq of connection id, a window of
// the pool at off with the stamp over its start, into p.
func (r *echoRun) fill(p []byte, id uint32, seq uint64, off int) {
	copy(p, r.pool[off:off+len(p)])
	st := stampOf(id, seq)
	copy(p, st[:])
}

// matches reports whether p is exactly the payload of m on connection id.
func (r *echoRun) matches(p []byte, id uint32, m inflightMsg) bool {
	if len(p) != r.cfg.Size {
		return false
	}
	st := stampOf(id, m.seq)
	n := min(len(p), stampSize)
	return bytes.Equal(p[:n], st[:n]) &&
		bytes.Equal(p[n:], r.pool[m.off+n:m.off+len(p)])
}

// echoed accounts for an echo that arrived at now: it took m off the
// connection's in-flight list (ok false: nothing was in flight) and is
// byte-exact or not.
func (r *echoRun) echoed(now time.Time, m inflightMsg, ok, exact bool) {
	switch {
	case !ok:
		r.unexpected.Add(1)
		r.errs.add("echo with nothing in flight")
		return
	case exact:
		r.rtt.RecordDuration(now.Sub(m.t0))
		r.messages.Add(1)
	default:
		r.mismatches.Add(1)
		r.errs.add("echo differs from what was sent")
	}
	for {
		last := r.lastEcho.Load()
		if now.UnixNano() <= last || r.lastEcho.CompareAndSwap(last, now.UnixNano()) {
			break
		}
	}
}

func (r *echoRun) newConn(id uint32, c net.Conn, rd io.Reader, seed uint64) *echoConn {
	k := r.cfg.Inflight
	ec := &echoConn{
		run:        r,
		id:         id,
		clientConn: clientConn{conn: c},
		br:         readerOf(rd, echoReadBuffer),
		slots:      make(chan struct{}, k),
		pending:    make(chan inflightMsg, k),
		dead:       make(chan struct{}),
		rng:        rand.New(rand.NewPCG(seed, uint64(id))),
		recv:       make([]byte, r.cfg.Size+1),
	}
	for range k {
		ec.slots <- struct{}{}
	}
	// The header is the same for every message but its mask, which is the
	// last four bytes of a masked header and is rewritten per message.
	var hb bytes.Buffer
	ws.WriteHeader(&hb, ws.Header{
		Fin:    true,
		OpCode: ws.OpBinary,
		Masked: true,
		Length: int64(r.cfg.Size),
	})
	ec.hlen = hb.Len()
	ec.send = make([]byte, ec.hlen+r.cfg.Size)
	copy(ec.send, hb.Bytes())
	return ec
}

// stampOf returns the identity of message seq on connection id.
func stampOf(id uint32, seq uint64) (s [stampSize]byte) {
	binary.BigEndian.PutUint32(s[:4], id)
	binary.BigEndian.PutUint64(s[4:], seq)
	return s
}

func (ec *echoConn) lost() int { return len(ec.pending) }

// frame builds the masked frame of message seq with the payload at off.
func (ec *echoConn) frame(seq uint64, off int) []byte {
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], ec.rng.Uint32())
	copy(ec.send[ec.hlen-4:ec.hlen], mask[:])
	p := ec.send[ec.hlen:]
	ec.run.fill(p, ec.id, seq, off)
	ws.Cipher(p, mask, 0)
	return ec.send
}

// write sends messages while slots allow until ctx is done, then begins the
// close handshake. The server answers the close only after echoing
// everything sent before it (a connection is ordered), so the close answer
// also tells the reader that no echo is still coming.
func (ec *echoConn) write(ctx context.Context, writeDeadline time.Time) {
	r := ec.run
	defer r.wg.Done()
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			ec.beginClose()
			return
		case <-ec.dead:
			return
		case <-ec.slots:
		}
		off := ec.rng.IntN(poolSlack + 1)
		frame := ec.frame(seq, off)
		// Pushed before the write, so the reader always finds it; this
		// never blocks, since a slot was taken.
		ec.pending <- inflightMsg{seq: seq, off: off, t0: time.Now()}
		ec.wmu.Lock()
		if ec.closing.Load() {
			// Nothing may follow a close frame (RFC 6455 §5.5.1); the
			// message stays pending and counts as lost.
			ec.wmu.Unlock()
			return
		}
		// Backpressure is legitimate during the run, but a server that
		// stops reading must not hang the tool past the end. The deadline
		// is set per message because a pong written in between sets its
		// own.
		ec.conn.SetWriteDeadline(writeDeadline)
		_, err := ec.conn.Write(frame)
		ec.wmu.Unlock()
		if err != nil {
			select {
			case <-ec.dead:
				// The reader has ended and counted why.
			default:
				r.errs.add("write: " + errorKind(err))
				ec.conn.Close()
			}
			return
		}
	}
}

func (ec *echoConn) beginClose() {
	// If the server began the close, the reader has answered it.
	ec.sendClose(ws.StatusNormalClosure, time.Now().Add(ec.run.cfg.CloseTimeout))
}

// errCloseReceived ends the read loop once the close frame is handled.
var errCloseReceived = errors.New("close frame received")

// read matches echoes to the messages in flight until the connection ends.
func (ec *echoConn) read() {
	r := ec.run
	defer r.wg.Done()
	// dead is closed before the socket, so that a writer failing on the
	// closed socket knows the reader already counted why.
	defer ec.conn.Close()
	defer close(ec.dead)

	rd := wsutil.Reader{
		Source:         ec.br,
		State:          ws.StateClientSide,
		OnIntermediate: ec.control,
	}
	for {
		h, err := rd.NextFrame()
		if err == nil && h.OpCode.IsControl() {
			err = ec.control(h, &rd)
			if err == nil {
				continue
			}
		}
		if errors.Is(err, errCloseReceived) {
			// RFC 6455 §7.1.1: the server closes TCP first; wait for it.
			io.Copy(io.Discard, ec.br)
			return
		}
		if err != nil {
			ec.ended(err)
			return
		}

		n, tooLong, err := readMessageInto(&rd, ec.recv)
		if errors.Is(err, errCloseReceived) {
			io.Copy(io.Discard, ec.br)
			return
		}
		if err != nil {
			ec.ended(err)
			return
		}
		now := time.Now()
		var m inflightMsg
		select {
		case m = <-ec.pending:
		default:
			r.echoed(now, m, false, false)
			continue
		}
		r.echoed(now, m, true, !tooLong && h.OpCode == ws.OpBinary && r.matches(ec.recv[:n], ec.id, m))
		ec.slots <- struct{}{}
	}
}

// control handles a control frame, between messages or between the
// fragments of one. It returns errCloseReceived after a close.
func (ec *echoConn) control(h ws.Header, src io.Reader) error {
	r := ec.run
	var buf [ws.MaxControlFramePayloadSize]byte
	p := buf[:h.Length]
	if _, err := io.ReadFull(src, p); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		r.pings.Add(1)
		ec.writeFrame(clientFrame(ws.OpPong, p), time.Now().Add(r.cfg.CloseTimeout))
	case ws.OpClose:
		// Answered with the server's own code, unless it is the answer
		// to our close.
		code := closeCodeOf(p)
		if ec.sendClose(code, time.Now().Add(r.cfg.CloseTimeout)) {
			r.serverClosed.Add(1)
			r.errs.add(fmt.Sprintf("server closed with %d", code))
		} else {
			r.clean.Add(1)
		}
		return errCloseReceived
	}
	return nil
}

// ended accounts for a connection whose reading failed.
func (ec *echoConn) ended(err error) { ec.run.endedErr(ec.closing.Load(), err) }

// endedErr accounts for a connection whose reading failed with err;
// closing says whether its close had begun.
func (r *echoRun) endedErr(closing bool, err error) {
	if closing {
		r.unclean.Add(1)
		r.errs.add("close: " + errorKind(err))
		return
	}
	r.dropped.Add(1)
	r.errs.add("connection: " + errorKind(err))
}

// readMessageInto reads the rest of the current message into buf. It
// reports tooLong, and discards the rest, when the message does not fit:
// buf is one byte longer than any expected message for that reason.
func readMessageInto(rd *wsutil.Reader, buf []byte) (n int, tooLong bool, err error) {
	for {
		if n == len(buf) {
			return n, true, rd.Discard()
		}
		m, err := rd.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, false, nil
		}
		if err != nil {
			return n, false, err
		}
	}
}
