package wsload

import (
	"strings"
	"testing"
)

func TestParseSrcIPs(t *testing.T) {
	cases := []struct {
		name    string
		spec    string
		host    string
		want    []string
		wantErr string
	}{
		{
			name: "auto toward loopback",
			spec: "auto",
			host: "127.0.0.1",
			want: []string{"127.0.0.2", "127.0.0.250"},
		},
		{
			name: "auto toward another host binds nothing",
			spec: "auto",
			host: "10.1.2.3",
			want: nil,
		},
		{
			name: "auto toward a name binds nothing",
			spec: "auto",
			host: "localhost",
			want: nil,
		},
		{
			name: "off",
			spec: "off",
			host: "127.0.0.1",
			want: nil,
		},
		{
			name: "list and ranges",
			spec: "2-4, 9",
			host: "127.0.0.1",
			want: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"},
		},
		{
			name:    "backwards range",
			spec:    "9-2",
			host:    "127.0.0.1",
			wantErr: "backwards",
		},
		{
			name:    "octet out of range",
			spec:    "2-255",
			host:    "127.0.0.1",
			wantErr: "not a host octet",
		},
		{
			name:    "not a number",
			spec:    "x",
			host:    "127.0.0.1",
			wantErr: "not a host octet",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ips, err := ParseSrcIPs(tc.spec, tc.host)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf(
						"want error containing %q, got %v",
						tc.wantErr, err,
					)
				}
				return
			}
			if err != nil {
				t.Fatalf(
					"unexpected error: %v",
					err,
				)
			}
			if tc.name == "auto toward loopback" {
				// Only the ends of the 249 addresses are checked.
				if len(ips) != 249 || ips[0].String() != tc.want[0] || ips[248].String() != tc.want[1] {
					t.Fatalf(
						"got %d addresses from %v to %v",
						len(ips), ips[0], ips[len(ips)-1],
					)
				}
				return
			}
			var got []string
			for _, ip := range ips {
				got = append(got, ip.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf(
					"got %v, want %v",
					got, tc.want,
				)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{
			name:    "no mode",
			cfg:     Config{URL: "ws://127.0.0.1:1/", N: 1},
			wantErr: "mode is required",
		},
		{
			name:    "unknown mode",
			cfg:     Config{Mode: "flood", URL: "ws://127.0.0.1:1/", N: 1},
			wantErr: "is not idle, echo, churn, floor, blackhole-client or blackhole-upstream",
		},
		{
			name:    "unknown client",
			cfg:     Config{Mode: ModeEcho, Client: "nhooyr", URL: "ws://127.0.0.1:1/", N: 1},
			wantErr: `client "nhooyr" is not gobwas or gorilla`,
		},
		{
			name:    "gorilla in a blackhole mode",
			cfg:     Config{Mode: ModeBlackholeClient, Client: ClientGorilla, ProxyBin: "/bin/true", N: 1},
			wantErr: "has only the gobwas client",
		},
		{
			name:    "floor without a reply size",
			cfg:     Config{Mode: ModeFloor, Size: 2},
			wantErr: "floor mode needs positive sizes",
		},
		{
			name:    "http url",
			cfg:     Config{Mode: ModeIdle, URL: "http://127.0.0.1:1/", N: 1},
			wantErr: "scheme must be ws or wss",
		},
		{
			name:    "no connections",
			cfg:     Config{Mode: ModeIdle, URL: "ws://127.0.0.1:1/"},
			wantErr: "n must be positive",
		},
		{
			name:    "negative size",
			cfg:     Config{Mode: ModeEcho, URL: "ws://127.0.0.1:1/", N: 1, Size: -1},
			wantErr: "size must not be negative",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf(
					"want error containing %q, got %v",
					tc.wantErr, err,
				)
			}
		})
	}

	c, err := Config{Mode: ModeEcho, URL: "ws://127.0.0.1:1/", N: 1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != DefaultRate || c.Inflight != DefaultInflight || c.Duration != DefaultDuration ||
		c.DialConcurrency != DefaultDialConcurrency || c.SrcIPs != DefaultSrcIPs || c.Logger == nil {
		t.Fatalf(
			"defaults not applied: %+v",
			c,
		)
	}
}
