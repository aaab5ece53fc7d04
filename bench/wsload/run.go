package wsload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Summary is the result of a run. It marshals to the one-line JSON summary
// wsload prints last.
type Summary struct {
	Mode Mode `json:"mode"`
	// Client is the WebSocket implementation of the connections.
	Client string `json:"client,omitempty"`
	URL    string `json:"url"`
	N      int    `json:"n"`

	// Opened counts connections whose handshake succeeded; DialFailed
	// those whose connect or handshake failed.
	Opened     int `json:"opened"`
	DialFailed int `json:"dial_failed"`
	// DialAborted counts dials cut short by an interrupt; not errors.
	DialAborted int `json:"dial_aborted"`
	// DialSeconds is how long opening all N took; DialRate is Opened over
	// it.
	DialSeconds float64 `json:"dial_s"`
	DialRate    float64 `json:"dial_rate_per_s"`
	// Handshake is the latency of connect plus WebSocket handshake.
	Handshake LatencyStats `json:"handshake"`

	// Interrupted is set when the run was cut short (SIGINT).
	Interrupted bool `json:"interrupted"`

	Idle *IdleStats `json:"idle,omitempty"`
	Echo *EchoStats `json:"echo,omitempty"`
	// Blackhole is what the blackhole modes measured.
	Blackhole *BlackholeStats `json:"blackhole,omitempty"`
	Churn     *ChurnStats     `json:"churn,omitempty"`
	Floor     *FloorStats     `json:"floor,omitempty"`

	// Errors counts every failure of the run (dial failures, drops,
	// mismatches, lost echoes, unclean closes); a healthy run has none.
	// ErrorKinds breaks it down.
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
}

// Run performs one run described by cfg and returns what it measured. It
// returns an error only when the run could not be done at all (bad
// configuration, too few descriptors); failures of connections are counted
// in the Summary. Canceling ctx ends the dial phase, the hold or the
// traffic early and closes every connection cleanly.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	limit, err := fileLimit()
	if err != nil {
		return nil, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	// Churn holds at most the connections in flight at once.
	held := cfg.N
	if cfg.Mode == ModeChurn {
		held = min(cfg.N, cfg.DialConcurrency)
	}
	if cfg.Mode == ModeFloor {
		held = 2
	}
	if need := uint64(held) + fdReserve; need > limit {
		return nil, fmt.Errorf("n=%d needs about %d file descriptors but this process may open %d; "+
			"split the connections over several wsload processes (each has its own limit)",
			cfg.N, need, limit)
	}

	sum := &Summary{Mode: cfg.Mode, Client: cfg.Client, URL: cfg.URL, N: cfg.N}
	var errs errorCounter
	switch cfg.Mode {
	case ModeIdle:
		err = runIdle(ctx, cfg, sum, &errs)
	case ModeEcho:
		err = runEcho(ctx, cfg, sum, &errs)
	case ModeChurn:
		err = runChurn(ctx, cfg, sum, &errs)
	case ModeFloor:
		sum.URL, sum.N = "", 0
		err = runFloor(ctx, cfg, sum)
	case ModeBlackholeClient, ModeBlackholeUpstream:
		err = runBlackhole(ctx, cfg, sum, &errs)
	}
	if err != nil {
		return nil, err
	}
	sum.ErrorKinds = errs.snapshot()
	sum.Errors = errs.total()
	return sum, nil
}

// setDial records the dial phase.
func (s *Summary) setDial(res dialResult, lat *Histogram) {
	s.Opened = res.opened
	s.DialFailed = res.failed
	s.DialAborted = res.aborted
	s.DialSeconds = res.took.Seconds()
	if s.DialSeconds > 0 {
		s.DialRate = float64(res.opened) / s.DialSeconds
	}
	s.Handshake = lat.Stats()
	s.Interrupted = s.Interrupted || res.canceled
}

// WriteJSON writes s as one line of JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes s for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	if st := s.Floor; st != nil {
		st.writeText(&b)
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "wsload %s  %s  n=%d  client=%s\n", s.Mode, s.URL, s.N, s.Client)
	if s.Interrupted {
		fmt.Fprintf(&b, "  (interrupted)\n")
	}
	fmt.Fprintf(&b, "connections: %d opened, %d failed, in %.2fs (%.0f/s)\n",
		s.Opened, s.DialFailed, s.DialSeconds, s.DialRate)
	if s.DialAborted > 0 {
		fmt.Fprintf(&b, "             %d dials aborted by the interrupt\n", s.DialAborted)
	}
	fmt.Fprintf(&b, "handshake:   %s\n", s.Handshake.text())
	if st := s.Idle; st != nil {
		fmt.Fprintf(&b, "held:        %.1fs, %d alive at close, %d dropped, %d closed by server\n",
			st.HeldSeconds, st.AliveAtClose, st.Dropped, st.ServerClosed)
		fmt.Fprintf(&b, "frames in:   %d pings answered, %d pongs, %d data\n",
			st.PingsAnswered, st.PongsReceived, st.UnexpectedData)
		fmt.Fprintf(&b, "close:       %d clean, %d unclean\n", st.ClosedClean, st.ClosedUnclean)
	}
	if st := s.Echo; st != nil {
		fmt.Fprintf(&b, "echo:        %d B x %d in flight per connection, %.2fs\n",
			st.Size, st.Inflight, st.Seconds)
		fmt.Fprintf(&b, "messages:    %d verified, %.0f msg/s, %.2f MiB/s payload each way\n",
			st.Messages, st.MessagesPerSec, st.PayloadMiBPerSec)
		fmt.Fprintf(&b, "round trip:  %s\n", st.RTT.text())
		fmt.Fprintf(&b, "bad:         %d mismatched, %d lost, %d unexpected, %d dropped, %d closed by server\n",
			st.Mismatches, st.Lost, st.Unexpected, st.Dropped, st.ServerClosed)
		fmt.Fprintf(&b, "close:       %d clean, %d unclean\n", st.ClosedClean, st.ClosedUnclean)
	}
	if st := s.Churn; st != nil {
		st.writeText(&b)
	}
	if st := s.Blackhole; st != nil {
		st.writeText(&b)
	}
	fmt.Fprintf(&b, "errors:      %d\n", s.Errors)
	b.WriteString(formatErrors(s.ErrorKinds))
	_, err := io.WriteString(w, b.String())
	return err
}

func (l LatencyStats) text() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)",
		msText(l.P50Ms), msText(l.P90Ms), msText(l.P99Ms), msText(l.P999Ms),
		msText(l.MaxMs), msText(l.MeanMs), l.Count)
}

func msText(ms float64) string {
	if ms < 1 {
		return fmt.Sprintf("%.0fµs", ms*1000)
	}
	return fmt.Sprintf("%.2fms", ms)
}
