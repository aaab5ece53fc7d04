package wsload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Mode selects what the connections do once open.
type Mode string

// The modes of a run.
const (
	// ModeIdle opens connections and holds them without traffic: the
	// memory-per-connection and heartbeat-at-scale scenario.
	ModeIdle Mode = "idle"
	// ModeEcho keeps messages in flight on every connection and verifies
	// each echo: the throughput and round-trip scenario.
	ModeEcho Mode = "echo"
	// ModeBlackholeClient measures how long a proxy takes to notice clients
	// that vanished without FIN or RST: the clients live in a network
	// namespace whose traffic is then dropped, and the backend records
	// when the proxy closed each pair toward it. See blackhole.go.
	ModeBlackholeClient Mode = "blackhole-client"
	// ModeBlackholeUpstream is the mirror: the backend lives in the
	// namespace, and the clients record when the proxy closed them.
	ModeBlackholeUpstream Mode = "blackhole-upstream"
	// ModeChurn opens N connections at Rate, each exchanging one verified
	// message and closing with a close handshake at once: the reconnect
	// churn scenario, where connection setup and teardown are measured.
	ModeChurn Mode = "churn"
	// ModeFloor measures no target: it times bare write+read round trips
	// of Size bytes (answered with ReplySize) between two loopback sockets
	// of this process, the cost floor a proxy's ping-pong is compared to.
	ModeFloor Mode = "floor"
)

// The WebSocket implementations a run's clients may use.
const (
	// ClientGobwas is wsload's own client, on gobwas/ws: the library
	// wsalive itself is built on.
	ClientGobwas = "gobwas"
	// ClientGorilla is gorilla/websocket's client, an implementation
	// wsalive does not share, so that no result depends on sharing a
	// library with the proxy. It writes every message with one write, as
	// gorilla applications do.
	ClientGorilla = "gorilla"
)

// blackholeSide returns which side of the pairs a blackhole mode makes
// vanish ("client" or "upstream"), or "" for the other modes.
func (m Mode) blackholeSide() string {
	switch m {
	case ModeBlackholeClient:
		return "client"
	case ModeBlackholeUpstream:
		return "upstream"
	}
	return ""
}

// Defaults for the zero values of Config.
const (
	DefaultRate            = 2000
	DefaultDialConcurrency = 256
	DefaultDialTimeout     = 10 * time.Second
	DefaultCloseTimeout    = 5 * time.Second
	DefaultInflight        = 1
	DefaultSize            = 1024
	DefaultDuration        = 10 * time.Second

	// DefaultMaxWait bounds, in the blackhole modes, the wait for the proxy
	// to notice every vanished peer.
	DefaultMaxWait = 60 * time.Second

	// DefaultSrcIPs spreads source addresses over 127.0.0.2-250 when the
	// target is on loopback, and binds nothing otherwise.
	DefaultSrcIPs = "auto"

	// fdReserve is what one process needs beside its connections:
	// standard streams, the runtime's epoll and pipes, log files.
	fdReserve = 64
)

// Config describes one run. Zero fields take the defaults above.
type Config struct {
	Mode Mode
	// Client is the WebSocket implementation of the idle, echo and churn
	// modes: ClientGobwas (the default) or ClientGorilla.
	Client string
	// URL is the ws:// or wss:// address to connect to.
	URL string
	// TLSConfig is the client TLS configuration of wss:// URLs (nil: Go's
	// defaults with the system's roots). Without a ClientSessionCache,
	// every connection makes a full handshake.
	TLSConfig *tls.Config
	// N is the number of connections.
	N int

	// Rate limits new connections per second; negative means unlimited.
	Rate float64
	// DialConcurrency bounds the dials (connect plus handshake) in flight,
	// so that a slow target sees a bounded backlog, not N at once.
	DialConcurrency int
	// DialTimeout bounds one connect plus handshake.
	DialTimeout time.Duration
	// SrcIPs picks the local addresses: "auto", "off", or last octets of
	// 127.0.0.X such as "2-250" or "2-9,20". See ParseSrcIPs.
	SrcIPs string

	// Hold is how long idle mode holds the connections; zero means until
	// the context is done.
	Hold time.Duration

	// Inflight is how many messages each connection keeps in flight in
	// echo mode.
	Inflight int
	// Size is the payload size of an echo message in bytes; it may be 0.
	Size int
	// Duration is how long echo mode sends, and how long floor mode
	// measures.
	Duration time.Duration
	// ReplySize is, in floor mode, the size of the answer to each write of
	// Size bytes (a pong is a ping's payload behind a longer, masked
	// header).
	ReplySize int

	// CloseTimeout bounds the close handshake of every connection at the
	// end, and the wait for the last echoes.
	CloseTimeout time.Duration

	// ProxyBin is the wsalive binary the blackhole modes start as a child
	// process (wsalive run -config FILE), when ProxyCmd is empty.
	ProxyBin string
	// ProxyCmd, when set, is the command line of the proxy the blackhole
	// modes start instead of `ProxyBin run -config FILE`: another proxy
	// (nginx, HAProxy, Caddy), to measure it the same way. Its arguments
	// may hold the placeholders {{config}} (the path of the expanded
	// configuration) and {{dir}} (the run's temporary directory).
	ProxyCmd []string
	// ProxyEnv adds NAME=VALUE pairs to the proxy's environment; values
	// may hold {{dir}}.
	ProxyEnv []string
	// ProxyConfigName is the file name the expanded configuration is
	// written to in the run's temporary directory; empty means
	// "wsalive.hcl". A name not ending in .hcl is not read for a
	// heartbeat (the bound is then unknown unless Bound is set).
	ProxyConfigName string
	// ProxyConfig is the text of the proxy's configuration for the
	// blackhole modes, with the placeholders {{listen}} and {{upstream}}
	// or {{upstream_addr}} (and optionally {{admin}} and {{dir}}); empty
	// means DefaultBlackholeTemplate of the mode. See ExpandVars.
	ProxyConfig string
	// ProxyLog, if set, is the file the proxy's stdout and stderr go to;
	// otherwise they go to a temporary file that is removed at the end.
	ProxyLog string
	// MaxWait bounds, in the blackhole modes, the wait after the blackhole
	// for the proxy to close every pair.
	MaxWait time.Duration
	// Bound is the detection bound the blackhole modes compare against;
	// zero means derived from the heartbeat settings of the configuration.
	Bound time.Duration

	// Ready, if set, is called once, when every dial has succeeded or
	// failed and before the hold or the traffic starts.
	Ready func(opened, failed int)

	// Logger receives progress; nil discards it.
	Logger *slog.Logger

	// dialWrap, when set, runs every dial through it (the blackhole modes
	// dial from inside a network namespace this way). An error fails the
	// dial.
	dialWrap func(dial func()) error
}

// withDefaults returns c with defaults applied, or the first problem found.
func (c Config) withDefaults() (Config, error) {
	switch c.Mode {
	case ModeIdle, ModeEcho, ModeChurn, ModeFloor, ModeBlackholeClient, ModeBlackholeUpstream:
	case "":
		return c, errors.New("mode is required (idle, echo, churn, floor, blackhole-client or blackhole-upstream)")
	default:
		return c, fmt.Errorf("mode %q is not idle, echo, churn, floor, blackhole-client or blackhole-upstream", c.Mode)
	}
	switch c.Client {
	case "":
		c.Client = ClientGobwas
	case ClientGobwas:
	case ClientGorilla:
		if c.Mode.blackholeSide() != "" {
			return c, fmt.Errorf("mode %s has only the %s client", c.Mode, ClientGobwas)
		}
	default:
		return c, fmt.Errorf("client %q is not %s or %s", c.Client, ClientGobwas, ClientGorilla)
	}
	if c.Mode == ModeFloor {
		if c.Size <= 0 || c.ReplySize <= 0 {
			return c, fmt.Errorf("floor mode needs positive sizes, got %d and %d", c.Size, c.ReplySize)
		}
		if c.Duration <= 0 {
			c.Duration = DefaultDuration
		}
		if c.Logger == nil {
			c.Logger = slog.New(slog.DiscardHandler)
		}
		return c, nil
	}
	if side := c.Mode.blackholeSide(); side != "" {
		// The URL is the proxy's, which the run starts itself.
		if c.ProxyBin == "" && len(c.ProxyCmd) == 0 {
			return c, fmt.Errorf("mode %s needs the proxy binary (-proxy-bin) or command (-proxy-cmd)", c.Mode)
		}
		if c.ProxyConfig == "" {
			if len(c.ProxyCmd) > 0 {
				return c, fmt.Errorf("mode %s with -proxy-cmd needs a configuration template (-proxy-config)", c.Mode)
			}
			c.ProxyConfig = DefaultBlackholeTemplate(side)
		}
		if c.ProxyConfigName == "" {
			c.ProxyConfigName = "wsalive.hcl"
		}
		if strings.ContainsAny(c.ProxyConfigName, "/\\") {
			return c, fmt.Errorf("proxy configuration name %q must be a plain file name", c.ProxyConfigName)
		}
		if !strings.Contains(c.ProxyConfig, placeholderListen) {
			return c, fmt.Errorf("the proxy configuration template has no %s placeholder", placeholderListen)
		}
		if !strings.Contains(c.ProxyConfig, placeholderUpstream) && !strings.Contains(c.ProxyConfig, placeholderUpstreamAddr) {
			return c, fmt.Errorf("the proxy configuration template has no %s (or %s) placeholder",
				placeholderUpstream, placeholderUpstreamAddr)
		}
		if c.MaxWait <= 0 {
			c.MaxWait = DefaultMaxWait
		}
		if c.Bound < 0 {
			return c, fmt.Errorf("bound must not be negative, got %v", c.Bound)
		}
	} else {
		u, err := url.Parse(c.URL)
		if err != nil {
			return c, fmt.Errorf("url: %w", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return c, fmt.Errorf("url %q: scheme must be ws or wss", c.URL)
		}
	}
	if c.N <= 0 {
		return c, fmt.Errorf("n must be positive, got %d", c.N)
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = DefaultDialConcurrency
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.SrcIPs == "" {
		c.SrcIPs = DefaultSrcIPs
	}
	if c.Hold < 0 {
		return c, fmt.Errorf("hold must not be negative, got %v", c.Hold)
	}
	if c.Mode == ModeChurn && c.Size < 0 {
		return c, fmt.Errorf("size must not be negative, got %d", c.Size)
	}
	if c.Mode == ModeEcho {
		if c.Inflight == 0 {
			c.Inflight = DefaultInflight
		}
		if c.Inflight < 0 {
			return c, fmt.Errorf("inflight must be positive, got %d", c.Inflight)
		}
		if c.Size < 0 {
			return c, fmt.Errorf("size must not be negative, got %d", c.Size)
		}
		if c.Duration <= 0 {
			c.Duration = DefaultDuration
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// ParseSrcIPs turns a source-address spec into the local IPs to cycle
// through, for a target URL host.
//
// Why: one local IP has about 28,000 ephemeral ports (32768-60999 by
// default) toward one destination, and ports in TIME_WAIT from the previous
// run count against them. Linux routes all of 127.0.0.0/8 to the loopback
// device, so binding each connection to a different 127.0.0.X multiplies the
// ports available to a loopback benchmark by the number of addresses.
//
// The spec is "off" (or "none"): no binding, the kernel picks;
// "auto": 127.0.0.2-250 when host is an IPv4 loopback address, else off; or a
// comma-separated list of last octets and ranges of 127.0.0.X, such as
// "2-250" or "2-9,20".
func ParseSrcIPs(spec, host string) ([]net.IP, error) {
	switch spec {
	case "off", "none":
		return nil, nil
	case "auto", "":
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return nil, nil
		}
		spec = "2-250"
	}
	var ips []net.IP
	for part := range strings.SplitSeq(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := parseOctet(lo)
		if err != nil {
			return nil, fmt.Errorf("src-ips %q: %w", spec, err)
		}
		last := first
		if isRange {
			last, err = parseOctet(hi)
			if err != nil {
				return nil, fmt.Errorf("src-ips %q: %w", spec, err)
			}
		}
		if last < first {
			return nil, fmt.Errorf("src-ips %q: range %d-%d is backwards", spec, first, last)
		}
		for x := first; x <= last; x++ {
			ips = append(ips, net.IPv4(127, 0, 0, byte(x)))
		}
	}
	return ips, nil
}

func parseOctet(s string) (int, error) {
	x, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || x < 1 || x > 254 {
		return 0, fmt.Errorf("%q is not a host octet 1-254", s)
	}
	return x, nil
}
