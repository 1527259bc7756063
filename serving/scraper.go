package serving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
)

// Emit hands a round's events on; it returns once they are delivered. An
// error keeps them for the next round, which sends them again with the same
// event ids.
type Emit func(ctx context.Context, events []schemas.Event) error

// MaxPending bounds the events kept while Emit fails; beyond it the oldest
// are dropped and counted in aivis_serving_events_dropped_total.
const MaxPending = 10000

// Scraper is the serving stage: every interval it scrapes each target's
// page, turns it into deltas and emits one event per (target, model). It
// owns its HTTP client; it blocks only on scrapes (bounded by the timeout)
// and on Emit. A target that is down is logged, counted and skipped; the
// others go on, and its next good scrape covers the gap.
type Scraper struct {
	cfg     Config
	targets []Target
	emit    Emit
	log     *slog.Logger
	client  *http.Client
	tracker *Tracker
	m       metrics

	mu       sync.Mutex
	pending  []schemas.Event
	readyErr error
}

type metrics struct {
	scrapes *prometheus.CounterVec
	up      *prometheus.GaugeVec
	resets  *prometheus.CounterVec
	events  prometheus.Counter
	dropped prometheus.Counter
	pending prometheus.Gauge
}

// NewScraper returns the stage for targets. reg may be nil.
func NewScraper(cfg Config, targets []Target, emit Emit, reg prometheus.Registerer, log *slog.Logger) (*Scraper, error) {
	if len(targets) == 0 {
		return nil, errors.New("no serving targets: set serving.targets_path to a targets file (docs/serving.md)")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Scraper{
		cfg: cfg, targets: targets, emit: emit, log: log,
		client:   &http.Client{Timeout: cfg.Timeout},
		tracker:  NewTracker(),
		readyErr: errors.New("no scrape yet"),
	}
	s.m = metrics{
		scrapes: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_serving_scrapes_total",
			Help: "Scrapes of inference servers' /metrics, by deployment and result: ok, or error (the log says why: down, timeout, not a Prometheus page, no token counters of its kind).",
		}, []string{"deployment", "result"})),
		up: obs.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aivis_serving_target_up",
			Help: "1 when the last scrape of the target succeeded, by deployment and url.",
		}, []string{"deployment", "url"})),
		resets: obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aivis_serving_counter_resets_total",
			Help: "Token or request counters of an inference server that went down between scrapes (the server restarted; its new value is taken as the delta), by deployment.",
		}, []string{"deployment"})),
		events: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_serving_events_total",
			Help: "Serving usage events delivered, one per target, model and interval with traffic.",
		})),
		dropped: obs.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aivis_serving_events_dropped_total",
			Help: "Serving usage events dropped because delivery kept failing and more than 10000 waited; check the Kafka brokers.",
		})),
		pending: obs.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aivis_serving_events_pending",
			Help: "Serving usage events waiting to be delivered again after a failed delivery.",
		})),
	}
	return s, nil
}

// Run scrapes at every multiple of the interval until ctx is done, then
// tries once more to deliver what is pending and returns nil.
func (s *Scraper) Run(ctx context.Context) error {
	for {
		now := time.Now()
		next := now.Truncate(s.cfg.Interval).Add(s.cfg.Interval)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			s.flush(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
		}
		s.Round(ctx, next)
	}
}

// flush makes one bounded last attempt to deliver pending events.
func (s *Scraper) flush(ctx context.Context) {
	s.mu.Lock()
	evs := s.pending
	s.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.emit(ctx, evs); err != nil {
		s.log.Error("serving usage events were not delivered before stopping", "events", len(evs), "err", err)
		return
	}
	s.m.events.Add(float64(len(evs)))
}

// Round scrapes every target once, as of the aligned time at, and emits the
// deltas together with any events still pending. It returns the events it
// delivered (none when Emit failed).
func (s *Scraper) Round(ctx context.Context, at time.Time) []schemas.Event {
	readings := make([]Reading, len(s.targets))
	errs := make([]error, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readings[i], errs[i] = s.scrape(ctx, t)
		}()
	}
	wg.Wait()

	var fresh []schemas.Event
	ok := 0
	for i, t := range s.targets {
		if errs[i] != nil {
			s.m.scrapes.WithLabelValues(t.Deployment, "error").Inc()
			s.m.up.WithLabelValues(t.Deployment, t.URL).Set(0)
			s.log.Warn("scraping an inference server; its next good scrape covers this interval", "deployment", t.Deployment, "url", t.URL, "err", errs[i])
			continue
		}
		ok++
		s.m.scrapes.WithLabelValues(t.Deployment, "ok").Inc()
		s.m.up.WithLabelValues(t.Deployment, t.URL).Set(1)
		for _, d := range s.tracker.Observe(t.Name(), at, readings[i]) {
			if d.Reset {
				s.m.resets.WithLabelValues(t.Deployment).Inc()
			}
			fresh = append(fresh, Event(t, s.cfg.Provider, d))
		}
	}

	s.mu.Lock()
	batch := append(s.pending, fresh...)
	if over := len(batch) - MaxPending; over > 0 {
		s.m.dropped.Add(float64(over))
		batch = batch[over:]
	}
	s.pending = nil
	s.mu.Unlock()

	var emitErr error
	if len(batch) > 0 {
		emitErr = s.emit(ctx, batch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if emitErr != nil {
		s.pending = batch
		s.log.Error("delivering serving usage events; they are sent again next round with the same ids", "events", len(batch), "err", emitErr)
	} else {
		s.m.events.Add(float64(len(batch)))
	}
	s.m.pending.Set(float64(len(s.pending)))
	switch {
	case emitErr != nil:
		s.readyErr = fmt.Errorf("delivering serving usage events: %w", emitErr)
	case ok == 0:
		s.readyErr = fmt.Errorf("none of the %d serving targets could be scraped; see aivis_serving_scrapes_total and the log", len(s.targets))
	default:
		s.readyErr = nil
	}
	if emitErr != nil {
		return nil
	}
	return batch
}

// Ready says whether the last round scraped at least one target and
// delivered its events.
func (s *Scraper) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyErr
}

func (s *Scraper) scrape(ctx context.Context, t Target) (Reading, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("building the request to %s: %w", t.URL, err)
	}
	// The text format: every server here speaks it, and Parse reads only it.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s (is the server up and the url right?): %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("fetching %s: status %s", t.URL, resp.Status)
	}
	limit := s.cfg.MaxPageMiB << 20
	page, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", t.URL, err)
	}
	if int64(len(page)) > limit {
		return nil, fmt.Errorf("reading %s: the page is larger than serving.max_page_mib (%d MiB)", t.URL, s.cfg.MaxPageMiB)
	}
	r, err := Parse(t.Kind, page, t.Model)
	if err != nil {
		return nil, fmt.Errorf("reading %s as %s: %w", t.URL, t.Kind, err)
	}
	return r, nil
}
