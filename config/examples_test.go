package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamplesLoad keeps the example configurations, which users copy, and
// the one baked into the container image, valid.
func TestExamplesLoad(t *testing.T) {
	var files []string
	err := filepath.WalkDir("../examples", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".hcl") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configurations found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("%s:\n%v", f, err)
			}
		})
	}
}

// TestKubernetesExample keeps the configuration embedded in the
// Kubernetes example valid, and its terminationGracePeriodSeconds long
// enough for the drain it configures: delay + window + close_timeout +
// 2 s (wsalive's handshake grace and margin).
func TestKubernetesExample(t *testing.T) {
	path := "../examples/kubernetes/wsalive-sidecar.yaml"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var hcl []string
	indent := ""
	for i, l := range lines {
		if strings.TrimSpace(l) != "wsalive.hcl: |" {
			continue
		}
		for _, body := range lines[i+1:] {
			if indent == "" {
				indent = body[:len(body)-len(strings.TrimLeft(body, " "))]
			}
			if body != "" && !strings.HasPrefix(body, indent) {
				break
			}
			hcl = append(hcl, strings.TrimPrefix(body, indent))
		}
		break
	}
	if len(hcl) == 0 {
		t.Fatalf("%s has no wsalive.hcl in a ConfigMap", path)
	}
	cfg, err := Parse("wsalive.hcl (in "+path+")", []byte(strings.Join(hcl, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	var grace int
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "terminationGracePeriodSeconds:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &grace)
		}
	}
	var closeTimeout time.Duration
	for _, r := range cfg.Routes {
		closeTimeout = max(closeTimeout, r.CloseTimeout)
	}
	need := cfg.Drain.Delay + cfg.Drain.Window + closeTimeout + 2*time.Second
	if time.Duration(grace)*time.Second < need {
		t.Fatalf("terminationGracePeriodSeconds is %d, the drain needs %s", grace, need)
	}
}
