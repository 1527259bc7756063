package aggregate

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// simSeries is one synthetic (team, model) series shaped like loadgen's
// traffic: Poisson requests per window with a daily sine (and a quieter
// weekend), each request's cost log-normal around medianPicos.
type simSeries struct {
	key         string
	reqPerWin   float64 // mean requests per window at the daily mean
	medianPicos float64
	amplitude   float64
	weekend     float64 // weekend rate factor (1: no weekly pattern)
}

// injection multiplies one series' cost over [from, to) by factor(t); a
// factor on a series that does not otherwise exist creates it (a new model).
type injection struct {
	scenario string
	key      string
	from, to time.Time
	factor   func(elapsed, length time.Duration) float64
	// addPicos adds cost per window instead of multiplying (a new series).
	addPicos float64
}

var simStart = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC) // a Monday

func (s simSeries) rate(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	r := s.reqPerWin * (1 + s.amplitude*math.Sin(2*math.Pi*(h-8)/24))
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		r *= s.weekend
	}
	return r
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (s simSeries) cost(rng *rand.Rand, t time.Time) float64 {
	n := poisson(rng, s.rate(t))
	var c float64
	for i := 0; i < n; i++ {
		c += s.medianPicos * math.Exp(0.8*rng.NormFloat64())
	}
	return c
}

// demoSeries are demo-like: 4 teams × 4 models, a few requests per minute
// each, requests of $0.001 to $0.03.
func demoSeries(amplitude, weekend float64) []simSeries {
	var out []simSeries
	teams := []string{"search", "support", "research", "growth"}
	models := []struct {
		name  string
		req   float64
		picos float64
	}{{"gpt-4o", 3, 5e9}, {"claude-sonnet", 2, 8e9}, {"gpt-4o-mini", 8, 3e8}, {"gemini-pro", 1, 2e10}}
	for ti, t := range teams {
		for _, m := range models {
			out = append(out, simSeries{key: t + "/" + m.name, reqPerWin: m.req * (1 + 0.5*float64(ti)), medianPicos: m.picos, amplitude: amplitude, weekend: weekend})
		}
	}
	return out
}

type simAlert struct {
	key    string
	fired  time.Time
	start  time.Time
	status string
}

// simulate steps a fresh detector over days of one-minute windows of the
// series plus injections and returns every transition.
func simulate(cfg AnomalyConfig, series []simSeries, inj []injection, days int, seed uint64) []simAlert {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := NewDetector(cfg, time.Minute)
	var out []simAlert
	end := simStart.Add(time.Duration(days) * 24 * time.Hour)
	extra := map[string]bool{}
	for _, in := range inj {
		if in.addPicos > 0 {
			extra[in.key] = true
		}
	}
	var extraKeys []string
	for k := range extra {
		extraKeys = append(extraKeys, k)
	}
	sort.Strings(extraKeys)
	for t := simStart; t.Before(end); t = t.Add(time.Minute) {
		step := func(key string, c float64) {
			for _, in := range inj {
				if in.key == key && !t.Before(in.from) && t.Before(in.to) {
					if in.addPicos > 0 {
						c += in.addPicos * math.Exp(0.3*rng.NormFloat64())
					} else {
						c *= in.factor(t.Sub(in.from), in.to.Sub(in.from))
					}
				}
			}
			if c == 0 && extra[key] {
				return // a series that does not exist yet has no rows
			}
			_, trs := d.Step(key, t, picosRound(c))
			for _, tr := range trs {
				out = append(out, simAlert{key: key, fired: tr.Verdict.WindowStart, start: tr.Incident.Start, status: tr.Incident.Status})
			}
		}
		for _, s := range series {
			step(s.key, s.cost(rng, t))
		}
		for _, k := range extraKeys {
			step(k, 0)
		}
	}
	return out
}

func firings(alerts []simAlert) []simAlert {
	var out []simAlert
	for _, a := range alerts {
		if a.status == StatusFiring {
			out = append(out, a)
		}
	}
	return out
}

// A 5× spike is told from noise in two windows where a window holds a
// dozen requests or more; the demo's sparsest series (a request or two a
// minute) are told on longer spans, a few windows later (see
// docs/anomalies.md and TestDetectorQuality).
func TestDetectorFlagsAFiveFoldSpikeWithinTwoWindows(t *testing.T) {
	series := []simSeries{
		{key: "agents/gpt-4o", reqPerWin: 15, medianPicos: 5e9, amplitude: 0.5, weekend: 1},
		{key: "search/claude-sonnet", reqPerWin: 20, medianPicos: 8e9, amplitude: 0.5, weekend: 1},
		{key: "support/gpt-4o-mini", reqPerWin: 200, medianPicos: 3e8, amplitude: 0.5, weekend: 1},
	}
	for i, s := range series {
		at := simStart.Add(32*time.Hour + time.Duration(i)*127*time.Minute)
		inj := []injection{{scenario: "spike", key: s.key, from: at, to: at.Add(10 * time.Minute), factor: constant(5)}}
		alerts := firings(simulate(DefaultAnomalyConfig(), []simSeries{s}, inj, 2, uint64(i+1)))
		if len(alerts) != 1 {
			t.Errorf("%s: %d incidents, want 1: %+v", s.key, len(alerts), alerts)
			continue
		}
		if delay := alerts[0].fired.Sub(at); delay < 0 || delay > time.Minute {
			t.Errorf("%s: spike at %s fired at %s, want within 2 windows", s.key, at.Format("15:04"), alerts[0].fired.Format("15:04"))
		}
	}
}

func TestDetectorIsQuietOnAStrongDailyPattern(t *testing.T) {
	series := demoSeries(0.9, 0.3)
	for i := range series {
		series[i].reqPerWin *= 10 // dense enough that the floors are not what keeps it quiet
	}
	if alerts := firings(simulate(DefaultAnomalyConfig(), series, nil, 7, 7)); len(alerts) > 0 {
		t.Fatalf("%d incidents in 7 days without anomalies: %+v", len(alerts), alerts)
	}
}

func TestDetectorRaisesUnderOneAlertADayOnDemoTraffic(t *testing.T) {
	const days = 14
	alerts := firings(simulate(DefaultAnomalyConfig(), demoSeries(0.5, 1), nil, days, 3))
	if perDay := float64(len(alerts)) / days; perDay >= 1 {
		t.Fatalf("%.2f incidents a day on %d series of demo traffic: %+v", perDay, len(demoSeries(0.5, 1)), alerts)
	}
}

func TestDetectorLifecycleOfASustainedAnomaly(t *testing.T) {
	s := demoSeries(0.5, 1)[0]
	at := simStart.Add(30 * time.Hour)
	inj := []injection{{scenario: "spike", key: s.key, from: at, to: at.Add(90 * time.Minute), factor: constant(6)}}
	alerts := simulate(DefaultAnomalyConfig(), []simSeries{s}, inj, 2, 11)
	var got []string
	for _, a := range alerts {
		got = append(got, a.status)
		if !a.start.Equal(alerts[0].start) {
			t.Errorf("incident start moved: %+v", alerts)
		}
	}
	if strings.Join(got, ",") != "firing,resolved" {
		t.Fatalf("transitions %v, want firing then resolved: %+v", got, alerts)
	}
}

func constant(f float64) func(time.Duration, time.Duration) float64 {
	return func(time.Duration, time.Duration) float64 { return f }
}

// scenarioInjections places one labelled anomaly a day from day `from` on,
// cycling through the loadgen scenarios, on series picked by rng.
func scenarioInjections(series []simSeries, from, days int, rng *rand.Rand) []injection {
	var out []injection
	names := []string{"spike", "ramp", "new_model", "cache_collapse", "runaway_key"}
	for day := from; day < from+days; day++ {
		name := names[(day-from)%len(names)]
		s := series[rng.IntN(len(series))]
		at := simStart.Add(time.Duration(day)*24*time.Hour + time.Duration(6+rng.IntN(14))*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
		in := injection{scenario: name, key: s.key, from: at}
		switch name {
		case "spike": // 5× cost for 10 minutes
			in.to, in.factor = at.Add(10*time.Minute), constant(5)
		case "ramp": // cost climbs to 4× over six hours, then stays an hour
			in.to = at.Add(7 * time.Hour)
			in.factor = func(e, _ time.Duration) float64 { return 1 + 3*math.Min(1, e.Hours()/6) }
		case "new_model": // a new expensive model: $0.50 a minute from nothing
			in.key = strings.Split(s.key, "/")[0] + "/new-model-" + fmt.Sprint(day)
			in.to, in.addPicos = at.Add(2*time.Hour), 5e11
		case "cache_collapse": // cached input stops hitting: 2.5× for three hours
			in.to, in.factor = at.Add(3*time.Hour), constant(2.5)
		case "runaway_key": // one API key loops: 3× the series for an hour
			in.to, in.factor = at.Add(time.Hour), constant(3)
		}
		out = append(out, in)
	}
	return out
}

// TestDetectorQuality runs the detector over simulated weeks of labelled
// scenario traffic and reports precision and recall per scenario; the
// table in docs/anomalies.md is its output:
//
//	go test ./aggregate -run TestDetectorQuality -v
func TestDetectorQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates weeks of traffic")
	}
	const warmDays, days, seeds = 21, 15, 3
	type tally struct {
		injected, detected int
		delay              time.Duration
	}
	per := map[string]*tally{}
	var incidents, trueIncidents, cleanIncidents int
	for seed := uint64(1); seed <= seeds; seed++ {
		series := demoSeries(0.5, 0.6)
		rng := rand.New(rand.NewPCG(seed, 42))
		inj := scenarioInjections(series, warmDays, days, rng)
		fired := firings(simulate(DefaultAnomalyConfig(), series, inj, warmDays+days, seed))
		for _, in := range inj {
			tl := per[in.scenario]
			if tl == nil {
				tl = &tally{}
				per[in.scenario] = tl
			}
			tl.injected++
			for _, a := range fired {
				if a.key == in.key && !a.start.Before(in.from) && a.start.Before(in.to) {
					tl.detected++
					tl.delay += a.fired.Sub(in.from)
					break
				}
			}
		}
		for _, a := range fired {
			incidents++
			if a.fired.Before(simStart.Add(warmDays * 24 * time.Hour)) {
				cleanIncidents++
			}
			for _, in := range inj {
				// An incident counts as true if it starts inside an
				// injection or within the resolve slack after it.
				if a.key == in.key && !a.start.Before(in.from) && a.start.Before(in.to.Add(10*time.Minute)) {
					trueIncidents++
					break
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | injected | detected | recall | mean delay |\n|---|---|---|---|---|\n")
	var inj, det int
	for _, name := range []string{"spike", "ramp", "new_model", "cache_collapse", "runaway_key"} {
		tl := per[name]
		inj += tl.injected
		det += tl.detected
		delay := "-"
		if tl.detected > 0 {
			delay = (tl.delay / time.Duration(tl.detected)).Round(time.Minute).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %s |\n", name, tl.injected, tl.detected, float64(tl.detected)/float64(tl.injected), delay)
	}
	precision := float64(trueIncidents) / math.Max(1, float64(incidents))
	fmt.Fprintf(&b, "| **all** | %d | %d | %.2f | |\n\n", inj, det, float64(det)/float64(inj))
	fmt.Fprintf(&b, "incidents %d, true %d: precision %.2f; false incidents on %d clean series-days ×%d seeds: %d (%.2f a day)\n",
		incidents, trueIncidents, precision, warmDays*len(demoSeries(0, 1)), seeds, cleanIncidents, float64(cleanIncidents)/float64(warmDays*seeds))
	t.Log("\n" + b.String())
	if precision < 0.8 || float64(det)/float64(inj) < 0.8 {
		t.Errorf("precision %.2f or recall %.2f below 0.8, the floor docs/anomalies.md promises", precision, float64(det)/float64(inj))
	}
}

// The detector's rounding to whole picodollars: half away from zero, past
// int64 too, saturating at the ends of 128 bits.
func TestPicosRounding(t *testing.T) {
	big20M, _ := new(big.Int).SetString("20000000000000000000000", 10)
	for _, c := range []struct {
		got  schemas.Picos128
		want string
	}{
		{picosRound(2.5), "3"},
		{picosRound(-2.5), "-3"},
		{picosRound(2.4999), "2"},
		{picosRound(2e22), big20M.String()},
		{picosRound(math.NaN()), "0"},
		{picosRound(math.Inf(1)), "170141183460469231731687303715884105727"},
		{divPicos(schemas.PicosOf(7), 2), "4"},
		{divPicos(schemas.PicosOf(-7), 2), "-4"},
		{divPicos(schemas.PicosOf(10), 3), "3"},
		{divPicos(func() schemas.Picos128 { p, _ := schemas.PicosFromBig(big20M); return p }(), 3), "6666666666666666666667"},
		{mulPicos(math.MaxInt64, 60), new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(60)).String()},
	} {
		if c.got.String() != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}
