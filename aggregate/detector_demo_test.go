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
	if testing.Short() {
		t.Skip("generates and prices a few hundred thousand events")
	}
	const days = 4
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
	cfg.Rate, cfg.TimeScale = 300, 180
	cfg.Start = simStart
	cfg.Duration = days * 24 * time.Hour / 180
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := loadgen.NewGenerator(cfg)
	end := simStart.Add(days * 24 * time.Hour)

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
		if time.Duration(float64(it.Due)*cfg.TimeScale) >= end.Sub(simStart) {
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
		if _, trs := d.Step(sk, ws, c); len(trs) > 0 {
			for _, tr := range trs {
				if tr.Incident.Status == StatusFiring {
					v := tr.Verdict
					incidents = append(incidents, fmt.Sprintf("%s at %s (span %d, z %.1f, mean %s, baseline %s, window %s)", sk, v.WindowStart.Format("Mon 15:04"), v.Span, v.Z, v.MeanPicos, v.BaselinePicos, v.CostPicos))
				}
			}
		}
	}
	for ws := simStart.Add(-3 * time.Minute); ws.Before(end); ws = ws.Add(time.Minute) {
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
	perDay := float64(len(incidents)) / days
	t.Logf("%d events in %d (team, model) series over %d simulated days: %d incidents, %.2f a day %v",
		events, len(known), days, len(incidents), perDay, incidents)
	if events < days*100_000 {
		t.Fatalf("only %d events: the generator did not produce the demo's density", events)
	}
	if perDay >= 1 {
		t.Fatalf("%.2f incidents a simulated day on the default demo traffic, want fewer than 1: %v", perDay, incidents)
	}
}
