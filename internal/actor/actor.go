// Package actor runs the long-running parts of one aivis process (stages,
// watchers, the ops server) as one supervised group.
//
// The contract every part follows: a constructor takes its configuration
// and its dependencies (clients, store, metrics registry, logger) and
// returns an error; Run(ctx) works until ctx is done, drains, and returns
// nil, or returns the error that stopped it; Ready (optional) says whether
// it can make progress now. The caller owns and closes the dependencies it
// passed in, after Run returns.
//
// Policy, written once here: an actor that fails stops the whole process
// with its name and error, unless it was added with Restart, in which case
// it is logged, counted in aivis_actor_restarts_total and run again after a
// backoff (1 s doubling to 30 s, reset after a minute of good running). An
// actor that returns nil before it was asked to stop ends the process
// normally (a load generator that finished, for example).
//
// Stop order is the order of Add: the first actor is stopped and waited for
// before the next one is, so a pipeline added front to back drains front to
// back. An actor's Settle hook, if set, runs before it is stopped during a
// graceful stop (not after a failure): it is where "wait until my input is
// consumed" goes.
package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Actor is one long-running part of a process.
type Actor interface {
	// Run works until ctx is done and returns nil once drained, or returns
	// the error that stopped it.
	Run(ctx context.Context) error
}

// Checker is an actor that can say whether it is ready.
type Checker interface {
	Ready() error
}

// Func adapts a function to Actor.
type Func func(ctx context.Context) error

// Run calls f.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Options tune how the group treats one actor.
type Options struct {
	// Restart runs the actor again after it fails instead of stopping the
	// process.
	Restart bool
	// Settle runs before the actor is stopped in a graceful stop, bounded by
	// the group's drain deadline.
	Settle func(ctx context.Context) error
}

// Group runs actors together.
type Group struct {
	log      *slog.Logger
	restarts *prometheus.CounterVec
	members  []*member
	// DrainTimeout bounds the whole graceful stop's Settle hooks.
	DrainTimeout time.Duration
}

type member struct {
	name   string
	actor  Actor
	opts   Options
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the error that ended it, when it failed
}

// New returns an empty group that counts restarts on reg (nil: not
// exported).
func New(log *slog.Logger, reg prometheus.Registerer) *Group {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_actor_restarts_total",
		Help: "Times a failed part of this process was restarted, by actor. The log says why.",
	}, []string{"actor"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return &Group{log: log, restarts: c, DrainTimeout: 2 * time.Minute}
}

// Add adds an actor under name; names appear in errors and logs.
func (g *Group) Add(name string, a Actor, opts Options) {
	g.members = append(g.members, &member{name: name, actor: a, opts: opts})
}

// Names returns the actors' names in stop order.
func (g *Group) Names() []string {
	out := make([]string, len(g.members))
	for i, m := range g.members {
		out[i] = m.name
	}
	return out
}

// Run starts every actor and returns when the process should end: after ctx
// is done and every actor drained (nil, or the drain errors joined), or
// after an actor failed and the others were stopped (that actor's error,
// prefixed with its name).
func (g *Group) Run(ctx context.Context) error {
	if len(g.members) == 0 {
		return errors.New("nothing to run")
	}
	ended := make(chan *member, len(g.members))
	for _, m := range g.members {
		mctx, cancel := context.WithCancel(context.Background())
		m.cancel = cancel
		m.done = make(chan struct{})
		go g.supervise(mctx, m, ended)
	}
	var first *member
	select {
	case <-ctx.Done():
	case first = <-ended:
	}
	if first != nil && first.err != nil {
		g.log.Error("stopping the process: a part of it failed", "actor", first.name, "err", first.err)
		g.stopAll(false)
		return fmt.Errorf("%s: %w", first.name, first.err)
	}
	if first != nil {
		g.log.Info("stopping the process: a part of it finished", "actor", first.name)
	}
	return g.stopAll(true)
}

// supervise runs m until its context is cancelled or it fails for good.
func (g *Group) supervise(ctx context.Context, m *member, ended chan<- *member) {
	defer close(m.done)
	attempt := 0
	for {
		began := time.Now()
		err := safeRun(ctx, m.actor)
		if ctx.Err() != nil {
			// Asked to stop: what it returns now is its drain result.
			m.err = err
			return
		}
		if err == nil {
			ended <- m
			return
		}
		if !m.opts.Restart {
			m.err = err
			ended <- m
			return
		}
		if time.Since(began) > time.Minute {
			attempt = 0
		}
		wait := time.Second << min(attempt, 5)
		wait = min(wait, 30*time.Second)
		attempt++
		g.restarts.WithLabelValues(m.name).Inc()
		g.log.Warn("restarting a failed part of the process", "actor", m.name, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// safeRun turns a panic in an actor into its error, so the group can stop
// the others in order.
func safeRun(ctx context.Context, a Actor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return a.Run(ctx)
}

// stopAll stops the actors in the order they were added, running each one's
// Settle hook first when graceful.
func (g *Group) stopAll(graceful bool) error {
	dctx, cancel := context.WithTimeout(context.Background(), g.DrainTimeout)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	for _, m := range g.members {
		select {
		case <-m.done:
			// Already ended (it failed or finished); nothing to drain.
			continue
		default:
		}
		if graceful && m.opts.Settle != nil {
			if err := m.opts.Settle(dctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
			}
		}
		m.cancel()
		if graceful {
			<-m.done
			if m.err != nil && !errors.Is(m.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", m.name, m.err))
			}
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-m.done }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
