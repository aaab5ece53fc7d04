// Package config loads, validates and documents wsalive's HCL configuration.
//
// The file keeps the user's shape (see schema.go); Load turns it into the
// runtime Config below, with every default applied and every value checked,
// so the rest of the program never sees an unset or unparsed setting.
// Minimal builds the same Config from the -listen and -upstream flags.
// Defaults and limits, with the reasons for them, are in defaults.go.
//
// A configuration that cannot be used yields an *Error carrying every
// problem found, each pointing at the file, line and column of the value at
// fault and rendered with the offending source line.
package config

import (
	"time"
)

// Config is the validated runtime configuration the program runs on.
type Config struct {
	// Listeners accept client connections. At least one.
	Listeners []Listener
	// Admin is the optional admin endpoint; nil when not configured.
	Admin *Admin
	// Engine tunes the relay engine.
	Engine Engine
	// Routes in file order. At least one.
	Routes []*Route
}

// Listener is one address that accepts client connections.
type Listener struct {
	// Address is host:port to listen on.
	Address string
	// MaxHeaderBytes bounds the size of a client's HTTP request head.
	MaxHeaderBytes int
}

// Admin is the admin HTTP endpoint (metrics, health); used by later work.
type Admin struct {
	Address string
}

// Engine tunes the relay engine.
type Engine struct {
	// Loops is the number of event loops; 0 means one per CPU.
	Loops int
}

// Route selects an upstream for the requests that match it.
type Route struct {
	// Name is the route block's label.
	Name string
	// Host, when not empty, must equal the request's host (port ignored,
	// case-insensitive). A leading "*." matches any subdomain. It is stored
	// lower-cased, without a trailing dot; "*" in the file is stored as "".
	Host string
	// PathPrefix, when not empty, must prefix the request path.
	PathPrefix string
	// Upstream is where matching requests are relayed.
	Upstream Upstream
	// MaxFrameSize is the largest frame payload, in bytes, relayed in either
	// direction; a bigger frame ends the pair with 1009. Always at least
	// 125, so that legal control frames pass.
	MaxFrameSize int64
	// HandshakeTimeout bounds reading the client's request head and the whole
	// upstream dial and handshake.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the close handshake once a pair starts closing.
	CloseTimeout time.Duration
}

// Upstream is a parsed upstream address.
type Upstream struct {
	// Raw is the value as written in the configuration.
	Raw string
	// Address is host:port to dial; the port is always present (80 when
	// the upstream named none).
	Address string
	// Path is the upstream URL's path, decoded as url.URL.Path is, ""
	// when none was given. When not empty (even "/") it replaces the
	// route's matched PathPrefix, as nginx's proxy_pass with a URI does.
	Path string
}
