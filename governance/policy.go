package governance

import (
	"fmt"
	"path"
	"strings"
)

// Policy is a validated policy file. A nil *Policy approves everything.
type Policy struct {
	file File
}

// rules returns the team's rules, each empty list taken from the default.
func (p *Policy) rules(team string) Rules {
	r := p.file.Default
	t, ok := p.file.Teams[team]
	if !ok {
		return r
	}
	if len(t.Providers.Allow) > 0 || len(t.Providers.Deny) > 0 {
		r.Providers = t.Providers
	}
	if len(t.Models.Allow) > 0 || len(t.Models.Deny) > 0 {
		r.Models = t.Models
	}
	if len(t.Regions) > 0 {
		r.Regions = t.Regions
	}
	return r
}

// Approved says whether team may use model of provider, and if not, why.
// Names are compared case-insensitively; model is the canonical model.
func (p *Policy) Approved(team, provider, model string) (bool, string) {
	if p == nil {
		return true, ""
	}
	r := p.rules(team)
	if ok, why := r.Providers.permits(provider); !ok {
		return false, fmt.Sprintf("provider %s %s for team %s", provider, why, team)
	}
	if ok, why := r.Models.permits(model); !ok {
		return false, fmt.Sprintf("model %s %s for team %s", model, why, team)
	}
	return true, ""
}

// RegionAllowed says whether usage of team with data of dataClass may go to
// region, and if not, why. An unreported region is always allowed: it
// cannot be judged.
func (p *Policy) RegionAllowed(team, dataClass, region string) (bool, string) {
	if p == nil || region == "" {
		return true, ""
	}
	if rs := p.rules(team).Regions; len(rs) > 0 && !matchAny(rs, region) {
		return false, fmt.Sprintf("region %s is outside the regions allowed for team %s (%s)", region, team, strings.Join(rs, ", "))
	}
	if dc, ok := p.file.DataClasses[dataClass]; ok && dataClass != "" && !matchAny(dc.Regions, region) {
		return false, fmt.Sprintf("region %s is outside the regions allowed for data class %s (%s)", region, dataClass, strings.Join(dc.Regions, ", "))
	}
	return true, ""
}

// RequiredLabels are the labels every llm.request event must carry.
func (p *Policy) RequiredLabels() []string {
	if p == nil {
		return nil
	}
	return p.file.RequiredLabels
}

// MissingLabels returns the required labels that labels lacks (or has empty).
func (p *Policy) MissingLabels(labels map[string]string) []string {
	var out []string
	for _, l := range p.RequiredLabels() {
		if labels[l] == "" {
			out = append(out, l)
		}
	}
	return out
}

func (l ListRule) permits(name string) (bool, string) {
	if matchAny(l.Deny, name) {
		return false, "is denied"
	}
	if len(l.Allow) > 0 && !matchAny(l.Allow, name) {
		return false, "is not approved"
	}
	return true, ""
}

// matchAny reports whether name matches one of the patterns, ignoring case.
func matchAny(patterns []string, name string) bool {
	name = strings.ToLower(name)
	for _, pat := range patterns {
		if ok, _ := path.Match(strings.ToLower(pat), name); ok {
			return true
		}
	}
	return false
}
