package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/wsalive/wsalive/config"
	"github.com/wsalive/wsalive/proxy/tlsconf"
)

// upstreamTLSConfig builds the client TLS configuration of a route whose
// upstream is wss://, nil for a ws:// one. The scheme decides, not the
// presence of settings: a route assembled outside config.Parse (the
// -upstream flag over a file's route, a test) may carry settings for the
// scheme it had before. Files are read once, here, so that a missing CA
// file stops the start instead of failing every handshake. Turning
// verification off is allowed but never silent.
func upstreamTLSConfig(route *config.Route, logger *slog.Logger) (*tls.Config, error) {
	if !route.Upstream.TLS {
		return nil, nil
	}
	settings := route.UpstreamTLS
	if settings == nil {
		settings = config.DefaultUpstreamTLS(route.Upstream)
	}
	conf, err := tlsconf.NewClient(settings, logger.With("route", route.Name))
	if err != nil {
		return nil, fmt.Errorf("proxy: route %q: %w", route.Name, err)
	}
	if conf.InsecureSkipVerify {
		logger.Warn("upstream_tls insecure_skip_verify = true: the upstream's certificate is not verified, so anyone on the path can pose as it",
			"route", route.Name, "upstream", route.Upstream.Raw)
	}
	return conf, nil
}

// upstreamTLSHandshake returns the pool's handshake for a wss:// route:
// TLS over the connection just dialed, bounded by ctx (Shutdown cancels
// ctx, which aborts a handshake in flight). Without a server_name in the
// route's upstream_tls block, each server is verified against its own
// host. A failure is an error whose text names the cause
// (tlsconf.Classify), and the pool moves on to the next server; a timeout
// stays a timeout (504).
func upstreamTLSHandshake(conf *tls.Config) func(context.Context, net.Conn, config.UpstreamServer) (net.Conn, error) {
	return func(ctx context.Context, conn net.Conn, srv config.UpstreamServer) (net.Conn, error) {
		c := conf
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(srv.Address)
			if err != nil {
				host = srv.Address
			}
			c = conf.Clone()
			c.ServerName = host
		}
		tc := tls.Client(conn, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			switch cerr := ctx.Err(); {
			case cerr != nil && (isTimeout(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, cerr)):
				return nil, cerr
			case isTimeout(err):
				return nil, context.DeadlineExceeded
			default:
				return nil, tlsconf.NewHandshakeError(err)
			}
		}
		return tc, nil
	}
}
