// Package client holds wsalive's client helper, wsalive-client.js, a
// dependency-free ES module for browsers and Node that reconnects with
// backoff, sends application-level pings and resumes sessions (the wire
// protocol is RESUME.md in this directory).
//
// The Go package only embeds the file, so that a Go program (wsalive's demo,
// the tests) can serve it without finding the source tree at run time.
package client

import _ "embed"

// Script is the text of wsalive-client.js.
//
//go:embed wsalive-client.js
var Script []byte

// ScriptName is the file name the helper is served and imported under.
const ScriptName = "wsalive-client.js"
