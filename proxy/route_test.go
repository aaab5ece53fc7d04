package proxy

import (
	"testing"

	"github.com/wsalive/wsalive/config"
)

func TestRouterMatch(t *testing.T) {
	routes := []*config.Route{
		{Name: "any-root"},
		{Name: "any-ws", PathPrefix: "/ws"},
		{Name: "any-ws-dup", PathPrefix: "/ws"},
		{Name: "wild-root", Host: "*.example.com"},
		{Name: "wild-deep", Host: "*.eu.example.com", PathPrefix: "/"},
		{Name: "exact-root", Host: "api.example.com"},
		{Name: "exact-chat", Host: "API.Example.com", PathPrefix: "/chat/"},
		{Name: "v6", Host: "::1", PathPrefix: "/v6"},
	}
	rt, err := newRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		host string
		path string
		want string
	}{
		{
			name: "hostless-fallback",
			host: "unknown.org",
			path: "/",
			want: "any-root",
		},
		{
			name: "longest-prefix-among-hostless",
			host: "unknown.org",
			path: "/ws/room",
			want: "any-ws",
		},
		{
			name: "tie-goes-to-earlier-route",
			host: "unknown.org",
			path: "/ws",
			want: "any-ws",
		},
		{
			name: "host-beats-longer-hostless-prefix",
			host: "www.example.com",
			path: "/ws/room",
			want: "wild-root",
		},
		{
			name: "wildcard-does-not-match-apex",
			host: "example.com",
			path: "/",
			want: "any-root",
		},
		{
			name: "wildcard-matches-any-depth",
			host: "a.b.example.com",
			path: "/x",
			want: "wild-root",
		},
		{
			name: "longer-wildcard-beats-shorter",
			host: "paris.eu.example.com",
			path: "/x",
			want: "wild-deep",
		},
		{
			name: "exact-beats-wildcard",
			host: "api.example.com",
			path: "/x",
			want: "exact-root",
		},
		{
			name: "exact-longest-prefix",
			host: "api.example.com",
			path: "/chat/lobby",
			want: "exact-chat",
		},
		{
			name: "host-case-and-port-ignored",
			host: "API.EXAMPLE.COM:8080",
			path: "/chat/",
			want: "exact-chat",
		},
		{
			name: "trailing-dot-ignored",
			host: "api.example.com.",
			path: "/chat/x",
			want: "exact-chat",
		},
		{
			name: "prefix-is-plain-string-prefix",
			host: "api.example.com",
			path: "/chat",
			want: "exact-root",
		},
		{
			name: "ipv6-with-port",
			host: "[::1]:443",
			path: "/v6/x",
			want: "v6",
		},
		{
			name: "ipv6-without-port",
			host: "[::1]",
			path: "/v6",
			want: "v6",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rt.match(tc.host, tc.path)
			if got == nil {
				t.Fatalf("match(%q, %q) = nil, want %s", tc.host, tc.path, tc.want)
			}
			if got.Name != tc.want {
				t.Errorf("match(%q, %q) = %s, want %s", tc.host, tc.path, got.Name, tc.want)
			}
		})
	}
}

func TestRouterNoMatch(t *testing.T) {
	rt, err := newRouter([]*config.Route{
		{Name: "a", Host: "a.example.com"},
		{Name: "b", PathPrefix: "/b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		host string
		path string
	}{
		{
			name: "other-host-other-path",
			host: "c.example.com",
			path: "/a",
		},
		{
			name: "subdomain-of-exact-host",
			host: "x.a.example.com",
			path: "/",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rt.match(tc.host, tc.path); got != nil {
				t.Errorf("match(%q, %q) = %s, want nil", tc.host, tc.path, got.Name)
			}
		})
	}
}

func TestRouterRejectsBadHosts(t *testing.T) {
	cases := []struct {
		name string
		host string
	}{
		{
			name: "star-in-middle",
			host: "a.*.example.com",
		},
		{
			name: "double-star",
			host: "**.example.com",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newRouter([]*config.Route{{Name: "r", Host: tc.host}}); err == nil {
				t.Errorf("host %q accepted", tc.host)
			}
		})
	}
}
