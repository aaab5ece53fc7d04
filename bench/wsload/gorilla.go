package wsload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
)

// This file holds the connections of ClientGorilla: the same idle, echo and
// churn behaviour as wsload's own client, on gorilla/websocket, so that a
// result can be checked against a client that shares nothing with the
// proxy (which is built on gobwas/ws). Pings are answered and closes
// handled by gorilla's handlers, which run in the reading goroutine;
// gorilla allows its WriteControl alongside the one writer of messages.

// gorillaReadBuffer is gorilla's read buffer, its default size.
const gorillaReadBuffer = 4096

// gorillaDial opens one connection to urlstr from src (nil: any) with a
// write buffer of writeBuf bytes (0: gorilla's default). A buffer that
// holds a whole message makes gorilla send it as one frame and one write;
// with a smaller one it would fragment the message.
func gorillaDial(ctx context.Context, cfg Config, urlstr string, src net.IP, writeBuf int) (*websocket.Conn, error) {
	nd := &net.Dialer{Control: dialControl}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		TLSClientConfig:  cfg.TLSConfig,
		HandshakeTimeout: cfg.DialTimeout,
		ReadBufferSize:   gorillaReadBuffer,
		WriteBufferSize:  writeBuf,
	}
	c, resp, err := d.DialContext(ctx, urlstr, nil)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			// Named like gobwas's refusal, so that equal causes count
			// together whichever client saw them.
			return nil, fmt.Errorf("%w", ws.StatusError(resp.StatusCode))
		}
		return nil, err
	}
	return c, nil
}

// gorillaConn is a gorilla connection with the close bookkeeping every
// mode needs.
type gorillaConn struct {
	c *websocket.Conn
	// closing is set once a close frame has gone out, or is about to.
	closing atomic.Bool
	// closeFrame is set, by the reader, once the peer's close frame has
	// been handled.
	closeFrame bool
}

// sendClose sends a close frame with code, unless one went out already,
// and gives the peer until deadline to answer. It reports whether it sent
// one: false means this side had begun the close.
func (g *gorillaConn) sendClose(code ws.StatusCode, deadline time.Time) bool {
	if !g.closing.CompareAndSwap(false, true) {
		return false
	}
	g.c.SetReadDeadline(deadline)
	// 1005 must not be sent (RFC 6455 §7.4.1); gorilla formats it as an
	// empty body.
	g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), ""), deadline)
	return true
}

// handle installs the handlers: pings are answered and counted, pongs
// counted, and a close frame is answered with its own code unless it
// answers ours; serverClosed or answered is called accordingly.
func (g *gorillaConn) handle(closeTimeout time.Duration, pings, pongs *atomic.Int64,
	serverClosed func(code ws.StatusCode), answered func()) {
	g.c.SetPingHandler(func(data string) error {
		pings.Add(1)
		// A failed pong shows up as a failed read; gorilla refuses it
		// after our close, as it must.
		g.c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeTimeout))
		return nil
	})
	g.c.SetPongHandler(func(string) error {
		if pongs != nil {
			pongs.Add(1)
		}
		return nil
	})
	g.c.SetCloseHandler(func(code int, _ string) error {
		g.closeFrame = true
		if g.sendClose(ws.StatusCode(code), time.Now().Add(closeTimeout)) {
			serverClosed(ws.StatusCode(code))
		} else {
			answered()
		}
		return nil
	})
}

// waitFIN reads, until the read deadline sendClose set, what is left: RFC
// 6455 §7.1.1 has the server close TCP first, so TIME_WAIT stays on its
// side.
func (g *gorillaConn) waitFIN() { io.Copy(io.Discard, g.c.NetConn()) }

// gorillaConnect is idle mode's connectFunc for ClientGorilla.
func (r *idleRun) gorillaConnect(ctx context.Context, _ int, urlstr string, src net.IP) (func(), error) {
	c, err := gorillaDial(ctx, r.cfg, urlstr, src, 0)
	if err != nil {
		return nil, err
	}
	return func() {
		g := &gorillaConn{c: c}
		r.add(g)
		r.wg.Add(1)
		go r.holdGorilla(g)
	}, nil
}

// holdGorilla is hold for a gorilla connection.
func (r *idleRun) holdGorilla(g *gorillaConn) {
	defer r.wg.Done()
	defer g.c.Close()
	g.handle(r.cfg.CloseTimeout, &r.pings, &r.pongs, func(code ws.StatusCode) {
		r.serverClosed.Add(1)
		r.errs.add(fmt.Sprintf("server closed with %d", code))
	}, func() { r.clean.Add(1) })
	for {
		_, rd, err := g.c.NextReader()
		if err == nil {
			r.data.Add(1)
			_, err = io.Copy(io.Discard, rd)
		}
		if err != nil {
			if g.closeFrame {
				g.waitFIN()
			} else {
				r.endedErr(g.closing.Load(), err)
			}
			return
		}
	}
}

// gorillaEchoConn is echoConn for a gorilla connection: one goroutine
// writes messages, one reads and matches echoes.
type gorillaEchoConn struct {
	gorillaConn
	run     *echoRun
	id      uint32
	slots   chan struct{}
	pending chan inflightMsg
	dead    chan struct{}
	rng     *rand.Rand
	payload []byte
	recv    []byte // Size+1, to notice an echo longer than sent
}

// maxClientHeader is the longest client frame header: 2 bytes, 8 of
// length, 4 of mask.
const maxClientHeader = 14

// gorillaConnect returns echo mode's connectFunc for ClientGorilla.
func (r *echoRun) gorillaConnect(seed uint64) connectFunc {
	return func(ctx context.Context, i int, urlstr string, src net.IP) (func(), error) {
		c, err := gorillaDial(ctx, r.cfg, urlstr, src, max(r.cfg.Size+maxClientHeader, gorillaReadBuffer))
		if err != nil {
			return nil, err
		}
		return func() {
			k := r.cfg.Inflight
			ec := &gorillaEchoConn{
				gorillaConn: gorillaConn{c: c},
				run:         r,
				id:          uint32(i),
				slots:       make(chan struct{}, k),
				pending:     make(chan inflightMsg, k),
				dead:        make(chan struct{}),
				rng:         rand.New(rand.NewPCG(seed, uint64(i))),
				payload:     make([]byte, r.cfg.Size),
				recv:        make([]byte, r.cfg.Size+1),
			}
			for range k {
				ec.slots <- struct{}{}
			}
			r.add(ec)
			r.wg.Add(1)
			go ec.read()
		}, nil
	}
}

func (ec *gorillaEchoConn) lost() int { return len(ec.pending) }

// write is echoConn.write with gorilla's WriteMessage.
func (ec *gorillaEchoConn) write(ctx context.Context, writeDeadline time.Time) {
	r := ec.run
	defer r.wg.Done()
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			ec.sendClose(ws.StatusNormalClosure, time.Now().Add(r.cfg.CloseTimeout))
			return
		case <-ec.dead:
			return
		case <-ec.slots:
		}
		off := ec.rng.IntN(poolSlack + 1)
		r.fill(ec.payload, ec.id, seq, off)
		ec.pending <- inflightMsg{seq: seq, off: off, t0: time.Now()}
		if ec.closing.Load() {
			return // nothing may follow a close frame; counts as lost
		}
		ec.c.SetWriteDeadline(writeDeadline)
		if err := ec.c.WriteMessage(websocket.BinaryMessage, ec.payload); err != nil {
			select {
			case <-ec.dead:
			default:
				if !errors.Is(err, websocket.ErrCloseSent) {
					r.errs.add("write: " + errorKind(err))
					ec.c.Close()
				}
			}
			return
		}
	}
}

// read matches echoes to the messages in flight until the connection ends.
func (ec *gorillaEchoConn) read() {
	r := ec.run
	defer r.wg.Done()
	defer ec.c.Close()
	defer close(ec.dead)
	ec.handle(r.cfg.CloseTimeout, &r.pings, nil, func(code ws.StatusCode) {
		r.serverClosed.Add(1)
		r.errs.add(fmt.Sprintf("server closed with %d", code))
	}, func() { r.clean.Add(1) })
	for {
		mt, rd, err := ec.c.NextReader()
		var n int
		var tooLong bool
		if err == nil {
			n, tooLong, err = readInto(rd, ec.recv)
		}
		if err != nil {
			if ec.closeFrame {
				ec.waitFIN()
			} else {
				r.endedErr(ec.closing.Load(), err)
			}
			return
		}
		now := time.Now()
		select {
		case m := <-ec.pending:
			r.echoed(now, m, true, !tooLong && mt == websocket.BinaryMessage && r.matches(ec.recv[:n], ec.id, m))
			ec.slots <- struct{}{}
		default:
			r.echoed(now, inflightMsg{}, false, false)
		}
	}
}

// readInto reads a message from rd into buf; it reports tooLong, and
// discards the rest, when the message does not fit.
func readInto(rd io.Reader, buf []byte) (n int, tooLong bool, err error) {
	for {
		if n == len(buf) {
			_, err := io.Copy(io.Discard, rd)
			return n, true, err
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
