package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The file from the issue; it must work exactly as written.
const minimalSrc = `listener {
  address = "127.0.0.1:8080"
}
route "default" {
  upstream = "ws://127.0.0.1:3000"
}
`

// defaultRoute is what minimalSrc's route must become.
func defaultRoute() *Route {
	return withSingleServer(&Route{
		Name: "default",
		Upstream: Upstream{
			Raw:     "ws://127.0.0.1:3000",
			Address: "127.0.0.1:3000",
		},
		MaxFrameSize:      DefaultMaxFrameSize,
		HandshakeTimeout:  DefaultHandshakeTimeout,
		CloseTimeout:      DefaultCloseTimeout,
		ClientHeartbeat:   defaultClientHeartbeat(),
		UpstreamHeartbeat: defaultUpstreamHeartbeat(),
		RouteFrontDoor:    newRouteFrontDoor(),
	})
}

// withSingleServer fills in what a route with one upstream URL and no pool
// settings gets: a pool of that one server with the default pool settings.
func withSingleServer(r *Route) *Route {
	r.Servers = []UpstreamServer{{Upstream: r.Upstream, MaxFails: DefaultMaxFails, FailTimeout: DefaultFailTimeout, Weight: DefaultWeight}}
	r.Balance = DefaultBalance
	r.HashKey = HashKey{Source: DefaultHashKey}
	r.DNSTTL = DefaultDNSTTL
	return r
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("test.hcl", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestParseMinimal(t *testing.T) {
	got := mustParse(t, minimalSrc)
	want := &Config{
		Static: Static{Engine: Engine{Loops: 0, IOUring: true}, Limits: newLimits()},
		Reloadable: Reloadable{
			Listeners: []Listener{{Address: "127.0.0.1:8080", MaxHeaderBytes: 16384, ListenerFrontDoor: newListenerFrontDoor()}},
			Routes:    []*Route{defaultRoute()},
			Drain:     Drain{Delay: 5 * time.Second, Window: 30 * time.Second, CloseCode: 1012},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", dumpOrNil(got), dumpOrNil(want))
	}
	// The defaults are the documented ones, not just whatever the
	// constants happen to hold.
	if r := got.Routes[0]; r.MaxFrameSize != 16<<20 || r.HandshakeTimeout != 10*time.Second || r.CloseTimeout != 5*time.Second {
		t.Errorf("defaults changed: %+v", r)
	}
}

func TestParseFull(t *testing.T) {
	src := `
listener {
  address          = "127.0.0.1:8080"
  max_header_bytes = 32768
}
listener {
  address          = "[::1]:8443"
  max_header_bytes = "64KiB"
}
admin {
  address = "127.0.0.1:9090"
}
engine {
  loops    = 8
  io_uring = false
}
route "chat" {
  host              = "Chat.Example.COM"
  path_prefix       = "/ws"
  upstream          = "ws://10.0.0.5:3000/socket"
  max_frame_size    = "1MiB"
  handshake_timeout = "3s"
  close_timeout     = "1500ms"
}
route "tenants" {
  host           = "*.example.com"
  upstream       = "backend.internal:4000"
  max_frame_size = 65536
}
`
	got := mustParse(t, src)
	want := &Config{Static: Static{
		Admin:  &Admin{Address: "127.0.0.1:9090"},
		Engine: Engine{Loops: 8, IOUring: false},
		Limits: newLimits(),
	}, Reloadable: Reloadable{
		Drain: newDrain(),
		Listeners: []Listener{
			{Address: "127.0.0.1:8080", MaxHeaderBytes: 32768, ListenerFrontDoor: newListenerFrontDoor()},
			{Address: "[::1]:8443", MaxHeaderBytes: 64 << 10, ListenerFrontDoor: newListenerFrontDoor()},
		},
		Routes: []*Route{
			withSingleServer(&Route{
				Name:       "chat",
				Host:       "chat.example.com",
				PathPrefix: "/ws",
				Upstream: Upstream{
					Raw:     "ws://10.0.0.5:3000/socket",
					Address: "10.0.0.5:3000",
					Path:    "/socket",
				},
				MaxFrameSize:      1 << 20,
				HandshakeTimeout:  3 * time.Second,
				CloseTimeout:      1500 * time.Millisecond,
				ClientHeartbeat:   defaultClientHeartbeat(),
				UpstreamHeartbeat: defaultUpstreamHeartbeat(),
				RouteFrontDoor:    newRouteFrontDoor(),
			}),
			withSingleServer(&Route{
				Name: "tenants",
				Host: "*.example.com",
				Upstream: Upstream{
					Raw:     "backend.internal:4000",
					Address: "backend.internal:4000",
				},
				MaxFrameSize:      65536,
				HandshakeTimeout:  DefaultHandshakeTimeout,
				CloseTimeout:      DefaultCloseTimeout,
				ClientHeartbeat:   defaultClientHeartbeat(),
				UpstreamHeartbeat: defaultUpstreamHeartbeat(),
				RouteFrontDoor:    newRouteFrontDoor(),
			}),
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dumpOrNil(got), dumpOrNil(want))
	}
}

// TestDefaults checks that every optional setting, left out or set to null
// (HCL's "not set"), takes its default.
func TestDefaults(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, cfg *Config)
	}{
		{
			name: "no admin block means no admin endpoint",
			src:  minimalSrc,
			check: func(t *testing.T, cfg *Config) {
				if cfg.Admin != nil {
					t.Errorf("Admin = %+v, want nil", cfg.Admin)
				}
			},
		},
		{
			name: "empty engine block",
			src:  minimalSrc + "engine {}\n",
			check: func(t *testing.T, cfg *Config) {
				if cfg.Engine.Loops != DefaultLoops {
					t.Errorf("Loops = %d, want %d", cfg.Engine.Loops, DefaultLoops)
				}
			},
		},
		{
			name: "listener without max_header_bytes",
			src:  minimalSrc + "listener {\n  address = \":9000\"\n}\n",
			check: func(t *testing.T, cfg *Config) {
				for _, l := range cfg.Listeners {
					if l.MaxHeaderBytes != DefaultMaxHeaderBytes {
						t.Errorf("listener %s: MaxHeaderBytes = %d, want %d", l.Address, l.MaxHeaderBytes, DefaultMaxHeaderBytes)
					}
				}
			},
		},
		{
			name: "null settings",
			src: `listener {
  address          = "127.0.0.1:8080"
  max_header_bytes = null
}
engine {
  loops    = null
  io_uring = null
}
route "default" {
  host              = null
  path_prefix       = null
  upstream          = "ws://127.0.0.1:3000"
  max_frame_size    = null
  handshake_timeout = null
  close_timeout     = null
}
`,
			check: func(t *testing.T, cfg *Config) {
				want := &Config{
					Static: Static{Engine: newEngine(), Limits: newLimits()},
					Reloadable: Reloadable{
						Listeners: []Listener{{Address: "127.0.0.1:8080", MaxHeaderBytes: DefaultMaxHeaderBytes, ListenerFrontDoor: newListenerFrontDoor()}},
						Routes:    []*Route{defaultRoute()},
						Drain:     newDrain(),
					},
				}
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("got\n%s\nwant\n%s", dump(cfg), dump(want))
				}
			},
		},
		{
			name: "empty host and path_prefix match everything",
			src: `listener {
  address = "127.0.0.1:8080"
}
route "default" {
  host        = ""
  path_prefix = ""
  upstream    = "ws://127.0.0.1:3000"
}
`,
			check: func(t *testing.T, cfg *Config) {
				if r := cfg.Routes[0]; r.Host != "" || r.PathPrefix != "" {
					t.Errorf("Host = %q, PathPrefix = %q, want both empty", r.Host, r.PathPrefix)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src))
		})
	}
}

// TestSizeSetting checks the forms a size takes in a file.
func TestSizeSetting(t *testing.T) {
	tests := []struct {
		value string
		want  int64
	}{
		{`125`, 125},
		{`"125"`, 125},
		{`"125B"`, 125},
		{`"64KiB"`, 64 << 10},
		{`"64 KiB"`, 64 << 10},
		{`"64kib"`, 64 << 10},
		{`"16MiB"`, 16 << 20},
		{`"1GiB"`, 1 << 30},
		{`"2KB"`, 2000},
		{`"3MB"`, 3000000},
		{`"1GB"`, 1000000000},
		{`1073741824`, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg := mustParse(t, routeSrc("upstream = \"ws://127.0.0.1:3000\"", "max_frame_size = "+tt.value))
			if got := cfg.Routes[0].MaxFrameSize; got != tt.want {
				t.Errorf("MaxFrameSize = %d, want %d", got, tt.want)
			}
		})
	}
}

// routeSrc returns a file with a valid listener on lines 1-3 and a route
// "default" whose body lines, given without indentation, start at line 5.
func routeSrc(lines ...string) string {
	var b strings.Builder
	b.WriteString("listener {\n  address = \"127.0.0.1:8080\"\n}\nroute \"default\" {\n")
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// listenerSrc returns a file with a listener whose body lines start at
// line 2, followed by a valid route.
func listenerSrc(lines ...string) string {
	var b strings.Builder
	b.WriteString("listener {\n")
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("}\nroute \"default\" {\n  upstream = \"ws://127.0.0.1:3000\"\n}\n")
	return b.String()
}

// wantDiag is one expected problem: where it starts and its summary.
type wantDiag struct {
	line, col int
	summary   string
}

func TestParseErrors(t *testing.T) {
	const up = `upstream = "ws://127.0.0.1:3000"`
	tests := []struct {
		name string
		src  string
		want []wantDiag
	}{
		// listener
		{"listener address without port", listenerSrc(`address = "127.0.0.1"`),
			[]wantDiag{{2, 13, `listener: address: invalid address "127.0.0.1": missing port in address`}}},
		{"listener port out of range", listenerSrc(`address = "127.0.0.1:65536"`),
			[]wantDiag{{2, 13, `listener: address: invalid address "127.0.0.1:65536": port 65536 is out of range: want 0 to 65535`}}},
		{"listener port by name", listenerSrc(`address = ":http"`),
			[]wantDiag{{2, 13, `listener: address: invalid address ":http": port "http" is not a number from 0 to 65535`}}},
		{"listener address as number", listenerSrc(`address = 8080`),
			[]wantDiag{{2, 13, `listener: address: must be a string, got number`}}},
		{"listener address missing", listenerSrc(`max_header_bytes = 4096`),
			[]wantDiag{{1, 1, `listener: address: required setting is missing`}}},
		{"listener address null", listenerSrc(`address = null`),
			[]wantDiag{{2, 13, `listener: address: required setting is null`}}},
		{"max_header_bytes too small", listenerSrc(`address = ":8080"`, `max_header_bytes = 1023`),
			[]wantDiag{{3, 22, `listener: max_header_bytes: must be between 1024 (1 KiB) and 1048576 (1 MiB) bytes, got 1023`}}},
		{"max_header_bytes too large", listenerSrc(`address = ":8080"`, `max_header_bytes = "2MiB"`),
			[]wantDiag{{3, 22, `listener: max_header_bytes: must be between 1024 (1 KiB) and 1048576 (1 MiB) bytes, got 2097152 (2 MiB)`}}},
		{"max_header_bytes fraction", listenerSrc(`address = ":8080"`, `max_header_bytes = 2048.5`),
			[]wantDiag{{3, 22, `listener: max_header_bytes: must be a whole number of bytes, got 2048.5`}}},

		// admin and engine
		{"admin address missing", minimalSrc + "admin {\n}\n",
			[]wantDiag{{7, 1, `admin: address: required setting is missing`}}},
		{"admin address bad", minimalSrc + "admin {\n  address = \"localhost\"\n}\n",
			[]wantDiag{{8, 13, `admin: address: invalid address "localhost": missing port in address`}}},
		{"admin on a listener address", minimalSrc + "admin {\n  address = \"127.0.0.1:8080\"\n}\n",
			[]wantDiag{{8, 13, `admin: address: "127.0.0.1:8080" is already used by a listener on line 2`}}},
		{"two engine blocks", minimalSrc + "engine {}\nengine {}\n",
			[]wantDiag{{8, 1, `engine: duplicate block: only one engine block is allowed, the first is on line 7`}}},
		{"loops negative", minimalSrc + "engine {\n  loops = -1\n}\n",
			[]wantDiag{{8, 11, `engine: loops: must be between 0 and 1024, got -1`}}},
		{"loops too many", minimalSrc + "engine {\n  loops = 1025\n}\n",
			[]wantDiag{{8, 11, `engine: loops: must be between 0 and 1024, got 1025`}}},
		{"loops as string", minimalSrc + "engine {\n  loops = \"4\"\n}\n",
			[]wantDiag{{8, 11, `engine: loops: must be a number, got string`}}},
		{"loops fraction", minimalSrc + "engine {\n  loops = 1.5\n}\n",
			[]wantDiag{{8, 11, `engine: loops: must be a whole number, got 1.5`}}},

		// route host and path_prefix
		{"host with port", routeSrc(up, `host = "example.com:443"`),
			[]wantDiag{{6, 10, `route "default": host: invalid host "example.com:443": must not include a port: the request's port is ignored when matching`}}},
		{"host as URL", routeSrc(up, `host = "https://example.com/"`),
			[]wantDiag{{6, 10, `route "default": host: invalid host "https://example.com/": want a host name, not a URL: a path goes in path_prefix`}}},
		{"host with inner wildcard", routeSrc(up, `host = "a.*.example.com"`),
			[]wantDiag{{6, 10, `route "default": host: invalid host "a.*.example.com": a wildcard is only allowed as a leading "*.", as in "*.example.com"`}}},
		{"host with empty label", routeSrc(up, `host = "example..com"`),
			[]wantDiag{{6, 10, `route "default": host: invalid host "example..com": empty label: a host cannot start or end with "." or contain ".."`}}},
		{"host with bracketed IPv6", routeSrc(up, `host = "[::1]"`),
			[]wantDiag{{6, 10, `route "default": host: invalid host "[::1]": write an IPv6 address without brackets`}}},
		{"path_prefix without slash", routeSrc(up, `path_prefix = "ws"`),
			[]wantDiag{{6, 17, `route "default": path_prefix: must start with "/", got "ws"`}}},
		{"path_prefix with query", routeSrc(up, `path_prefix = "/ws?x=1"`),
			[]wantDiag{{6, 17, `route "default": path_prefix: must not contain "?" or "#", got "/ws?x=1": only the path is matched`}}},

		// route upstream
		{"upstream missing", routeSrc(`close_timeout = "5s"`),
			[]wantDiag{{4, 1, `route "default": upstream: required setting is missing`}}},
		{"upstream http", routeSrc(`upstream = "http://127.0.0.1:3000"`),
			[]wantDiag{{5, 14, `route "default": upstream: unsupported scheme "http": want ws:// or wss://`}}},
		{"upstream query", routeSrc(`upstream = "ws://127.0.0.1:3000/?a=b"`),
			[]wantDiag{{5, 14, `route "default": upstream: a query ("?...") is not supported in an upstream URL`}}},

		// route sizes and durations
		{"max_frame_size below a control frame", routeSrc(up, `max_frame_size = 124`),
			[]wantDiag{{6, 20, `route "default": max_frame_size: must be between 125 and 1073741824 (1 GiB) bytes, got 124`}}},
		{"max_frame_size above 1 GiB", routeSrc(up, `max_frame_size = "2GiB"`),
			[]wantDiag{{6, 20, `route "default": max_frame_size: must be between 125 and 1073741824 (1 GiB) bytes, got 2147483648 (2 GiB)`}}},
		{"max_frame_size unknown unit", routeSrc(up, `max_frame_size = "16XB"`),
			[]wantDiag{{6, 20, `route "default": max_frame_size: invalid size "16XB": unknown unit "XB": want B, KiB, MiB, GiB, KB, MB or GB`}}},
		{"max_frame_size fraction", routeSrc(up, `max_frame_size = "1.5MiB"`),
			[]wantDiag{{6, 20, `route "default": max_frame_size: invalid size "1.5MiB": fractions are not allowed: use a smaller unit`}}},
		{"max_frame_size as bool", routeSrc(up, `max_frame_size = true`),
			[]wantDiag{{6, 20, `route "default": max_frame_size: must be a size, got bool`}}},
		{"close_timeout bad unit", routeSrc(up, `close_timeout = "5x"`),
			[]wantDiag{{6, 19, `route "default": close_timeout: invalid duration "5x": want a number with a unit, such as "5s"`}}},
		{"close_timeout zero", routeSrc(up, `close_timeout = "0s"`),
			[]wantDiag{{6, 19, `route "default": close_timeout: must be greater than 0, got 0s`}}},
		{"handshake_timeout negative", routeSrc(up, `handshake_timeout = "-1s"`),
			[]wantDiag{{6, 23, `route "default": handshake_timeout: must be greater than 0, got -1s`}}},
		{"handshake_timeout bare number", routeSrc(up, `handshake_timeout = 10`),
			[]wantDiag{{6, 23, `route "default": handshake_timeout: a duration needs a unit, got the bare number 10`}}},

		// routes against each other
		{"duplicate route name", routeSrc(up) + "route \"default\" {\n  path_prefix = \"/other\"\n  " + up + "\n}\n",
			[]wantDiag{{7, 7, `route "default": duplicate route name: a route "default" is already defined on line 4`}}},
		{"same host and path_prefix", `listener {
  address = ":8080"
}
route "a" {
  host     = "example.com"
  upstream = "127.0.0.1:3000"
}
route "b" {
  host     = "Example.com"
  upstream = "127.0.0.1:3001"
}
`, []wantDiag{{8, 1, `route "b": same host "example.com" and path_prefix "" as route "a" on line 4`}}},
		{"empty route name", "listener {\n  address = \":8080\"\n}\nroute \"\" {\n  " + up + "\n}\n",
			[]wantDiag{{4, 7, `route "": route name must not be empty`}}},

		// the file as a whole
		{"empty file", "",
			[]wantDiag{{1, 1, `no listener block: at least one is required`}, {1, 1, `no route block: at least one is required`}}},
		{"unknown attribute", routeSrc(up, `retries = 3`),
			[]wantDiag{{6, 3, `Unsupported argument`}}},
		{"unknown block", minimalSrc + "tls {\n}\n",
			[]wantDiag{{7, 1, `Unsupported block type`}}},
		{"variable", listenerSrc(`address = local.addr`),
			[]wantDiag{{2, 13, `Variables not allowed`}}},
		{"syntax error", listenerSrc(`address = "127.0.0.1:8080" x`),
			[]wantDiag{{2, 30, `Missing newline after argument`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("test.hcl", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %s", dump(cfg))
			}
			checkDiags(t, err, tt.want)
		})
	}
}

// checkDiags asserts that err is an *Error holding exactly want, in order,
// each with a Subject in test.hcl.
func checkDiags(t *testing.T, err error, want []wantDiag) {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error is %T, want *config.Error: %v", err, err)
	}
	diags := cerr.Diagnostics()
	for i, d := range diags {
		if i >= len(want) {
			t.Errorf("unexpected problem %d: %s: %s", i, d.Subject, d.Summary)
			continue
		}
		w := want[i]
		if d.Summary != w.summary {
			t.Errorf("problem %d summary:\n got  %s\n want %s", i, d.Summary, w.summary)
		}
		if d.Subject == nil {
			t.Errorf("problem %d (%s) has no Subject", i, d.Summary)
			continue
		}
		if d.Subject.Start.Line != w.line || d.Subject.Start.Column != w.col {
			t.Errorf("problem %d (%s) at %s, want line %d column %d", i, d.Summary, d.Subject, w.line, w.col)
		}
	}
	if len(diags) < len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(diags), len(want), err)
	}
}

// TestMultipleErrors checks that every problem in a file is reported at
// once, in file order, across blocks.
func TestMultipleErrors(t *testing.T) {
	src := `listener {
  address = "127.0.0.1"
}
engine {
  loops = 5000
}
route "a" {
  upstream      = "https://x"
  close_timeout = "5x"
  bogus         = 1
}
route "b" {
  path_prefix = "/b"
}
`
	_, err := Parse("test.hcl", []byte(src))
	checkDiags(t, err, []wantDiag{
		{2, 13, `listener: address: invalid address "127.0.0.1": missing port in address`},
		{5, 11, `engine: loops: must be between 0 and 1024, got 5000`},
		{8, 19, `route "a": upstream: unsupported scheme "https": want ws:// or wss://`},
		{9, 19, `route "a": close_timeout: invalid duration "5x": want a number with a unit, such as "5s"`},
		{10, 3, `Unsupported argument`},
		{12, 1, `route "b": upstream: required setting is missing`},
	})
}

// TestErrorText checks the rendering: each problem starts with
// file:line,col-col and shows the offending source line.
func TestErrorText(t *testing.T) {
	_, err := Parse("wsalive.hcl", []byte(routeSrc(`upstream = "ws://127.0.0.1:3000"`, `close_timeout = "5x"`, `max_frame_size = 1`)))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	text := err.Error()
	for _, want := range []string{
		// The first line alone is a complete message.
		"wsalive.hcl:6,19-23: Error: route \"default\": close_timeout: invalid duration \"5x\"",
		"  on wsalive.hcl line 6, in route \"default\":\n   6:   close_timeout = \"5x\"\n",
		"wsalive.hcl:7,20-21: Error: route \"default\": max_frame_size: must be between 125",
		"   7:   max_frame_size = 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Error() lacks %q; got:\n%s", want, text)
		}
	}
	if !strings.HasPrefix(text, "wsalive.hcl:6,19-23: ") {
		t.Errorf("Error() does not start with the first problem's position:\n%s", text)
	}
	if strings.HasSuffix(text, "\n") {
		t.Errorf("Error() ends with a newline")
	}
	if strings.Contains(text, "\x1b[") {
		t.Errorf("Error() contains color codes")
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.hcl")
		_, err := Load(path)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want one matching fs.ErrNotExist", err)
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Diagnostics()) != 1 {
			t.Fatalf("err = %#v, want *Error with one problem", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("Error() = %q, want it to name %s", err, path)
		}
	})
	t.Run("file", func(t *testing.T) {
		cfg, err := Load(filepath.Join("testdata", "minimal.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg, mustParse(t, minimalSrc)) {
			t.Errorf("Load and Parse disagree:\n%s", dump(cfg))
		}
	})
	t.Run("positions name the path", func(t *testing.T) {
		_, err := Load(filepath.Join("testdata", "bad_values.hcl"))
		want := filepath.Join("testdata", "bad_values.hcl") + ":3,22-33: "
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Error() = %v, want it to start with %q", err, want)
		}
	})
}

func TestMinimal(t *testing.T) {
	t.Run("same as the minimal file", func(t *testing.T) {
		got, err := Minimal("127.0.0.1:8080", "ws://127.0.0.1:3000")
		if err != nil {
			t.Fatal(err)
		}
		if want := mustParse(t, minimalSrc); !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
		}
	})
	t.Run("wss upstream", func(t *testing.T) {
		got, err := Minimal(":0", "wss://backend.example.com/socket")
		if err != nil {
			t.Fatal(err)
		}
		r := got.Routes[0]
		if up := r.Upstream; up.Address != "backend.example.com:443" || !up.TLS || up.Path != "/socket" {
			t.Errorf("Upstream = %+v", up)
		}
		// System roots, and no fixed name: each server is checked against
		// its own host.
		want := UpstreamTLS{}
		if r.UpstreamTLS == nil || *r.UpstreamTLS != want {
			t.Errorf("UpstreamTLS = %+v, want %+v (system roots, each server's host)", r.UpstreamTLS, want)
		}
	})
	t.Run("host:port upstream", func(t *testing.T) {
		got, err := Minimal(":0", "localhost:3000")
		if err != nil {
			t.Fatal(err)
		}
		if up := got.Routes[0].Upstream; up.Address != "localhost:3000" || up.Path != "" {
			t.Errorf("Upstream = %+v", up)
		}
	})

	tests := []struct {
		name, listen, upstream string
		problems               int
		want                   []string // in Error(), in order
	}{
		{"bad listen", "127.0.0.1", "ws://127.0.0.1:3000", 1, []string{
			`-listen:1,1-10: Error: listener: address: invalid address "127.0.0.1": missing port in address`,
			"   1: 127.0.0.1\n",
		}},
		{"https upstream", ":8080", "https://example.com", 1, []string{
			`-upstream:1,1-20: Error: route "default": upstream: unsupported scheme "https"`,
			"   1: https://example.com\n",
		}},
		{"both bad", "", "", 2, []string{
			`-listen:1,1-1: Error: listener: address: invalid address ""`,
			`-upstream:1,1-1: Error: route "default": upstream: empty upstream`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Minimal(tt.listen, tt.upstream)
			if err == nil {
				t.Fatalf("Minimal succeeded with %s", dump(cfg))
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error is %T, want *config.Error", err)
			}
			if n := len(cerr.Diagnostics()); n != tt.problems {
				t.Errorf("got %d problems, want %d", n, tt.problems)
			}
			text, rest := err.Error(), err.Error()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("Error() lacks %q (or has it out of order); got:\n%s", w, text)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// dumpOrNil is dump that tolerates nil, for failure messages.
func dumpOrNil(cfg *Config) string {
	if cfg == nil {
		return "<nil>"
	}
	return dump(cfg)
}
