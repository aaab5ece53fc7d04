package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "125", want: 125},
		{in: "125B", want: 125},
		{in: "125 b", want: 125},
		{in: " 4 KiB ", want: 4 << 10},
		{in: "4KB", want: 4000},
		{in: "4kb", want: 4000},
		{in: "16MiB", want: 16 << 20},
		{in: "16MB", want: 16000000},
		{in: "1GiB", want: 1 << 30},
		{in: "1GB", want: 1000000000},
		{in: "8589934591GiB", want: 8589934591 << 30},

		{in: "", wantErr: "want a whole number of bytes"},
		{in: "MiB", wantErr: "want a whole number of bytes"},
		{in: "-1", wantErr: "want a whole number of bytes"},
		{in: "1.5MiB", wantErr: "fractions are not allowed"},
		{in: "16XB", wantErr: `unknown unit "XB"`},
		{in: "16M", wantErr: `unknown unit "M"`},
		{in: "1TiB", wantErr: `unknown unit "TiB"`},
		{in: "8589934592GiB", wantErr: "too large"},
		{in: "99999999999999999999", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeText(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{125, "125"},
		{1000, "1000"},
		{1024, "1024 (1 KiB)"},
		{1536, "1536"},
		{16 << 20, "16777216 (16 MiB)"},
		{1 << 30, "1073741824 (1 GiB)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := sizeText(tt.in); got != tt.want {
				t.Errorf("sizeText(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "", want: ""},
		{in: "*", want: ""},
		{in: "example.com.", want: "example.com"},
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "*.example.com", want: "*.example.com"},
		{in: "localhost", want: "localhost"},
		{in: "my_service.internal", want: "my_service.internal"},
		{in: "10.0.0.1", want: "10.0.0.1"},
		{in: "::1", want: "::1"},

		{in: "example.com:80", wantErr: "must not include a port"},
		{in: "example.com/ws", wantErr: "not a URL"},
		{in: "*example.com", wantErr: `leading "*."`},
		{in: "a.*.com", wantErr: `leading "*."`},
		{in: "*.10.0.0.1", wantErr: "not an IP address"},
		{in: "[::1]", wantErr: "without brackets"},
		{in: ".example.com", wantErr: "empty label"},
		{in: "example.com..", wantErr: "empty label"},
		{in: ".", wantErr: "empty label"},
		{in: "exa mple.com", wantErr: `invalid character ' '`},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "longer than 63"},
		{in: strings.Repeat("a.", 127) + "com", wantErr: "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := checkHost(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("checkHost(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("checkHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
