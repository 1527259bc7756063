package loadgen

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// Scenarios stage one incident on top of the normal traffic, for demos of
// the anomaly detector and the alerts. Each starts at Config.ScenarioAt
// (event time after Start) and replaces the periodic bursts, so it is the
// only thing to find.
const (
	// ScenarioSpike: one (team, model) series costs 5× its usual for 10
	// minutes of event time.
	ScenarioSpike = "spike"
	// ScenarioRamp: one team's spend rises steadily over two hours of
	// event time to 4× its usual, then stays there.
	ScenarioRamp = "ramp"
	// ScenarioNewModel: an expensive model the team never used appears in
	// its traffic and stays.
	ScenarioNewModel = "new_model"
	// ScenarioCacheCollapse: one series' cache reads drop to 0 (its prompts
	// are billed in full from then on).
	ScenarioCacheCollapse = "cache_collapse"
	// ScenarioRunawayKey: one API key loops tightly for 20 minutes,
	// sending twice as many requests as all the other traffic.
	ScenarioRunawayKey = "runaway_key"
	// ScenarioGovernance: every event names its provider region (us-east-1)
	// and sizes; from the start one team also calls a preview model (which
	// deploy/governance.example.yaml denies), its last key moves to
	// eu-west-1 (a new region for a known key) and its first key's requests
	// carry data_class pii to us-east-1 (out of the pii regions).
	ScenarioGovernance = "governance"
	// ScenarioBursts: every 2 hours of event time, 5 minutes in which the
	// whole traffic's rate is 5× and the extra comes from one team on one
	// model (a different pair each time), from the start of the run.
	ScenarioBursts = "bursts"
)

// GovernanceModel is the unapproved model ScenarioGovernance calls.
const GovernanceModel = "o1-preview"

// Scenarios lists the scenario names.
var Scenarios = []string{ScenarioSpike, ScenarioRamp, ScenarioNewModel, ScenarioCacheCollapse, ScenarioRunawayKey, ScenarioBursts, ScenarioGovernance}

// ScenarioTarget says what a scenario changes and when, in event time; an
// open-ended scenario has a zero End.
type ScenarioTarget struct {
	Name     string
	Team     string
	Model    string
	APIKeyID string // runaway_key only
	Start    time.Time
	End      time.Time
}

func (s ScenarioTarget) String() string {
	w := s.Start.Format("2006-01-02 15:04") + " onwards"
	if !s.End.IsZero() {
		w = s.Start.Format("2006-01-02 15:04") + " to " + s.End.Format("15:04 MST")
	}
	what := "team " + s.Team
	if s.Model != "" {
		what += ", model " + s.Model
	}
	if s.APIKeyID != "" {
		what += ", key " + s.APIKeyID[:min(len(s.APIKeyID), 19)] + "…"
	}
	return fmt.Sprintf("scenario %s: %s, event time %s", s.Name, what, w)
}

// scenario is a ScenarioTarget with what the generator needs to stage it.
type scenario struct {
	ScenarioTarget
	model    modelProfile
	owners   []int // the team's owners, indices into Generator.owners
	ownerCum []float64
	key      int     // the runaway key's owner
	share    float64 // the target's share of the normal traffic
	rampEnd  time.Time
}

// scenarioFor resolves cfg's scenario against the generator's owners and
// models; nil when none is configured.
func (g *Generator) scenarioFor(cfg Config) *scenario {
	if cfg.Scenario == "" || cfg.Scenario == ScenarioBursts || len(g.owners) == 0 {
		return nil
	}
	at := cfg.ScenarioAt
	if at <= 0 {
		at = time.Hour
		if cfg.Duration > 0 {
			at = time.Duration(float64(cfg.Duration) * g.cfg.TimeScale / 2)
		}
	}
	sc := &scenario{ScenarioTarget: ScenarioTarget{Name: cfg.Scenario, Team: g.owners[0].Team, Start: g.start.Add(at)}}
	var ownerSum, teamW float64
	for i, o := range g.owners {
		ownerSum += o.weight
		if o.Team == sc.Team {
			sc.owners = append(sc.owners, i)
			teamW += o.weight
		}
	}
	sc.ownerCum = cumulative(len(sc.owners), func(i int) float64 { return g.owners[sc.owners[i]].weight })
	teamShare := teamW / ownerSum * (1 - g.cfg.UnownedRate)
	modelShare := func(m modelProfile) float64 { return m.weight / g.modelCum[len(g.modelCum)-1] }
	switch cfg.Scenario {
	case ScenarioSpike:
		sc.model = g.preferModel("gpt-4o", func(m modelProfile) bool { return !m.unpriced })
		sc.End = sc.Start.Add(10 * time.Minute)
		sc.share = teamShare * modelShare(sc.model)
	case ScenarioRamp:
		sc.rampEnd = sc.Start.Add(2 * time.Hour)
		sc.share = teamShare
	case ScenarioNewModel:
		sc.model = g.preferModel("claude-opus-4-1", func(m modelProfile) bool { return !m.unpriced })
		sc.share = teamShare
	case ScenarioCacheCollapse:
		sc.model = g.preferModel("claude-sonnet-4-5", func(m modelProfile) bool { return m.provider == "anthropic" || m.provider == "openai" })
	case ScenarioRunawayKey:
		sc.model = g.preferModel("gpt-4o-mini", func(m modelProfile) bool { return !m.unpriced })
		sc.key = sc.owners[len(sc.owners)-1]
		sc.APIKeyID = g.owners[sc.key].APIKeyID
		sc.End = sc.Start.Add(20 * time.Minute)
	case ScenarioGovernance:
		sc.model = g.preferModel("gpt-4o", func(m modelProfile) bool { return m.provider == "openai" })
		sc.model.name, sc.model.provider = GovernanceModel, "openai"
		sc.key = sc.owners[len(sc.owners)-1]
		sc.APIKeyID = g.owners[sc.key].APIKeyID
		sc.share = teamShare / 5
	}
	sc.Model = sc.model.name
	return sc
}

// preferModel returns the model named want when the generator uses it,
// else the first that ok accepts, else the first.
func (g *Generator) preferModel(want string, ok func(modelProfile) bool) modelProfile {
	if i := slices.IndexFunc(g.models, func(m modelProfile) bool { return m.name == want }); i >= 0 {
		return g.models[i]
	}
	if i := slices.IndexFunc(g.models, ok); i >= 0 {
		return g.models[i]
	}
	return g.models[0]
}

// extra is the scenario's additional traffic at event time t, as a share
// of the normal rate.
func (s *scenario) extra(t time.Time) float64 {
	if s == nil || t.Before(s.Start) || (!s.End.IsZero() && !t.Before(s.End)) {
		return 0
	}
	switch s.Name {
	case ScenarioSpike:
		return 4 * s.share // 5× the series
	case ScenarioRamp:
		f := min(float64(t.Sub(s.Start))/float64(s.rampEnd.Sub(s.Start)), 1)
		return 3 * f * s.share // up to 4× the team
	case ScenarioNewModel:
		return s.share / 2 // the team sends half again, all to the new model
	case ScenarioRunawayKey:
		return 2
	case ScenarioGovernance:
		return s.share // a fifth of the team's traffic again, on the preview model
	}
	return 0
}

// ownerIn draws one of the scenario team's owners.
func (s *scenario) ownerIn(g *Generator) *Owner {
	return &g.owners[s.owners[pick(g.rng, s.ownerCum)]]
}

// shape applies the scenario to an event being built at time t: it may
// replace the owner and model, and says whether the event's cache reads
// collapse. It draws from the generator's rng only while the scenario
// is active, so runs without one are unchanged.
func (s *scenario) shape(g *Generator, t time.Time, owner **Owner, m *modelProfile) (noCache bool) {
	if s == nil {
		return false
	}
	if x := s.extra(t); x > 0 && g.rng.Float64() < x/(1+x) {
		switch s.Name {
		case ScenarioSpike, ScenarioNewModel, ScenarioGovernance:
			*owner, *m = s.ownerIn(g), s.model
		case ScenarioRamp:
			*owner = s.ownerIn(g)
		case ScenarioRunawayKey:
			*owner, *m = &g.owners[s.key], s.model
		}
		return false
	}
	inTeam := *owner != nil && (*owner).Team == s.Team
	switch s.Name {
	case ScenarioNewModel:
		// Before it appears, the team never uses the new model.
		if inTeam && m.name == s.model.name && t.Before(s.Start) {
			for _, alt := range g.models {
				if alt.name != s.model.name {
					*m = alt
					break
				}
			}
		}
	case ScenarioCacheCollapse:
		return inTeam && m.name == s.model.name && !t.Before(s.Start)
	}
	return false
}

// govern adds ScenarioGovernance's data movement to ev, sent by owner at
// its time: region and sizes on every event (about 4 bytes a token), a new
// region for the target key and personal data out of region for the
// team's first key from the start on. It draws nothing from the rng.
func (s *scenario) govern(g *Generator, ev *schemas.Event, owner *Owner) {
	if s == nil || s.Name != ScenarioGovernance {
		return
	}
	ev.ProviderRegion, ev.ProviderEndpoint = "us-east-1", ev.Provider+".us-east-1.example"
	if u := ev.Usage; u != nil {
		ev.RequestBytes = schemas.Int64(4 * schemas.Get(u.InputTokens))
		ev.ResponseBytes = schemas.Int64(4 * schemas.Get(u.OutputTokens))
	}
	if owner == nil || ev.Time.Before(s.Start) {
		return
	}
	switch owner {
	case &g.owners[s.key]:
		ev.ProviderRegion, ev.ProviderEndpoint = "eu-west-1", ev.Provider+".eu-west-1.example"
	case &g.owners[s.owners[0]]:
		ev.Labels["data_class"] = "pii"
	}
}

func scenarioList() string { return strings.Join(Scenarios, ", ") }

// PlanScenario says what cfg's scenario will change and when, for a run
// starting now; ok is false without one.
func PlanScenario(cfg Config) (_ ScenarioTarget, ok bool) {
	cfg.Start = cfg.startAt(time.Now())
	return NewGenerator(cfg).Scenario()
}
