package actor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder notes the order in which actors stop.
type recorder struct {
	mu    sync.Mutex
	order []string
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, s)
}

func (r *recorder) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.order, " ")
}

// waiter runs until stopped and notes its stop.
func waiter(r *recorder, name string) Actor {
	return Func(func(ctx context.Context) error {
		<-ctx.Done()
		r.note("stop:" + name)
		return nil
	})
}

func TestGracefulStopIsFrontToBackWithSettle(t *testing.T) {
	r := &recorder{}
	g := New(quiet, nil)
	for _, n := range []string{"ingest", "enrich", "aggregate"} {
		g.Add(n, waiter(r, n), Options{Settle: func(context.Context) error { r.note("settle:" + n); return nil }})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := "settle:ingest stop:ingest settle:enrich stop:enrich settle:aggregate stop:aggregate"
	if got := r.got(); got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestFailingActorStopsTheOthersAndNamesItself(t *testing.T) {
	r := &recorder{}
	g := New(quiet, nil)
	g.Add("ingest", waiter(r, "ingest"), Options{Settle: func(context.Context) error { r.note("settle:ingest"); return nil }})
	g.Add("aggregate", Func(func(context.Context) error { return errors.New("clickhouse is gone") }), Options{})
	g.Add("ops", waiter(r, "ops"), Options{})
	err := g.Run(context.Background())
	if err == nil || err.Error() != "aggregate: clickhouse is gone" {
		t.Fatalf("Run = %v, want the aggregate error", err)
	}
	// A failure is no graceful stop: no settle hooks, but every other actor
	// is stopped before Run returns.
	// The others stop together, in no particular order.
	if got := r.got(); got != "stop:ingest stop:ops" && got != "stop:ops stop:ingest" {
		t.Errorf("stops = %q, want both others stopped without settling", got)
	}
}

func TestPanicIsAnError(t *testing.T) {
	g := New(quiet, nil)
	g.Add("probe", Func(func(context.Context) error { panic("nil map") }), Options{})
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "probe: panic: nil map") {
		t.Fatalf("Run = %v, want the panic as probe's error", err)
	}
}

func TestFinishedActorEndsTheProcessGracefully(t *testing.T) {
	r := &recorder{}
	g := New(quiet, nil)
	g.Add("loadgen", Func(func(context.Context) error { return nil }), Options{})
	g.Add("ingest", waiter(r, "ingest"), Options{Settle: func(context.Context) error { r.note("settle:ingest"); return nil }})
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := r.got(); got != "settle:ingest stop:ingest" {
		t.Errorf("order = %q, want a graceful stop of ingest", got)
	}
}

func TestRestartPolicy(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := New(quiet, reg)
	var runs atomic.Int32
	ran := make(chan struct{})
	g.Add("enrich", Func(func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			return errors.New("producing: broker gone")
		}
		close(ran)
		<-ctx.Done()
		return nil
	}), Options{Restart: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the failed actor was not restarted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after a restart and a graceful stop", err)
	}
	if n := testutil.ToFloat64(g.restarts.WithLabelValues("enrich")); n != 1 {
		t.Errorf("aivis_actor_restarts_total{actor=enrich} = %v, want 1", n)
	}
}

func TestSettleErrorsAreReported(t *testing.T) {
	g := New(quiet, nil)
	g.DrainTimeout = 50 * time.Millisecond
	g.Add("enrich", waiter(&recorder{}, "enrich"), Options{Settle: func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("raw topic not consumed in time")
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "enrich: raw topic not consumed in time") {
		t.Fatalf("Run = %v, want the settle error", err)
	}
}
