package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestOverridesApply(t *testing.T) {
	load := func(t *testing.T, file string) *Config {
		t.Helper()
		c, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("listen and upstream replace the file's", func(t *testing.T) {
		c := load(t, "testdata/minimal.hcl")
		if err := (Overrides{Listen: "127.0.0.1:9999", Upstream: "ws://127.0.0.1:4000/x"}).Apply(c, "minimal.hcl"); err != nil {
			t.Fatal(err)
		}
		if len(c.Listeners) != 1 || c.Listeners[0].Address != "127.0.0.1:9999" || c.Listeners[0].MaxHeaderBytes != DefaultMaxHeaderBytes {
			t.Fatalf("listeners %+v, want the -listen address alone with the default head limit", c.Listeners)
		}
		r := c.Routes[0]
		if r.Upstream.Address != "127.0.0.1:4000" || r.Upstream.Path != "/x" || len(r.Servers) != 1 || r.Servers[0].Upstream != r.Upstream {
			t.Fatalf("route upstream %+v servers %+v, want the -upstream value alone", r.Upstream, r.Servers)
		}
	})

	t.Run("listen keeps the first listener's TLS and head limit", func(t *testing.T) {
		c := load(t, "testdata/tls.hcl")
		first := c.Listeners[0]
		if first.TLS == nil {
			t.Fatal("testdata/tls.hcl's first listener has no TLS; the test needs one")
		}
		if err := (Overrides{Listen: "127.0.0.1:0"}).Apply(c, "tls.hcl"); err != nil {
			t.Fatal(err)
		}
		if len(c.Listeners) != 1 || c.Listeners[0].TLS != first.TLS || c.Listeners[0].MaxHeaderBytes != first.MaxHeaderBytes {
			t.Fatalf("listener %+v lost the file's TLS or head limit", c.Listeners)
		}
	})

	for _, tc := range []struct {
		name, file string
		o          Overrides
		flag, msg  string
	}{
		{"upstream with several routes", "testdata/full.hcl", Overrides{Upstream: "ws://127.0.0.1:4000"}, "-upstream", "but full.hcl has"},
		{"bad upstream", "testdata/minimal.hcl", Overrides{Upstream: "http://127.0.0.1:4000"}, "-upstream", "scheme"},
		{"listen without a port", "testdata/minimal.hcl", Overrides{Listen: "127.0.0.1"}, "-listen", "missing port"},
		{"bad listen with a good upstream", "testdata/minimal.hcl", Overrides{Listen: "nope", Upstream: "ws://127.0.0.1:1"}, "-listen", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := load(t, tc.file)
			before := load(t, tc.file)
			err := tc.o.Apply(c, strings.TrimPrefix(tc.file, "testdata/"))
			oe, ok := err.(*OverrideError)
			if !ok || oe.Flag != tc.flag || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want an *OverrideError for %s mentioning %q", err, tc.flag, tc.msg)
			}
			if !reflect.DeepEqual(c, before) {
				t.Fatal("a refused override changed the configuration")
			}
		})
	}
}
