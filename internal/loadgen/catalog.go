package loadgen

import (
	"sort"
	"strings"

	"github.com/aivis-dev/aivis/schemas"
)

// Model is one provider/model pair the generator uses.
type Model struct {
	Provider string
	Name     string
	// Unpriced marks the model a default pricing catalog should not know, so
	// enrich has something to flag.
	Unpriced bool
}

// modelProfile is how one model's traffic looks.
type modelProfile struct {
	provider, name string
	unpriced       bool
	weight         float64
	// Median token counts; actual counts are log-normal around them.
	inMedian, outMedian float64
	ttftMs              float64 // time to first token
	tokensPerSec        float64 // output speed
	// reasoningShare is the typical share of output spent reasoning; 0 for
	// models that report none.
	reasoningShare float64
}

// catalog weights make gpt-4o-mini dominate, as a cheap default model does in
// most organisations; this is the hot key the aggregator must spread.
var catalog = []modelProfile{
	{provider: "openai", name: "gpt-4o-mini", weight: 40, inMedian: 1200, outMedian: 250, ttftMs: 300, tokensPerSec: 110},
	{provider: "openai", name: "gpt-4o", weight: 12, inMedian: 1800, outMedian: 350, ttftMs: 450, tokensPerSec: 80},
	{provider: "openai", name: "o3-mini", weight: 5, inMedian: 1500, outMedian: 1400, ttftMs: 1500, tokensPerSec: 120, reasoningShare: 0.65},
	{provider: "anthropic", name: "claude-sonnet-4-5", weight: 14, inMedian: 3000, outMedian: 450, ttftMs: 600, tokensPerSec: 70},
	{provider: "anthropic", name: "claude-haiku-4-5", weight: 8, inMedian: 1500, outMedian: 250, ttftMs: 350, tokensPerSec: 150},
	{provider: "anthropic", name: "claude-opus-4-1", weight: 2, inMedian: 4000, outMedian: 600, ttftMs: 900, tokensPerSec: 40},
	{provider: "google", name: "gemini-2.5-flash", weight: 8, inMedian: 2000, outMedian: 400, ttftMs: 350, tokensPerSec: 200, reasoningShare: 0.3},
	{provider: "google", name: "gemini-2.5-pro", weight: 3, inMedian: 3500, outMedian: 800, ttftMs: 1000, tokensPerSec: 90, reasoningShare: 0.45},
	{provider: "aws.bedrock", name: "anthropic.claude-3-5-sonnet-20240620-v1:0", weight: 4, inMedian: 2500, outMedian: 400, ttftMs: 700, tokensPerSec: 65},
	{provider: "mistral", name: "mistral-large-latest", weight: 3, inMedian: 1500, outMedian: 300, ttftMs: 400, tokensPerSec: 75},
	// A self-hosted fine-tune nobody put in the price list.
	{provider: "vllm", name: "acme-support-llama-3.1-8b-ft", unpriced: true, weight: 1, inMedian: 900, outMedian: 200, ttftMs: 150, tokensPerSec: 180},
}

// Models lists the provider/model pairs the generator emits, so a pricing
// catalog can be checked against them.
func Models() []Model {
	out := make([]Model, len(catalog))
	for i, m := range catalog {
		out[i] = Model{Provider: m.provider, Name: m.name, Unpriced: m.unpriced}
	}
	return out
}

func providerList() string {
	set := map[string]bool{}
	for _, m := range catalog {
		set[m.provider] = true
	}
	names := make([]string, 0, len(set))
	for p := range set {
		names = append(names, p)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Owner is one synthetic API key and the team and project that own it.
type Owner struct {
	Team    string
	Project string
	// APIKeyID is the hashed key events carry, never a raw key.
	APIKeyID string
	weight   float64
}

// defaultTeams pairs each team with two projects; weights fall with the
// order so that spend is uneven, as it is in real organisations.
var defaultTeams = []struct {
	team     string
	projects [2]string
}{
	{"search", [2]string{"semantic-search", "query-rewrite"}},
	{"support", [2]string{"support-chat", "ticket-triage"}},
	{"data-science", [2]string{"churn-model", "notebooks"}},
	{"growth", [2]string{"email-copy", "ab-insights"}},
	{"platform", [2]string{"code-review", "eval-harness"}},
}

// Owners lists the keys the generator uses for cfg, so ownership rules for a
// demo can map them. Unowned traffic uses a key not listed here.
func Owners(cfg Config) []Owner {
	type teamProjects struct {
		team     string
		projects [2]string
	}
	var teams []teamProjects
	if len(cfg.Teams) == 0 {
		for _, t := range defaultTeams {
			teams = append(teams, teamProjects(t))
		}
	} else {
		for _, t := range cfg.Teams {
			teams = append(teams, teamProjects{t, [2]string{t + "-app", t + "-batch"}})
		}
	}
	var out []Owner
	for i, t := range teams {
		w := 1 / float64(i+1)
		out = append(out,
			Owner{Team: t.team, Project: t.projects[0], APIKeyID: keyID(t.team, t.projects[0]), weight: 0.7 * w},
			Owner{Team: t.team, Project: t.projects[1], APIKeyID: keyID(t.team, t.projects[1]), weight: 0.3 * w},
		)
	}
	return out
}

// keyID is the api_key_id of a fake key, in the form a producer sends for
// a real one (schemas.APIKeyID), which ingest and enrich keep as it is.
func keyID(team, project string) string {
	return schemas.APIKeyID("sk-loadgen-" + team + "-" + project)
}

// unownedKeyID belongs to no team: a key someone created outside any process.
var unownedKeyID = keyID("", "personal")
