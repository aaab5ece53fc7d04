// Package configs holds the proxy configurations the benchmarks run with,
// as templates: bench/harness and wsload fill in the placeholders
//
//	{{listen}}         host:port the proxy listens on
//	{{upstream}}       ws://host:port of the backend (wsalive)
//	{{upstream_addr}}  host:port of the backend (nginx, HAProxy, Caddy)
//	{{listen_host}}    the host of {{listen}} alone (Caddy's bind)
//	{{admin}}          a free loopback host:port (wsalive's admin endpoint)
//	{{dir}}            the run's private directory (pid, logs, temp files)
//
// nginx-stream.conf.tmpl and haproxy-tcp.cfg.tmpl are the L4 floor: the
// same two proxies relaying bare TCP bytes, knowing nothing of WebSocket.
//
// Each competitor has its standard WebSocket reverse-proxy configuration,
// tuned only where the benchmark machine needs it: one worker or thread,
// descriptors for 9,000 pairs, and logging off (wsalive runs at log level
// warn, so it does not log every pair either).
package configs

import (
	"embed"
	"fmt"
)

//go:embed *.tmpl *.hcl
var files embed.FS

// Names of the templates.
const (
	Nginx             = "nginx.conf.tmpl"
	HAProxy           = "haproxy.cfg.tmpl"
	Caddy             = "Caddyfile.tmpl"
	NginxStream       = "nginx-stream.conf.tmpl"
	HAProxyTCP        = "haproxy-tcp.cfg.tmpl"
	WsaliveThroughput = "wsalive-throughput.hcl"
	WsaliveHeartbeat  = "wsalive-heartbeat.hcl"
	BlackholeClient   = "blackhole-client.hcl"
	BlackholeUpstream = "blackhole-upstream.hcl"
)

// Text returns the template called name; it panics for an unknown name,
// which is a bug of the caller.
func Text(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("bench/configs: %v", err))
	}
	return string(b)
}

// Names lists every template.
func Names() []string {
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
