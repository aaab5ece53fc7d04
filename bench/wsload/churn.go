package wsload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
)

// ChurnStats is what churn mode measured: every connection opens,
// exchanges one message, and closes with a close handshake.
type ChurnStats struct {
	Size int `json:"size"`
	// Completed counts connections whose echo came back byte for byte and
	// whose close handshake the server answered.
	Completed int64 `json:"completed"`
	// Seconds is the run, from the first dial to the end of the last
	// close; ConnsPerSec is Completed over it.
	Seconds     float64 `json:"duration_s"`
	ConnsPerSec float64 `json:"conns_per_s"`
	// RTT is the message's round trip.
	RTT LatencyStats `json:"rtt"`
	// Lifetime is from the start of the dial to the end of the close.
	Lifetime LatencyStats `json:"lifetime"`
	// Failed counts opened connections that did not complete (see
	// error_kinds).
	Failed int64 `json:"failed"`
}

func (st *ChurnStats) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "churn:       %d completed (%.0f/s over %.2fs), %d failed after opening, %d B message\n",
		st.Completed, st.ConnsPerSec, st.Seconds, st.Failed, st.Size)
	fmt.Fprintf(b, "round trip:  %s\n", st.RTT.text())
	fmt.Fprintf(b, "lifetime:    %s\n", st.Lifetime.text())
}

type churnRun struct {
	cfg       Config
	errs      *errorCounter
	pool      []byte
	rtt, life Histogram
	completed atomic.Int64
	failed    atomic.Int64
}

func runChurn(ctx context.Context, cfg Config, sum *Summary, errs *errorCounter) error {
	r := &churnRun{cfg: cfg, errs: errs, pool: make([]byte, cfg.Size+poolSlack)}
	seed := uint64(time.Now().UnixNano())
	rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8)}).Read(r.pool)
	var lat Histogram
	res, err := dialEach(ctx, cfg, &lat, errs, r.connect)
	if err != nil {
		return err
	}
	sum.setDial(res, &lat)
	if cfg.Ready != nil {
		cfg.Ready(res.opened, res.failed)
	}
	st := &ChurnStats{
		Size:      cfg.Size,
		Completed: r.completed.Load(),
		Failed:    r.failed.Load(),
		Seconds:   res.took.Seconds(),
		RTT:       r.rtt.Stats(),
		Lifetime:  r.life.Stats(),
	}
	if st.Seconds > 0 {
		st.ConnsPerSec = float64(st.Completed) / st.Seconds
	}
	sum.Churn = st
	return nil
}

// payload returns connection i's message: a window of the random pool
// with i's stamp over its start.
func (r *churnRun) payload(i int) []byte {
	p := make([]byte, r.cfg.Size)
	copy(p, r.pool[(i*7919)%(poolSlack+1):])
	st := stampOf(uint32(i), 0)
	copy(p, st[:])
	return p
}

// connect is churn's connectFunc: the dial is timed by dialEach, the rest
// of the connection's life runs in the returned function, within the dial
// slot, so that DialConcurrency bounds the connections alive at once.
func (r *churnRun) connect(ctx context.Context, i int, urlstr string, src net.IP) (func(), error) {
	t0 := time.Now()
	var exchange func(p []byte) (time.Duration, error)
	if r.cfg.Client == ClientGorilla {
		c, err := gorillaDial(ctx, r.cfg, urlstr, src, max(r.cfg.Size+maxClientHeader, gorillaReadBuffer))
		if err != nil {
			return nil, err
		}
		exchange = func(p []byte) (time.Duration, error) { return r.gorillaExchange(c, p) }
	} else {
		c, rd, err := dialOne(ctx, r.cfg, urlstr, src)
		if err != nil {
			return nil, err
		}
		exchange = func(p []byte) (time.Duration, error) { return r.gobwasExchange(c, readerOf(rd, 4096), p) }
	}
	return func() {
		rtt, err := exchange(r.payload(i))
		if err != nil {
			r.failed.Add(1)
			r.errs.add("churn: " + errorKind(err))
			return
		}
		r.rtt.RecordDuration(rtt)
		r.life.RecordDuration(time.Since(t0))
		r.completed.Add(1)
	}, nil
}

// errEchoDiffers is an echo that is not what was sent.
var errEchoDiffers = errors.New("echo differs from what was sent")

// gobwasExchange sends p, reads its echo, and closes with a close
// handshake, waiting for the server's FIN; it returns the round trip.
func (r *churnRun) gobwasExchange(c net.Conn, br *bufio.Reader, p []byte) (time.Duration, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.cfg.CloseTimeout))
	t0 := time.Now()
	if _, err := c.Write(clientFrame(ws.OpBinary, p)); err != nil {
		return 0, err
	}
	var msg []byte
	op := ws.OpCode(0)
	for {
		h, body, err := readServerFrame(br)
		if err != nil {
			return 0, err
		}
		switch h.OpCode {
		case ws.OpPing:
			c.Write(clientFrame(ws.OpPong, body))
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			return 0, fmt.Errorf("server closed with %d", closeCodeOf(body))
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		msg = append(msg, body...)
		if h.Fin {
			break
		}
	}
	rtt := time.Since(t0)
	if op != ws.OpBinary || !bytes.Equal(msg, p) {
		return 0, errEchoDiffers
	}
	if _, err := c.Write(closeFrame(ws.StatusNormalClosure)); err != nil {
		return 0, err
	}
	for {
		h, _, err := readServerFrame(br)
		if err != nil {
			return 0, fmt.Errorf("close: %w", err)
		}
		if h.OpCode == ws.OpClose {
			break
		}
	}
	// RFC 6455 §7.1.1: the server closes TCP first.
	io.Copy(io.Discard, br)
	return rtt, nil
}

// readServerFrame reads one unmasked frame with its payload.
func readServerFrame(br *bufio.Reader) (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		return h, nil, err
	}
	if err := ws.CheckHeader(h, ws.StateClientSide); err != nil {
		return h, nil, err
	}
	if h.Length > 1<<24 {
		return h, nil, fmt.Errorf("frame of %d bytes", h.Length)
	}
	body := make([]byte, h.Length)
	_, err = io.ReadFull(br, body)
	return h, body, err
}

// gorillaExchange is gobwasExchange with gorilla/websocket; its handlers
// answer pings, and its close handler's answer to the server's close is
// refused by gorilla once ours went out.
func (r *churnRun) gorillaExchange(c *websocket.Conn, p []byte) (time.Duration, error) {
	defer c.Close()
	deadline := time.Now().Add(r.cfg.CloseTimeout)
	c.SetReadDeadline(deadline)
	c.SetWriteDeadline(deadline)
	t0 := time.Now()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	mt, msg, err := c.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return 0, fmt.Errorf("server closed with %d", ce.Code)
		}
		return 0, err
	}
	rtt := time.Since(t0)
	if mt != websocket.BinaryMessage || !bytes.Equal(msg, p) {
		return 0, errEchoDiffers
	}
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline); err != nil {
		return 0, err
	}
	for {
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("close: %w", err)
		}
	}
	io.Copy(io.Discard, c.NetConn())
	return rtt, nil
}
