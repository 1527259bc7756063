package savings

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestExampleRulesLoad(t *testing.T) {
	r, err := LoadRules("../deploy/savings.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Equivalents.Models) != 3 || len(r.Provisioned) != 1 || r.Provisioned[0].unitPrice.String() != "0.2" ||
		len(r.GPU.MIGProfiles["NVIDIA H100 80GB HBM3"]) != 3 || r.GPU.Comparables["llama"] != "openai/gpt-4o-mini" {
		t.Fatalf("example not applied: %+v", r)
	}
	cfg := DefaultConfig()
	cfg.Path = "../deploy/savings.example.yaml"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/savings.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../deploy/savings.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(example)) {
		t.Error("docs/savings.md does not show deploy/savings.example.yaml verbatim; copy the file into it")
	}
}

// TestBadRulesReportEveryProblem checks that each mistake is named by its
// key path, all at once.
func TestBadRulesReportEveryProblem(t *testing.T) {
	_, err := ParseRules([]byte(`min_monthly_usd: "-1"
caching: {min_repeats: 1, max_cache_read_share: "1.5"}
tiers: {candidates: [""], min_p50_latency_ms: -5}
equivalents: {models: [{from: gpt-4o, to: []}, {from: openai/a, to: [openai/a]}]}
provisioned: [{name: x, provider: openai, model: m, unit_usd_per_hour: "0", unit_tokens_per_hour: 0, max_units: 5000}]
gpu: {max_busy_share: 2, mig_profiles: {H100: [{profile: "", share: "x"}]}, comparables: {llama: nomodel}}
`))
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{"min_monthly_usd", "caching.min_repeats", "caching.max_cache_read_share", "tiers.candidates[0]",
		"tiers.min_p50_latency_ms", "equivalents.models[0].from", "equivalents.models[0].to", "equivalents.models[1].to[0]",
		"provisioned[0].unit_usd_per_hour", "provisioned[0].unit_tokens_per_hour", "provisioned[0].max_units",
		"gpu.max_busy_share", "gpu.mig_profiles.H100[0].profile", "gpu.mig_profiles.H100[0].share", "gpu.comparables.llama"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if _, err := ParseRules([]byte("caching: {unknown: 1}\n")); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown key accepted: %v", err)
	}
	cfg := Config{Interval: 0, Lookback: 90 * time.Minute, AlertMinMonthlyUSD: "lots"}
	err = cfg.Validate()
	for _, want := range []string{"savings.interval", "savings.lookback", "savings.alert_min_monthly_usd"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error does not name %s: %v", want, err)
		}
	}
}

// FuzzParseRules: any document is either rules that Build accepts or an
// error, never a panic.
func FuzzParseRules(f *testing.F) {
	if b, err := os.ReadFile("../deploy/savings.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("provisioned: [{name: a, provider: p, model: m, unit_usd_per_hour: \"1\", unit_tokens_per_hour: 1}]\n"))
	f.Add([]byte("gpu: {mig_profiles: {X: [{profile: a, share: \"0.5\"}]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data)
		if err != nil {
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("rules parsed but fail their own check: %v", err)
		}
	})
}
