package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsalive/wsalive/config"
)

// cmdDemo runs a legacy backend that never pings, puts wsalive in front of
// it, and serves a page that shows the client helper's connection, its
// messages, heartbeat round trips and a resume after a cut connection, so
// that wsalive can be tried with nothing else installed.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "where the demo listens for browsers and WebSocket clients")
	backend := fs.String("backend", "127.0.0.1:0", "where the built-in legacy backend listens (port 0: any free port)")
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
	d, err := startDemo(demoOptions{listen: *listen, backend: *backend, logger: logger, level: level})
	if err != nil {
		return err
	}
	defer d.close()
	resume := "on (30s window)"
	if !d.backend.info.Resume {
		resume = "not available in this build"
	}
	fmt.Fprintf(stdout, `wsalive demo
  legacy backend (never pings):  http://%s/
  wsalive in front of it:        %s (reached through the demo's link on %s)

  Open %s in a browser: the page connects with the client helper
  (examples/client/wsalive-client.js), shows its messages, a tick pushed
  every second, heartbeat round trips, and a button that cuts the
  connection without a close frame so that the resume can be watched.
  Resume: %s. wsalive pings the page every %s.

Or connect any WebSocket client to %s and every message comes back.
For example, in a browser console:
  ws = new WebSocket(%q); ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hello")
Each pair's open and close (with its reason) is logged below. Ctrl-C stops.

`, d.backendAddr, d.app.listenerAddrs()[0], d.link.ln.Addr(), d.pageURL, resume, time.Duration(d.backend.info.ClientHeartbeatMS)*time.Millisecond, d.wsURL, d.wsURL)
	return waitAndStop(d.app, logger)
}

type demoOptions struct {
	listen, backend string
	logger          *slog.Logger
	level           *slog.LevelVar
	// extra serves backend paths the demo does not know (tests' pages).
	extra http.Handler
}

// demo is a running `wsalive demo`: the backend, wsalive and the link.
type demo struct {
	app         *app
	backend     *demoBackend
	backendAddr net.Addr
	link        *demoLink
	pageURL     string // http://<listen>/
	wsURL       string // ws://<listen>/

	httpSrv *http.Server
	served  chan error
}

// The demo route: heartbeats of a few seconds both ways, so that a person
// sees pings and round trips at once (the ticks keep the upstream side
// busy, so its pings go out only on the plain echo path); the page's
// application ping; and a resume block when this build knows it. The
// verbs are the backend's address and demoResumeBlock or nothing.
const demoConfig = `
listener {
  address = "127.0.0.1:0"
}
route "demo" {
  upstream = "ws://%s"
  heartbeat "client" {
    interval   = "3s"
    timeout    = "3s"
    max_missed = 2
  }
  heartbeat "upstream" {
    interval   = "3s"
    timeout    = "3s"
  }
  app_ping {
    match = "{\"type\":\"ping\"}"
    reply = "{\"type\":\"pong\"}"
  }
%s}
`

const demoResumeBlock = `  resume {
    window = "30s"
    buffer = "256KiB"
  }
`

// demoRouteConfig returns the demo's configuration for a backend, with a
// resume block when the configuration knows one (the server side of
// resumable sessions may not be in this build yet: the demo then runs
// without it and the page says so).
func demoRouteConfig(backendAddr string) (cfg *config.Config, resume bool, err error) {
	cfg, err = config.Parse("demo.hcl", fmt.Appendf(nil, demoConfig, backendAddr, demoResumeBlock))
	if err == nil {
		return cfg, true, nil
	}
	cfg, err2 := config.Parse("demo.hcl", fmt.Appendf(nil, demoConfig, backendAddr, ""))
	if err2 != nil {
		return nil, false, errors.Join(err, err2)
	}
	return cfg, false, nil
}

// startDemo starts the backend, wsalive in front of it on a free loopback
// port, and the link on opts.listen in front of wsalive.
func startDemo(opts demoOptions) (*demo, error) {
	logger := opts.logger
	bln, err := net.Listen("tcp", opts.backend)
	if err != nil {
		return nil, fmt.Errorf("demo backend: %w", err)
	}
	cfg, resume, err := demoRouteConfig(bln.Addr().String())
	if err != nil {
		bln.Close()
		return nil, err
	}
	// Ctrl-C should stop a demo at once, not after a production drain.
	cfg.Drain = config.Drain{Delay: 0, Window: 0, CloseCode: config.DefaultDrainCloseCode}
	route := cfg.Routes[0]

	lln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		bln.Close()
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "listen" {
			return nil, fmt.Errorf("%w (is another wsalive demo running? try: wsalive demo -listen 127.0.0.1:0)", err)
		}
		return nil, err
	}
	d := &demo{backendAddr: bln.Addr(), served: make(chan error, 1)}
	d.backend = &demoBackend{
		log: logger.With("component", "demo-backend"),
		info: demoInfo{
			Resume:            resume,
			AppPingMatch:      route.AppPing.Match,
			AppPingReply:      route.AppPing.Reply,
			ClientHeartbeatMS: route.ClientHeartbeat.Interval.Milliseconds(),
		},
		cut:   func() int { return d.link.cut() },
		extra: opts.extra,
	}
	d.httpSrv = &http.Server{
		Handler:           d.backend,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() { d.served <- d.httpSrv.Serve(bln) }()

	d.app, err = startApp(cfg, logger, appOptions{level: opts.level, levelPinned: true})
	if err != nil {
		lln.Close()
		d.stopBackend()
		return nil, err
	}
	wsaliveAddr := d.app.listenerAddrs()[0].String()
	if resume && !probeResume(wsaliveAddr) {
		// The configuration knows resume blocks, but this build's proxy
		// does not answer the opt-in yet: the page must not ask.
		d.backend.info.Resume = false
		logger.Info("demo: the route has a resume block, but this wsalive does not offer sessions yet")
	}
	d.link = newDemoLink(lln, wsaliveAddr)
	go d.link.serve()
	d.pageURL = "http://" + lln.Addr().String() + "/"
	d.wsURL = "ws://" + lln.Addr().String() + "/"
	return d, nil
}

// probeResume asks wsalive at addr for a session on the backend's echo
// path and sends a message: a welcome coming back first means sessions
// work; the message's echo means the opt-in went to the backend unheeded.
func probeResume(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+"/?wsalive_resume=new")
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientText(conn, []byte("probe")); err != nil {
		return false
	}
	var rd io.Reader = conn
	if br != nil {
		rd = br // holds what came with the handshake answer, then reads conn
	}
	msg, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{rd, conn})
	if err != nil {
		return false
	}
	// A close frame ends a session at once instead of parking it.
	ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	var w struct {
		Wsalive string `json:"wsalive"`
		Resume  bool   `json:"resume"`
	}
	return json.Unmarshal(msg, &w) == nil && w.Wsalive == "welcome" && w.Resume
}

func (d *demo) stopBackend() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.httpSrv.Shutdown(ctx)
	<-d.served
	d.backend.close()
}

// close stops the link and the backend; wsalive is stopped by its owner
// (waitAndStop, or a test's stop).
func (d *demo) close() {
	d.link.close()
	d.stopBackend()
}
