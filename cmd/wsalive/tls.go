package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf"
)

// listen opens a listener's address. A listener with a tls block gets its
// certificates loaded (a file that does not load stops the start) and
// watched for changes, and its connections are TLS.
func (a *app) listen(l config.Listener) (net.Listener, error) {
	if l.TLS == nil {
		ln, err := listenTCP(l.Address, a.lnControl)
		if err != nil {
			return nil, err
		}
		// Its connections are the engine's sockets from accept on (on
		// Linux; relay.Socket says what that spares each handshake).
		return a.engine.Listener(ln), nil
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
	ln, err := listenTCP(l.Address, a.lnControl)
	if err != nil {
		srv.Close()
		return nil, err
	}
	a.mu.Lock()
	a.tlsServers = append(a.tlsServers, srv)
	a.mu.Unlock()
	return tlsconf.NewListener(ln, srv), nil
}

// listenTCP opens a proxy listener. Its connections do not get Go's
// default TCP keepalive (15 s), which costs four setsockopt calls per
// accepted connection: the relay sets the route's keepalive on both
// sockets of every pair it takes (overwriting Go's), a handshake is
// bounded by its head and handshake timeouts, and a plain HTTP connection
// by the listener's http_idle_timeout. control, when not nil, sets the
// routes' common keepalive on the listening socket instead, before it
// listens, for its sockets to inherit (see app.lnControl).
func listenTCP(address string, control func(network, address string, c syscall.RawConn) error) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: control}
	return lc.Listen(context.Background(), "tcp", address)
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
