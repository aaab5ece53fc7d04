package tlsconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// Watching certificate files.
//
// The directories holding the files are watched, not the files: tools
// that renew certificates (certbot, cert-manager, an editor) replace a
// file by renaming a new one over it, and a watch on the old file would
// follow the old inode into oblivion. Kubernetes mounts a Secret as a
// directory whose files are symlinks through "..data", itself a symlink
// to a hidden timestamped directory; an update writes a new timestamped
// directory and renames a new "..data" link over the old one, so the
// only event in the watched directory is about "..data". Hence an event
// counts when it names one of the watched files or a name starting with
// "..", and it makes the server read every file again; unchanged
// contents are not a reload (see Server.Reload).
//
// A renewal writes the certificate and the key one after the other.
// The event for the first may find a certificate that does not match
// the old key: that reload fails, is logged, and the previous material
// stays until the event for the second, which succeeds.

// watcher is a running fsnotify watch feeding a Server.
type watcher struct {
	w    *fsnotify.Watcher
	done chan struct{} // closed when the goroutine has ended
}

// Watch starts following the server's files on disk; Close stops it.
// Calling Watch again is a no-op.
func (s *Server) Watch() error {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watch != nil {
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("tls: watching certificate files: %w", err)
	}
	names := map[string]bool{} // absolute paths of the files
	dirs := map[string]bool{}
	for _, f := range s.files() {
		abs, err := filepath.Abs(f)
		if err != nil {
			fw.Close()
			return fmt.Errorf("tls: %s: %w", f, err)
		}
		names[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := fw.Add(d); err != nil {
			fw.Close()
			return fmt.Errorf("tls: watching %s: %w", d, err)
		}
	}
	w := &watcher{w: fw, done: make(chan struct{})}
	s.watch = w
	go s.follow(w, names)
	return nil
}

// follow reloads on every event that concerns the files, until the
// watcher is closed.
func (s *Server) follow(w *watcher, names map[string]bool) {
	defer close(w.done)
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if relevant(ev, names) {
				_ = s.Reload() // logged and reported by Reload
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost; one of them may have mattered.
				_ = s.Reload()
				continue
			}
			s.log.Warn("tls: watching certificate files", "err", err)
		}
	}
}

// relevant reports whether ev may have changed one of the files.
func relevant(ev fsnotify.Event, names map[string]bool) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	abs, err := filepath.Abs(ev.Name)
	if err != nil {
		return true
	}
	return names[abs] || strings.HasPrefix(filepath.Base(abs), "..")
}

// Close stops watching. It does not affect handshakes: the material in
// use stays.
func (s *Server) Close() error {
	s.watchMu.Lock()
	w := s.watch
	s.watch = nil
	s.watchMu.Unlock()
	if w == nil {
		return nil
	}
	err := w.w.Close()
	<-w.done
	return err
}
