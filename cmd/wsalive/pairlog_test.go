package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/examples/legacyecho"
	"github.com/wsalive/wsalive/liveness"
	"github.com/wsalive/wsalive/proxy/relay"
)

// jsonLog is a JSON log sink that keeps every line, decoded, and hands
// over the "pair closed" lines as they are written (slog's JSON handler
// writes a record in one Write).
type jsonLog struct {
	t      *testing.T
	mu     sync.Mutex
	lines  []map[string]any
	bad    []string
	closed chan map[string]any
}

func newJSONLog(t *testing.T) *jsonLog {
	return &jsonLog{t: t, closed: make(chan map[string]any, 64)}
}

func (l *jsonLog) Write(p []byte) (int, error) {
	line, err := decodeLine(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = append(l.bad, string(p))
		return len(p), nil
	}
	l.lines = append(l.lines, line)
	if line["msg"] == "pair closed" {
		select {
		case l.closed <- line:
		default:
			l.bad = append(l.bad, "too many pair closed lines: "+string(p))
		}
	}
	return len(p), nil
}

// decodeLine decodes one JSON line, numbers as json.Number so that a
// count and a duration in nanoseconds stay told apart from strings.
func decodeLine(p []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(p))
	d.UseNumber()
	var line map[string]any
	err := d.Decode(&line)
	return line, err
}

// next returns the next "pair closed" line, failing after a bound.
func (l *jsonLog) next() map[string]any {
	l.t.Helper()
	select {
	case line := <-l.closed:
		return line
	case <-time.After(10 * time.Second):
		l.t.Fatalf("no pair closed line within 10 s; log:\n%v", l.all())
		return nil
	}
}

// with returns the lines whose message is msg.
func (l *jsonLog) with(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

func (l *jsonLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines...)
}

// The value kinds of the pair lines. Durations are strings in Go's
// format; a number is only ever a count, an id or a close code, so a
// duration logged as nanoseconds (slog's JSON for a time.Duration) fails.
var (
	durationKeys = map[string]bool{"duration": true, "client_rtt": true, "upstream_rtt": true, "handshake": true}
	numberKeys   = map[string]bool{
		"pair": true, "bytes_to_upstream": true, "bytes_to_client": true,
		"frames_from_client": true, "frames_from_upstream": true,
		"client_pings": true, "client_pongs": true, "upstream_pings": true, "upstream_pongs": true,
		"client_close_code": true, "upstream_close_code": true,
		"client_sent_close_code": true, "upstream_sent_close_code": true,
	}
)

// checkKinds fails for a number that is not a count, an id or a code,
// and for a duration that is not a string Go parses as one.
func checkKinds(t *testing.T, line map[string]any) {
	t.Helper()
	for k, v := range line {
		switch v := v.(type) {
		case json.Number:
			if !numberKeys[k] {
				t.Errorf("%s line: %s=%v is a number; only counts, ids and codes are (a duration must be a string)", line["msg"], k, v)
			}
		case string:
			if durationKeys[k] {
				if _, err := time.ParseDuration(v); err != nil {
					t.Errorf("%s line: %s=%q is not a Go duration: %v", line["msg"], k, v, err)
				}
			}
		}
		if durationKeys[k] {
			if _, ok := v.(string); !ok {
				t.Errorf("%s line: %s=%v (%T), want a string", line["msg"], k, v, v)
			}
		}
	}
}

// wantField checks one field of a line; want is an int for a number.
func wantField(t *testing.T, line map[string]any, key string, want any) {
	t.Helper()
	got, ok := line[key]
	if !ok {
		t.Errorf("%s line has no %s; want %v", line["msg"], key, want)
		return
	}
	if n, isNum := got.(json.Number); isNum {
		if w, wantNum := want.(int); wantNum && n.String() == strconv.Itoa(w) {
			return
		}
	} else if got == want {
		return
	}
	t.Errorf("%s line: %s=%v (%T), want %v (%T)", line["msg"], key, got, got, want, want)
}

func wantNoField(t *testing.T, line map[string]any, key string) {
	t.Helper()
	if v, ok := line[key]; ok {
		t.Errorf("%s line has %s=%v, want none", line["msg"], key, v)
	}
}

// TestPairClosedLine: the line names the close frame each side received
// (code 0 when none) and the one it sent (only when it sent one), and its
// durations are strings, in JSON too.
func TestPairClosedLine(t *testing.T) {
	log := newJSONLog(t)
	a := &app{logger: slog.New(slog.NewJSONHandler(log, nil))}
	a.logPairClosed(relay.PairStats{
		ID:              7,
		Route:           "chat",
		ClientAddr:      "127.0.0.1:40000",
		UpstreamAddr:    "127.0.0.1:3000",
		Duration:        4010 * time.Millisecond,
		Reason:          relay.ReasonUpstreamGone,
		ClientHeartbeat: liveness.Stats{LastRTT: 1776 * time.Microsecond},
		ClientClose: relay.CloseHandshake{
			Received: relay.CloseFrame{Code: 1001, Reason: "upstream gone"},
			Sent:     relay.CloseFrame{Code: 1001},
		},
	})
	line := log.next()
	checkKinds(t, line)
	wantField(t, line, "pair", 7)
	wantField(t, line, "reason", "upstream_gone")
	wantField(t, line, "client_close_code", 1001)
	wantField(t, line, "client_close_reason", "upstream gone")
	wantField(t, line, "client_sent_close_code", 1001)
	wantField(t, line, "client_sent_close_reason", "")
	wantField(t, line, "upstream_close_code", 0)
	wantField(t, line, "upstream_close_reason", "")
	wantNoField(t, line, "upstream_sent_close_code")
	wantNoField(t, line, "upstream_sent_close_reason")
	wantField(t, line, "duration", "4.01s")
	wantField(t, line, "client_rtt", "1.776ms")
	wantField(t, line, "upstream_rtt", "0s")
}

// TestPairLinesThroughTheApp: a running app with a JSON log, an
// independent client (coder/websocket) and the legacy echo backend. The
// pair's two lines share the pair key, carry durations as strings, and
// the closed line tells what crossed: the client's own close, forwarded
// to the upstream and answered; and a drain's close, as the client read
// it.
func TestPairLinesThroughTheApp(t *testing.T) {
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := legacyecho.New(slog.New(slog.DiscardHandler))
	go echo.Serve(bln)
	defer echo.Close()
	cfg, err := config.Minimal("127.0.0.1:0", "ws://"+bln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Drain = config.Drain{CloseCode: 1012} // no delay, no window
	log := newJSONLog(t)
	a, err := startApp(cfg, slog.New(slog.NewJSONHandler(log, nil)), appOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := false
	defer func() {
		if !stopped {
			a.force()
			a.startDrain("cleanup")
			<-a.drainDone
			a.finish(ctx)
		}
	}()
	url := "ws://" + a.listenerAddrs()[0].String() + "/"
	dial := func() *websocket.Conn {
		t.Helper()
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
			t.Fatalf("echo: %q %v", msg, err)
		}
		return c
	}

	t.Run("client closes", func(t *testing.T) {
		c := dial()
		if err := c.Close(4000, "bye"); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
		line := log.next()
		checkKinds(t, line)
		wantField(t, line, "reason", "client_closed")
		wantField(t, line, "client_sent_close_code", 4000)
		wantField(t, line, "client_sent_close_reason", "bye")
		wantField(t, line, "upstream_close_code", 4000)
		wantField(t, line, "upstream_close_reason", "bye")
		// The echo backend answers with a close of its own, which the
		// client received as it was sent.
		wantField(t, line, "upstream_sent_close_code", 4000)
		wantField(t, line, "client_close_code", 4000)
		wantField(t, line, "client_close_reason", line["upstream_sent_close_reason"])
		attached := log.with("pair attached")
		if len(attached) != 1 {
			t.Fatalf("%d pair attached lines, want 1", len(attached))
		}
		checkKinds(t, attached[0])
		if attached[0]["pair"] == nil || attached[0]["pair"] != line["pair"] {
			t.Errorf("pair attached has pair=%v, pair closed pair=%v: want one key, one id", attached[0]["pair"], line["pair"])
		}
	})

	t.Run("drain", func(t *testing.T) {
		c := dial()
		done := make(chan error, 1)
		go func() {
			a.startDrain("test")
			<-a.drainDone
			done <- a.finish(ctx)
		}()
		stopped = true
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("after the drain the client read %v, want a close frame", err)
		}
		line := log.next()
		checkKinds(t, line)
		// What the client read is what the line says it received.
		wantField(t, line, "client_close_code", int(ce.Code))
		wantField(t, line, "client_close_reason", ce.Reason)
		wantField(t, line, "upstream_close_code", 1001)
		if r, _ := line["upstream_close_reason"].(string); !strings.Contains(r, "going away") {
			t.Errorf("upstream_close_reason %q, want going away", r)
		}
		if err := <-done; err != nil {
			t.Fatalf("stop: %v", err)
		}
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.bad) != 0 {
		t.Fatalf("log lines that are not JSON objects: %q", log.bad)
	}
}
