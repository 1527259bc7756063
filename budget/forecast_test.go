package budget

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
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
		spentUSD := decimal.NewFromFloat(spent)
		fc := Predict(Input{History: Series{Start: histStart.Add(time.Duration(from) * time.Hour), Values: values[from:i]},
			Now: now, Spent: spentUSD, Amount: spec.Amount, PeriodEnd: end, Weeks: 4})
		if fc.Low.GreaterThan(fc.AtEnd) || fc.High.LessThan(fc.AtEnd) || fc.Low.LessThan(spentUSD) {
			t.Fatalf("%s: interval [%v, %v] does not hold the forecast %v above the spend %v", now, fc.Low, fc.High, fc.AtEnd, spent)
		}
		_, crossed := Assess(spec, spentUSD, fc, end)
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
		atEnd       string
		exhaustsIn  time.Duration // 0: not within the period
		wantHoursFt int
	}{
		{"no history", Input{Now: now, Spent: usd("5"), Amount: usd("100"), PeriodEnd: end}, MethodNone, "5", 0, 0},
		{"flat mean", Input{History: constant(6, 2), Now: now, Spent: usd("5"), Amount: usd("100"), PeriodEnd: end}, MethodLinear, "25", 0, 6},
		{"runs out", Input{History: constant(30, 10), Now: now, Spent: usd("50"), Amount: usd("100"), PeriodEnd: end}, MethodLinear, "150", 5 * time.Hour, 30},
		{"already spent", Input{History: constant(30, 1), Now: now, Spent: usd("120"), Amount: usd("100"), PeriodEnd: end}, MethodLinear, "130", time.Nanosecond, 30},
		{"a week: seasonal", Input{History: constant(200, 1), Now: now, Spent: usd("0"), Amount: usd("100"), PeriodEnd: end, Weeks: 4}, MethodSeasonal, "10", 0, 200},
		{"period over", Input{History: constant(30, 1), Now: now, Spent: usd("7"), Amount: usd("100"), PeriodEnd: now}, MethodNone, "7", 0, 0},
		// The spend so far is kept to the picodollar; the forecast rest
		// (3 hours of a tenth of a dollar, 0.30000000000000004 in floating
		// point) is rounded to whole picodollars.
		{"exact spend plus a rounded rest", Input{History: constant(6, 0.1), Now: now, Spent: usd("1234567890.123456789012"), Amount: usd("1e12"), PeriodEnd: now.Add(3 * time.Hour)},
			MethodLinear, "1234567890.423456789012", 0, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc := Predict(c.in)
			if fc.Method != c.method || !fc.AtEnd.Equal(usd(c.atEnd)) || fc.Hours != c.wantHoursFt {
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

// usd is an exact amount written as a decimal.
func usd(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestUSDOfRoundsHalfToEvenPicodollars(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0.1 + 0.2, "0.3"},
		{1487.3, "1487.3"},
		{2.5e-12, "0.000000000002"},    // half: to the even picodollar
		{3.5e-12, "0.000000000004"},    // half: to the even picodollar
		{1.4999e-12, "0.000000000001"}, // under half: down
		{-2.5e-12, "-0.000000000002"},
		{math.NaN(), "0"},
		{math.Inf(1), "99999999999999999999999999.999999999999"},
		{math.Inf(-1), "-99999999999999999999999999.999999999999"},
		{3e30, "99999999999999999999999999.999999999999"},
	} {
		if got := usdOf(c.in); !got.Equal(usd(c.want)) {
			t.Errorf("usdOf(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestForecastComparesExactly: a forecast of exactly the amount is no
// overrun, one picodollar more is, however the two compare as floats.
func TestForecastComparesExactly(t *testing.T) {
	end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	amount := usd("10000000.000000000001")
	spec := Spec{Amount: amount, Hard: amount, Forecast: true}
	at := Forecast{AtEnd: amount, ExhaustsAt: end.Add(-time.Hour), Hours: 48}
	over := at
	over.AtEnd = amount.Add(usd("0.000000000001"))
	if a, b := at.AtEnd.InexactFloat64(), over.AtEnd.InexactFloat64(); a != b {
		t.Fatalf("the amounts differ as floats (%v, %v); the test needs ones that do not", a, b)
	}
	if o := at.Overrun(amount); !o.IsZero() {
		t.Errorf("overrun of a forecast of exactly the amount = %s, want 0", o)
	}
	if o := over.Overrun(amount); o.String() != "0.000000000001" {
		t.Errorf("overrun of a picodollar over = %s, want 0.000000000001", o)
	}
	if state, crossed := Assess(spec, usd("1"), at, end); state != schemas.BudgetOK || crossed != nil {
		t.Errorf("forecast of exactly the amount: %s %v, want ok", state, crossed)
	}
	if state, crossed := Assess(spec, usd("1"), over, end); state != schemas.BudgetAtRisk || len(crossed) != 1 {
		t.Errorf("forecast a picodollar over: %s %v, want at_risk [forecast]", state, crossed)
	}
}

func TestAssessStates(t *testing.T) {
	end := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	spec := Spec{Amount: decimal.NewFromInt(100), Soft: decimal.NewFromInt(80), Hard: decimal.NewFromInt(100), Forecast: true}
	noForecast := spec
	noForecast.Forecast = false
	risky := Forecast{AtEnd: usd("150"), ExhaustsAt: end.Add(-time.Hour), Hours: 48}
	calm := Forecast{AtEnd: usd("60"), Hours: 48}
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
