package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
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

// logger returns a logger whose level is level, set from -log-level.
func (f *logFlags) logger(w io.Writer, level *slog.LevelVar) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageError{fmt.Sprintf("-log-level %q: want debug, info, warn or error", f.level)}
	}
	level.Set(l)
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
	watch := fs.Bool("watch-config", false, "reload when the configuration file changes (as SIGHUP does); handles Kubernetes ConfigMap updates")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *watch && *file == "" {
		return usageError{"-watch-config needs -config FILE"}
	}
	load := func() (*config.Config, error) { return loadConfig(*file, *listen, *upstream) }
	cfg, err := load()
	if err != nil {
		return err
	}
	// The level is the file's log_level unless -log-level was given.
	pinned := false
	fs.Visit(func(f *flag.Flag) { pinned = pinned || f.Name == "log-level" })
	if !pinned {
		lf.level = cfg.LogLevel.String()
	}
	level := new(slog.LevelVar)
	logger, err := lf.logger(stderr, level)
	if err != nil {
		return err
	}
	opts := appOptions{level: level, levelPinned: pinned}
	if *file != "" {
		opts.load = load
	}
	a, err := startApp(cfg, logger, opts)
	if err != nil {
		return err
	}
	if *watch {
		cw, err := newConfigWatcher(*file, func(trigger string) { a.reload(trigger) }, logger.Warn)
		if err != nil {
			a.force()
			a.finish(context.Background())
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go cw.run(ctx)
		logger.Info("watching the configuration file for changes", "file", *file)
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
	if err := (config.Overrides{Listen: listen, Upstream: upstream}).Apply(cfg, file); err != nil {
		return nil, usageError{err.Error()}
	}
	return cfg, nil
}

// stopSignals end the process (through a drain); reloadSignals reload
// its configuration. Both are set per platform (signals_*.go).

// waitAndStop runs the process until it is told to stop: it reloads on
// SIGHUP, drains on the first SIGTERM or SIGINT (or when a listener
// fails), closes everything at once on the second, and returns once the
// drain is done and the rest is stopped. The error is the listener
// failure, if that is what stopped it: a drain, even one that had to cut
// pairs, is a normal stop.
func waitAndStop(a *app, logger *slog.Logger) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(stopSignals, reloadSignals...)...)
	defer signal.Stop(sigs)
	var runErr error
	stopping := false
	for !stopping {
		select {
		case s := <-sigs:
			if isReloadSignal(s) {
				a.reload(s.String())
				continue
			}
			logger.Info("stopping: draining (a second signal closes every pair at once)", "signal", s.String())
			stopping = true
		case runErr = <-a.serveErr:
			logger.Error("listener failed; draining", "err", runErr)
			stopping = true
		}
	}
	a.startDrain("stop signal")
	for waiting := true; waiting; {
		select {
		case s := <-sigs:
			if isReloadSignal(s) {
				logger.Info("reload ignored: the process is draining", "signal", s.String())
				continue
			}
			logger.Warn("second signal: closing every pair now", "signal", s.String())
			a.force()
		case <-a.drainDone:
			waiting = false
		}
	}
	// What is left (the engine's loops, the admin endpoint) stops within
	// a second; the pairs are already gone.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.finish(ctx); err != nil {
		logger.Warn("stopped with resources cut short", "err", err)
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
