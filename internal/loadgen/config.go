// Package loadgen produces synthetic but realistic LLM usage traffic for
// demos, load tests and end-to-end checks of the pipeline.
//
// A Generator turns a seed into a deterministic stream of Items: llm.request
// events from several providers, models and teams, with the imperfections a
// real pipeline must survive (duplicate submissions, out-of-order and late
// event times, malformed events). Run paces a Generator to a rate and hands
// batches to a Sink: HTTPSink posts them to ingest, KafkaSink produces them
// straight to the raw topic.
//
// Event time and wall time are separate clocks: the Generator schedules each
// item at a wall offset from the start of the run, and its event time is
// Start + offset × TimeScale, so a demo can replay hours of traffic in a
// minute. Traffic follows a daily sine on the event-time clock plus periodic
// bursts in which one team suddenly spends more.
package loadgen

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config describes the traffic to generate. Start from DefaultConfig: a zero
// rate means zero, not "default".
type Config struct {
	// Rate is the mean number of items per wall second, before the daily
	// shape and bursts are applied.
	Rate float64 `koanf:"rate"`
	// Duration bounds the run in wall time; 0 runs until the context ends.
	Duration time.Duration `koanf:"duration"`
	// Seed makes the stream reproducible: the same Config gives the same
	// items, event ids included. Give parallel generators distinct seeds.
	Seed int64 `koanf:"seed"`
	// Metrics, if set, receives aivis_loadgen_items_total.
	Metrics prometheus.Registerer `koanf:"-"`
	// Teams replaces the built-in teams; each gets two projects.
	Teams []string `koanf:"teams"`
	// Providers restricts traffic to these providers (see Models).
	Providers []string `koanf:"providers"`

	// DuplicateRate is the share of items that resend an earlier event's
	// exact bytes (same event_id), as a retrying producer would.
	DuplicateRate float64 `koanf:"duplicate_rate"`
	// OutOfOrderRate is the share of events whose time is shifted back by up
	// to 20 s of event time.
	OutOfOrderRate float64 `koanf:"out_of_order_rate"`
	// LateRate is the share of events whose time lies 1 to 3 minutes in the
	// past of the event-time clock.
	LateRate float64 `koanf:"late_rate"`
	// MalformedRate is the share of items that are broken JSON or fail
	// schemas.Validate; ingest must reject them.
	MalformedRate float64 `koanf:"malformed_rate"`
	// ErrorRate is the share of requests with status "error" (no usage).
	ErrorRate float64 `koanf:"error_rate"`
	// UnownedRate is the share of requests made with a key no team owns and
	// without labels, so enrich has something to flag as unattributed.
	UnownedRate float64 `koanf:"unowned_rate"`

	// DiurnalAmplitude shapes the rate over each day of event time:
	// rate × (1 + amplitude × sin), peaking at 14:00 UTC. 0 gives a flat rate.
	DiurnalAmplitude float64 `koanf:"diurnal_amplitude"`
	// BurstEvery is the event-time period of bursts; 0 (the default)
	// disables them. A burst ends each period and lasts BurstDuration. A
	// burst is an anomaly by construction (one team on one model at
	// BurstFactor× the whole traffic), so the default traffic has none and
	// the bursts scenario turns them on (2h, 5m, 5×), labelled like the
	// other staged incidents.
	BurstEvery time.Duration `koanf:"burst_every"`
	// BurstDuration is how long each burst lasts, in event time.
	BurstDuration time.Duration `koanf:"burst_duration"`
	// BurstFactor multiplies the rate during a burst; the extra traffic comes
	// from one team on one model.
	BurstFactor float64 `koanf:"burst_factor"`

	// Start is where the event-time clock begins. Zero means: chosen so that
	// the event clock reaches the wall clock when Duration ends (that is,
	// now, when TimeScale is 1), so no event lies in the future.
	Start time.Time `koanf:"start"`
	// TimeScale is event seconds per wall second; 60 replays an hour of
	// traffic in a minute.
	TimeScale float64 `koanf:"time_scale"`

	// Scenario stages one incident (see Scenarios) on top of the traffic
	// and turns the periodic bursts off; empty stages none.
	Scenario string `koanf:"scenario"`
	// ScenarioAt is when it starts, in event time after Start; 0 means
	// halfway through a bounded run (an hour into an unbounded one), so
	// the detector has a baseline first.
	ScenarioAt time.Duration `koanf:"scenario_at"`

	// GPU also simulates a GPU host and its serving deployment (see
	// GPUSim) on the same event clock: gpu.usage events and the serving
	// deployment's token events go to the sink with the API traffic.
	GPU bool `koanf:"gpu"`
	// SavingsScenarios add the fixed traffic of savings scenarios (see
	// SavingsScenarios) over every hour of event time the run covers.
	SavingsScenarios []string `koanf:"savings_scenarios"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Rate:             50,
		Duration:         time.Minute,
		Seed:             1,
		DuplicateRate:    0.02,
		OutOfOrderRate:   0.05,
		LateRate:         0.01,
		MalformedRate:    0.005,
		ErrorRate:        0.02,
		UnownedRate:      0.01,
		DiurnalAmplitude: 0.5,
		BurstEvery:       0,
		BurstDuration:    5 * time.Minute,
		BurstFactor:      5,
		TimeScale:        1,
	}
}

// maxRate keeps one process's schedule sane; run several for more.
const maxRate = 1_000_000

// Validate reports every problem in c at once, each named by its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !(c.Rate > 0 && c.Rate <= maxRate) {
		bad("rate", "must be between 0 (exclusive) and %d events per second, got %g", maxRate, c.Rate)
	}
	if c.Duration < 0 {
		bad("duration", "must not be negative (0 runs until interrupted), got %s", c.Duration)
	}
	seen := map[string]bool{}
	for i, t := range c.Teams {
		switch {
		case t == "":
			bad(fmt.Sprintf("teams[%d]", i), "must not be empty")
		case seen[t]:
			bad(fmt.Sprintf("teams[%d]", i), "team %q is listed twice", t)
		}
		seen[t] = true
	}
	known := map[string]bool{}
	for _, m := range catalog {
		known[m.provider] = true
	}
	for i, p := range c.Providers {
		if !known[p] {
			bad(fmt.Sprintf("providers[%d]", i), "unknown provider %q (known: %s)", p, providerList())
		}
	}
	for _, r := range []struct {
		key string
		v   float64
	}{
		{"duplicate_rate", c.DuplicateRate},
		{"out_of_order_rate", c.OutOfOrderRate},
		{"late_rate", c.LateRate},
		{"malformed_rate", c.MalformedRate},
		{"error_rate", c.ErrorRate},
		{"unowned_rate", c.UnownedRate},
	} {
		if !(r.v >= 0 && r.v <= 1) {
			bad(r.key, "must be a share between 0 and 1, got %g", r.v)
		}
	}
	if c.DuplicateRate+c.MalformedRate > 1 {
		bad("duplicate_rate", "plus malformed_rate must not exceed 1, got %g", c.DuplicateRate+c.MalformedRate)
	}
	if c.OutOfOrderRate+c.LateRate > 1 {
		bad("out_of_order_rate", "plus late_rate must not exceed 1, got %g", c.OutOfOrderRate+c.LateRate)
	}
	if !(c.DiurnalAmplitude >= 0 && c.DiurnalAmplitude < 1) {
		bad("diurnal_amplitude", "must be at least 0 and below 1, got %g", c.DiurnalAmplitude)
	}
	if c.BurstEvery < 0 {
		bad("burst_every", "must not be negative (0 disables bursts), got %s", c.BurstEvery)
	}
	if c.BurstEvery > 0 {
		if c.BurstDuration <= 0 || c.BurstDuration >= c.BurstEvery {
			bad("burst_duration", "must be positive and shorter than burst_every (%s), got %s", c.BurstEvery, c.BurstDuration)
		}
		if !(c.BurstFactor >= 1 && c.BurstFactor <= 1000) {
			bad("burst_factor", "must be between 1 and 1000, got %g", c.BurstFactor)
		}
	}
	if !(c.TimeScale > 0 && c.TimeScale <= 1_000_000) {
		bad("time_scale", "must be positive (1 = event time runs at wall speed), got %g", c.TimeScale)
	}
	if c.Scenario != "" && !slices.Contains(Scenarios, c.Scenario) {
		bad("scenario", "unknown scenario %q (known: %s)", c.Scenario, scenarioList())
	}
	for i, name := range c.SavingsScenarios {
		if !slices.Contains(SavingsScenarios, name) {
			bad(fmt.Sprintf("savings_scenarios[%d]", i), "unknown savings scenario %q (known: %s)", name, strings.Join(SavingsScenarios, ", "))
		}
	}
	if c.ScenarioAt < 0 {
		bad("scenario_at", "must not be negative (0: halfway through the run), got %s", c.ScenarioAt)
	}
	if !c.Start.IsZero() && (c.Start.Year() < 2001 || c.Start.Year() > 2199) {
		bad("start", "%s is outside the years events may carry (2001-2199)", c.Start.Format(time.RFC3339))
	}
	return errors.Join(errs...)
}

// startAt resolves a zero Start: the event clock meets the wall clock when a
// bounded run ends.
func (c Config) startAt(now time.Time) time.Time {
	if !c.Start.IsZero() {
		return c.Start.UTC()
	}
	back := time.Duration(float64(c.Duration) * (c.TimeScale - 1))
	return now.Add(-back).UTC()
}
