package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdminHandler(t *testing.T) {
	ready := errors.New("not ready: draining")
	drains := 0
	h := AdminHandler(AdminOptions{
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("wsalive_draining 1\n")) }),
		Ready:   func() error { return ready },
		Live:    func() error { return nil },
		Drain: func(ctx context.Context) (any, error) {
			drains++
			return map[string]int{"drained": 3}, nil
		},
	})
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/readyz", 503, "not ready: draining"},
		{"GET", "/metrics", 200, "wsalive_draining 1"},
		{"POST", "/drain", 200, `"drained":3`},
		{"GET", "/drain", 200, `"drained":3`}, // a Kubernetes preStop httpGet
		{"PUT", "/drain", 405, ""},
		{"GET", "/debug/pprof/", 404, ""}, // pprof is opt-in
		{"GET", "/stats", 404, ""},        // no engine given
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.body) {
				t.Fatalf("%d %q, want %d containing %q", rec.Code, rec.Body, c.code, c.body)
			}
		})
	}
	if drains != 2 {
		t.Fatalf("drain called %d times, want 2", drains)
	}

	t.Run("pprof on", func(t *testing.T) {
		rec := httptest.NewRecorder()
		AdminHandler(AdminOptions{Pprof: true}).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
		if rec.Code != 200 {
			t.Fatalf("pprof index %d with pprof on", rec.Code)
		}
	})
	t.Run("drain failed", func(t *testing.T) {
		rec := httptest.NewRecorder()
		AdminHandler(AdminOptions{Drain: func(context.Context) (any, error) {
			return map[string]int{"cut": 2}, errors.New("context deadline exceeded")
		}}).ServeHTTP(rec, httptest.NewRequest("POST", "/drain", nil))
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"cut":2`) {
			t.Fatalf("%d %s, want 503 with the report", rec.Code, rec.Body)
		}
	})
}
