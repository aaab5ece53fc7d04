package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestEchoWithAnotherClient drives the backend with coder/websocket, a
// client that shares nothing with it: binary and text messages come back
// unchanged, a ping is answered, and a close is answered with its code.
func TestEchoWithAnotherClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: echoHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)

	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
	}{
		{"binary", websocket.MessageBinary, bytes.Repeat([]byte{0, 1, 2, 0xff}, 256)},
		{"text", websocket.MessageText, []byte("hello, legacy backend")},
		{"empty", websocket.MessageBinary, []byte{}},
		{"bigger than the write buffer", websocket.MessageBinary, bytes.Repeat([]byte("x"), 64<<10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Write(ctx, tc.typ, tc.msg); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tc.typ || !bytes.Equal(got, tc.msg) {
				t.Fatalf("echo: type %v, %d bytes; want %v, %d bytes", typ, len(got), tc.typ, len(tc.msg))
			}
		})
	}

	// coder/websocket answers pings only while reading; Ping waits for
	// the pong, which a reader goroutine lets through.
	readCtx, stopRead := context.WithCancel(ctx)
	read := c.CloseRead(readCtx)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	stopRead()
	<-read.Done()
}

func TestCloseAnsweredWithItsCode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: echoHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// Close sends 1001 and returns once the server's close frame came
	// back; an error means it did not.
	if err := c.Close(websocket.StatusGoingAway, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}
