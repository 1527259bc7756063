package aggregate

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// TestDetectorQuietOnDefaultDemoTraffic feeds the detector what make demo
// sends with no scenario, for several simulated days: the load generator
// at the demo's rate and time scale (300 items a wall second, 180 event
// seconds a wall second), priced with the built-in catalog and owners,
// summed into one-minute (team, model) windows and stepped as the scorer
// steps them (every known series each window, absent ones at zero). The
// issue's bar is fewer than one alert a simulated day.
func TestDetectorQuietOnDefaultDemoTraffic(t *testing.T) {
	skipHeavy(t)
	const days = 4
	events, series, incidents := demoIncidents(t, simStart, days*24*time.Hour, 1)
	perDay := float64(len(incidents)) / days
	t.Logf("%d events in %d (team, model) series over %d simulated days: %d incidents, %.2f a day %v",
		events, series, days, len(incidents), perDay, incidents)
	if events < days*100_000 {
		t.Fatalf("only %d events: the generator did not produce the demo's density", events)
	}
	if perDay >= 1 {
		t.Fatalf("%.2f incidents a simulated day on the default demo traffic, want fewer than 1: %v", perDay, incidents)
	}
}

// TestDetectorColdStartOnDemoTraffic is the first hours of a detector
// with no history, on the rising half of the demo's daily curve (01:00 to
// 10:00 UTC, traffic up 2.4×): the recent baseline trails the rise and the
// dispersion of sparse series rests on few requests, so this is where it is
// noisiest. Eight 9-hour runs, as make demo with a three-minute load.
func TestDetectorColdStartOnDemoTraffic(t *testing.T) {
	skipHeavy(t)
	const runs = 8
	total := 0
	for seed := int64(1); seed <= runs; seed++ {
		start := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
		_, _, inc := demoIncidents(t, start, 9*time.Hour, seed)
		total += len(inc)
		t.Logf("seed %d: %d incidents %v", seed, len(inc), inc)
	}
	t.Logf("%d incidents over %d cold starts of 9 simulated hours", total, runs)
	if total >= runs {
		t.Fatalf("%d incidents over %d cold starts of 9 h, want fewer than one a run", total, runs)
	}
}

// skipHeavy skips the demo-traffic tests in -short and -race runs: they
// are single-goroutine arithmetic over half a million priced events, which
// the race detector slows tenfold; make test runs them without it.
func skipHeavy(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("generates and prices a few hundred thousand events")
	}
	if raceDetector {
		t.Skip("single-goroutine arithmetic; make test runs it without -race")
	}
}

// demoIncidents generates what make demo sends with no scenario from start
// for dur of event time, prices it, and steps a fresh detector over its
// one-minute (team, model) windows as the scorer does (every known series
// each window, absent ones at zero). It returns the events counted, the
// series seen and the incidents fired.
func demoIncidents(t *testing.T, start time.Time, dur time.Duration, seed int64) (int, int, []string) {
	t.Helper()
	cat, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	owners, err := enrich.DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	en := enrich.NewEnricher(cat, owners)

	cfg := loadgen.DefaultConfig()
	cfg.Rate, cfg.TimeScale, cfg.Seed = 300, 180, seed
	cfg.Start = start
	cfg.Duration = time.Duration(float64(dur) / cfg.TimeScale)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := loadgen.NewGenerator(cfg)
	end := start.Add(dur)

	type key struct {
		ws   time.Time
		team string
		mdl  string
	}
	windows := map[key]schemas.Picos128{}
	seen := map[string]bool{}
	events := 0
	for {
		it := g.Next()
		if time.Duration(float64(it.Due)*cfg.TimeScale) >= dur {
			break
		}
		if it.Malformed || seen[it.Event.EventID] {
			continue // ingest refuses the one, the aggregator drops the other
		}
		seen[it.Event.EventID] = true
		ev := *it.Event
		e := en.Enrich(&ev)
		k := key{e.Time.UTC().Truncate(time.Minute), e.Owner.Team, e.ModelID()}
		windows[k] = windows[k].Add(e.CostPicos)
		events++
	}
	byWindow := map[time.Time][]key{}
	for k := range windows {
		byWindow[k.ws] = append(byWindow[k.ws], k)
	}

	d := NewDetector(DefaultAnomalyConfig(), time.Minute)
	known := map[string]bool{}
	var incidents []string
	step := func(sk string, ws time.Time, c schemas.Picos128) {
		_, trs := d.Step(sk, ws, c)
		for _, tr := range trs {
			if tr.Incident.Status == StatusFiring {
				v := tr.Verdict
				incidents = append(incidents, fmt.Sprintf("%s at %s (span %d, z %.1f, mean %s, baseline %s, window %s)",
					sk, v.WindowStart.Format("Mon 15:04"), v.Span, v.Z, v.MeanPicos, v.BaselinePicos, v.CostPicos))
			}
		}
	}
	for ws := start.Add(-3 * time.Minute); ws.Before(end); ws = ws.Add(time.Minute) {
		ks := byWindow[ws]
		sort.Slice(ks, func(i, j int) bool { return ks[i].team+"/"+ks[i].mdl < ks[j].team+"/"+ks[j].mdl })
		present := map[string]bool{}
		for _, k := range ks {
			sk := k.team + "/" + k.mdl
			present[sk], known[sk] = true, true
			step(sk, ws, windows[k])
		}
		for sk := range known {
			if !present[sk] && d.Last(sk).Before(ws) {
				step(sk, ws, schemas.Picos128{})
			}
		}
	}
	return events, len(known), incidents
}
