package wsload

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// IdleStats is what idle mode measured after the dial phase.
type IdleStats struct {
	// HeldSeconds is how long the connections were held.
	HeldSeconds float64 `json:"held_s"`
	// AliveAtClose is how many connections were still open when the close
	// began: opened minus dropped minus closed by the server.
	AliveAtClose int `json:"alive_at_close"`
	// Dropped counts connections that ended without a close frame while
	// being held (EOF, reset, timeout).
	Dropped int64 `json:"dropped"`
	// ServerClosed counts connections the server closed with a close frame
	// while being held.
	ServerClosed int64 `json:"server_closed"`
	// PingsAnswered counts pings received (and answered with a pong).
	PingsAnswered int64 `json:"pings_answered"`
	// PongsReceived counts unsolicited pongs; wsload never pings.
	PongsReceived int64 `json:"pongs_received"`
	// UnexpectedData counts data frames received; an idle connection
	// should get none.
	UnexpectedData int64 `json:"unexpected_data"`
	// ClosedClean counts connections whose close wsload began and the
	// server answered with a close frame.
	ClosedClean int64 `json:"closed_clean"`
	// ClosedUnclean counts connections whose close got no close answer in
	// time.
	ClosedUnclean int64 `json:"closed_unclean"`
}

// idleConn is one held connection; its goroutine is the only reader.
type idleConn struct {
	clientConn
	r io.Reader
}

// closer is a held connection, whichever client implements it.
type closer interface {
	// sendClose sends a close frame with code unless one went out
	// already, and gives the peer until deadline to answer; it reports
	// whether it sent one.
	sendClose(code ws.StatusCode, deadline time.Time) bool
}

type idleRun struct {
	cfg   Config
	errs  *errorCounter
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []closer

	dropped, serverClosed, pings, pongs, data, clean, unclean atomic.Int64
}

func runIdle(ctx context.Context, cfg Config, sum *Summary, errs *errorCounter) error {
	r := &idleRun{cfg: cfg, errs: errs}
	var lat Histogram
	var res dialResult
	var err error
	if cfg.Client == ClientGorilla {
		res, err = dialEach(ctx, cfg, &lat, errs, r.gorillaConnect)
	} else {
		res, err = dialAll(ctx, cfg, &lat, errs, func(_ int, c net.Conn, rd io.Reader) {
			ic := &idleConn{clientConn: clientConn{conn: c}, r: rd}
			r.add(ic)
			r.wg.Add(1)
			go r.hold(ic)
		})
	}
	if err != nil {
		return err
	}
	sum.setDial(res, &lat)
	if cfg.Ready != nil {
		cfg.Ready(res.opened, res.failed)
	}

	held := time.Now()
	if !res.canceled {
		if cfg.Hold > 0 {
			t := time.NewTimer(cfg.Hold)
			select {
			case <-t.C:
			case <-ctx.Done():
				sum.Interrupted = true
			}
			t.Stop()
		} else {
			<-ctx.Done()
		}
	}
	st := &IdleStats{HeldSeconds: time.Since(held).Seconds()}
	st.AliveAtClose = res.opened - int(r.dropped.Load()+r.serverClosed.Load())
	cfg.Logger.Info("closing", "conns", st.AliveAtClose)

	r.closeAll()
	r.wg.Wait()

	st.Dropped = r.dropped.Load()
	st.ServerClosed = r.serverClosed.Load()
	st.PingsAnswered = r.pings.Load()
	st.PongsReceived = r.pongs.Load()
	st.UnexpectedData = r.data.Load()
	st.ClosedClean = r.clean.Load()
	st.ClosedUnclean = r.unclean.Load()
	sum.Idle = st
	return nil
}

// add records an opened connection.
func (r *idleRun) add(c closer) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

// closeAll begins the close handshake on every connection. Each goroutine
// then waits, within CloseTimeout, for the server's close answer and its
// FIN.
func (r *idleRun) closeAll() {
	r.mu.Lock()
	conns := r.conns
	r.mu.Unlock()
	deadline := time.Now().Add(r.cfg.CloseTimeout)
	for _, ic := range conns {
		// Those the server already began to close have answered it.
		ic.sendClose(ws.StatusNormalClosure, deadline)
	}
}

// hold reads the connection until it ends: it answers pings, ignores pongs,
// counts (and discards) data, and recognises the close handshake.
func (r *idleRun) hold(ic *idleConn) {
	defer r.wg.Done()
	defer ic.conn.Close()

	state := ws.StateClientSide
	var ctl [ws.MaxControlFramePayloadSize]byte
	for {
		h, err := ws.ReadHeader(ic.r)
		if err != nil {
			r.ended(ic, err)
			return
		}
		if err := ws.CheckHeader(h, state); err != nil {
			r.errs.add("server broke the protocol: " + err.Error())
			r.unclean.Add(1)
			ic.writeFrame(closeFrame(ws.StatusProtocolError), time.Now().Add(r.cfg.CloseTimeout))
			return
		}
		if !h.OpCode.IsControl() {
			// Data is discarded, but fragmentation is tracked so that
			// CheckHeader judges continuation frames right.
			if h.Fin {
				state = state.Clear(ws.StateFragmented)
			} else {
				state = state.Set(ws.StateFragmented)
			}
			r.data.Add(1)
			if _, err := io.CopyN(io.Discard, ic.r, h.Length); err != nil {
				r.ended(ic, err)
				return
			}
			continue
		}

		p := ctl[:h.Length]
		if _, err := io.ReadFull(ic.r, p); err != nil {
			r.ended(ic, err)
			return
		}
		switch h.OpCode {
		case ws.OpPing:
			r.pings.Add(1)
			ic.writeFrame(clientFrame(ws.OpPong, p), time.Now().Add(r.cfg.CloseTimeout))
		case ws.OpPong:
			// An unsolicited pong is a heartbeat that needs no answer
			// (RFC 6455 §5.5.3).
			r.pongs.Add(1)
		case ws.OpClose:
			// Answered with the server's own code, unless it is the
			// answer to our close.
			code := closeCodeOf(p)
			if ic.sendClose(code, time.Now().Add(r.cfg.CloseTimeout)) {
				r.serverClosed.Add(1)
				r.errs.add(fmt.Sprintf("server closed with %d", code))
			} else {
				r.clean.Add(1)
			}
			// RFC 6455 §7.1.1: the server closes TCP first; wait for its
			// FIN so that TIME_WAIT stays on the server side.
			io.Copy(io.Discard, ic.r)
			return
		}
	}
}

// ended accounts for a connection whose reading failed.
func (r *idleRun) ended(ic *idleConn, err error) {
	r.endedErr(ic.closing.Load(), err)
}

// endedErr accounts for a connection whose reading failed with err;
// closing says whether its close had begun.
func (r *idleRun) endedErr(closing bool, err error) {
	if closing {
		r.unclean.Add(1)
		r.errs.add("close: " + errorKind(err))
		return
	}
	r.dropped.Add(1)
	r.errs.add("dropped while held: " + errorKind(err))
}
