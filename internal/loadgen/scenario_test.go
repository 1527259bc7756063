package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// scenarioEvents generates the valid, first-sent events of a run with the
// scenario, three hours of event time with it starting after 1h30.
func scenarioEvents(t *testing.T, name string) (ScenarioTarget, []*schemas.Event) {
	t.Helper()
	cfg := testConfig()
	cfg.Rate, cfg.TimeScale, cfg.Duration = 200, 60, 3*time.Minute
	cfg.DiurnalAmplitude = 0 // a flat baseline makes before and after comparable
	cfg.Scenario = name
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(cfg)
	sc, ok := g.Scenario()
	if !ok || sc.Start != testStart.Add(90*time.Minute) {
		t.Fatalf("scenario %+v, ok %v; want one starting at %s", sc, ok, testStart.Add(90*time.Minute))
	}
	end := testStart.Add(3 * time.Hour)
	var evs []*schemas.Event
	for {
		it := g.Next()
		if it.Event.Time.After(end) {
			return sc, evs
		}
		if !it.Malformed && !it.Duplicate && it.Event.Status == schemas.StatusOK {
			evs = append(evs, it.Event)
		}
	}
}

// tally sums events and input tokens that match in [from, to).
func tally(evs []*schemas.Event, from, to time.Time, match func(*schemas.Event) bool) (n int, tokens int64) {
	for _, e := range evs {
		if !e.Time.Before(from) && e.Time.Before(to) && match(e) {
			n++
			tokens += *e.Usage.InputTokens + *e.Usage.OutputTokens
		}
	}
	return n, tokens
}

func ratio(t *testing.T, what string, before, after int, lo, hi float64) {
	t.Helper()
	if before == 0 {
		t.Fatalf("%s: nothing before the scenario", what)
	}
	if r := float64(after) / float64(before); r < lo || r > hi {
		t.Fatalf("%s: after/before = %d/%d = %.2f, want between %g and %g", what, after, before, r, lo, hi)
	}
}

func team(name string) func(*schemas.Event) bool {
	return func(e *schemas.Event) bool { return e.Labels["team"] == name }
}

func series(teamName, model string) func(*schemas.Event) bool {
	return func(e *schemas.Event) bool { return e.Labels["team"] == teamName && e.Model == model }
}

func TestScenarioSpike(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioSpike)
	if sc.Team != "search" || sc.Model != "gpt-4o" || sc.End != sc.Start.Add(10*time.Minute) {
		t.Fatalf("target %+v", sc)
	}
	// Ten minutes of the series before, during and after the spike.
	before, _ := tally(evs, sc.Start.Add(-30*time.Minute), sc.Start.Add(-20*time.Minute), series(sc.Team, sc.Model))
	during, _ := tally(evs, sc.Start, sc.End, series(sc.Team, sc.Model))
	after, _ := tally(evs, sc.End.Add(10*time.Minute), sc.End.Add(20*time.Minute), series(sc.Team, sc.Model))
	ratio(t, "spike", before, during, 3.5, 7)
	ratio(t, "after the spike", before, after, 0.5, 1.6)
	// Other series are untouched.
	o1, _ := tally(evs, sc.Start.Add(-30*time.Minute), sc.Start.Add(-20*time.Minute), series("support", "gpt-4o-mini"))
	o2, _ := tally(evs, sc.Start, sc.End, series("support", "gpt-4o-mini"))
	ratio(t, "another series", o1, o2, 0.6, 1.5)
}

func TestScenarioRamp(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioRamp)
	hour := func(from time.Time) int { n, _ := tally(evs, from, from.Add(20*time.Minute), team(sc.Team)); return n }
	before, early, late := hour(sc.Start.Add(-40*time.Minute)), hour(sc.Start), hour(sc.Start.Add(70*time.Minute))
	ratio(t, "ramp, first 20 minutes", before, early, 1.05, 2)
	ratio(t, "ramp, later", before, late, 2, 4.5)
	if late <= early {
		t.Fatalf("spend does not rise: %d then %d", early, late)
	}
	o1, o2 := 0, 0
	o1, _ = tally(evs, sc.Start.Add(-40*time.Minute), sc.Start, team("support"))
	o2, _ = tally(evs, sc.Start.Add(50*time.Minute), sc.Start.Add(90*time.Minute), team("support"))
	ratio(t, "another team", o1, o2, 0.7, 1.4)
}

func TestScenarioNewModel(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioNewModel)
	if sc.Model != "claude-opus-4-1" {
		t.Fatalf("target %+v", sc)
	}
	before, _ := tally(evs, testStart, sc.Start, series(sc.Team, sc.Model))
	after, tokens := tally(evs, sc.Start, sc.Start.Add(30*time.Minute), series(sc.Team, sc.Model))
	if before != 0 || after < 100 || tokens == 0 {
		t.Fatalf("%s for %s: %d events before, %d after (%d tokens)", sc.Model, sc.Team, before, after, tokens)
	}
	// Other teams used it all along.
	if n, _ := tally(evs, testStart, sc.Start, series("support", sc.Model)); n == 0 {
		t.Fatal("the new model vanished from other teams too")
	}
}

func TestScenarioCacheCollapse(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioCacheCollapse)
	cacheShare := func(from, to time.Time, match func(*schemas.Event) bool) (float64, int) {
		var read, in int64
		n := 0
		for _, e := range evs {
			if !e.Time.Before(from) && e.Time.Before(to) && match(e) {
				n++
				in += *e.Usage.InputTokens
				if e.Usage.CacheReadInputTokens != nil {
					read += *e.Usage.CacheReadInputTokens
				}
			}
		}
		return float64(read) / float64(max(in, 1)), n
	}
	before, n1 := cacheShare(testStart, sc.Start, series(sc.Team, sc.Model))
	after, n2 := cacheShare(sc.Start, sc.Start.Add(time.Hour), series(sc.Team, sc.Model))
	if before < 0.1 || after != 0 || n2 < n1/3 {
		t.Fatalf("%s/%s cache read share %.2f (%d events) then %.2f (%d events); want reads, then none at the same traffic", sc.Team, sc.Model, before, n1, after, n2)
	}
	if other, _ := cacheShare(sc.Start, sc.Start.Add(time.Hour), series("support", sc.Model)); other < 0.1 {
		t.Fatalf("another team's cache collapsed too: %.2f", other)
	}
}

func TestScenarioRunawayKey(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioRunawayKey)
	key := func(e *schemas.Event) bool { return e.APIKeyID == sc.APIKeyID }
	all := func(*schemas.Event) bool { return true }
	before, _ := tally(evs, sc.Start.Add(-20*time.Minute), sc.Start, key)
	during, _ := tally(evs, sc.Start, sc.End, key)
	total, _ := tally(evs, sc.Start, sc.End, all)
	if sc.APIKeyID == "" || float64(during) < 0.6*float64(total) {
		t.Fatalf("key %q sent %d of %d events during the loop", sc.APIKeyID, during, total)
	}
	ratio(t, "runaway key", before, during, 8, 1000)
	if !strings.Contains(sc.String(), "runaway_key") {
		t.Fatal(sc.String())
	}
}

func TestScenarioValidation(t *testing.T) {
	cfg := testConfig()
	cfg.Scenario, cfg.ScenarioAt = "meltdown", -time.Second
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `scenario: unknown scenario "meltdown"`) || !strings.Contains(err.Error(), "scenario_at:") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := NewGenerator(testConfig()).Scenario(); ok {
		t.Fatal("a scenario without one configured")
	}
}

func TestScenarioGovernance(t *testing.T) {
	sc, evs := scenarioEvents(t, ScenarioGovernance)
	if sc.Model != GovernanceModel || sc.APIKeyID == "" {
		t.Fatalf("target %+v", sc)
	}
	var preview, previewBefore, newRegion, regionBefore, pii, piiBefore, sized int
	for _, e := range evs {
		after := !e.Time.Before(sc.Start)
		if e.Model == GovernanceModel {
			if after {
				preview++
			} else {
				previewBefore++
			}
		}
		if e.ProviderRegion == "eu-west-1" {
			if !after || e.APIKeyID != sc.APIKeyID {
				regionBefore++
			}
			newRegion++
		}
		if e.Labels["data_class"] == "pii" {
			if !after || e.ProviderRegion != "us-east-1" {
				piiBefore++
			}
			pii++
		}
		if e.Status == schemas.StatusOK && (e.ProviderRegion == "" || e.RequestBytes == nil) {
			t.Fatalf("event %s has no region or size", e.EventID)
		}
		if e.RequestBytes != nil {
			sized++
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("event %s: %v", e.EventID, err)
		}
	}
	if preview < 20 || previewBefore != 0 || newRegion < 5 || regionBefore != 0 || pii < 5 || piiBefore != 0 || sized == 0 {
		t.Fatalf("preview %d (before %d), new region %d (wrong %d), pii %d (wrong %d)", preview, previewBefore, newRegion, regionBefore, pii, piiBefore)
	}
}

// TestSavingsScenariosAreFixedAndValid: every savings scenario gives
// valid events, the same ones for the same hours, and the generator sends
// all of those that fall within its run, once each, among its own traffic.
func TestSavingsScenariosAreFixedAndValid(t *testing.T) {
	start := time.Date(2025, 11, 10, 0, 0, 0, 0, time.UTC)
	for _, name := range SavingsScenarios {
		for _, control := range []bool{false, true} {
			a, err := SavingsTraffic(name, start, 3, control)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := SavingsTraffic(name, start, 3, control)
			if len(a) == 0 || len(a) != len(b) || a[0].EventID != b[0].EventID {
				t.Fatalf("%s (control %v): %d and %d events, not the same", name, control, len(a), len(b))
			}
			for i := range a {
				if err := a[i].Validate(); err != nil {
					t.Fatalf("%s event %d: %v", name, i, err)
				}
				if i > 0 && a[i].Time.Before(a[i-1].Time) {
					t.Fatalf("%s events out of time order at %d", name, i)
				}
			}
		}
	}
	if _, err := SavingsTraffic("savings_nothing", start, 1, false); err == nil {
		t.Error("unknown savings scenario accepted")
	}
	cfg := DefaultConfig()
	cfg.SavingsScenarios = []string{"savings_nothing"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "savings_scenarios[0]") {
		t.Errorf("Validate: %v, want savings_scenarios[0] named", err)
	}

	cfg = DefaultConfig()
	cfg.Start, cfg.Duration, cfg.TimeScale, cfg.Rate = start, time.Minute, 120, 200
	cfg.SavingsScenarios = []string{SavingsBatch, SavingsGPU}
	want, _ := SavingsTraffic(SavingsBatch, start, 2, false)
	gpu, _ := SavingsTraffic(SavingsGPU, start, 2, false)
	want = append(want, gpu...)
	g := NewGenerator(cfg)
	end := start.Add(2 * time.Hour)
	seen := map[string]int{}
	normal := 0
	for {
		it := g.Next()
		if it.Due > cfg.Duration {
			break
		}
		if strings.HasPrefix(it.Event.Source, "loadgen/savings_") {
			seen[it.Event.EventID]++
		} else {
			normal++
		}
	}
	for _, ev := range want {
		if ev.Time.Before(end.Add(-time.Minute)) && seen[ev.EventID] != 1 {
			t.Fatalf("scenario event %s at %s sent %d times, want once", ev.EventID, ev.Time, seen[ev.EventID])
		}
	}
	if normal == 0 {
		t.Error("no normal traffic beside the scenarios")
	}
}
