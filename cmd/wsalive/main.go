// Command wsalive is a WebSocket reverse proxy that adds heartbeats to
// legacy backends. See README.md for usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wsalive/wsalive/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the job failed (bad config, cannot listen, ...)
	exitUsage = 2 // the command line is wrong
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `wsalive: a WebSocket liveness proxy for legacy backends

Usage:
  wsalive run -config FILE [-watch-config]
                                        run with a configuration file (SIGHUP reloads it)
  wsalive run -listen ADDR -upstream URL
                                        run without a file (flags also override a file)
  wsalive validate -config FILE         check a configuration file and exit
  wsalive demo                          run a built-in legacy echo backend behind wsalive
  wsalive health [-url URL]             probe a running wsalive (exit 0 if healthy),
                                        for a Docker HEALTHCHECK without a shell
  wsalive version                       print the version and VCS revision

Run 'wsalive COMMAND -h' for a command's flags.
`

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "validate":
		err = cmdValidate(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionLine())
	case "health":
		err = cmdHealth(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "wsalive: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	var ue usageError
	var ce *config.Error
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ce):
		// Diagnostics carry their own file:line:col on every problem.
		fmt.Fprintln(stderr, ce.Error())
		return exitError
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "wsalive:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "wsalive:", err)
		return exitError
	}
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
