package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wsalive/wsalive/config"
)

// logFlags are the logging flags every long-running command takes.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.format, "log-format", "text", "log format: text or json")
}

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageError{fmt.Sprintf("-log-level %q: want debug, info, warn or error", f.level)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("-log-format %q: want text or json", f.format)}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wsalive "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	file := fs.String("config", "", "configuration file (HCL)")
	listen := fs.String("listen", "", "listen address, e.g. 127.0.0.1:8080 (overrides the file's listeners)")
	upstream := fs.String("upstream", "", "upstream, e.g. ws://127.0.0.1:3000 (overrides the upstream of the file's only route)")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file, *listen, *upstream)
	if err != nil {
		return err
	}
	logger, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	a, err := startApp(cfg, logger)
	if err != nil {
		return err
	}
	return waitAndStop(a, logger)
}

// loadConfig builds the configuration from a file, flags, or both (flags
// win).
func loadConfig(file, listen, upstream string) (*config.Config, error) {
	if file == "" {
		if listen == "" || upstream == "" {
			return nil, usageError{"run needs -config FILE, or both -listen and -upstream"}
		}
		return config.Minimal(listen, upstream)
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	if listen != "" {
		if _, _, err := net.SplitHostPort(listen); err != nil {
			return nil, usageError{fmt.Sprintf("-listen %q: %v", listen, err)}
		}
		max := config.DefaultMaxHeaderBytes
		if len(cfg.Listeners) > 0 {
			max = cfg.Listeners[0].MaxHeaderBytes
		}
		cfg.Listeners = []config.Listener{{Address: listen, MaxHeaderBytes: max}}
	}
	if upstream != "" {
		if len(cfg.Routes) != 1 {
			return nil, usageError{fmt.Sprintf("-upstream overrides the upstream of a single route, but %s has %d routes", file, len(cfg.Routes))}
		}
		u, err := config.ParseUpstream(upstream)
		if err != nil {
			return nil, usageError{fmt.Sprintf("-upstream: %v", err)}
		}
		cfg.Routes[0].SetUpstream(u)
	}
	return cfg, nil
}

// waitAndStop runs until SIGINT or SIGTERM (or a listener fails), then
// stops gracefully within the longest close timeout plus a second. A second
// signal stops at once.
func waitAndStop(a *app, logger *slog.Logger) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var runErr error
	select {
	case s := <-sigs:
		logger.Info("stopping", "signal", s.String())
	case runErr = <-a.serveErr:
		logger.Error("listener failed; stopping", "err", runErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxCloseTimeout(a.cfg)+time.Second)
	defer cancel()
	go func() {
		select {
		case s := <-sigs:
			logger.Warn("second signal: closing all pairs now", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := a.stop(ctx); err != nil && runErr == nil {
		logger.Warn("stopped with pairs cut short", "err", err)
	}
	logger.Info("stopped")
	return runErr
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", stderr)
	file := fs.String("config", "", "configuration file (HCL) to check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usageError{"validate needs -config FILE"}
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid (%d listener(s), %d route(s))\n", *file, len(cfg.Listeners), len(cfg.Routes))
	return nil
}
