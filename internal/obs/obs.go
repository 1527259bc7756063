// Package obs serves every process's operational endpoints: /metrics
// (Prometheus), /healthz (the process is alive) and /readyz (the process can
// make progress: each registered check passes).
package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the process-wide metrics registry. Stages register their
// collectors here with promauto.With(obs.Registry).
var Registry = func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}()

// Readiness collects named checks; /readyz passes when all of them do.
type Readiness struct {
	mu     sync.Mutex
	checks map[string]func() error
}

// NewReadiness returns an empty set of checks (ready).
func NewReadiness() *Readiness { return &Readiness{checks: map[string]func() error{}} }

// Add registers or replaces a check.
func (r *Readiness) Add(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = check
}

// Check runs every check and joins the failures.
func (r *Readiness) Check() error {
	r.mu.Lock()
	names := make([]string, 0, len(r.checks))
	for n := range r.checks {
		names = append(names, n)
	}
	checks := make(map[string]func() error, len(r.checks))
	for n, c := range r.checks {
		checks[n] = c
	}
	r.mu.Unlock()
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := checks[n](); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the mux with /metrics, /healthz and /readyz.
func Handler(ready *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready.Check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:")
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(w, "  "+line)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Serve runs the operational endpoints on addr until ctx is done. An empty
// addr disables them.
func Serve(ctx context.Context, addr string, ready *Readiness, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for /metrics on %s (set a free address with --metrics-addr): %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(ready), ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving /metrics, /healthz, /readyz", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving /metrics on %s: %w", addr, err)
	}
	return nil
}

// DeadLetters counts records sent to the dead-letter topic by any stage.
var DeadLetters = func() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_deadletter_total",
		Help: "Records sent to aivis.deadletter.v1, by stage and reason.",
	}, []string{"stage", "reason"})
	Registry.MustRegister(c)
	return c
}()
