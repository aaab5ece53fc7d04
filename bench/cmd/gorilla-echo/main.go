// Command gorilla-echo is an echo backend built on gorilla/websocket, the
// benchmarks' independent backend: with it and wsload -client gorilla, no
// side of a measurement shares a WebSocket library with wsalive (gobwas/ws).
// It echoes every message as one frame, answers pings (gorilla's default
// handler) and answers a close with the same code, then closes TCP.
//
// Usage:
//
//	gorilla-echo [-listen 127.0.0.1:0] [-addr-file PATH]
//
// With port 0 the kernel picks a free port; the address bound is printed
// ("listening on ADDR") and, with -addr-file, written to PATH atomically,
// so that a driver never races another process for a port. It stops on
// SIGINT or SIGTERM.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on (port 0: any free port)")
	addrFile := flag.String("addr-file", "", "write the address bound to this file")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorilla-echo:", err)
		os.Exit(1)
	}
	addr := ln.Addr().String()
	fmt.Printf("listening on %s\n", addr)
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, addr+"\n"); err != nil {
			fmt.Fprintln(os.Stderr, "gorilla-echo:", err)
			os.Exit(1)
		}
	}
	srv := &http.Server{Handler: echoHandler(), ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		signal.Stop(sigs)
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "gorilla-echo:", err)
		os.Exit(1)
	}
}

// echoHandler upgrades every request and echoes on the connection.
func echoHandler() http.Handler {
	up := websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// A benchmark backend: any origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered the client already
		}
		echo(c)
	})
}

// echo sends every message back until the connection ends. gorilla's
// close handler answers a close frame; the read then fails and the
// connection is closed, server first as RFC 6455 §7.1.1 has it.
func echo(c *websocket.Conn) {
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		// A server's WriteMessage sends the message as one frame.
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gorilla-echo-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
