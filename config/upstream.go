package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
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

// Balance is how a route picks among its servers.
type Balance string

const (
	// BalanceRoundRobin takes the servers in turn.
	BalanceRoundRobin Balance = "round_robin"
	// BalanceLeastPairs takes the server relaying the fewest pairs.
	BalanceLeastPairs Balance = "least_pairs"
	// BalanceHash takes the server a consistent hash of the route's
	// HashKey names, so that one client keeps landing on one server.
	BalanceHash Balance = "hash"
)

var balances = []string{string(BalanceRoundRobin), string(BalanceLeastPairs), string(BalanceHash)}

// HashKeySource is where balance "hash" takes its key from.
type HashKeySource string

const (
	HashClientIP HashKeySource = "client_ip" // the client's (trusted forwarded) IP
	HashHeader   HashKeySource = "header"    // a request header's value
	HashCookie   HashKeySource = "cookie"    // a cookie's value
	HashQuery    HashKeySource = "query"     // a query parameter's value
)

// HashKey is the parsed hash_key setting: "client_ip", or "header:NAME",
// "cookie:NAME", "query:NAME".
type HashKey struct {
	Source HashKeySource
	// Name is the header (canonical form), cookie or query parameter;
	// empty for client_ip.
	Name string
}

func (k HashKey) String() string {
	if k.Name == "" {
		return string(k.Source)
	}
	return string(k.Source) + ":" + k.Name
}

// UpstreamServer is one server of a route's upstream pool.
type UpstreamServer struct {
	Upstream
	// Backup servers are tried only when no primary server can be: every
	// primary is skipped for its failures or failed during this dial.
	Backup bool
	// MaxFails failed dials within FailTimeout make the server skipped for
	// FailTimeout, as nginx's max_fails and fail_timeout do. 0 never skips
	// it.
	MaxFails    int
	FailTimeout time.Duration
	// Weight is the server's share relative to the others of its tier
	// (primaries or backups): a server of weight 2 takes twice the new
	// pairs (round_robin), keys (hash) or live pairs (least_pairs) of a
	// server of weight 1. At least 1.
	Weight int
}

// SetUpstream makes u the route's only server, as the -upstream flag does
// to a file's route: the whole pool is replaced, so that no server of the
// file is dialed behind the flag's back. The first server's health
// settings are kept.
func (r *Route) SetUpstream(u Upstream) {
	srv := UpstreamServer{Upstream: u, MaxFails: DefaultMaxFails, FailTimeout: DefaultFailTimeout, Weight: DefaultWeight}
	if len(r.Servers) > 0 {
		srv.MaxFails, srv.FailTimeout = r.Servers[0].MaxFails, r.Servers[0].FailTimeout
	}
	r.Upstream, r.Servers = u, []UpstreamServer{srv}
}
