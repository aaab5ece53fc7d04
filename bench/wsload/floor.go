package wsload

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// FloorStats is what floor mode measured: the CPU cost of bare loopback
// round trips in this process, a write of Size bytes answered with a write
// of ReplySize, each read whole by the other end. A proxy's heartbeat
// round trip toward one side is one such write (the ping) and one read
// (the pong) plus its own bookkeeping; CPUPerWriteReadUs is the floor it
// is compared to.
type FloorStats struct {
	Size       int   `json:"size"`
	ReplySize  int   `json:"reply_size"`
	RoundTrips int64 `json:"round_trips"`
	// Seconds is the measured time; CPUSeconds the process's CPU (user +
	// system) over it.
	Seconds    float64 `json:"duration_s"`
	CPUSeconds float64 `json:"cpu_s"`
	// CPUPerRoundTripUs is the CPU of one round trip, both ends: two
	// writes and two reads.
	CPUPerRoundTripUs float64 `json:"cpu_per_round_trip_us"`
	// CPUPerWriteReadUs is half of it: one end's write plus read.
	CPUPerWriteReadUs float64 `json:"cpu_per_write_read_us"`
}

func (st *FloorStats) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "wsload floor  %d B answered with %d B over loopback TCP\n", st.Size, st.ReplySize)
	fmt.Fprintf(b, "round trips: %d in %.2fs, %.2fs CPU\n", st.RoundTrips, st.Seconds, st.CPUSeconds)
	fmt.Fprintf(b, "CPU:         %.2fµs per round trip (both ends), %.2fµs per write+read (one end)\n",
		st.CPUPerRoundTripUs, st.CPUPerWriteReadUs)
}

func runFloor(ctx context.Context, cfg Config, sum *Summary) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		return err
	}
	defer b.Close()
	// The answering end: read a whole request, write the reply.
	go func() {
		req, reply := make([]byte, cfg.Size), make([]byte, cfg.ReplySize)
		for {
			if _, err := io.ReadFull(b, req); err != nil {
				return
			}
			if _, err := b.Write(reply); err != nil {
				return
			}
		}
	}()
	req, reply := make([]byte, cfg.Size), make([]byte, cfg.ReplySize)
	// One round trip before the clock starts, so that neither goroutine's
	// start is counted.
	if err := floorTrip(a, req, reply); err != nil {
		return err
	}
	cpu0, err := processCPU()
	if err != nil {
		return fmt.Errorf("floor mode needs the process's CPU time: %w", err)
	}
	t0 := time.Now()
	end := t0.Add(cfg.Duration)
	var n int64
	for ctx.Err() == nil {
		if err := floorTrip(a, req, reply); err != nil {
			return err
		}
		n++
		if n%64 == 0 && time.Now().After(end) {
			break
		}
	}
	secs := time.Since(t0).Seconds()
	cpu1, err := processCPU()
	if err != nil {
		return err
	}
	st := &FloorStats{Size: cfg.Size, ReplySize: cfg.ReplySize, RoundTrips: n, Seconds: secs,
		CPUSeconds: (cpu1 - cpu0).Seconds()}
	if n > 0 {
		st.CPUPerRoundTripUs = st.CPUSeconds / float64(n) * 1e6
		st.CPUPerWriteReadUs = st.CPUPerRoundTripUs / 2
	}
	sum.Floor = st
	sum.Interrupted = ctx.Err() != nil
	return nil
}

func floorTrip(c net.Conn, req, reply []byte) error {
	if _, err := c.Write(req); err != nil {
		return err
	}
	_, err := io.ReadFull(c, reply)
	return err
}
