package governance

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aivis-dev/aivis/schemas"
)

const testPolicy = `default:
  providers: {allow: [openai, anthropic], deny: [mistral_ai]}
  models: {allow: ["gpt-4o*", "claude-*"], deny: ["*-preview"]}
  regions: ["us-*", "eu-*"]
teams:
  research:
    models: {allow: ["*"]}
  payments:
    regions: ["eu-*"]
data_classes:
  pii: {regions: ["eu-*"]}
required_labels: [env]
`

func TestPolicyDecisions(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		team, provider, model string
		ok                    bool
		why                   string
	}{
		{"search", "openai", "gpt-4o", true, ""},
		{"search", "OpenAI", "GPT-4o-mini", true, ""},
		{"search", "openai", "o3", false, "model o3 is not approved for team search"},
		{"search", "openai", "gpt-4o-preview", false, "model gpt-4o-preview is denied for team search"},
		{"search", "mistral_ai", "gpt-4o", false, "provider mistral_ai is denied for team search"},
		{"search", "gcp.gemini", "gemini-2.5-pro", false, "provider gcp.gemini is not approved for team search"},
		{"research", "openai", "o3", true, ""}, // its own model list replaces default's
		{"research", "gcp.gemini", "x", false, "provider gcp.gemini is not approved for team research"},
	} {
		ok, why := p.Approved(c.team, c.provider, c.model)
		if ok != c.ok || why != c.why {
			t.Errorf("Approved(%s, %s, %s) = %v %q, want %v %q", c.team, c.provider, c.model, ok, why, c.ok, c.why)
		}
	}
	for _, c := range []struct {
		team, class, region string
		ok                  bool
	}{
		{"search", "", "us-east-1", true},
		{"search", "", "", true}, // unknown region: cannot be judged
		{"search", "", "ap-south-1", false},
		{"payments", "", "us-east-1", false},
		{"payments", "", "eu-west-1", true},
		{"search", "pii", "us-east-1", false},
		{"search", "pii", "eu-central-1", true},
		{"search", "public", "us-east-1", true}, // unknown class: the team's regions
	} {
		if ok, why := p.RegionAllowed(c.team, c.class, c.region); ok != c.ok || (ok == (why != "")) {
			t.Errorf("RegionAllowed(%s, %s, %s) = %v %q, want %v", c.team, c.class, c.region, ok, why, c.ok)
		}
	}
	if got := p.MissingLabels(map[string]string{"env": ""}); len(got) != 1 || got[0] != "env" {
		t.Errorf("MissingLabels = %v, want [env]", got)
	}
	var none *Policy
	if ok, _ := none.Approved("a", "b", "c"); !ok {
		t.Error("a nil policy must approve everything")
	}
}

func TestPolicyErrorsNameTheirPath(t *testing.T) {
	_, err := ParsePolicy([]byte(`default:
  models: {allow: ["gpt-[4"]}
teams:
  "bad team": {}
data_classes:
  pii: {}
required_labels: ["a b"]
`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"default.models.allow[0]", "teams: \"bad team\"", "data_classes.pii.regions: is required", "required_labels[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := ParsePolicy([]byte("defualt: {}\n")); err == nil || !strings.Contains(err.Error(), "defualt") {
		t.Errorf("an unknown key must be named, got %v", err)
	}
}

func TestExamplePolicyLoads(t *testing.T) {
	if _, err := LoadPolicy("../deploy/governance.example.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := DefaultConfig()
	c.Window, c.History, c.DormantWakeUSD, c.UnattributedShare, c.AuthFailureBurst = 0, -1, "x", 2, 0
	err := c.Validate()
	for _, want := range []string{"governance.window", "governance.history", "governance.dormant_wake_usd", "governance.unattributed_share", "governance.auth_failure_burst"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate lacks %s: %v", want, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	if b, err := os.ReadFile("../deploy/governance.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("teams: {a: {regions: ['[']}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		// A policy that parses answers every question without panicking.
		p.Approved("t", "openai", "gpt-4o")
		p.RegionAllowed("t", "pii", "eu-west-1")
		p.MissingLabels(nil)
	})
}

func TestEnforcerFlagsAndGuard(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/policy.yaml"
	if err := os.WriteFile(path, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Path, cfg.MaxValuesPerDimension = path, 2
	reg := prometheus.NewRegistry()
	f, err := NewEnforcer(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	f.guard.SetClock(func() time.Time { return clock })
	ev := func(user string, tags ...string) *schemas.Enriched {
		return &schemas.Enriched{Event: schemas.Event{Kind: schemas.KindLLMRequest, Provider: "openai", Model: "o3",
			ProviderRegion: "us-east-1", Labels: map[string]string{"data_class": "pii"}, EndUser: user, Tags: tags},
			Owner: schemas.Owner{Team: "search"}, CanonicalModel: "o3"}
	}
	e := ev("u1", "a")
	f.Apply(e)
	if !e.Flags.UnapprovedModel || !e.Flags.RegionNotAllowed || !e.Flags.MissingLabels {
		t.Errorf("flags = %+v, want unapproved, out of region and missing labels", e.Flags)
	}
	f.Apply(ev("u2", "b"))
	shared := []string{"a", "c"}
	e = ev("u3", shared...)
	e.Tags = shared
	f.Apply(e)
	if e.EndUser != Other || e.Tags[0] != "a" || e.Tags[1] != Other {
		t.Errorf("third user and tag: %q %v, want _other and [a _other]", e.EndUser, e.Tags)
	}
	if shared[1] != "c" {
		t.Error("the guard changed the raw event's tags in place")
	}
	e = ev("u1")
	f.Apply(e)
	if e.EndUser != "u1" {
		t.Errorf("a user already seen became %q", e.EndUser)
	}
	if got := testutil.ToFloat64(f.guard.capped.WithLabelValues("end_user")); got != 1 {
		t.Errorf("capped end users = %v, want 1", got)
	}
	clock = clock.Add(time.Hour)
	e = ev("u3")
	f.Apply(e)
	if e.EndUser != "u3" {
		t.Errorf("a new hour must admit new users, got %q", e.EndUser)
	}
}
