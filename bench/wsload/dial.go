package wsload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// dialResult is what the dial phase of a run measured.
type dialResult struct {
	opened int
	failed int
	// aborted counts dials cut short by the end of the run (SIGINT); they
	// are not failures of the target.
	aborted  int
	took     time.Duration
	canceled bool
}

// dialAll opens cfg.N WebSocket connections with gobwas/ws (see dialEach).
// onConn is called, from the dialing goroutine, for every connection
// opened; it owns the connection from then on. r reads the connection and
// holds any bytes the server sent right behind its 101.
func dialAll(ctx context.Context, cfg Config, lat *Histogram, errs *errorCounter,
	onConn func(i int, c net.Conn, r io.Reader)) (dialResult, error) {
	return dialEach(ctx, cfg, lat, errs, func(ctx context.Context, i int, urlstr string, src net.IP) (func(), error) {
		c, r, err := dialOne(ctx, cfg, urlstr, src)
		if err != nil {
			return nil, err
		}
		return func() { onConn(i, c, r) }, nil
	})
}

// connectFunc opens connection i to urlstr from local address src (nil:
// any), connect plus handshake, and returns what to do with it once open;
// dialEach times the connect alone, then runs the returned function in the
// dialing goroutine, which still holds its dial slot.
type connectFunc func(ctx context.Context, i int, urlstr string, src net.IP) (opened func(), err error)

// dialEach opens cfg.N connections with connect, at most cfg.Rate per
// second and cfg.DialConcurrency at a time, recording each handshake's
// latency in lat and each failure in errs. It returns when every dial (and
// every opened function) has ended or ctx is done.
func dialEach(ctx context.Context, cfg Config, lat *Histogram, errs *errorCounter, connect connectFunc) (dialResult, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return dialResult{}, err
	}
	srcIPs, err := ParseSrcIPs(cfg.SrcIPs, u.Hostname())
	if err != nil {
		return dialResult{}, err
	}
	if len(srcIPs) > 0 {
		cfg.Logger.Info("spreading source addresses", "first", srcIPs[0].String(),
			"last", srcIPs[len(srcIPs)-1].String(), "count", len(srcIPs))
	}

	var (
		nOpened, failed, aborted atomic.Int64
		wg                       sync.WaitGroup
		sem                      = make(chan struct{}, cfg.DialConcurrency)
		start                    = time.Now()
		pace                     = time.NewTimer(0)
		result                   dialResult
	)
	defer pace.Stop()

	progressDone := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				cfg.Logger.Info("dialing", "opened", nOpened.Load(), "failed", failed.Load(), "of", cfg.N)
			}
		}
	}()

dispatch:
	for i := range cfg.N {
		// Pace against the start time, not the previous dial, so that timer
		// slack does not accumulate into a lower rate than asked.
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				pace.Reset(wait)
				select {
				case <-pace.C:
				case <-ctx.Done():
					result.canceled = true
					break dispatch
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			result.canceled = true
			break dispatch
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dial := func() {
				t0 := time.Now()
				opened, err := connect(ctx, i, u.String(), srcIP(srcIPs, i))
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.Canceled) {
						aborted.Add(1)
						return
					}
					failed.Add(1)
					errs.add("dial: " + errorKind(err))
					return
				}
				lat.RecordDuration(time.Since(t0))
				nOpened.Add(1)
				opened()
			}
			if cfg.dialWrap == nil {
				dial()
			} else if err := cfg.dialWrap(dial); err != nil {
				failed.Add(1)
				errs.add("dial: " + err.Error())
			}
		}()
	}
	wg.Wait()
	close(progressDone)
	if ctx.Err() != nil {
		result.canceled = true
	}
	result.opened = int(nOpened.Load())
	result.failed = int(failed.Load())
	result.aborted = int(aborted.Load())
	result.took = time.Since(start)
	return result, nil
}

func srcIP(ips []net.IP, i int) net.IP {
	if len(ips) == 0 {
		return nil
	}
	return ips[i%len(ips)]
}

// dialOne opens one WebSocket connection, bound to local address src when
// it is not nil.
func dialOne(ctx context.Context, cfg Config, urlstr string, src net.IP) (net.Conn, io.Reader, error) {
	nd := &net.Dialer{Control: dialControl}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	d := ws.Dialer{
		Timeout:   cfg.DialTimeout,
		NetDial:   nd.DialContext,
		TLSConfig: cfg.TLSConfig,
	}
	conn, br, _, err := d.Dial(ctx, urlstr)
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = conn
	if br != nil {
		// The server wrote frames right behind its 101 and the dialer
		// buffered them; they must be read first, so read through br.
		r = br
	}
	return conn, r, nil
}

// errorCounter counts errors by kind, so that 9,000 failures print as a
// few lines.
type errorCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (e *errorCounter) add(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = make(map[string]int)
	}
	e.counts[kind]++
}

func (e *errorCounter) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		m[k] = v
	}
	return m
}

func (e *errorCounter) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, v := range e.counts {
		n += v
	}
	return n
}

// errorKind names err without the parts that differ per connection
// (addresses, ports), so that equal causes count together.
func errorKind(err error) string {
	var status ws.StatusError
	var errno syscall.Errno
	var nerr net.Error
	switch {
	case errors.As(err, &status):
		return fmt.Sprintf("handshake answered HTTP %d", int(status))
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, net.ErrClosed):
		return "use of closed connection"
	}
	s := err.Error()
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// formatErrors renders error counts most frequent first.
func formatErrors(m map[string]int) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if m[kinds[i]] != m[kinds[j]] {
			return m[kinds[i]] > m[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %7d  %s\n", m[k], k)
	}
	return b.String()
}

// readerOf wraps a connection reader in a bufio.Reader of size n, reusing r
// when it already is one (the dialer's buffer of early frames).
func readerOf(r io.Reader, n int) *bufio.Reader {
	if br, ok := r.(*bufio.Reader); ok {
		return br
	}
	return bufio.NewReaderSize(r, n)
}
