package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/examples/legacyecho"
)

// cmdDemo runs a legacy echo backend that never pings, puts wsalive in
// front of it, and logs every pair's life, so that wsalive can be tried
// with nothing else installed.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "where wsalive listens for clients")
	backend := fs.String("backend", "127.0.0.1:0", "where the built-in legacy echo backend listens (port 0: any free port)")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	logger, err := lf.logger(stderr, level)
	if err != nil {
		return err
	}
	bln, err := net.Listen("tcp", *backend)
	if err != nil {
		return fmt.Errorf("demo backend: %w", err)
	}
	echo := legacyecho.New(logger.With("component", "legacy-echo"))
	echoDone := make(chan error, 1)
	go func() { echoDone <- echo.Serve(bln) }()
	defer func() {
		echo.Close()
		<-echoDone
	}()

	cfg, err := config.Minimal(*listen, "ws://"+bln.Addr().String())
	if err != nil {
		return err
	}
	// Ctrl-C should stop a demo at once, not after a production drain.
	cfg.Drain = config.Drain{Delay: 0, Window: 0, CloseCode: config.DefaultDrainCloseCode}
	a, err := startApp(cfg, logger, appOptions{level: level, levelPinned: true})
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "listen" {
			return fmt.Errorf("%w (is another wsalive demo running? try: wsalive demo -listen 127.0.0.1:0)", err)
		}
		return err
	}
	url := "ws://" + a.listenerAddrs()[0].String() + "/"
	fmt.Fprintf(stdout, `wsalive demo
  legacy echo backend (never pings): ws://%s/
  wsalive in front of it:            %s

Connect a WebSocket client to %s and every message comes back.
For example, in a browser console:
  ws = new WebSocket(%q); ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hello")
Each pair's open and close (with its reason) is logged below. Ctrl-C stops.

`, bln.Addr(), url, url, url)
	return waitAndStop(a, logger)
}
