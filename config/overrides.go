package config

import (
	"fmt"
	"net"
)

// Overrides are the command-line settings that replace part of a file's
// configuration: `wsalive run -config FILE -listen ADDR -upstream URL`.
// Empty fields override nothing.
type Overrides struct {
	// Listen replaces the file's listeners with one on this address. The
	// first listener's max_header_bytes and TLS are kept: a flag that moves
	// the port must not silently drop TLS.
	Listen string
	// Upstream replaces the whole upstream pool of the file's only route
	// (see Route.SetUpstream); a file with more routes is refused.
	Upstream string
}

// OverrideError is an override that cannot apply; Flag names it as the
// command line spells it ("-listen", "-upstream").
type OverrideError struct {
	Flag string
	Msg  string
}

func (e *OverrideError) Error() string { return e.Flag + ": " + e.Msg }

// Apply applies o to c, which came from the file named source (named in
// errors). c is left unchanged when Apply returns an error.
func (o Overrides) Apply(c *Config, source string) error {
	var u Upstream
	if o.Upstream != "" {
		if len(c.Routes) != 1 {
			return &OverrideError{"-upstream", fmt.Sprintf("overrides the upstream of a single route, but %s has %d routes", source, len(c.Routes))}
		}
		var err error
		if u, err = ParseUpstream(o.Upstream); err != nil {
			return &OverrideError{"-upstream", err.Error()}
		}
	}
	if o.Listen != "" {
		if _, _, err := net.SplitHostPort(o.Listen); err != nil {
			return &OverrideError{"-listen", fmt.Sprintf("%q: %v", o.Listen, err)}
		}
		l := Listener{Address: o.Listen, MaxHeaderBytes: DefaultMaxHeaderBytes}
		if len(c.Listeners) > 0 {
			l.MaxHeaderBytes, l.TLS = c.Listeners[0].MaxHeaderBytes, c.Listeners[0].TLS
		}
		c.Listeners = []Listener{l}
	}
	if o.Upstream != "" {
		c.Routes[0].SetUpstream(u)
	}
	return nil
}
