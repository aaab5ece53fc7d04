package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ParseUpstream parses an upstream as written in a route's upstream setting
// or given to the -upstream flag. Three forms are accepted:
//
//	ws://host[:port][/path]   a WebSocket URL; the port defaults to 80
//	wss://host[:port][/path]  the same over TLS; the port defaults to 443
//	host:port                 shorthand for ws://host:port
//
// Other schemes, user information, a query and a fragment are
// refused. The error does not repeat s, so that callers can place it after
// their own mention of the value.
func ParseUpstream(s string) (Upstream, error) {
	if strings.TrimSpace(s) == "" {
		return Upstream{}, errors.New("empty upstream: want ws://host[:port][/path], wss://host[:port][/path] or host:port")
	}
	text := s
	if !strings.Contains(s, "://") {
		// The shorthand is exactly host:port: anything more is easier to
		// read as a URL, and requiring the port keeps "localhost" (a
		// forgotten scheme? a forgotten port?) from guessing.
		host, port, err := net.SplitHostPort(s)
		if err == nil {
			_, err = dialPort(port)
		}
		if err == nil && host == "" {
			err = errors.New("missing host")
		}
		if err != nil {
			return Upstream{}, fmt.Errorf("want ws://host[:port][/path] or host:port: %v", unwrapAddrError(err))
		}
		text = "ws://" + s
	}

	u, err := url.Parse(text)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Upstream{}, fmt.Errorf("invalid URL: %v", err)
	}
	port := strconv.Itoa(DefaultUpstreamPort)
	switch u.Scheme { // url.Parse lower-cases the scheme
	case "ws":
	case "wss":
		port = strconv.Itoa(DefaultSecureUpstreamPort)
	default:
		return Upstream{}, fmt.Errorf("unsupported scheme %q: want ws:// or wss://", u.Scheme)
	}
	if u.User != nil {
		// wsalive never sends URL credentials, so accepting them would only
		// suggest that it does; the client's Authorization header is
		// forwarded as it came.
		return Upstream{}, errors.New(`user information ("user@") is not supported in an upstream URL`)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return Upstream{}, errors.New(`a query ("?...") is not supported in an upstream URL`)
	}
	if strings.Contains(text, "#") {
		return Upstream{}, errors.New(`a fragment ("#...") is not allowed in an upstream URL: it is never sent to a server`)
	}
	host := u.Hostname()
	if host == "" {
		return Upstream{}, errors.New("missing host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return Upstream{}, errors.New(`missing port after ":"`)
	}
	if p := u.Port(); p != "" {
		if _, err := dialPort(p); err != nil {
			return Upstream{}, err
		}
		port = p
	}
	// Decoded, like url.URL.Path: the proxy escapes it when it builds the
	// request line.
	// "ws://b/" keeps its "/": like nginx's proxy_pass with a URI, it
	// replaces the matched path_prefix.
	path := u.Path
	return Upstream{
		Raw:     s,
		Address: net.JoinHostPort(host, port),
		Path:    path,
		TLS:     u.Scheme == "wss",
	}, nil
}

// dialPort is parsePort for an address to dial, where port 0 means nothing.
func dialPort(port string) (int, error) {
	n, err := parsePort(port)
	if err == nil && n == 0 {
		err = errors.New("port 0 cannot be dialed")
	}
	return n, err
}

// unwrapAddrError drops the address that net.SplitHostPort repeats in its
// errors, since the message is shown next to the value already.
func unwrapAddrError(err error) error {
	var aerr *net.AddrError
	if errors.As(err, &aerr) {
		return errors.New(aerr.Err)
	}
	return err
}
