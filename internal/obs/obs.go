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
	"net/http/pprof"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Version is the aivis version, set at build time with
// -ldflags "-X github.com/aivis-dev/aivis/internal/obs.Version=v1.2.3".
var Version = "dev"

// NewRegistry returns the metrics registry of one process, holding the Go
// runtime and process collectors and aivis_build_info. Each stage the
// process runs registers its own families on it, so a process exports only
// what it runs.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aivis_build_info",
		Help: "Always 1; labels say which aivis version and Go runtime this process runs.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(Version, runtime.Version()).Set(1)
	r.MustRegister(info)
	return r
}

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

// Handler returns the mux with /metrics (from reg), /healthz and /readyz.
func Handler(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	return handler(reg, ready, false)
}

func handler(reg *prometheus.Registry, ready *Readiness, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
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

// Server serves the operational endpoints of a process; it is an actor.
type Server struct {
	// Addr is where to listen; empty disables the endpoints.
	Addr     string
	Registry *prometheus.Registry
	Ready    *Readiness
	Log      *slog.Logger
	// Pprof also mounts net/http/pprof under /debug/pprof/.
	Pprof bool
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listening for /metrics on %s (set a free address with --metrics_addr, or an empty one to disable): %w", s.Addr, err)
	}
	srv := &http.Server{Handler: handler(s.Registry, s.Ready, s.Pprof), ReadHeaderTimeout: 5 * time.Second}
	s.Log.Info("serving /metrics, /healthz, /readyz", "addr", ln.Addr().String(), "pprof", s.Pprof)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving /metrics on %s: %w", s.Addr, err)
	}
	return nil
}

// Register registers c on reg and returns it, or returns the collector of
// the same description already registered there (two stages of one kind in
// one process share their families). A nil reg leaves c unregistered.
// Conflicting definitions of one name are a programming error and panic.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
