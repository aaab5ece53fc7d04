// Package e2e holds wsalive's end-to-end tests: real loopback sockets, the
// real relay engine and the real proxy server between independent WebSocket
// peers (coder/websocket, hand-written raw peers, Node's ws package, and
// Python's websockets).
//
// The package has no code of its own; everything is in its _test.go files.
// Run it with
//
//	go test -race ./proxy/e2e/
//
// The Node tests need node and npm on PATH; they install testdata/node's
// dependencies with "npm ci" when node_modules is missing, and skip when
// that is impossible, unless WSALIVE_E2E_REQUIRE_NODE=1 makes it a failure.
// The TLS tests also run Python's websockets (Debian's python3-websockets)
// and skip without it, unless WSALIVE_E2E_REQUIRE_PYTHON=1.
package e2e
