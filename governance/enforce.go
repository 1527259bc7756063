package governance

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/schemas"
)

// Other is the value an end user or tag is stored as once its dimension
// has reached Config.MaxValuesPerDimension distinct values in the hour.
const Other = "_other"

// Enforcer is what enrich applies to every enriched event: the policy's
// flags (unapproved_model, region_not_allowed, missing_labels) and the
// cardinality guard of end users and tags. It is safe for concurrent use;
// Run reloads the policy file when it changes, keeping the previous policy
// when the new one is bad.
type Enforcer struct {
	cfg    Config
	log    *slog.Logger
	policy atomic.Pointer[Policy]
	guard  *Guard
	sum    [sha256.Size]byte

	reloadErrors prometheus.Counter
}

// NewEnforcer loads cfg's policy; metrics go to reg.
func NewEnforcer(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Enforcer, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &Enforcer{cfg: cfg, log: log, guard: NewGuard(cfg.MaxValuesPerDimension, reg),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_enrich_policy_reload_errors_total",
			Help: "Failed reloads of the governance policy in enrich; the previous policy stays in use. The log says why.",
		})}
	if reg != nil {
		reg.MustRegister(f.reloadErrors)
	}
	if cfg.Path != "" {
		p, err := LoadPolicy(cfg.Path)
		if err != nil {
			return nil, err
		}
		f.policy.Store(p)
		f.sum = fileSum(cfg.Path)
	}
	return f, nil
}

// Apply sets e's policy flags and bounds its end user and tags.
func (f *Enforcer) Apply(e *schemas.Enriched) {
	if p := f.policy.Load(); p != nil && e.Kind == schemas.KindLLMRequest {
		ok, _ := p.Approved(e.Owner.Team, e.Provider, e.ModelID())
		e.Flags.UnapprovedModel = !ok
		ok, _ = p.RegionAllowed(e.Owner.Team, e.Labels[LabelDataClass], e.ProviderRegion)
		e.Flags.RegionNotAllowed = !ok
		e.Flags.MissingLabels = len(p.MissingLabels(e.Labels)) > 0
	}
	f.guard.Bound(&e.Event)
}

// Run checks the policy file every ReloadInterval until ctx is done.
func (f *Enforcer) Run(ctx context.Context) error {
	if f.cfg.Path == "" || f.cfg.ReloadInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(f.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			sum := fileSum(f.cfg.Path)
			if sum == f.sum {
				continue
			}
			f.sum = sum
			p, err := LoadPolicy(f.cfg.Path)
			if err != nil {
				f.reloadErrors.Inc()
				f.log.Error("reloading the governance policy; keeping the previous one", "err", err)
				continue
			}
			f.policy.Store(p)
			f.log.Info("reloaded the governance policy", "path", f.cfg.Path)
		}
	}
}

// Guard bounds the distinct end users and tags that pass per hour (of the
// processing clock): once a dimension has seen max values in the hour,
// new values become Other until the hour ends. Values already seen keep
// passing. Each enrich replica guards on its own, so the views see at
// most replicas × max values per dimension and hour.
type Guard struct {
	max    int
	now    func() time.Time
	capped *prometheus.CounterVec

	mu    sync.Mutex
	hour  int64
	users map[string]struct{}
	tags  map[string]struct{}
}

// NewGuard returns a guard of max values per dimension and hour.
func NewGuard(max int, reg prometheus.Registerer) *Guard {
	g := &Guard{max: max, now: time.Now, users: map[string]struct{}{}, tags: map[string]struct{}{},
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_enrich_capped_values_total",
			Help: "End users and tags stored as _other because their dimension reached governance.max_values_per_dimension distinct values in the hour.",
		}, []string{"dimension"})}
	if reg != nil {
		reg.MustRegister(g.capped)
	}
	return g
}

// Bound replaces e's end user and tags beyond the bound by Other. The tags
// slice is copied before a change: it may be shared with the raw event.
func (g *Guard) Bound(e *schemas.Event) {
	if e.EndUser == "" && len(e.Tags) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if h := g.now().Unix() / 3600; h != g.hour {
		g.hour = h
		clear(g.users)
		clear(g.tags)
	}
	if e.EndUser != "" && !g.admit(g.users, e.EndUser) {
		e.EndUser = Other
		g.capped.WithLabelValues("end_user").Inc()
	}
	copied := false
	for i, t := range e.Tags {
		if g.admit(g.tags, t) {
			continue
		}
		if !copied {
			e.Tags = append([]string(nil), e.Tags...)
			copied = true
		}
		e.Tags[i] = Other
		g.capped.WithLabelValues("tag").Inc()
	}
}

func (g *Guard) admit(seen map[string]struct{}, v string) bool {
	if _, ok := seen[v]; ok {
		return true
	}
	if len(seen) >= g.max {
		return false
	}
	seen[v] = struct{}{}
	return true
}

// SetClock replaces the guard's clock (tests).
func (g *Guard) SetClock(now func() time.Time) { g.now = now }
