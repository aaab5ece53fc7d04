package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy"
	"github.com/wsalive/wsalive/proxy/relay"
)

// app is one running proxy: the relay engine, the handshake server and its
// listeners. run and demo both drive one.
type app struct {
	cfg       *config.Config
	logger    *slog.Logger
	engine    *relay.Engine
	server    *proxy.Server
	listeners []net.Listener
	admin     *http.Server
	adminAddr net.Addr
	serveErr  chan error
	// stopRelease ends releaseAfterBursts.
	stopRelease context.CancelFunc
}

// startApp listens on every configured address and starts serving. On
// error nothing is left running.
func startApp(cfg *config.Config, logger *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, logger: logger, serveErr: make(chan error, len(cfg.Listeners)+1)}
	eng, err := relay.New(relay.Options{
		Loops:          cfg.Engine.Loops,
		DisableIOUring: !cfg.Engine.IOUring,
		OnClose:        a.pairClosed,
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	a.engine = eng
	srv, err := proxy.NewServer(cfg.Routes, eng, logger)
	if err != nil {
		a.abort()
		return nil, err
	}
	a.server = srv
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			a.abort()
			return nil, fmt.Errorf("listener %s: %w", l.Address, err)
		}
		a.listeners = append(a.listeners, ln)
	}
	if cfg.Admin != nil {
		ln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			a.abort()
			return nil, fmt.Errorf("admin %s: %w", cfg.Admin.Address, err)
		}
		a.admin = &http.Server{Handler: proxy.AdminHandler(eng, srv), ReadHeaderTimeout: 10 * time.Second}
		a.adminAddr = ln.Addr()
		go func() {
			if err := a.admin.Serve(ln); err != nil && err != http.ErrServerClosed {
				a.serveErr <- fmt.Errorf("admin: %w", err)
			}
		}()
		logger.Info("admin endpoint listening", "address", ln.Addr().String())
	}
	for i, ln := range a.listeners {
		lcfg := cfg.Listeners[i]
		go func() { a.serveErr <- srv.Serve(ln, lcfg) }()
		logger.Info("listening", "address", ln.Addr().String())
	}
	var ctx context.Context
	ctx, a.stopRelease = context.WithCancel(context.Background())
	go releaseAfterBursts(ctx, srv.Accepted)
	return a, nil
}

// abort undoes a half-started app.
func (a *app) abort() {
	for _, ln := range a.listeners {
		ln.Close()
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

// stop stops accepting, waits for handshakes in flight, then closes every
// pair with 1001 and its close handshake, all within ctx.
func (a *app) stop(ctx context.Context) error {
	a.stopRelease()
	errServer := a.server.Shutdown(ctx)
	errEngine := a.engine.Close(ctx)
	var errAdmin error
	if a.admin != nil {
		errAdmin = a.admin.Shutdown(ctx)
	}
	return errors.Join(errServer, errEngine, errAdmin)
}

// maxCloseTimeout is the longest close handshake any route allows; a stop
// waits that long for pairs to close before cutting them.
func maxCloseTimeout(cfg *config.Config) time.Duration {
	d := time.Duration(0)
	for _, r := range cfg.Routes {
		d = max(d, r.CloseTimeout)
	}
	return d
}

// pairClosed is the engine's report of every pair that ends: the server's
// upstream pools count live pairs, and the log gets a line. a.server is set
// before the server accepts, so before any pair can exist.
func (a *app) pairClosed(st relay.PairStats) {
	a.server.PairClosed(st)
	a.logPairClosed(st)
}

func (a *app) logPairClosed(st relay.PairStats) {
	a.logger.Info("pair closed",
		"pair", st.ID,
		"route", st.Route,
		"client", st.ClientAddr,
		"upstream", st.UpstreamAddr,
		"reason", st.Reason.String(),
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
}
