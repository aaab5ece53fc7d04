package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf"
)

// listen opens a listener's address. A listener with a tls block gets its
// certificates loaded (a file that does not load stops the start) and
// watched for changes, and its connections are TLS.
func (a *app) listen(l config.Listener) (net.Listener, error) {
	if l.TLS == nil {
		return net.Listen("tcp", l.Address)
	}
	srv, err := tlsconf.NewServer(l.TLS, tlsconf.Options{Logger: a.logger.With("listener", l.Address)})
	if err != nil {
		return nil, err
	}
	if err := srv.Watch(); err != nil {
		// Serving on with the certificates just loaded would leave a
		// renewal unnoticed until restart: say so, but do not refuse to
		// serve over a missing inotify slot.
		a.logger.Warn("certificate files will not be reloaded when they change", "listener", l.Address, "err", err)
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		srv.Close()
		return nil, err
	}
	a.mu.Lock()
	a.tlsServers = append(a.tlsServers, srv)
	a.mu.Unlock()
	return tlsconf.NewListener(ln, srv), nil
}

// closeTLS stops watching certificate files.
func (a *app) closeTLS() error {
	a.mu.Lock()
	servers := a.tlsServers
	a.tlsServers = nil
	a.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
