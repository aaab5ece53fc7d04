package legacyecho

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	// readBufferSize is the per-connection read buffer. It saves the two or
	// three syscalls a frame header would otherwise cost; 4 KiB is what
	// typical servers use.
	readBufferSize = 4 << 10

	// preallocLimit is how much of a peer-declared frame length is trusted
	// when sizing the message buffer before the bytes have arrived.
	preallocLimit = 64 << 10

	// keepBufferCap is the largest message buffer kept for the next message.
	// A connection that once echoed 16 MiB should not hold 16 MiB forever.
	keepBufferCap = 256 << 10

	// closeWriteTimeout bounds writing our own close frame to a peer that
	// broke the protocol; it may not be reading.
	closeWriteTimeout = 5 * time.Second
)

// controlError marks an error that came out of control-frame handling. The
// wsutil handler has already written whatever answer fits (the close reply,
// or a 1002 for a malformed close), so no further close frame is sent.
type controlError struct{ err error }

func (e controlError) Error() string { return e.err.Error() }
func (e controlError) Unwrap() error { return e.err }

// echo reads messages from c and writes each back whole, with its opcode,
// until the connection ends. It returns nil after a completed close
// handshake.
func (s *Server) echo(c net.Conn) error {
	ctrl := wsutil.ControlFrameHandler(c, ws.StateServerSide)
	handleControl := func(h ws.Header, r io.Reader) error {
		if err := ctrl(h, r); err != nil {
			return controlError{err}
		}
		return nil
	}
	rd := wsutil.Reader{
		Source:    bufio.NewReaderSize(c, readBufferSize),
		State:     ws.StateServerSide,
		CheckUTF8: s.opts.CheckUTF8,
		// Pings and closes between the fragments of a message are answered
		// right away, as RFC 6455 §5.4 allows the peer to send them there.
		OnIntermediate: handleControl,
	}
	if n := s.opts.MaxMessageSize; n > 0 {
		rd.MaxMessageSize = n
	}

	var (
		msg   bytes.Buffer
		whead bytes.Buffer
		hbuf  [ws.MaxHeaderSize]byte
	)
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return s.fail(c, err)
		}
		if hdr.OpCode.IsControl() {
			err = handleControl(hdr, &rd)
			if err != nil {
				return s.fail(c, err)
			}
			continue
		}

		msg.Reset()
		msg.Grow(int(min(hdr.Length, preallocLimit)))
		_, err = msg.ReadFrom(&rd)
		if err != nil {
			return s.fail(c, err)
		}

		// One writev for header and payload: a separate header write would
		// put a tiny segment on the wire before every message.
		whead.Reset()
		err = ws.WriteHeaderBuffer(&whead, ws.Header{
			Fin:    true,
			OpCode: hdr.OpCode,
			Length: int64(msg.Len()),
		}, hbuf[:])
		if err != nil {
			return err
		}
		bufs := net.Buffers{whead.Bytes(), msg.Bytes()}
		_, err = bufs.WriteTo(c)
		if err != nil {
			return err
		}
		if msg.Cap() > keepBufferCap {
			msg = bytes.Buffer{}
		}
	}
}

// fail ends the connection after err. A completed close handshake is not a
// failure and returns nil. A protocol violation by the peer is answered with
// the close code RFC 6455 §7.4.1 names for it before the socket closes; an
// I/O error is returned as it is, there is nobody left to tell.
func (s *Server) fail(c net.Conn, err error) error {
	var closed wsutil.ClosedError
	if errors.As(err, &closed) {
		return nil
	}
	var ce controlError
	if errors.As(err, &ce) {
		return ce.err
	}

	var code ws.StatusCode
	var perr ws.ProtocolError
	switch {
	case errors.As(err, &perr),
		errors.Is(err, ws.ErrHeaderLengthMSB),
		errors.Is(err, ws.ErrHeaderLengthUnexpected):
		code = ws.StatusProtocolError
	case errors.Is(err, wsutil.ErrMessageTooLarge),
		errors.Is(err, wsutil.ErrFrameTooLarge):
		code = ws.StatusMessageTooBig
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		code = ws.StatusInvalidFramePayloadData
	default:
		return err
	}
	c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	frame := ws.NewCloseFrame(ws.NewCloseFrameBody(code, err.Error()))
	if werr := ws.WriteFrame(c, frame); werr != nil {
		s.log.Debug("writing close frame failed", "err", werr)
	}
	return err
}
