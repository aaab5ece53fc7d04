package config

import (
	"strconv"
	"strings"
	"testing"
)

func TestDrainCloseCode(t *testing.T) {
	cases := []struct {
		code    string
		wantErr string // "" when accepted
	}{
		{"1000", ""},
		{"1001", ""},
		{"1012", ""},
		{"4999", ""},
		{"999", "between 1000 and 4999"},
		{"5000", "between 1000 and 4999"},
		{"1004", "must not be sent"},
		{"1005", "must not be sent"},
		{"1006", "must not be sent"},
		{"1015", "must not be sent"},
		{`"1012"`, "must be a number"},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			src := "listener {\n  address = \"127.0.0.1:8080\"\n}\ndrain {\n  close_code = " + c.code +
				"\n}\nroute \"r\" {\n  upstream = \"ws://127.0.0.1:3000\"\n}\n"
			cfg, err := Parse("drain.hcl", []byte(src))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := cfg.Drain.CloseCode; strings.TrimSpace(c.code) != strconv.Itoa(int(got)) {
					t.Fatalf("close_code %d, want %s", got, c.code)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "drain.hcl:5,16") {
				t.Fatalf("error %v, want %q at drain.hcl:5,16", err, c.wantErr)
			}
		})
	}
}

func TestStaticChanges(t *testing.T) {
	base := func() *Config {
		return &Config{Static: Static{Admin: &Admin{Address: "127.0.0.1:9090"}, Engine: Engine{Loops: 2, IOUring: true}}}
	}
	t.Run("none", func(t *testing.T) {
		next := base()
		next.Routes = []*Route{newRoute("x")} // reloadable: not listed
		next.Routes[0].Resume = &Resume{Window: 1, Buffer: 1}
		next.Drain.Window = 1
		if got := StaticChanges(base(), next); len(got) != 0 {
			t.Fatalf("got %q, want nothing", got)
		}
	})
	t.Run("every static setting", func(t *testing.T) {
		next := base()
		next.Admin = &Admin{Address: "127.0.0.1:9191", Pprof: true}
		next.Engine = Engine{Loops: 4, IOUring: false}
		next.Limits.ResumeMemory = 1 << 20
		got := strings.Join(StaticChanges(base(), next), "\n")
		want := "admin.address: 127.0.0.1:9090 -> 127.0.0.1:9191\nadmin.pprof: false -> true\nengine.loops: 2 -> 4\nengine.io_uring: true -> false\nlimits.resume_memory: 0 -> 1048576"
		if got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("admin removed", func(t *testing.T) {
		next := base()
		next.Admin = nil
		if got := StaticChanges(base(), next); len(got) != 1 || got[0] != "admin.address: 127.0.0.1:9090 -> (none)" {
			t.Fatalf("got %q", got)
		}
	})
}
