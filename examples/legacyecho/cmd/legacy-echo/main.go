// Command legacy-echo runs the legacy WebSocket echo server of package
// legacyecho, to put wsalive in front of by hand or in benchmarks.
//
// Usage:
//
//	legacy-echo [-listen 127.0.0.1:3000] [-subprotocol NAME]
//	            [-max-message-size BYTES] [-check-utf8] [-v]
//
// It stops on SIGINT or SIGTERM, dropping open connections without a close
// frame, as a legacy server being killed would.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsalive/wsalive/examples/legacyecho"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "TCP address to listen on")
	subprotocol := flag.String("subprotocol", "", "subprotocol to accept when offered (none if empty)")
	maxMessage := flag.Int64("max-message-size", legacyecho.DefaultMaxMessageSize, "largest message echoed, in bytes; bigger ones end the connection with 1009")
	checkUTF8 := flag.Bool("check-utf8", false, "fail text messages that are not valid UTF-8 with 1007")
	verbose := flag.Bool("v", false, "log every connection (debug level)")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "legacy-echo:", err)
		os.Exit(1)
	}
	srv := legacyecho.NewWithOptions(log, legacyecho.Options{
		Subprotocol:    *subprotocol,
		MaxMessageSize: *maxMessage,
		CheckUTF8:      *checkUTF8,
	})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		// A second signal falls back to the default action: exit at once.
		signal.Stop(sigs)
		log.Info("shutting down", "signal", sig.String(), "conns", srv.Conns())
		srv.Close()
	}()

	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "legacy-echo:", err)
		os.Exit(1)
	}
	// Serve returns once Close has begun; wait for it to finish.
	srv.Close()
}
