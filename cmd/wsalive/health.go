package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is the readiness endpoint of an admin listener on the
// address the examples use.
const defaultHealthURL = "http://127.0.0.1:9090/readyz"

// cmdHealth probes a running wsalive's admin endpoint and fails unless it
// answers 200 within the timeout. A distroless image has no shell or curl,
// so its Docker HEALTHCHECK runs the binary itself:
//
//	HEALTHCHECK CMD ["/wsalive", "health"]
func cmdHealth(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", stderr)
	url := fs.String("url", defaultHealthURL, "endpoint to probe: /readyz (serving) or /healthz (alive)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Sprintf("-url %q: %v", *url, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s: %s", *url, resp.Status, text)
	}
	fmt.Fprintf(stdout, "%s: %s\n", *url, text)
	return nil
}
