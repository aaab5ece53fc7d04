package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy"
	"github.com/wsalive/wsalive/proxy/metrics"
	"github.com/wsalive/wsalive/proxy/relay"
	"github.com/wsalive/wsalive/proxy/tlsconf"
)

// app is one running proxy: the relay engine, the handshake server, its
// listeners and the admin endpoint, with the process lifecycle around
// them (see lifecycle.go), the drain (drain.go) and reloads (reload.go).
// run and demo both drive one.
type app struct {
	logger  *slog.Logger
	level   *slog.LevelVar
	metrics *metrics.Prometheus
	engine  *relay.Engine
	server  *proxy.Server
	// drainer and routes are the engine's drain and the server's route
	// swap, behind interfaces so that the program is assembled from what
	// the engine and the server provide (and tests can watch them).
	drainer engineDrainer
	routes  routeSetter
	// load re-reads the configuration for a reload; nil when there is no
	// file to re-read.
	load func() (*config.Config, error)
	// levelPinned is set when -log-level was given: the flag wins over
	// the file's log_level, at start and on every reload.
	levelPinned bool

	state    lifecycle
	liveness livenessChecks

	mu        sync.Mutex
	cfg       *config.Config             // what runs; replaced by a valid reload
	listeners map[string]*servedListener // by address
	// lnControl sets the listeners' TCP keepalive before they listen
	// (relay.ListenControl); nil sets none.
	lnControl func(network, address string, c syscall.RawConn) error

	admin     *http.Server
	adminAddr net.Addr
	// serveErr receives the first unexpected end of a listener.
	serveErr chan error

	// forceCtx ends on a second stop signal: every wait of the drain ends
	// with it and the remaining pairs are closed at once.
	forceCtx    context.Context
	forceCancel context.CancelFunc

	drainOnce    sync.Once
	drainStarted chan struct{} // closed when a drain starts
	drainDone    chan struct{} // closed when it has finished
	drainResult  drainOutcome  // set before drainDone is closed

	reloadMu sync.Mutex // one reload at a time

	// stopRelease ends releaseWhenIdle.
	stopRelease context.CancelFunc
	// tlsServers hold the TLS listeners' certificates (see tls.go).
	tlsServers []*tlsconf.Server
	stopOnce   sync.Once
}

// servedListener is one client listener and what it was opened with.
type servedListener struct {
	ln  net.Listener
	cfg config.Listener
	// removed is set before a reload closes the listener on purpose, so
	// that the end of its Serve is not taken for a failure.
	removed atomic.Bool
}

// appOptions are what startApp needs beyond the configuration.
type appOptions struct {
	// level is the logger's level; a reload sets it. nil: a fixed level.
	level *slog.LevelVar
	// levelPinned: the command line set the level, the file may not.
	levelPinned bool
	// load re-reads the configuration on reload; nil disables reloads.
	load func() (*config.Config, error)
	// drainer and routes override the engine's and the server's; tests
	// use them.
	drainer engineDrainer
	routes  routeSetter
}

// startApp listens on every configured address and starts serving. On
// error nothing is left running.
func startApp(cfg *config.Config, logger *slog.Logger, opts appOptions) (*app, error) {
	a := &app{
		cfg:          cfg,
		logger:       logger,
		level:        opts.level,
		levelPinned:  opts.levelPinned,
		load:         opts.load,
		listeners:    map[string]*servedListener{},
		serveErr:     make(chan error, 1),
		drainStarted: make(chan struct{}),
		drainDone:    make(chan struct{}),
	}
	if a.level == nil {
		a.level = new(slog.LevelVar)
		a.level.Set(cfg.LogLevel)
	}
	a.forceCtx, a.forceCancel = context.WithCancel(context.Background())
	ver, rev := buildVersion()
	a.metrics = metrics.NewPrometheus(metrics.PrometheusOptions{
		Version:  ver,
		Revision: rev,
		BufferedBytes: func() float64 {
			if a.engine == nil {
				return 0
			}
			return float64(a.engine.Stats().BufferedBytes)
		},
		UpstreamServers: func() []metrics.UpstreamServer {
			if a.server == nil {
				return nil
			}
			return a.server.UpstreamServers()
		},
		ResumeSessions: func() (attached, parked float64) {
			if a.engine == nil {
				return 0, 0
			}
			st := a.engine.Stats()
			return float64(st.Sessions - st.ParkedSessions), float64(st.ParkedSessions)
		},
		ResumeReplayBytes: func() float64 {
			if a.engine == nil {
				return 0
			}
			return float64(a.engine.Stats().ReplayBytes)
		},
	})
	eng, err := relay.New(relay.Options{
		Loops:          cfg.Engine.Loops,
		DisableIOUring: !cfg.Engine.IOUring,
		ResumeMemory:   cfg.Limits.ResumeMemory,
		OnClose:        a.pairClosed,
		Metrics:        a.metrics,
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	a.engine = eng
	a.drainer = opts.drainer
	if a.drainer == nil {
		a.drainer = eng
	}
	// A process that stopped yet still answers is stuck on its way out.
	a.liveness.add("lifecycle", func() error {
		if a.state.get() == stateStopped {
			return errors.New("stopped")
		}
		return nil
	})
	if p, ok := any(eng).(engineLiveness); ok {
		a.liveness.add("relay", p.Live)
	}
	srvOpts := []proxy.Option{proxy.WithLimits(cfg.Limits), proxy.WithMetrics(a.metrics)}
	// Listeners are opened with the routes' common client keepalive, which
	// their sockets inherit (Linux): the relay then need not set it on
	// each. Fixed at start: a reload's listeners get the same, and a
	// route whose keepalive a reload changes is set per socket.
	if k, ok := proxy.ListenerKeepalive(cfg.Routes); ok {
		if a.lnControl = relay.ListenControl(k); a.lnControl != nil {
			srvOpts = append(srvOpts, proxy.WithListenerKeepalive(k))
		}
	}
	srv, err := proxy.NewServer(cfg.Routes, eng, logger, srvOpts...)
	if err != nil {
		a.abort()
		return nil, err
	}
	a.server = srv
	a.routes = opts.routes
	if a.routes == nil {
		a.routes = srv
	}
	var opened []*servedListener
	for _, l := range cfg.Listeners {
		ln, err := a.listen(l) // TLS when the listener has a tls block
		if err != nil {
			a.abort()
			return nil, fmt.Errorf("listener %s: %w", l.Address, err)
		}
		sl := &servedListener{ln: ln, cfg: l}
		a.listeners[l.Address] = sl
		opened = append(opened, sl)
	}
	if cfg.Admin != nil {
		ln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			a.abort()
			return nil, fmt.Errorf("admin %s: %w", cfg.Admin.Address, err)
		}
		a.admin = &http.Server{
			Handler: proxy.AdminHandler(proxy.AdminOptions{
				Engine:    eng,
				Metrics:   a.metrics.Handler(),
				Ready:     a.state.ready,
				Live:      a.liveness.check,
				Drain:     a.drainRequest,
				Upstreams: srv.UpstreamStates,
				Pprof:     cfg.Admin.Pprof,
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		a.adminAddr = ln.Addr()
		go func() {
			if err := a.admin.Serve(ln); err != nil && err != http.ErrServerClosed {
				a.reportServeErr(fmt.Errorf("admin: %w", err))
			}
		}()
		logger.Info("admin endpoint listening", "address", ln.Addr().String(), "pprof", cfg.Admin.Pprof)
	}
	for _, sl := range opened {
		a.serve(sl)
	}
	var ctx context.Context
	ctx, a.stopRelease = context.WithCancel(context.Background())
	handshakes := goroutineHandshakes(runtime.NumGoroutine() + 1) // +1: the watcher itself
	if hc, ok := any(srv).(handshakeCounter); ok {
		handshakes = hc.InHandshake
	}
	go releaseWhenIdle(ctx, handshakes, func() int64 { return eng.Stats().Pairs })
	a.state.advance(stateServing)
	logger.Info("serving: ready")
	return a, nil
}

// config returns the configuration that runs.
func (a *app) config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// serve starts accepting on sl.
func (a *app) serve(sl *servedListener) {
	go func() {
		err := a.server.Serve(sl.ln, sl.cfg)
		if sl.removed.Load() || a.state.get() >= stateDraining || errors.Is(err, proxy.ErrServerClosed) {
			return
		}
		a.reportServeErr(err)
	}()
	a.logger.Info("listening", "address", sl.ln.Addr().String())
}

// reportServeErr passes the first unexpected listener failure on to the
// main loop; later ones add nothing it would act on.
func (a *app) reportServeErr(err error) {
	select {
	case a.serveErr <- err:
	default:
	}
}

// listenerAddrs lists the addresses the listeners got, in configuration
// order (tests and the demo need the port a ":0" listener got).
func (a *app) listenerAddrs() []net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []net.Addr
	for _, l := range a.cfg.Listeners {
		if sl, ok := a.listeners[l.Address]; ok {
			out = append(out, sl.ln.Addr())
		}
	}
	return out
}

// abort undoes a half-started app.
func (a *app) abort() {
	_ = a.closeTLS()
	for _, sl := range a.listeners {
		sl.ln.Close()
	}
	if a.admin != nil {
		a.admin.Close()
	}
	if a.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.engine.Close(ctx)
	}
}

// finish ends what a drain leaves running: the engine's loops, the admin
// endpoint and the memory watcher. It is called once the drain is done
// (or forced), and leaves the process stopped.
func (a *app) finish(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() {
		a.stopRelease()
		a.state.advance(stateStopped)
		errEngine := a.engine.Close(ctx)
		_ = a.closeTLS() // only stops watching files; errors say nothing about pairs
		var errAdmin error
		if a.admin != nil {
			errAdmin = a.admin.Shutdown(ctx)
		}
		a.forceCancel()
		err = errors.Join(errEngine, errAdmin)
	})
	return err
}

// maxCloseTimeout is the longest close handshake any route allows; a
// drain waits that long past its window for pairs to close before
// cutting them.
func maxCloseTimeout(cfg *config.Config) time.Duration {
	d := time.Duration(0)
	for _, r := range cfg.Routes {
		d = max(d, r.CloseTimeout)
	}
	return d
}

// pairClosed is the engine's OnClose: the server gives back what the pair
// held against its limits and its upstream pool, and the line is logged.
// a.server is set before the server accepts, so before any pair can exist.
func (a *app) pairClosed(st relay.PairStats) {
	a.server.PairClosed(st)
	a.logPairClosed(st)
}

// logPairClosed logs the pair's account. Every duration in it is a
// string in Go's duration format ("4.01s"), in JSON too, as in the
// "pair attached" line: slog would write a bare time.Duration as
// nanoseconds in JSON and as "4.01s" in text.
func (a *app) logPairClosed(st relay.PairStats) {
	args := make([]any, 0, 48)
	args = append(args,
		"pair", st.ID,
		"route", st.Route,
		"client", st.ClientAddr,
		"upstream", st.UpstreamAddr,
		"reason", st.Reason.String(),
	)
	args = appendCloseHandshake(args, &clientCloseKeys, st.ClientClose)
	args = appendCloseHandshake(args, &upstreamCloseKeys, st.UpstreamClose)
	args = append(args,
		"duration", st.Duration.Round(time.Millisecond).String(),
		"bytes_to_upstream", st.BytesToUpstream,
		"bytes_to_client", st.BytesToClient,
		"frames_from_client", st.FramesFromClient,
		"frames_from_upstream", st.FramesFromUpstream,
		"client_pings", st.ClientHeartbeat.PingsSent,
		"client_pongs", st.ClientHeartbeat.PongsReceived,
		"client_rtt", st.ClientHeartbeat.LastRTT.Round(time.Microsecond).String(),
		"upstream_pings", st.UpstreamHeartbeat.PingsSent,
		"upstream_pongs", st.UpstreamHeartbeat.PongsReceived,
		"upstream_rtt", st.UpstreamHeartbeat.LastRTT.Round(time.Microsecond).String(),
	)
	a.logger.Info("pair closed", args...)
}

// closeHandshakeKeys name one side's close handshake in the "pair
// closed" line: <side>_close_* is what the side received, as a reader
// of the line asks first ("what did the client get?"), and
// <side>_sent_close_* what it sent.
type closeHandshakeKeys struct{ code, reason, sentCode, sentReason string }

var (
	clientCloseKeys   = closeHandshakeKeys{"client_close_code", "client_close_reason", "client_sent_close_code", "client_sent_close_reason"}
	upstreamCloseKeys = closeHandshakeKeys{"upstream_close_code", "upstream_close_reason", "upstream_sent_close_code", "upstream_sent_close_reason"}
)

// appendCloseHandshake adds one side's close handshake to a line: the
// close code and reason it received, always (code 0: it received none),
// and the ones it sent, when it sent a close frame.
func appendCloseHandshake(args []any, k *closeHandshakeKeys, h relay.CloseHandshake) []any {
	args = append(args, k.code, h.Received.Code, k.reason, h.Received.Reason)
	if !h.Sent.None() {
		args = append(args, k.sentCode, h.Sent.Code, k.sentReason, h.Sent.Reason)
	}
	return args
}
