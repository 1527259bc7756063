package budget

import (
	"math"
	"sort"
	"time"

	"github.com/shopspring/decimal"
)

// Forecast methods.
const (
	MethodSeasonal = "seasonal" // hour-of-week profile scaled by the recent level
	MethodLinear   = "linear"   // straight line through the recent hours
	MethodNone     = "none"     // no history: nothing more is expected
)

const (
	hoursPerWeek = 168
	// levelHours is how many recent hours set the level the weekly profile
	// is scaled to.
	levelHours = 48
	// slopeMinHours is the history a linear trend needs before it has a
	// slope; with less, the forecast is the mean rate.
	slopeMinHours = 24
	// maxTrendWeeks caps how far a week-over-week trend is extrapolated.
	maxTrendWeeks = 4
	// MinForecastHours is the completed hours of history a forecast needs
	// before it may raise an alert.
	MinForecastHours = 12
)

// maxUSD is the largest amount a Decimal(38, 12) column holds, where a
// runaway forecast is clamped.
var maxUSD = decimal.New(1, 26).Sub(decimal.New(1, -12))

// Series is hourly spend in USD: Values[i] is the spend of the hour that
// starts Start + i hours. Start is on a whole hour (Unix time).
type Series struct {
	Start  time.Time
	Values []float64
}

// Input is what one forecast sees.
type Input struct {
	// History ends at or before Now; an hour that has not ended by Now is
	// not fitted.
	History Series
	Now     time.Time
	// Spent is the spend of the period so far, PeriodEnd its exclusive end.
	Spent     decimal.Decimal
	Amount    decimal.Decimal
	PeriodEnd time.Time
	// Weeks caps the weeks the hour-of-week profile averages.
	Weeks int
}

// Forecast is the projected spend at period end with an interval, and the
// time the amount is forecast to be used up. The model is fitted in
// floating point (it is a statistic), but the amounts it yields are exact:
// AtEnd is the exact spend so far plus the forecast of the rest rounded
// half to even to whole picodollars, so it compares with the budget's
// amount exactly and is stored as it is.
type Forecast struct {
	Method string
	// AtEnd is spent plus the forecast of the rest of the period; Low and
	// High bound it (10th and 90th percentile of hourly residuals,
	// widened with the square root of the hours ahead).
	AtEnd, Low, High decimal.Decimal
	// ExhaustsAt is when spent reaches the amount: Now if it has, the
	// forecast time if before period end, zero otherwise.
	ExhaustsAt time.Time
	// Hours is the completed hours of history the forecast was fitted to.
	Hours int
}

// Overrun is the projected spend beyond the amount (0 when within it).
func (f Forecast) Overrun(amount decimal.Decimal) decimal.Decimal {
	return decimal.Max(decimal.Zero, f.AtEnd.Sub(amount))
}

// usdOf is the estimate f in USD as an exact amount: rounded half to even
// to whole picodollars, NaN as zero, clamped to what a Decimal(38, 12)
// holds (±Inf included).
func usdOf(f float64) decimal.Decimal {
	switch {
	case math.IsNaN(f):
		return decimal.Zero
	case f >= 1e26:
		return maxUSD
	case f <= -1e26:
		return maxUSD.Neg()
	}
	return decimal.NewFromFloat(f).RoundBank(12)
}

// clampUSD keeps an exact amount within what a Decimal(38, 12) holds.
func clampUSD(d decimal.Decimal) decimal.Decimal {
	return decimal.Min(maxUSD, decimal.Max(maxUSD.Neg(), d))
}

// model predicts the spend of the hour starting at Unix hour u, ahead
// hours after the last completed one.
type model func(u int64, ahead float64) float64

// Predict forecasts the rest of the period. It fits an hour-of-week
// profile when at least a week of history is there and a straight line
// otherwise.
func Predict(in Input) Forecast {
	fc := Forecast{Method: MethodNone, AtEnd: in.Spent, Low: in.Spent, High: in.Spent}
	if !in.PeriodEnd.After(in.Now) {
		return fc
	}
	spent := in.Amount.Sign() > 0 && in.Spent.GreaterThanOrEqual(in.Amount)
	x, firstHour := completed(in.History, in.Now)
	fc.Hours = len(x)
	var m model
	var resid []float64
	switch {
	case len(x) >= hoursPerWeek && sum(x) > 0:
		m, resid = seasonal(x, firstHour, in.Weeks)
		if m != nil {
			fc.Method = MethodSeasonal
			break
		}
		fallthrough
	case len(x) > 0:
		m, resid = linear(x)
		fc.Method = MethodLinear
	default:
		if spent {
			fc.ExhaustsAt = in.Now
		}
		return fc
	}
	lastHour := firstHour + int64(len(x)) // the first hour not fitted
	if spent {
		fc.ExhaustsAt = in.Now
	}
	// left is what remains of the amount, rest the forecast spend of the
	// rest of the period: estimates, in floating point.
	left, _ := in.Amount.Sub(in.Spent).Float64()
	rest, hoursAhead := 0.0, 0.0
	for t := in.Now; t.Before(in.PeriodEnd); {
		u := t.Unix() / 3600
		next := time.Unix((u+1)*3600, 0)
		if next.After(in.PeriodEnd) {
			next = in.PeriodEnd
		}
		frac := next.Sub(t).Hours()
		rate := math.Max(0, m(u, float64(u-lastHour)))
		add := rate * frac
		if fc.ExhaustsAt.IsZero() && in.Amount.Sign() > 0 && rest+add >= left && rate > 0 {
			need := (left - rest) / rate
			fc.ExhaustsAt = t.Add(time.Duration(need * float64(time.Hour))).Truncate(time.Second)
		}
		rest += add
		hoursAhead += frac
		t = next
	}
	// The amounts become exact here.
	fc.AtEnd = clampUSD(in.Spent.Add(usdOf(rest)))
	lo, hi := quantile(resid, 0.1), quantile(resid, 0.9)
	w := math.Sqrt(hoursAhead)
	fc.Low = clampUSD(decimal.Max(in.Spent, fc.AtEnd.Add(usdOf(math.Min(0, lo)*w))))
	fc.High = clampUSD(decimal.Max(fc.AtEnd, fc.AtEnd.Add(usdOf(math.Max(0, hi)*w))))
	return fc
}

// completed returns the values of the hours that ended by now, from the
// first hour with any spend (hours before it are no history, not zero
// spend: a new team's empty past weeks must not halve its profile), and
// the Unix hour of the first.
func completed(s Series, now time.Time) ([]float64, int64) {
	first := s.Start.Unix() / 3600
	nowHour := now.Unix() / 3600 // the hour in progress
	n := int(nowHour - first)
	if n < 0 {
		n = 0
	}
	if n > len(s.Values) {
		n = len(s.Values)
	}
	x := s.Values[:n]
	for len(x) > 0 && x[0] == 0 {
		x = x[1:]
		first++
	}
	return x, first
}

// seasonal fits the mean spend per hour of week over the last weeks, scaled
// to the level of the last levelHours, with the week-over-week change as a
// damped trend. It returns nil when the profile has no spend where the
// recent hours do.
func seasonal(x []float64, firstHour int64, maxWeeks int) (model, []float64) {
	weeks := len(x) / hoursPerWeek
	if maxWeeks > 0 && weeks > maxWeeks {
		weeks = maxWeeks
	}
	recent := x[len(x)-weeks*hoursPerWeek:]
	recentFirst := firstHour + int64(len(x)-len(recent))
	var profile [hoursPerWeek]float64
	for i, v := range recent {
		profile[slot(recentFirst+int64(i))] += v / float64(weeks)
	}
	var got, want float64
	for i := len(x) - levelHours; i < len(x); i++ {
		got += x[i]
		want += profile[slot(firstHour+int64(i))]
	}
	if want <= 0 {
		return nil, nil
	}
	level := got / want
	growth := 0.0 // relative change per week
	if weeks >= 2 {
		last := sum(x[len(x)-hoursPerWeek:])
		prev := sum(x[len(x)-2*hoursPerWeek : len(x)-hoursPerWeek])
		if prev > 0 {
			growth = math.Min(1, math.Max(-0.5, last/prev-1))
		}
	}
	m := func(u int64, ahead float64) float64 {
		w := math.Min(ahead/hoursPerWeek, maxTrendWeeks)
		return level * profile[slot(u)] * (1 + growth*w)
	}
	resid := make([]float64, 0, hoursPerWeek)
	for i := len(x) - hoursPerWeek; i < len(x); i++ {
		resid = append(resid, x[i]-level*profile[slot(firstHour+int64(i))])
	}
	return m, resid
}

// linear fits a straight line through the last week at most; with less
// than slopeMinHours it is flat at the mean. The slope is extrapolated no
// further ahead than the history is long.
func linear(x []float64) (model, []float64) {
	if len(x) > hoursPerWeek {
		x = x[len(x)-hoursPerWeek:]
	}
	n := float64(len(x))
	mean := sum(x) / n
	a, b := mean, 0.0
	if len(x) >= slopeMinHours {
		mi := (n - 1) / 2
		var sxy, sxx float64
		for i, v := range x {
			sxy += (float64(i) - mi) * (v - mean)
			sxx += (float64(i) - mi) * (float64(i) - mi)
		}
		b = sxy / sxx
		a = mean - b*mi
	}
	resid := make([]float64, len(x))
	for i, v := range x {
		resid[i] = v - (a + b*float64(i))
	}
	m := func(_ int64, ahead float64) float64 {
		return a + b*(n+math.Min(ahead, n))
	}
	return m, resid
}

func slot(unixHour int64) int { return int(((unixHour % hoursPerWeek) + hoursPerWeek) % hoursPerWeek) }

func sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

// quantile is the q-quantile of x by linear interpolation (0 for none).
func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}
