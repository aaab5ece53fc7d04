package config

import (
	"strings"
	"testing"
)

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Upstream // Raw is checked to equal in
		wantErr string   // a substring of the error; "" for success
	}{
		{name: "host:port", in: "127.0.0.1:3000",
			want: Upstream{Address: "127.0.0.1:3000"}},
		{name: "name:port", in: "backend.internal:4000",
			want: Upstream{Address: "backend.internal:4000"}},
		{name: "IPv6 host:port", in: "[::1]:3000",
			want: Upstream{Address: "[::1]:3000"}},
		{name: "ws host", in: "ws://h",
			want: Upstream{Address: "h:80"}},
		{name: "ws host slash", in: "ws://h/",
			want: Upstream{Address: "h:80", Path: "/"}},
		{name: "ws host port path", in: "ws://h:1/p",
			want: Upstream{Address: "h:1", Path: "/p"}},
		{name: "ws IPv6", in: "ws://[::1]:3000/chat/room",
			want: Upstream{Address: "[::1]:3000", Path: "/chat/room"}},
		{name: "upper-case scheme", in: "WS://h:8080",
			want: Upstream{Address: "h:8080"}},
		{name: "escaped path decoded", in: "ws://h/chat%20room",
			want: Upstream{Address: "h:80", Path: "/chat room"}},

		{name: "empty", in: "", wantErr: "empty upstream"},
		{name: "wss", in: "wss://h:9443/p",
			want: Upstream{Address: "h:9443", Path: "/p", TLS: true}},
		{name: "wss default port", in: "wss://h",
			want: Upstream{Address: "h:443", TLS: true}},
		{name: "upper-case wss", in: "WSS://[::1]/x",
			want: Upstream{Address: "[::1]:443", Path: "/x", TLS: true}},
		{name: "wss port zero", in: "wss://h:0", wantErr: "port 0 cannot be dialed"},
		{name: "http", in: "http://h:80", wantErr: `unsupported scheme "http": want ws:// or wss://`},
		{name: "https", in: "https://h", wantErr: `unsupported scheme "https"`},
		{name: "query", in: "ws://h/p?a=1", wantErr: "a query"},
		{name: "empty query", in: "ws://h/p?", wantErr: "a query"},
		{name: "fragment", in: "ws://h/p#top", wantErr: "a fragment"},
		{name: "empty fragment", in: "ws://h/p#", wantErr: "a fragment"},
		{name: "userinfo", in: "ws://u:pw@h", wantErr: "user information"},
		{name: "no host", in: "ws:///p", wantErr: "missing host"},
		{name: "empty port", in: "ws://h:/p", wantErr: `missing port after ":"`},
		{name: "port zero", in: "ws://h:0", wantErr: "port 0 cannot be dialed"},
		{name: "port too big", in: "ws://h:65536", wantErr: "out of range"},
		{name: "bare host", in: "localhost", wantErr: "want ws://host[:port][/path] or host:port: missing port in address"},
		{name: "host:port with path", in: "h:3000/p", wantErr: "want ws://host[:port][/path] or host:port"},
		{name: "port only", in: ":3000", wantErr: "missing host"},
		{name: "bad URL", in: "ws://h h", wantErr: "invalid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUpstream(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseUpstream(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseUpstream(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUpstream(%q): %v", tt.in, err)
			}
			tt.want.Raw = tt.in
			if got != tt.want {
				t.Errorf("ParseUpstream(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		in      string
		want    HashKey
		wantErr string
	}{
		{in: "client_ip", want: HashKey{Source: HashClientIP}},
		{in: "header:x-room-id", want: HashKey{Source: HashHeader, Name: "X-Room-Id"}},
		{in: "cookie:io", want: HashKey{Source: HashCookie, Name: "io"}},
		{in: "query:EIO", want: HashKey{Source: HashQuery, Name: "EIO"}},
		{in: "client_ip:x", wantErr: "takes no name"},
		{in: "cookie:", wantErr: "needs a name"},
		{in: "query:a b", wantErr: "white space"},
		{in: "heder:X", wantErr: `did you mean "header"?`},
		{in: "", wantErr: "unknown hash key"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseHashKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseHashKey(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseHashKey(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in && tt.want.Source != HashHeader {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}
