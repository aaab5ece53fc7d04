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

// dialUpstreamConn opens the connection to the route's upstream: TCP, and
// for a wss:// upstream the TLS handshake on top, both bounded by ctx
// (Shutdown cancels ctx, which aborts a handshake in flight). A TLS
// failure is a 502 whose error names the cause (tlsconf.Classify); a
// timeout stays a 504.
func dialUpstreamConn(ctx context.Context, rs *routeState) (net.Conn, *upstreamError) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", rs.dialAddr)
	if err != nil {
		return nil, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}
	if rs.upstreamTLS == nil {
		return conn, nil
	}
	tc := tls.Client(conn, rs.upstreamTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		switch cerr := ctx.Err(); {
		case cerr != nil && (isTimeout(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, cerr)):
			err = cerr
		case isTimeout(err):
			err = context.DeadlineExceeded
		default:
			err = tlsconf.NewHandshakeError(err)
		}
		return nil, &upstreamError{status: upstreamErrorStatus(err), err: err}
	}
	return tc, nil
}
