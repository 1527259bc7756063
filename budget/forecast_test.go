package budget

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// shape is a day-and-week pattern: busy office hours, quiet nights and
// weekends, with ±20% noise.
func shape(t time.Time, rng *rand.Rand) float64 {
	f := 0.3
	if h := t.Hour(); h >= 8 && h < 19 {
		f = 1.8
	}
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		f *= 0.3
	}
	return f * (0.8 + 0.4*rng.Float64())
}

// simulate evaluates a monthly budget every hour of March 2025 over
// hourly spend rate(t), with four weeks of history before the month, and
// returns the first time a forecast alert is raised and when the spend
// actually reached the amount (zero when it did not).
func simulate(t *testing.T, amount float64, rate func(time.Time) float64) (alertAt, exhausted time.Time) {
	t.Helper()
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	histStart := start.Add(-4 * 7 * 24 * time.Hour)
	var values []float64
	for h := histStart; h.Before(end); h = h.Add(time.Hour) {
		values = append(values, rate(h))
	}
	spec := Spec{ID: "b", Period: Monthly, Location: time.UTC, Amount: decimal.NewFromFloat(amount), Hard: decimal.NewFromFloat(amount), Forecast: true}
	spent := 0.0
	for now := start; now.Before(end); now = now.Add(time.Hour) {
		i := int(now.Sub(histStart).Hours())
		if spent >= amount && exhausted.IsZero() {
			exhausted = now
		}
		from := i - 4*7*24
		fc := Predict(Input{History: Series{Start: histStart.Add(time.Duration(from) * time.Hour), Values: values[from:i]},
			Now: now, Spent: spent, Amount: amount, PeriodEnd: end, Weeks: 4})
		if fc.Low > fc.AtEnd || fc.High < fc.AtEnd || fc.Low < spent {
			t.Fatalf("%s: interval [%v, %v] does not hold the forecast %v above the spend %v", now, fc.Low, fc.High, fc.AtEnd, spent)
		}
		_, crossed := Assess(spec, decimal.NewFromFloat(spent), fc, end)
		for _, c := range crossed {
			if c == ThresholdForecast && alertAt.IsZero() {
				alertAt = now
			}
		}
		spent += values[i]
	}
	return alertAt, exhausted
}

func TestForecastRampAlertsThreeDaysBeforeExhaustion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	origin := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	// Spend grows by about 1.5% a day: slow enough that no single day
	// looks unusual.
	ramp := func(t time.Time) float64 {
		days := t.Sub(origin).Hours() / 24
		return 10 * (1 + 0.015*days) * shape(t, rng)
	}
	alertAt, exhausted := simulate(t, 9000, ramp)
	if exhausted.IsZero() {
		t.Fatal("the ramp never used up the budget; the test's amount is too large")
	}
	if alertAt.IsZero() {
		t.Fatalf("no forecast alert before the budget ran out at %s", exhausted)
	}
	if lead := exhausted.Sub(alertAt); lead < 72*time.Hour {
		t.Fatalf("forecast alert at %s, only %s before the budget ran out at %s; want at least 3 days", alertAt, lead, exhausted)
	}
	t.Logf("alert %s, exhausted %s", alertAt, exhausted)
}

func TestForecastFlatWithinBudgetRaisesNone(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	flat := func(t time.Time) float64 { return 10 * shape(t, rng) }
	// The month spends about 5,700; the budget has about 14% headroom.
	alertAt, exhausted := simulate(t, 6500, flat)
	if !alertAt.IsZero() || !exhausted.IsZero() {
		t.Fatalf("flat spend within budget: forecast alert at %s, exhausted at %s; want neither", alertAt, exhausted)
	}
}

func TestPredictTable(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	end := now.Add(10 * time.Hour)
	constant := func(n int, v float64) Series {
		s := Series{Start: now.Add(-time.Duration(n) * time.Hour)}
		for range n {
			s.Values = append(s.Values, v)
		}
		return s
	}
	for _, c := range []struct {
		name        string
		in          Input
		method      string
		atEnd       float64
		exhaustsIn  time.Duration // 0: not within the period
		wantHoursFt int
	}{
		{"no history", Input{Now: now, Spent: 5, Amount: 100, PeriodEnd: end}, MethodNone, 5, 0, 0},
		{"flat mean", Input{History: constant(6, 2), Now: now, Spent: 5, Amount: 100, PeriodEnd: end}, MethodLinear, 25, 0, 6},
		{"runs out", Input{History: constant(30, 10), Now: now, Spent: 50, Amount: 100, PeriodEnd: end}, MethodLinear, 150, 5 * time.Hour, 30},
		{"already spent", Input{History: constant(30, 1), Now: now, Spent: 120, Amount: 100, PeriodEnd: end}, MethodLinear, 130, time.Nanosecond, 30},
		{"a week: seasonal", Input{History: constant(200, 1), Now: now, Spent: 0, Amount: 100, PeriodEnd: end, Weeks: 4}, MethodSeasonal, 10, 0, 200},
		{"period over", Input{History: constant(30, 1), Now: now, Spent: 7, Amount: 100, PeriodEnd: now}, MethodNone, 7, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc := Predict(c.in)
			if fc.Method != c.method || math.Abs(fc.AtEnd-c.atEnd) > 1e-6 || fc.Hours != c.wantHoursFt {
				t.Fatalf("got %+v, want method %s, at end %v, hours %d", fc, c.method, c.atEnd, c.wantHoursFt)
			}
			switch {
			case c.exhaustsIn == 0 && !fc.ExhaustsAt.IsZero():
				t.Fatalf("exhausts at %s, want not within the period", fc.ExhaustsAt)
			case c.exhaustsIn == time.Nanosecond && !fc.ExhaustsAt.Equal(now):
				t.Fatalf("exhausts at %s, want now", fc.ExhaustsAt)
			case c.exhaustsIn > time.Nanosecond && !fc.ExhaustsAt.Equal(now.Add(c.exhaustsIn)):
				t.Fatalf("exhausts at %s, want %s", fc.ExhaustsAt, now.Add(c.exhaustsIn))
			}
		})
	}
}

func TestAssessStates(t *testing.T) {
	end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	spec := Spec{Amount: decimal.NewFromInt(100), Soft: decimal.NewFromInt(80), Hard: decimal.NewFromInt(100), Forecast: true}
	noForecast := spec
	noForecast.Forecast = false
	risky := Forecast{AtEnd: 150, ExhaustsAt: end.Add(-time.Hour), Hours: 48}
	calm := Forecast{AtEnd: 60, Hours: 48}
	young := risky
	young.Hours = MinForecastHours - 1
	for _, c := range []struct {
		name    string
		spec    Spec
		spent   int64
		fc      Forecast
		state   string
		crossed []string
	}{
		{"ok", spec, 10, calm, "ok", nil},
		{"at risk", spec, 10, risky, "at_risk", []string{"forecast"}},
		{"at risk but forecast off", noForecast, 10, risky, "ok", nil},
		{"too little history to forecast", spec, 10, young, "ok", nil},
		{"soft", spec, 85, calm, "soft", []string{"soft"}},
		{"soft and at risk", spec, 85, risky, "soft", []string{"forecast", "soft"}},
		{"hard", spec, 100, risky, "hard", []string{"soft", "hard"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			state, crossed := Assess(c.spec, decimal.NewFromInt(c.spent), c.fc, end)
			if state != c.state || len(crossed) != len(c.crossed) {
				t.Fatalf("got %s %v, want %s %v", state, crossed, c.state, c.crossed)
			}
			for i := range crossed {
				if crossed[i] != c.crossed[i] {
					t.Fatalf("got %v, want %v", crossed, c.crossed)
				}
			}
		})
	}
}

func TestPeriodBounds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 30, 23, 30, 0, 0, time.UTC) // Monday 01:30 in Berlin, after the DST change
	for _, c := range []struct {
		period     string
		start, end string
	}{
		{Daily, "2025-03-31T00:00:00+02:00", "2025-04-01T00:00:00+02:00"},
		{Weekly, "2025-03-31T00:00:00+02:00", "2025-04-07T00:00:00+02:00"},
		{Monthly, "2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00"},
		{Quarterly, "2025-01-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00"},
		{Annual, "2025-01-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00"},
	} {
		s, e := PeriodBounds(c.period, berlin, at)
		if s.Format(time.RFC3339) != c.start || e.Format(time.RFC3339) != c.end {
			t.Errorf("%s: got [%s, %s), want [%s, %s)", c.period, s.Format(time.RFC3339), e.Format(time.RFC3339), c.start, c.end)
		}
	}
	// In UTC the same instant is still Sunday, in the previous week.
	if s, _ := PeriodBounds(Weekly, time.UTC, at); s.Format(time.DateOnly) != "2025-03-24" {
		t.Errorf("weekly in UTC starts %s, want 2025-03-24", s)
	}
}
