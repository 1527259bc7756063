package aggregate

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// The detector is the pure core of the anomaly scorer: window costs of one
// series in, scores and incident transitions out. It holds no I/O, so the
// same code runs in the scorer, in tests and in the quality simulation
// (TestDetectorQuality).
//
// Per series it keeps
//   - a recent baseline: EWMA mean and variance of the two-window mean cost,
//     used while the series has too little seasonal history;
//   - a seasonal baseline: for each of the 168 hours of the week, a ring of
//     the two-window means seen in that hour over the last weeks, whose
//     median and MAD are the baseline once the slot holds two weeks.
//
// A window is anomalous when the two-window mean exceeds the baseline by
// threshold × scale, by the relative floor and by the absolute floor, and
// the window itself is above the baseline too (so one outlier followed by a
// normal window is not a run). An incident fires after Persistence such
// windows in a row and resolves after ResolveWindows windows without one.
// Anomalous points enter the baselines clipped, so an incident does not
// become its own baseline.

// Incident statuses, in the order an incident passes through them.
const (
	StatusFiring   = "firing"
	StatusUpdated  = "updated"
	StatusResolved = "resolved"
)

// Verdict is what the detector says about one window of one series.
type Verdict struct {
	WindowStart   time.Time
	CostPicos     float64
	BaselinePicos float64
	ScalePicos    float64
	Z             float64
	Observations  uint32
	// MeanPicos is the mean cost of the last Persistence windows, the
	// quantity tested.
	MeanPicos float64
	// Seasonal says the baseline came from the hour-of-week history.
	Seasonal bool
	// Anomalous is this window's own test; an incident needs Persistence
	// anomalous windows in a row.
	Anomalous bool
	// Elevated is the looser test that keeps an open incident open.
	Elevated bool
	EWMAMean float64
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
	ExcessPicos   float64
	PeakPicos     float64
	PeakWindow    time.Time
	BaselinePicos float64
	// Update numbers the transitions published for it: 0 firing, 1… updated,
	// the last resolved.
	Update int
	// reportedExcess is the peak excess when last published, so that an
	// update goes out only when the incident has grown markedly.
	reportedExcess float64
}

// Transition is a change in an incident's state that subscribers hear of.
type Transition struct {
	Incident Incident
	Verdict  Verdict
}

// ringSize bounds one hour-of-week slot: weeks × windows per hour.
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

const hoursPerWeek = 168

// seriesState is the detector's memory of one series. slots are shared
// copy-on-write between a state and its clones (owned marks the ones this
// state may write), so a tentative pass over the newest windows costs a
// copy of the slots it touches, not of the whole history.
type seriesState struct {
	id           string
	last         time.Time // start of the last window stepped
	born         time.Time // start of its first window
	recent       []float64 // the last Persistence costs
	observations uint32
	mean, vr     float64
	slowVr       float64
	slots        [hoursPerWeek]*ring
	owned        [hoursPerWeek]bool
	run          int // anomalous windows in a row
	quiet        int // non-anomalous windows in a row while an incident is open
	runStart     time.Time
	open         *Incident
}

func (s *seriesState) clone() *seriesState {
	c := *s
	c.owned = [hoursPerWeek]bool{}
	c.recent = slices.Clone(s.recent)
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
	slotCap    int
	minSlot    int
	series     map[string]*seriesState
	scratch    []float64
	first      time.Time // the earliest window stepped, of any series
	maxGapFill int
}

// NewDetector returns a detector for windows of the given length.
func NewDetector(cfg AnomalyConfig, window time.Duration) *Detector {
	perHour := max(1, int(time.Hour/window))
	return &Detector{
		cfg: cfg, window: window, perHour: perHour,
		slotCap:    cfg.SeasonalWeeks * perHour,
		minSlot:    2 * perHour,
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
		s.owned = [hoursPerWeek]bool{}
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
// a day of them; after a longer silence the run is broken). It returns the
// verdict and any incident transitions, oldest first.
func (d *Detector) Step(key string, ws time.Time, x float64) (Verdict, []Transition) {
	s := d.series[key]
	if s == nil {
		s = &seriesState{id: key}
		d.series[key] = s
	}
	var out []Transition
	if !s.last.IsZero() {
		gap := int(ws.Sub(s.last)/d.window) - 1
		if gap < 0 {
			return Verdict{WindowStart: ws, CostPicos: x}, nil // out of order: ignored
		}
		if gap > d.maxGapFill {
			s.recent, gap = s.recent[:0], 0
		}
		for i := 1; i <= gap; i++ {
			_, tr := d.step(s, s.last.Add(d.window), 0)
			out = append(out, tr...)
		}
	}
	v, tr := d.step(s, ws, x)
	return v, append(out, tr...)
}

func (d *Detector) slotOf(ws time.Time) int {
	return (int(ws.Weekday())*24 + ws.Hour()) % hoursPerWeek
}

func (d *Detector) step(s *seriesState, ws time.Time, x float64) (Verdict, []Transition) {
	cfg := d.cfg
	if d.first.IsZero() || ws.Before(d.first) {
		d.first = ws
	}
	if s.observations == 0 {
		s.born = ws
	}
	v := Verdict{WindowStart: ws, CostPicos: x, Observations: s.observations + 1}
	slot := d.slotOf(ws)
	r := s.slots[slot]
	var center, scale float64
	switch {
	case r != nil && len(r.vals) >= d.minSlot:
		var sd float64
		center, sd, d.scratch = trimmedMeanSD(r.vals, d.scratch)
		// The slot's spread misses how the level moves within the hour;
		// the recent spread is a floor for it.
		scale = math.Max(sd, math.Sqrt(math.Max(s.vr, s.slowVr)))
		v.Seasonal = true
	default:
		center, scale = s.mean, math.Sqrt(math.Max(s.vr, s.slowVr))
	}
	// A flat series has no spread: floor the scale at 5% of the level.
	scale = math.Max(scale, 0.05*math.Abs(center))
	v.BaselinePicos, v.ScalePicos = center, scale

	// The tested quantity is the mean of the last Persistence windows,
	// each of which must be on the alerting side of the baseline.
	s.recent = append(s.recent, x)
	if len(s.recent) > cfg.Persistence {
		s.recent = s.recent[len(s.recent)-cfg.Persistence:]
	}
	var sum float64
	allUp, allDown := true, true
	for _, r := range s.recent {
		sum += r
		allUp = allUp && r > center+scale
		allDown = allDown && r < center-scale
	}
	y := sum / float64(len(s.recent))
	v.MeanPicos = y
	if scale > 0 {
		v.Z = (y - center) / (scale / math.Sqrt(float64(len(s.recent))))
	}
	full := len(s.recent) == cfg.Persistence
	switch {
	case int(s.observations) >= cfg.MinHistory && full:
		excess, z, side := y-center, v.Z, allUp
		if cfg.Direction == DirectionBoth && y < center {
			excess, z, side = -excess, -z, allDown
		}
		floor := math.Max(float64(cfg.MinImpactPicos), cfg.MinRelative*math.Abs(center))
		v.Anomalous = side && z >= cfg.Threshold && excess >= floor
		// An open incident stays open while the cost stays well above
		// the baseline, without the stricter test that opened it.
		v.Elevated = v.Anomalous || (z >= cfg.Threshold/2 && excess >= floor/2)
	case full && s.born.Sub(d.first) >= time.Duration(cfg.MinHistory)*d.window:
		// A series born after the detector warmed up (a new model, a new
		// key) has no baseline; it alerts on its size alone.
		v.Anomalous = y >= float64(cfg.NewSeriesImpactPicos) && cfg.NewSeriesImpactPicos > 0
		v.Elevated = v.Anomalous
	}
	// Update the baselines. An open incident freezes them, and an
	// anomalous point enters clipped, so that an incident does not become
	// its own baseline.
	fed := x
	if v.Anomalous && s.observations > 0 {
		fed = math.Min(x, center+scale)
	}
	if s.observations == 0 {
		s.mean, s.vr, s.slowVr = fed, fed*fed, fed*fed // no spread known yet: assume a wide one
	} else if s.open == nil {
		dd := fed - s.mean
		s.mean += cfg.Alpha * dd
		s.vr = (1 - cfg.Alpha) * (s.vr + cfg.Alpha*dd*dd)
		// The variance of sparse, skewed costs is usually underestimated
		// by a short memory (the rare costly requests are what make it);
		// a slow one, ten times longer, keeps their mark.
		slow := cfg.Alpha / 10
		s.slowVr = (1 - slow) * (s.slowVr + slow*dd*dd)
	}
	if r == nil {
		r = &ring{cap: d.slotCap}
		s.slots[slot], s.owned[slot] = r, true
	} else if !s.owned[slot] {
		r = r.clone()
		s.slots[slot], s.owned[slot] = r, true
	}
	if s.open == nil {
		r.add(fed)
	}
	v.EWMAMean, v.EWMAVar = s.mean, s.vr
	s.last = ws
	s.observations++
	return v, d.lifecycle(s, v)
}

// trimmedMeanSD returns the mean and standard deviation of vals without
// their top and bottom tenth: robust to the outliers that slipped into a
// slot, and, unlike the median, not biased low on sparse, skewed costs.
func trimmedMeanSD(vals []float64, buf []float64) (float64, float64, []float64) {
	buf = append(buf[:0], vals...)
	slices.Sort(buf)
	cut := len(buf) / 10
	kept := buf[cut : len(buf)-cut]
	var sum, sq float64
	for _, v := range kept {
		sum += v
	}
	mean := sum / float64(len(kept))
	for _, v := range kept {
		sq += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(sq / float64(len(kept))), buf
}

func (d *Detector) lifecycle(s *seriesState, v Verdict) []Transition {
	cfg := d.cfg
	ws := v.WindowStart
	if v.Anomalous {
		if s.run == 0 {
			s.runStart = ws
		}
		s.run++
		s.quiet = 0
	} else {
		s.run = 0
		if s.open != nil && !v.Elevated {
			s.quiet++
		} else {
			s.quiet = 0
		}
	}
	excess := v.CostPicos - v.BaselinePicos
	if s.open == nil {
		if s.run < 1 {
			return nil
		}
		s.open = &Incident{
			ID:     s.id + ":" + strconv.FormatInt(s.runStart.Unix(), 10),
			Status: StatusFiring, Start: s.runStart, End: ws,
			Windows: s.run, BaselinePicos: v.BaselinePicos,
		}
		s.open.absorb(v, excess)
		s.open.reportedExcess = v.MeanPicos - v.BaselinePicos
		return []Transition{{Incident: *s.open, Verdict: v}}
	}
	o := s.open
	if v.Anomalous {
		o.End = ws
		o.Windows++
		o.absorb(v, excess)
		// Tell subscribers when the incident 's cost above baseline has doubled.
		if peak := v.MeanPicos - o.BaselinePicos; peak >= 2*o.reportedExcess && o.reportedExcess > 0 {
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
	s.open, s.quiet = nil, 0
	return []Transition{{Incident: *o, Verdict: v}}
}

func (o *Incident) absorb(v Verdict, excess float64) {
	if excess > 0 {
		o.ExcessPicos += excess
	}
	if v.CostPicos > o.PeakPicos {
		o.PeakPicos, o.PeakWindow = v.CostPicos, v.WindowStart
	}
}
