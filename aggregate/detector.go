package aggregate

import (
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// The detector is the pure core of the anomaly scorer: window costs of one
// series in, scores and incident transitions out. It holds no I/O, so the
// same code runs in the scorer, in tests and in the quality simulation
// (TestDetectorQuality).
//
// Per series it keeps an expected cost for every window, the baseline:
//   - the median, over the last weeks, of the mean cost of the same hour of
//     the week, once that hour has two weeks of history;
//   - else the median over the last days of the same hour of the day, once
//     it has two days (the weekly pattern is then missed, the daily one is
//     not);
//   - else a recent baseline, the EWMA of the costs.
//
// Seasonal baselines are interpolated between neighbouring hours, so a
// daily rise does not look like a step at each full hour.
//
// Costs of a series are compound Poisson: a few requests a window, each
// of a skewed size. Their variance grows with the level, so the spread is
// the series' dispersion (variance per unit of expected cost, learnt from
// its residuals) times the baseline, plus a share of the baseline for how
// far the level itself strays from its history (level_error).
//
// Each window is tested over several spans (the last 1, 2, 5, 10, 30 and
// 60 windows by default): the summed cost of the span against the summed
// baseline. Long spans are what find a slow ramp or a sustained change on
// a series of a request or two a window, whose single windows are mostly
// noise; short spans find a sharp spike at once. A span passes when its
// excess is threshold spreads above baseline, min_relative of the
// baseline and min_impact_picos a window. An incident fires after
// Persistence windows in a row pass some span (or one span covering them
// passes, each of them above baseline), stays open while a span no longer
// than ResolveWindows still shows a loose excess (half the threshold and
// half the floors) and resolves after ResolveWindows windows without one;
// the spans then start afresh, so the incident's windows cannot open
// another. While one is open, and on passing windows, the baselines learn the
// expected cost instead of the actual one, so an incident does not become
// its own baseline.
//
// Money is exact: the estimators (medians of hour means, the EWMA, the
// dispersion) are statistics computed in float64, but each expected cost is
// rounded to whole picodollars where it becomes a window's baseline, and
// from there on costs, baselines, their sums over spans, excesses and the
// absolute floors (min_impact_picos, new_series_impact_picos) are exact
// 128-bit integers. Only the scores (z, the relative floor, the spread)
// are floats.

// Incident statuses, in the order an incident passes through them.
const (
	StatusFiring   = "firing"
	StatusUpdated  = "updated"
	StatusResolved = "resolved"
)

// Verdict is what the detector says about one window of one series.
type Verdict struct {
	WindowStart   time.Time
	CostPicos     schemas.Picos128
	BaselinePicos schemas.Picos128
	ScalePicos    schemas.Picos128
	Z             float64
	Observations  uint32
	// Span is how many windows, this one the last, the verdict tested:
	// the span with the strongest excess. MeanPicos and BaselinePicos are
	// the mean actual and expected cost a window over it, ScalePicos the
	// spread of that mean and Z its excess in spreads.
	Span      int
	MeanPicos schemas.Picos128
	// Seasonal says the baseline came from hour-of-week or hour-of-day
	// history rather than the recent EWMA.
	Seasonal bool
	// Passed says some span of this window passed the test; Anomalous that
	// it is part of a run of at least Persistence such windows.
	Passed    bool
	Anomalous bool
	// Elevated is the looser test that keeps an open incident open.
	Elevated bool
	// EWMAMean is the recent baseline, EWMAVar the variance of one window
	// at this window's baseline (dispersion × baseline, in picodollars²: a
	// statistic, not an amount).
	EWMAMean schemas.Picos128
	EWMAVar  float64
}

// Incident is one run of anomalous windows of one series. Its ID is stable
// for its whole life: the series and the first anomalous window.
type Incident struct {
	ID     string
	Status string
	Start  time.Time
	// End is the start of the last anomalous window.
	End time.Time
	// ResolvedAt is the window start at which it resolved (zero while open).
	ResolvedAt time.Time
	// Windows counts its anomalous windows; ExcessPicos sums their cost
	// above baseline; Peak is the costliest window.
	Windows       int
	ExcessPicos   schemas.Picos128
	PeakPicos     schemas.Picos128
	PeakWindow    time.Time
	BaselinePicos schemas.Picos128
	// Update numbers the transitions published for it: 0 firing, 1… updated,
	// the last resolved.
	Update int
	// reportedExcess is the peak excess when last published, so that an
	// update goes out only when the incident has grown markedly.
	reportedExcess schemas.Picos128
}

// Transition is a change in an incident's state that subscribers hear of.
type Transition struct {
	Incident Incident
	Verdict  Verdict
}

// ring holds the last cap values of one seasonal slot.
type ring struct {
	vals []float64
	next int
	cap  int
}

func (r *ring) add(v float64) {
	if len(r.vals) < r.cap {
		r.vals = append(r.vals, v)
		return
	}
	r.vals[r.next] = v
	r.next = (r.next + 1) % r.cap
}

func (r *ring) clone() *ring {
	return &ring{vals: slices.Clone(r.vals), next: r.next, cap: r.cap}
}

const (
	hoursPerWeek = 168
	hoursPerDay  = 24
	// dayRing is how many days an hour-of-day slot remembers: a week, so
	// that its median is a weekday's even after a weekend.
	dayRing = 7
	// minSeasonal is how many weeks (or days) a slot needs to be used.
	minSeasonal = 2
)

// seriesState is the detector's memory of one series. Slots are shared
// copy-on-write between a state and its clones (the owned marks say which
// this state may write), so a tentative pass over the newest windows
// costs a copy of the slots it touches, not of the whole history.
type seriesState struct {
	id           string
	last         time.Time // start of the last window stepped
	born         time.Time // start of its first window
	observations uint32
	// xs and bs are the last maxSpan costs and baselines, a ring whose
	// newest entry is at pos-1; filled counts the valid entries.
	xs, bs []schemas.Picos128
	pos    int
	filled int
	// mean is the recent baseline; resid and level are slow running means
	// of the squared residual and of the baseline, whose ratio is the
	// dispersion.
	mean         float64
	resid, level float64
	dispN        int
	// The hour being accumulated into the seasonal slots.
	hour     time.Time
	hourSum  schemas.Picos128
	hourN    int
	week     [hoursPerWeek]*ring
	weekOwn  [hoursPerWeek]bool
	day      [hoursPerDay]*ring
	dayOwn   [hoursPerDay]bool
	run      int // passing windows in a row
	quiet    int // windows in a row that are not elevated while an incident is open
	runStart time.Time
	open     *Incident
}

func (s *seriesState) clone() *seriesState {
	c := *s
	c.weekOwn = [hoursPerWeek]bool{}
	c.dayOwn = [hoursPerDay]bool{}
	c.xs = slices.Clone(s.xs)
	c.bs = slices.Clone(s.bs)
	if s.open != nil {
		o := *s.open
		c.open = &o
	}
	return &c
}

// Detector scores the windows of many series; it is not safe for
// concurrent use.
type Detector struct {
	cfg        AnomalyConfig
	window     time.Duration
	perHour    int
	spans      []int // ascending
	maxSpan    int
	series     map[string]*seriesState
	scratch    []float64
	first      time.Time // the earliest window stepped, of any series
	maxGapFill int
}

// NewDetector returns a detector for windows of the given length.
func NewDetector(cfg AnomalyConfig, window time.Duration) *Detector {
	perHour := max(1, int(time.Hour/window))
	spans := cfg.spans()
	return &Detector{
		cfg: cfg, window: window, perHour: perHour,
		spans: spans, maxSpan: spans[len(spans)-1],
		series:     map[string]*seriesState{},
		maxGapFill: int(24 * time.Hour / window),
	}
}

// Clone returns a detector that starts where d is and shares nothing that
// either writes.
func (d *Detector) Clone() *Detector {
	c := *d
	c.series = make(map[string]*seriesState, len(d.series))
	for k, s := range d.series {
		c.series[k] = s.clone()
	}
	// d's slots are now shared too: neither may write them in place.
	for _, s := range d.series {
		s.weekOwn = [hoursPerWeek]bool{}
		s.dayOwn = [hoursPerDay]bool{}
	}
	c.scratch = nil
	return &c
}

// Open returns the open incident of every series that has one.
func (d *Detector) Open() map[string]Incident {
	out := map[string]Incident{}
	for k, s := range d.series {
		if s.open != nil {
			out[k] = *s.open
		}
	}
	return out
}

// Last returns the start of the last window stepped for key (zero if none).
func (d *Detector) Last(key string) time.Time {
	if s := d.series[key]; s != nil {
		return s.last
	}
	return time.Time{}
}

// Step scores the window of key starting at ws with cost x. Windows must
// come in order per key; a key's missing windows count as zero cost (up to
// a day of them; after a longer silence the spans start afresh). It
// returns the verdict and any incident transitions, oldest first.
func (d *Detector) Step(key string, ws time.Time, x schemas.Picos128) (Verdict, []Transition) {
	s := d.series[key]
	if s == nil {
		s = &seriesState{id: key, xs: make([]schemas.Picos128, d.maxSpan), bs: make([]schemas.Picos128, d.maxSpan)}
		d.series[key] = s
	}
	var out []Transition
	if !s.last.IsZero() {
		gap := int(ws.Sub(s.last)/d.window) - 1
		if gap < 0 {
			return Verdict{WindowStart: ws, CostPicos: x}, nil // out of order: ignored
		}
		if gap > d.maxGapFill {
			s.filled, s.run, gap = 0, 0, 0
		}
		for i := 1; i <= gap; i++ {
			_, tr := d.step(s, s.last.Add(d.window), schemas.Picos128{})
			out = append(out, tr...)
		}
	}
	v, tr := d.step(s, ws, x)
	return v, append(out, tr...)
}

func weekSlot(t time.Time) int { return (int(t.Weekday())*24 + t.Hour()) % hoursPerWeek }

// slotMean is the seasonal expected cost a window in the hour starting at
// h, and how many weeks or days it rests on (0: no seasonal history).
func (d *Detector) slotMean(s *seriesState, h time.Time) (float64, int) {
	if r := s.week[weekSlot(h)]; r != nil && len(r.vals) >= minSeasonal {
		var m float64
		m, d.scratch = median(r.vals, d.scratch)
		return m, len(r.vals)
	}
	if r := s.day[h.Hour()]; r != nil && len(r.vals) >= minSeasonal {
		var m float64
		m, d.scratch = median(r.vals, d.scratch)
		return m, len(r.vals)
	}
	return 0, 0
}

// baseline is the expected cost of the window at ws, in whole
// picodollars: the seasonal slot of its hour, interpolated toward the
// neighbouring hour's, or the recent EWMA. n is how many weeks or days it
// rests on (0: recent).
func (d *Detector) baseline(s *seriesState, ws time.Time) (schemas.Picos128, int) {
	h := ws.Truncate(time.Hour)
	b, n := d.slotMean(s, h)
	if n == 0 {
		return picosRound(s.mean), 0
	}
	// Hour means describe the middle of the hour; the window's place
	// between two middles weighs the neighbour.
	f := (float64(ws.Sub(h)) + float64(d.window)/2) / float64(time.Hour)
	other, w := h.Add(-time.Hour), 0.5-f
	if f > 0.5 {
		other, w = h.Add(time.Hour), f-0.5
	}
	if o, on := d.slotMean(s, other); on > 0 {
		b = (1-w)*b + w*o
	}
	return picosRound(b), n
}

func (d *Detector) step(s *seriesState, ws time.Time, x schemas.Picos128) (Verdict, []Transition) {
	cfg := d.cfg
	if d.first.IsZero() || ws.Before(d.first) {
		d.first = ws
	}
	if s.observations == 0 {
		s.born = ws
	}
	v := Verdict{WindowStart: ws, CostPicos: x, Observations: s.observations + 1}
	b, n := d.baseline(s, ws)
	fb := b.Float64()
	v.Seasonal = n > 0
	// How much the baseline itself may be off, as a share of the variance
	// of one window: a median of n hour means, or an EWMA.
	baseErr := cfg.Alpha / 2
	if n > 0 {
		baseErr = 1.5 / float64(n*d.perHour)
	}
	disp := 0.0
	if s.level > 0 {
		disp = s.resid / s.level
	}
	s.xs[s.pos], s.bs[s.pos] = x, b
	s.pos = (s.pos + 1) % d.maxSpan
	s.filled = min(s.filled+1, d.maxSpan)

	scored := int(s.observations) >= cfg.MinHistory
	newSeries := !scored && s.born.Sub(d.first) >= time.Duration(cfg.MinHistory)*d.window
	var sumX, sumB schemas.Picos128
	best, bestLoose, suspect := math.Inf(-1), false, false
	si := 0
	for k := 1; k <= s.filled && si < len(d.spans); k++ {
		i := (s.pos - k + d.maxSpan) % d.maxSpan
		sumX = sumX.Plus(s.xs[i])
		sumB = sumB.Plus(s.bs[i])
		if k != d.spans[si] {
			continue
		}
		si++
		if !scored {
			continue
		}
		fx, fsb := sumX.Float64(), sumB.Float64()
		variance := disp*fsb*(1+float64(k)*baseErr) + math.Pow(cfg.LevelError*fsb, 2)
		sd := math.Max(math.Sqrt(variance), 1)
		excess := sumX.Sub(sumB)
		z := skewedZ(fx, fsb, variance)
		if cfg.Direction == DirectionBoth && excess.Sign() < 0 {
			excess, z = schemas.Picos128{}.Sub(excess), -z
		}
		// The absolute floor is exact; the relative one is a ratio.
		impact := mulPicos(cfg.MinImpactPicos, k)
		fexcess := excess.Float64()
		floorOK := func(full bool) bool {
			if full {
				return !less(excess, impact) && fexcess >= cfg.MinRelative*fsb
			}
			return !less(excess.Plus(excess), impact) && fexcess >= 0.5*cfg.MinRelative*fsb
		}
		var pass, loose bool
		if disp > 0 && fsb < cfg.MinBaselineRequests*disp {
			// Too few requests expected to test the spread: one costly
			// request would pass. The span alerts on its size: ten typical
			// requests above its baseline and NewSeriesImpactPicos a window.
			size := mulPicos(cfg.NewSeriesImpactPicos, k)
			if many := picosRound(sparseRequests * disp); less(size, many) {
				size = many
			}
			pass = cfg.NewSeriesImpactPicos > 0 && !less(excess, size) && floorOK(true)
			loose = cfg.NewSeriesImpactPicos > 0 && !less(excess.Plus(excess), size) && floorOK(false)
			suspect = suspect || loose
		} else {
			pass = z >= cfg.Threshold && floorOK(true) && less(b, x) == less(sumB, sumX)
			loose = z >= cfg.Threshold/2 && floorOK(false)
			suspect = suspect || (z >= 0.6*cfg.Threshold && floorOK(false))
		}
		if k <= cfg.ResolveWindows && loose {
			bestLoose = true
		}
		if pass && !v.Passed || (pass == v.Passed && z > best) {
			best, v.Passed = z, pass
			v.Span, v.Z = k, z
			v.MeanPicos, v.BaselinePicos, v.ScalePicos = divPicos(sumX, k), divPicos(sumB, k), picosRound(sd/float64(k))
		}
	}
	if v.Span == 0 {
		v.Span, v.MeanPicos, v.BaselinePicos = 1, x, b
		v.ScalePicos = picosRound(math.Sqrt(disp * fb))
	}
	if newSeries && s.filled >= d.spans[0] {
		// A series born after the detector warmed up (a new model, a new
		// key) has no baseline; it alerts on its size alone.
		k := d.spans[0]
		var sum schemas.Picos128
		for j := 1; j <= k; j++ {
			sum = sum.Plus(s.xs[(s.pos-j+d.maxSpan)%d.maxSpan])
		}
		v.Span, v.MeanPicos = k, divPicos(sum, k)
		v.Passed = cfg.NewSeriesImpactPicos > 0 && !less(sum, mulPicos(cfg.NewSeriesImpactPicos, k))
		bestLoose = v.Passed
	}
	if v.Passed {
		if s.run == 0 {
			s.runStart = ws
		}
		s.run++
	} else {
		s.run = 0
	}
	// Persistence: Persistence passing windows in a row, or one whose
	// passing span covers the last Persistence windows, each above its
	// baseline (a sharp change on a dense series is then told at once).
	v.Anomalous = v.Passed && (s.run >= cfg.Persistence || v.Span >= cfg.Persistence && d.lastAbove(s, cfg.Persistence))
	if v.Anomalous && s.run < cfg.Persistence {
		s.runStart = ws.Add(-time.Duration(cfg.Persistence-1) * d.window)
	}
	v.Elevated = bestLoose

	// Learn. A window that passed, and every window of an open incident,
	// teaches the expected cost rather than the actual one, so an incident
	// does not become its own baseline. A window with some span at 60% of
	// the threshold, a change not yet proven an incident, teaches the
	// recent baseline at most two spreads above the expected cost, so that
	// the baseline follows a real change of level but not a growing
	// incident; the seasonal slots, medians over weeks and days, take it
	// as it is.
	learnt, recent := x, x
	if v.Passed || s.open != nil {
		learnt, recent = b, b
	} else if suspect {
		if lid := b.Plus(picosRound(2 * math.Sqrt(disp*fb+math.Pow(cfg.LevelError*fb, 2)))); less(lid, x) {
			recent = lid
		}
	}
	if s.observations == 0 {
		s.mean = x.Float64()
	} else {
		s.mean += math.Max(cfg.Alpha, 1/float64(s.observations+1)) * (recent.Float64() - s.mean)
	}
	if !suspect && s.open == nil && s.observations > 0 {
		// A slow memory, a quarter of the baseline's: the rare costly
		// requests are what make the spread of sparse costs.
		w := math.Max(cfg.Alpha/4, 1/float64(s.dispN+1))
		r := x.Sub(b).Float64()
		s.resid += w * (r*r - s.resid)
		s.level += w * (math.Max(fb, 0) - s.level)
		s.dispN++
	}
	d.learnHour(s, ws, learnt)
	v.EWMAMean, v.EWMAVar = picosRound(s.mean), disp*fb
	s.last = ws
	s.observations++
	return v, d.lifecycle(s, v)
}

// sparseRequests is how many typical requests (the dispersion) a span too
// sparse to test on its spread must exceed its baseline by, besides
// new_series_impact_picos a window: one costly request is not a change.
const sparseRequests = 10

// less says a < b.
func less(a, b schemas.Picos128) bool { return a.Sub(b).Sign() < 0 }

// mulPicos returns v × k picodollars exactly (v, k ≥ 0).
func mulPicos(v int64, k int) schemas.Picos128 {
	hi, lo := bits.Mul64(uint64(max(v, 0)), uint64(max(k, 0)))
	return schemas.Picos128{Hi: int64(hi), Lo: lo}
}

// divPicos returns p / k rounded to the nearest picodollar, half away
// from zero.
func divPicos(p schemas.Picos128, k int) schemas.Picos128 {
	if k == 1 {
		return p
	}
	if v, ok := p.Int64(); ok && v > math.MinInt64/2 && v < math.MaxInt64/2 {
		q, r := v/int64(k), v%int64(k)
		if 2*abs64(r) >= int64(k) {
			if v < 0 {
				q--
			} else {
				q++
			}
		}
		return schemas.PicosOf(q)
	}
	r := new(big.Rat).SetFrac(p.Big(), big.NewInt(int64(k)))
	return ratRound(r)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// picosRound returns f picodollars rounded to the nearest whole one (half
// away from zero); NaN is zero and ±Inf saturate at ±(2^127-1).
func picosRound(f float64) schemas.Picos128 {
	switch {
	case math.IsNaN(f):
		return schemas.Picos128{}
	case math.Abs(f) < 1<<62:
		return schemas.PicosOf(int64(math.Round(f)))
	case f >= 0x1p127:
		return schemas.Picos128{Hi: math.MaxInt64, Lo: math.MaxUint64}
	case f <= -0x1p127:
		return schemas.Picos128{Hi: math.MinInt64, Lo: 1}
	}
	r, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'f', -1, 64))
	return ratRound(r)
}

func ratRound(r *big.Rat) schemas.Picos128 {
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	p, ok := schemas.PicosFromBig(q)
	if !ok {
		if q.Sign() > 0 {
			return schemas.Picos128{Hi: math.MaxInt64, Lo: math.MaxUint64}
		}
		return schemas.Picos128{Hi: math.MinInt64, Lo: 1}
	}
	return p
}

// lastAbove says each of the last n windows cost more than its baseline.
func (d *Detector) lastAbove(s *seriesState, n int) bool {
	if n > s.filled {
		return false
	}
	for j := 1; j <= n; j++ {
		i := (s.pos - j + d.maxSpan) % d.maxSpan
		if !less(s.bs[i], s.xs[i]) {
			return false
		}
	}
	return true
}

// learnHour adds the window's learnt cost to its hour and, when the hour
// is over, the hour's mean to its hour-of-week and hour-of-day slots.
func (d *Detector) learnHour(s *seriesState, ws time.Time, learnt schemas.Picos128) {
	h := ws.Truncate(time.Hour)
	if !h.Equal(s.hour) {
		d.closeHour(s)
		s.hour, s.hourSum, s.hourN = h, schemas.Picos128{}, 0
	}
	s.hourSum = s.hourSum.Plus(learnt)
	s.hourN++
	if s.hourN == d.perHour {
		d.closeHour(s)
	}
}

func (d *Detector) closeHour(s *seriesState) {
	// An hour seen for less than half of it (the series was born in it)
	// says little about the hour.
	if s.hour.IsZero() || 2*s.hourN < d.perHour {
		s.hourN = 0
		return
	}
	m := s.hourSum.Float64() / float64(s.hourN)
	ws, ds := weekSlot(s.hour), s.hour.Hour()
	if s.week[ws] == nil {
		s.week[ws], s.weekOwn[ws] = &ring{cap: d.cfg.SeasonalWeeks}, true
	} else if !s.weekOwn[ws] {
		s.week[ws], s.weekOwn[ws] = s.week[ws].clone(), true
	}
	s.week[ws].add(m)
	if s.day[ds] == nil {
		s.day[ds], s.dayOwn[ds] = &ring{cap: dayRing}, true
	} else if !s.dayOwn[ds] {
		s.day[ds], s.dayOwn[ds] = s.day[ds].clone(), true
	}
	s.day[ds].add(m)
	s.hourN = 0
}

// skewedZ is how far x lies above the mean mu of a sum of variance v, in
// standard normal units. A few requests of skewed sizes make a sum whose
// right tail is far heavier than a normal one, so the sum is taken as
// gamma distributed (shape mu²/v) and its Wilson–Hilferty cube-root
// transform, close to normal, is what is measured. With many requests it
// is the plain z-score.
func skewedZ(x, mu, v float64) float64 {
	if mu <= 0 || v <= 0 {
		return (x - mu) / math.Max(math.Sqrt(v), 1)
	}
	k9 := 9 * mu * mu / v
	return (math.Cbrt(math.Max(x, 0)/mu) - (1 - 1/k9)) * math.Sqrt(k9)
}

// median returns the median of vals, using buf as scratch.
func median(vals []float64, buf []float64) (float64, []float64) {
	buf = append(buf[:0], vals...)
	slices.Sort(buf)
	n := len(buf)
	if n%2 == 1 {
		return buf[n/2], buf
	}
	return (buf[n/2-1] + buf[n/2]) / 2, buf
}

func (d *Detector) lifecycle(s *seriesState, v Verdict) []Transition {
	cfg := d.cfg
	ws := v.WindowStart
	if s.open != nil && !v.Elevated {
		s.quiet++
	} else {
		s.quiet = 0
	}
	excess := v.CostPicos.Sub(v.BaselinePicos)
	if s.open == nil {
		if !v.Anomalous {
			return nil
		}
		s.open = &Incident{
			ID:     s.id + ":" + strconv.FormatInt(s.runStart.Unix(), 10),
			Status: StatusFiring, Start: s.runStart, End: ws,
			Windows: s.run, BaselinePicos: v.BaselinePicos,
		}
		s.open.absorb(v, excess)
		s.open.reportedExcess = v.MeanPicos.Sub(v.BaselinePicos)
		return []Transition{{Incident: *s.open, Verdict: v}}
	}
	o := s.open
	if v.Anomalous {
		o.End = ws
		o.Windows++
		o.absorb(v, excess)
		// Tell subscribers when the incident 's cost above baseline has doubled.
		if peak := v.MeanPicos.Sub(o.BaselinePicos); !less(peak, o.reportedExcess.Plus(o.reportedExcess)) && o.reportedExcess.Sign() > 0 {
			o.reportedExcess = peak
			o.Update++
			o.Status = StatusUpdated
			return []Transition{{Incident: *o, Verdict: v}}
		}
		return nil
	}
	if s.quiet < cfg.ResolveWindows {
		return nil
	}
	o.Update++
	o.Status, o.ResolvedAt = StatusResolved, ws
	s.open, s.quiet, s.run = nil, 0, 0
	// The spans start afresh: the incident's windows, still inside the
	// longer spans, must not open another.
	copy(s.xs, s.bs)
	return []Transition{{Incident: *o, Verdict: v}}
}

func (o *Incident) absorb(v Verdict, excess schemas.Picos128) {
	if excess.Sign() > 0 {
		o.ExcessPicos = o.ExcessPicos.Plus(excess)
	}
	if less(o.PeakPicos, v.CostPicos) {
		o.PeakPicos, o.PeakWindow = v.CostPicos, v.WindowStart
	}
}
