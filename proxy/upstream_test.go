package proxy

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/gobwas/httphead"

	"github.com/wsalive/wsalive/config"
)

func TestUpstreamTarget(t *testing.T) {
	cases := []struct {
		name         string
		target       string // the client's request target
		prefix       string
		upstreamPath string
		want         string
	}{
		{
			name:   "no-upstream-path-keeps-request",
			target: "/api/room?x=1",
			prefix: "/api",
			want:   "/api/room?x=1",
		},
		{
			name:   "no-upstream-path-keeps-escapes",
			target: "/a%2Fb/c%20d",
			want:   "/a%2Fb/c%20d",
		},
		{
			name:         "replace-prefix-with-slashes",
			target:       "/api/room",
			prefix:       "/api/",
			upstreamPath: "/v2/",
			want:         "/v2/room",
		},
		{
			name:         "replace-prefix-without-slashes",
			target:       "/api/room",
			prefix:       "/api",
			upstreamPath: "/v2",
			want:         "/v2/room",
		},
		{
			name:         "root-upstream-path-no-double-slash",
			target:       "/api/room",
			prefix:       "/api",
			upstreamPath: "/",
			want:         "/room",
		},
		{
			name:         "exact-prefix-request",
			target:       "/api/",
			prefix:       "/api/",
			upstreamPath: "/",
			want:         "/",
		},
		{
			name:         "prefix-equals-path",
			target:       "/api",
			prefix:       "/api",
			upstreamPath: "/v2/",
			want:         "/v2/",
		},
		{
			name:         "nginx-concatenation-without-slash",
			target:       "/api/room",
			prefix:       "/api/",
			upstreamPath: "/v2",
			want:         "/v2room",
		},
		{
			name:         "empty-prefix-prepends",
			target:       "/room",
			upstreamPath: "/v2",
			want:         "/v2/room",
		},
		{
			name:         "query-kept",
			target:       "/api/room?token=a%20b&x=",
			prefix:       "/api",
			upstreamPath: "/v2",
			want:         "/v2/room?token=a%20b&x=",
		},
		{
			name:         "escapes-in-rest-kept",
			target:       "/api/a%2Fb",
			prefix:       "/api",
			upstreamPath: "/v2",
			want:         "/v2/a%2Fb",
		},
		{
			name:         "escaped-prefix-still-stripped",
			target:       "/%61pi/room",
			prefix:       "/api",
			upstreamPath: "/v2",
			want:         "/v2/room",
		},
		{
			name:         "prefix-with-space",
			target:       "/my%20app/x",
			prefix:       "/my app",
			upstreamPath: "/",
			want:         "/x",
		},
		{
			name:         "upstream-path-escaped",
			target:       "/x",
			upstreamPath: "/a b",
			want:         "/a%20b/x",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := upstreamTarget(u, tc.prefix, tc.upstreamPath); got != tc.want {
				t.Errorf("upstreamTarget(%q, %q, %q) = %q, want %q", tc.target, tc.prefix, tc.upstreamPath, got, tc.want)
			}
		})
	}
}

func TestForwardHeader(t *testing.T) {
	cases := []struct {
		name    string
		header  http.Header
		want    map[string]string // "" means absent
		wantXFF string
		// trusted makes the peer, 192.0.2.7, a trusted proxy.
		trusted bool
	}{
		{
			name:    "xff-added",
			header:  http.Header{"X-Foo": {"bar"}},
			want:    map[string]string{"X-Foo": "bar"},
			wantXFF: "192.0.2.7",
		},
		{
			name:    "trusted-peer-xff-lines-joined-and-appended",
			header:  http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2, 10.0.0.3"}},
			wantXFF: "10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7",
			trusted: true,
		},
		{
			name:    "untrusted-peer-xff-replaced",
			header:  http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2, 10.0.0.3"}, "Forwarded": {"for=10.0.0.1"}},
			want:    map[string]string{"Forwarded": ""},
			wantXFF: "192.0.2.7",
		},
		{
			name: "connection-named-and-hop-by-hop-dropped",
			header: http.Header{
				"Connection":       {"Upgrade, X-A", "x-b"},
				"X-A":              {"1"},
				"X-B":              {"2"},
				"Proxy-Connection": {"keep-alive"},
				"Trailer":          {"X-T"},
				"Cookie":           {"c=1"},
			},
			want: map[string]string{
				"Connection":       "",
				"X-A":              "",
				"X-B":              "",
				"Proxy-Connection": "",
				"Trailer":          "",
				"Cookie":           "c=1",
			},
			wantXFF: "192.0.2.7",
		},
		{
			name: "dialer-written-dropped",
			header: http.Header{
				"Sec-Websocket-Key":        {"k"},
				"Sec-Websocket-Version":    {"13"},
				"Sec-Websocket-Protocol":   {"chat"},
				"Sec-Websocket-Extensions": {"permessage-deflate"},
				"Host":                     {"client.example"},
				"X-Forwarded-Proto":        {"https"},
				"X-Forwarded-Host":         {"spoofed.example"},
			},
			want: map[string]string{
				"Sec-Websocket-Key":        "",
				"Sec-Websocket-Version":    "",
				"Sec-Websocket-Protocol":   "",
				"Sec-Websocket-Extensions": "",
				"Host":                     "",
				"X-Forwarded-Proto":        "http",
				"X-Forwarded-Host":         "client.example:80",
			},
			wantXFF: "192.0.2.7",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Header: tc.header, Host: "client.example:80"}
			var trusted trustedSet
			if tc.trusted {
				trusted = trustedSet{netip.MustParsePrefix("192.0.2.0/24")}
			}
			p := peer{addr: netip.MustParseAddr("192.0.2.7"), ip: "192.0.2.7"}
			fwd := forwardingFor(trusted, "http", p, req.Header, req.Host)
			h := forwardHeader(req, &fwd)
			for k, want := range tc.want {
				if got := strings.Join(h.Values(k), "|"); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := strings.Join(h.Values("X-Forwarded-For"), "|"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
		})
	}
}

func TestOfferedExtensionsDropDeflateForAppPing(t *testing.T) {
	offered, ok := httphead.ParseOptions([]byte("permessage-deflate; client_max_window_bits, x-custom"), nil)
	if !ok {
		t.Fatal("parse")
	}
	plain := &config.Route{}
	if got := offeredExtensions(plain, offered); len(got) != 2 {
		t.Fatalf("without app_ping: %d extensions offered, want 2", len(got))
	}
	withPing := &config.Route{AppPing: &config.AppPing{Match: "ping", Reply: "pong"}}
	got := offeredExtensions(withPing, offered)
	if len(got) != 1 || string(got[0].Name) != "x-custom" {
		t.Fatalf("with app_ping: offered %v, want only x-custom", got)
	}
}
