package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wsalive/wsalive/config"
)

// A reload (SIGHUP, or a change of the file under -watch-config) re-reads
// the configuration file. An invalid file changes nothing: every
// diagnostic is logged and wsalive_config_reloads_total{result="error"}
// counts it. A valid one applies config.Reloadable at once: routes (with
// their upstreams and liveness policies) for new handshakes, listeners
// added and removed, the drain settings and the log level. Live pairs keep
// the route and policy they started with; the engine is not touched, so no
// pair is dropped. config.Static settings that changed are logged as
// needing a restart and keep their running values.

// routeSetter swaps the route table new handshakes are routed with;
// *proxy.Server provides it, and tests stand in for it.
type routeSetter interface {
	SetRoutes(routes []*config.Route) error
}

// reload re-reads and applies the configuration; trigger says why, for
// the log. It returns the error that made the reload change nothing.
func (a *app) reload(trigger string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.load == nil {
		a.logger.Warn("reload: there is no configuration file to re-read (run without -config)", "trigger", trigger)
		return nil
	}
	if s := a.state.get(); s != stateServing {
		a.logger.Info("reload ignored: the process is "+s.String(), "trigger", trigger)
		return nil
	}
	next, err := a.load()
	if err != nil {
		a.reloadFailed(trigger, err)
		return err
	}
	cur := a.config()
	for _, change := range config.StaticChanges(cur, next) {
		a.logger.Warn("reload: this setting changes only on restart; the running value stays", "change", change)
	}

	// Open the added listeners first: if one cannot bind, nothing has
	// changed yet and the reload fails as a whole.
	a.mu.Lock()
	running := a.listeners
	a.mu.Unlock()
	var added []*servedListener
	applied := make([]config.Listener, 0, len(next.Listeners))
	wanted := map[string]bool{}
	for _, l := range next.Listeners {
		wanted[l.Address] = true
		if sl, ok := running[l.Address]; ok {
			if !reflect.DeepEqual(sl.cfg, l) {
				a.logger.Warn("reload: a listener's settings change only on restart; the running ones stay",
					"address", l.Address, "max_header_bytes", sl.cfg.MaxHeaderBytes)
			}
			applied = append(applied, sl.cfg)
			continue
		}
		ln, err := a.listen(l) // TLS when the listener has a tls block
		if err != nil {
			for _, sl := range added {
				sl.ln.Close()
			}
			a.reloadFailed(trigger, fmt.Errorf("listener %s: %w", l.Address, err))
			return err
		}
		added = append(added, &servedListener{ln: ln, cfg: l})
		applied = append(applied, l)
	}

	routesChanged := !reflect.DeepEqual(cur.Routes, next.Routes)
	if routesChanged {
		if err := a.routes.SetRoutes(next.Routes); err != nil {
			for _, sl := range added {
				sl.ln.Close()
			}
			a.reloadFailed(trigger, err)
			return err
		}
	}

	var removed []*servedListener
	a.mu.Lock()
	for _, sl := range added {
		a.listeners[sl.cfg.Address] = sl
	}
	for addr, sl := range a.listeners {
		if !wanted[addr] {
			sl.removed.Store(true)
			removed = append(removed, sl)
			delete(a.listeners, addr)
		}
	}
	a.cfg = &config.Config{Static: cur.Static, Reloadable: next.Reloadable}
	a.cfg.Listeners = applied
	a.mu.Unlock()

	for _, sl := range added {
		a.serve(sl)
	}
	for _, sl := range removed {
		sl.ln.Close()
		a.logger.Info("reload: listener closed", "address", sl.ln.Addr().String())
	}
	if !a.levelPinned {
		a.level.Set(next.LogLevel)
	}
	a.metrics.ConfigReload(true)
	a.logger.Info("configuration reloaded", "trigger", trigger, "routes_changed", routesChanged,
		"listeners_added", len(added), "listeners_removed", len(removed), "log_level", a.level.Level().String())
	return nil
}

// reloadFailed logs every problem of a reload that changed nothing, and
// counts it.
func (a *app) reloadFailed(trigger string, err error) {
	a.metrics.ConfigReload(false)
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Diagnostics() {
			at := ""
			if d.Subject != nil {
				at = fmt.Sprintf("%s:%d,%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
			}
			a.logger.Error("reload: invalid configuration", "at", at, "problem", d.Summary, "detail", d.Detail)
		}
	} else {
		a.logger.Error("reload: cannot apply the configuration", "err", err)
	}
	a.logger.Error("reload failed; the running configuration is unchanged", "trigger", trigger)
}

// watchSettle is how long the configuration's directory must be quiet
// after a change before the file is re-read: an editor's save or a
// ConfigMap update is several events in a few milliseconds.
const watchSettle = 100 * time.Millisecond

// configWatcher reloads when the configuration file's content changes.
//
// It watches the file's directory, not the file: editors replace a file
// by renaming a new one over it, and a Kubernetes ConfigMap volume swaps
// a whole directory under the `..data` symlink that the file's own symlink
// points through, so the file itself never sees an event. Any event in the
// directory leads, once the directory settles, to re-reading the file
// (through its symlinks) and to a reload when its bytes differ from what
// was last loaded.
type configWatcher struct {
	file   string
	w      *fsnotify.Watcher
	last   []byte
	reload func(trigger string)
	// errorf reports a watcher problem that does not stop it.
	errorf func(msg string, args ...any)
}

// newConfigWatcher starts watching file's directory.
func newConfigWatcher(file string, reload func(string), errorf func(string, ...any)) (*configWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("-watch-config: %w", err)
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		w.Close()
		return nil, fmt.Errorf("-watch-config: watching %s: %w", filepath.Dir(file), err)
	}
	last, _ := os.ReadFile(file)
	return &configWatcher{file: file, w: w, last: last, reload: reload, errorf: errorf}, nil
}

// run watches until ctx ends.
func (cw *configWatcher) run(ctx context.Context) {
	defer cw.w.Close()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-cw.w.Events:
			if !ok {
				return
			}
			settle.Reset(watchSettle)
		case err, ok := <-cw.w.Errors:
			if !ok {
				return
			}
			cw.errorf("-watch-config: watcher error", "err", err)
		case <-settle.C:
			src, err := os.ReadFile(cw.file)
			if err != nil {
				// Mid-swap, or removed: the next event brings it back.
				cw.errorf("-watch-config: cannot read the configuration", "err", err)
				continue
			}
			if bytes.Equal(src, cw.last) {
				continue
			}
			cw.last = src
			cw.reload("file changed")
		}
	}
}
