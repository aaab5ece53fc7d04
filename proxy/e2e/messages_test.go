package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/relay"
)

// messageSizes cover the frame length encodings (7-bit up to 125, 16-bit
// from 126 to 65535, 64-bit beyond) and payloads that span many reads.
var messageSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20}

// bigMessage is sent once per direction only, so the suite stays fast.
const bigMessage = 16 << 20

// messageBound bounds one message case: a 16 MiB message takes seconds
// under -race on a busy two-core machine.
const messageBound = 3 * waitBound

type messageCase struct {
	typ  websocket.MessageType
	size int
}

func (m messageCase) name() string { return typeName(m.typ) + "/" + sizeName(m.size) }

// messageCases returns every size as text and as binary, then one big
// message of type big.
func messageCases(big websocket.MessageType) []messageCase {
	var cs []messageCase
	for _, n := range messageSizes {
		cs = append(cs, messageCase{websocket.MessageText, n}, messageCase{websocket.MessageBinary, n})
	}
	return append(cs, messageCase{big, bigMessage})
}

// echoOrDigest is an upstream handler that echoes messages up to 1 MiB and
// answers bigger ones with "<type> <length> <sha256 hex>", so that a big
// message crosses each direction once only.
func echoOrDigest(w http.ResponseWriter, r *http.Request) {
	_ = serveMessages(w, r, nil, func(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) error {
		if len(msg) > 1<<20 {
			typ, msg = websocket.MessageText, []byte(digest(typ, msg))
		}
		return c.Write(ctx, typ, msg)
	})
}

func digest(typ websocket.MessageType, msg []byte) string {
	return fmt.Sprintf("%s %d %x", typeName(typ), len(msg), sha256.Sum256(msg))
}

// sendOnRequest is an upstream handler that sends generated messages when
// asked: "<text|binary> <size> <seed>" sends one, "all <seed>" sends every
// case of messageCases(text) back to back, in order.
func sendOnRequest(w http.ResponseWriter, r *http.Request) {
	f := upstreamOf(r)
	_ = serveMessages(w, r, nil, func(ctx context.Context, c *websocket.Conn, _ websocket.MessageType, cmd []byte) error {
		var cases []messageCase
		var seed uint64
		var err error
		fields := strings.Fields(string(cmd))
		switch {
		case len(fields) == 2 && fields[0] == "all":
			cases = messageCases(websocket.MessageText)[:2*len(messageSizes)]
			seed, err = strconv.ParseUint(fields[1], 10, 64)
		case len(fields) == 3:
			typ := websocket.MessageBinary
			if fields[0] == "text" {
				typ = websocket.MessageText
			}
			var size int
			size, err = strconv.Atoi(fields[1])
			cases = []messageCase{{typ, size}}
			if err == nil {
				seed, err = strconv.ParseUint(fields[2], 10, 64)
			}
		default:
			err = errors.New("unknown command")
		}
		if err != nil {
			f.reportf("sendOnRequest: bad command %q: %v", cmd, err)
			return err
		}
		for i, m := range cases {
			if err := c.Write(ctx, m.typ, payload(m.typ, m.size, seed+uint64(i))); err != nil {
				f.reportf("sendOnRequest: write %s: %v", m.name(), err)
				return err
			}
		}
		return nil
	})
}

// messageCtx bounds one message case; it is cancelled when the test ends.
func messageCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), messageBound)
	t.Cleanup(cancel)
	return ctx
}

// readInOrder reads one message per case from c and checks that the i-th
// is the payload of cases[i] with seed base+i: messages sent back to back
// must arrive whole and in the order they were sent. what names them in
// failures ("echo", "message").
func readInOrder(t *testing.T, ctx context.Context, c *websocket.Conn, cases []messageCase, base uint64, what string) {
	t.Helper()
	for i, m := range cases {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %s %d (%s): %v", what, i, m.name(), err)
		}
		if d := sameMessage(typ, got, m.typ, payload(m.typ, m.size, base+uint64(i))); d != "" {
			t.Errorf("%s %d (%s): %s", what, i, m.name(), d)
		}
	}
}

// TestMessages sends text and binary messages of every length encoding
// through wsalive, both as echoes of what the client sent and as messages
// the upstream starts, and checks each arrives byte-exact and in order.
func TestMessages(t *testing.T) {
	f := newFixture(t, fixtureOptions{handler: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			echoOrDigest(w, r)
		case "/send":
			sendOnRequest(w, r)
		default:
			http.NotFound(w, r)
		}
	}})

	t.Run("echo", func(t *testing.T) {
		// One pair for every case: the relay must keep frame boundaries
		// straight across messages of every size on the same streams.
		// The 16 MiB message is not echoed but checked by its digest.
		c, _ := f.dial(t, "/echo", nil)
		for i, m := range messageCases(websocket.MessageBinary) {
			t.Run(m.name(), func(t *testing.T) {
				ctx := messageCtx(t)
				want := payload(m.typ, m.size, uint64(i))
				if err := c.Write(ctx, m.typ, want); err != nil {
					t.Fatalf("write: %v", err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if m.size > 1<<20 {
					// The upstream answers with what it received.
					if got, want := string(got), digest(m.typ, want); got != want {
						t.Errorf("upstream received %q, want %q", got, want)
					}
					return
				}
				if d := sameMessage(typ, got, m.typ, want); d != "" {
					t.Errorf("echo: %s", d)
				}
			})
		}
		t.Run("pipelined-in-order", func(t *testing.T) {
			// Every message written before any echo is read: the relay
			// carries many frames per read and must keep their order.
			cases := messageCases(websocket.MessageBinary)[:2*len(messageSizes)]
			ctx := messageCtx(t)
			wrote := make(chan error, 1)
			go func() {
				for i, m := range cases {
					if err := c.Write(ctx, m.typ, payload(m.typ, m.size, 1000+uint64(i))); err != nil {
						wrote <- fmt.Errorf("write %s: %w", m.name(), err)
						return
					}
				}
				wrote <- nil
			}()
			readInOrder(t, ctx, c, cases, 1000, "echo")
			if err := recv(t, wrote, "writer result"); err != nil {
				t.Error(err)
			}
		})
		closeNormally(t, f, c, relay.ReasonClientClosed)
	})

	t.Run("upstream-initiated", func(t *testing.T) {
		c, _ := f.dial(t, "/send", nil)
		for i, m := range messageCases(websocket.MessageText) {
			t.Run(m.name(), func(t *testing.T) {
				ctx := messageCtx(t)
				cmd := fmt.Sprintf("%s %d %d", typeName(m.typ), m.size, i)
				if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
					t.Fatalf("write request: %v", err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if d := sameMessage(typ, got, m.typ, payload(m.typ, m.size, uint64(i))); d != "" {
					t.Errorf("message: %s", d)
				}
			})
		}
		t.Run("back-to-back-in-order", func(t *testing.T) {
			ctx := messageCtx(t)
			if err := c.Write(ctx, websocket.MessageText, []byte("all 2000")); err != nil {
				t.Fatalf("write request: %v", err)
			}
			readInOrder(t, ctx, c, messageCases(websocket.MessageText)[:2*len(messageSizes)], 2000, "message")
		})
		closeNormally(t, f, c, relay.ReasonClientClosed)
	})
}

// closeNormally closes c with 1000 and checks how its pair ended.
func closeNormally(t *testing.T, f *fixture, c *websocket.Conn, want relay.Reason) relay.PairStats {
	t.Helper()
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
	st := f.nextClosed(t)
	if st.Reason != want {
		t.Errorf("pair ended with %v, want %v", st.Reason, want)
	}
	return st
}

// TestConcurrentPairs runs 1,000 pairs at once through one engine, each
// echoing messages of random sizes, and checks every echo, that all pairs
// were live together, and that every pair ended cleanly.
func TestConcurrentPairs(t *testing.T) {
	const (
		pairs    = 1000
		messages = 10
		maxSize  = 4 << 10
	)
	// The close handshakes of all 1,000 pairs start at once. Under -race
	// on a loaded machine they have outlasted the fixture's 2 s close
	// timeout (7-102 pairs saw EOF instead of the echoed close frame);
	// this test is about concurrency, not the timeout, so it gets the
	// production default, which is also the client's own close timeout.
	f := newFixture(t, fixtureOptions{handler: echo, route: func(r *config.Route) {
		r.CloseTimeout = config.DefaultCloseTimeout
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// A transport of the test's own, so no pooled state leaks between
	// tests; upgrades never go back to its pool anyway.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	// Each pair reports on ready after its first round trip (so it is
	// attached), waits for start, sends its messages, and reports on done.
	// At most dialing pairs handshake at once: a burst of 1,000 under -race
	// on two loaded cores can outlast the 10s handshake timeout, which is
	// not what this test is about.
	const dialing = 64
	slots := make(chan struct{}, dialing)
	t0 := time.Now()
	ready := make(chan error, pairs)
	done := make(chan error, pairs)
	start := make(chan struct{})
	for i := range pairs {
		go func() {
			err := func() error {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					ready <- ctx.Err()
					return ctx.Err()
				}
				c, _, err := websocket.Dial(ctx, "ws://"+f.proxyAddr+"/echo", &websocket.DialOptions{HTTPClient: client})
				if err != nil {
					<-slots
					err = fmt.Errorf("pair %d: dial: %w", i, err)
					ready <- err
					return err
				}
				defer c.CloseNow()
				err = roundTrip(ctx, c, websocket.MessageText, []byte("hello"))
				<-slots
				if err != nil {
					err = fmt.Errorf("pair %d: first round trip: %w", i, err)
					ready <- err
					return err
				}
				ready <- nil
				select {
				case <-start:
				case <-ctx.Done():
					return ctx.Err()
				}
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				for j := range messages {
					typ := websocket.MessageBinary
					if rng.IntN(2) == 0 {
						typ = websocket.MessageText
					}
					msg := payload(typ, rng.IntN(maxSize+1), uint64(i*messages+j))
					if err := roundTrip(ctx, c, typ, msg); err != nil {
						return fmt.Errorf("pair %d message %d (%d bytes): %w", i, j, len(msg), err)
					}
				}
				return c.Close(websocket.StatusNormalClosure, "")
			}()
			done <- err
		}()
	}

	// tally takes one result per pair from results and returns how many
	// failed, reporting only the first five: when something breaks, a
	// thousand pairs tend to fail alike.
	tally := func(results <-chan error, stage string) int {
		failed := 0
		for range pairs {
			select {
			case err := <-results:
				if err != nil {
					failed++
					if failed <= 5 {
						t.Error(err)
					}
				}
			case <-ctx.Done():
				t.Fatalf("pairs not %s: %v", stage, ctx.Err())
			}
		}
		return failed
	}

	failed := tally(ready, "ready")
	close(start)
	if failed > 0 {
		t.Fatalf("%d of %d pairs failed to start", failed, pairs)
	}
	if got := f.engine.Stats().Pairs; got != pairs {
		t.Errorf("engine has %d live pairs with all started, want %d", got, pairs)
	}
	t.Logf("%d pairs live together after %v", pairs, time.Since(t0))

	if failed := tally(done, "done"); failed > 0 {
		t.Fatalf("%d of %d pairs failed", failed, pairs)
	}
	t.Logf("all traffic done after %v", time.Since(t0))

	reasons := map[relay.Reason]int{}
	var toUpstream uint64
	for range pairs {
		select {
		case st := <-f.closed:
			reasons[st.Reason]++
			toUpstream += st.BytesToUpstream
		case <-ctx.Done():
			t.Fatalf("only %d pairs reported their end: %v", len(reasons), ctx.Err())
		}
	}
	if reasons[relay.ReasonClientClosed] != pairs {
		t.Errorf("pair endings %v, want all %d client_closed", reasons, pairs)
	}
	if got := f.engine.Stats(); got.Pairs != 0 || got.BufferedBytes != 0 {
		t.Errorf("after all pairs closed: %+v, want zero", got)
	}
	t.Logf("%d pairs, %d bytes toward the upstream", pairs, toUpstream)
}

// roundTrip writes msg and checks the echo.
func roundTrip(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) error {
	if err := c.Write(ctx, typ, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	gotTyp, got, err := c.Read(ctx)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if d := sameMessage(gotTyp, got, typ, msg); d != "" {
		return fmt.Errorf("echo: %s", d)
	}
	return nil
}
