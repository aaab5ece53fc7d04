package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
