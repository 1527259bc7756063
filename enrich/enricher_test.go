package enrich

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*/expected.json")

// testCatalog is pricing's test catalog, which the golden cases price with.
const testCatalog = "../pricing/testdata/catalog.yaml"

// The events enriched here are testenv's, which pricing's tests share.
var (
	usage    = testenv.Usage
	llmEvent = testenv.LLMEvent
)

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func testEnricher(t testing.TB) *Enricher {
	t.Helper()
	e, err := Load(Config{CatalogPath: testCatalog, OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	e.now = fixedNow
	return e
}

// TestGolden enriches testdata/golden/<case>/event.json and compares with
// expected.json. Cases named default-* use the embedded default catalog.
// Run with -update to rewrite the expectations after a deliberate change.
func TestGolden(t *testing.T) {
	test := testEnricher(t)
	def, err := Load(Config{OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	def.now = fixedNow
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, "event.json"))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := schemas.Decode(in)
			if err != nil {
				t.Fatalf("golden input is invalid: %v", err)
			}
			e := test
			if strings.HasPrefix(filepath.Base(dir), "default-") {
				e = def
			}
			testenv.GoldenJSON(t, filepath.Join(dir, "expected.json"), e.Enrich(ev), *update)
		})
	}
}

func TestEnrichFlags(t *testing.T) {
	e := testEnricher(t)
	out := e.Enrich(llmEvent("testprov", "mystery", usage(10, 0, 0, 10, 0)))
	if !out.Flags.Unpriced || out.CostPicos != 0 || out.CostSource != schemas.CostSourceNone || len(out.Pricing.Lines) != 0 {
		t.Errorf("unknown model: %+v", out)
	}
	if out.Pricing.CatalogVersion != "test-1" {
		t.Errorf("catalog version = %q", out.Pricing.CatalogVersion)
	}
	if !out.Flags.Unowned || out.Owner.Team != schemas.Unattributed {
		t.Errorf("owner: %+v flags %+v", out.Owner, out.Flags)
	}
	out = e.Enrich(llmEvent("testprov", "cheap", usage(1, 0, 0, 0, 0)))
	if out.Flags.Unpriced || out.CostSource != schemas.CostSourceCatalog || out.CostPicos != 37_500 {
		t.Errorf("priced event: %+v", out)
	}
	if !out.EnrichedAt.Equal(fixedNow()) {
		t.Errorf("enriched_at = %v", out.EnrichedAt)
	}
}

func TestEnrichProviderCostAndMismatch(t *testing.T) {
	e := testEnricher(t)
	ev := llmEvent("testprov", "mystery", usage(10, 0, 0, 1, 0))
	ev.ProviderCostUSD = "0.0000000000015"
	ev.Warnings = []string{"provider_total_mismatch: provider reports 12, normalized 11"}
	out := e.Enrich(ev)
	if out.CostPicos != 2 || out.CostSource != schemas.CostSourceProvider || out.Flags.Unpriced || !out.Flags.UsageMismatch {
		t.Errorf("enriched %+v", out)
	}
	if len(out.Warnings) != 2 || len(ev.Warnings) != 1 {
		t.Errorf("warnings: enriched %q, event %q", out.Warnings, ev.Warnings)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("catalog_version: v\ncurrency: USD\nmodels: [{id: a}]\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", DefaultConfig(), nil},
		{"test files", Config{CatalogPath: testCatalog, OwnersPath: "testdata/owners.yaml"}, nil},
		{"protobuf", Config{OutputFormat: FormatProtobuf}, nil},
		{"unknown format", Config{OutputFormat: "avro"}, []string{`enrich.output_format: "avro" is not a format; use json or protobuf`}},
		{"static member", Config{InstanceID: "enrich-0", SessionTimeout: 10 * time.Second}, nil},
		{"session timeout too short", Config{SessionTimeout: 500 * time.Millisecond}, []string{"enrich.session_timeout: 500ms must be at least 1s"}},
		{"every problem", Config{CatalogPath: bad, OwnersPath: filepath.Join(dir, "missing.yaml"), ReloadInterval: -time.Second},
			[]string{"enrich.reload_interval", "enrich.catalog_path", "bogus: unknown key", "enrich.owners_path", "missing.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func BenchmarkEnrich(b *testing.B) {
	def, err := Load(Config{OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, provider, model string }{
		{"exact", "anthropic", "claude-sonnet-4-5-20250929"},
		{"alias", "google", "models/Gemini-2.5-Flash"},
		{"pattern", "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"unpriced", "openai", "not-a-model"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := llmEvent(bc.provider, bc.model, usage(120500, 100000, 20000, 1800, 900))
			ev.APIKeyID = "key-search"
			raw, _ := json.Marshal(ev)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				_ = def.Enrich(ev)
			}
		})
	}
}

// TestCanonicalModel: every spelling of one catalog model gets the same
// canonical name, the reported one is kept, and an unpriced model is
// grouped under its normalized name.
func TestCanonicalModel(t *testing.T) {
	e, err := Load(Config{OwnersPath: "testdata/owners.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	const sonnetBedrock = "anthropic.claude-sonnet-4-5"
	for _, tc := range []struct {
		provider, model, want string
		priced                bool
	}{
		{"openai", "gpt-4o", "gpt-4o", true},
		{"openai", "gpt-4o-2024-08-06", "gpt-4o", true},
		{"openai", "GPT-4o", "gpt-4o", true},
		{"openai", "openai/gpt-4o", "gpt-4o", true},
		{"openai", " gpt-4o-2024-11-20 ", "gpt-4o", true},
		{"azure.ai.openai", "gpt-4o", "gpt-4o", true},
		{"anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", true},
		{"gcp.vertex_ai", "publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro", true},
		{"gcp.gemini", "models/gemini-2.5-pro-001", "gemini-2.5-pro", true},
		// A regional profile is priced by another entry, which names the
		// same model as the global one.
		{"aws.bedrock", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", sonnetBedrock, true},
		{"aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", sonnetBedrock, true},
		{"aws.bedrock", "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0", sonnetBedrock, true},
		{"openai", "My-Finetune", "my-finetune", false},
		{"aws.bedrock", "arn:aws:bedrock:us-east-1::foundation-model/acme.Unknown-v1:0", "acme.unknown-v1:0", false},
		{"nosuchprovider", "Some/Model", "some/model", false},
	} {
		ev := llmEvent(tc.provider, tc.model, usage(1000, 0, 0, 100, 0))
		out := e.Enrich(ev)
		if out.CanonicalModel != tc.want || out.ModelID() != tc.want || out.Model != tc.model || out.Flags.Unpriced == tc.priced {
			t.Errorf("%s %q: canonical %q (model %q, unpriced %v), want %q (priced %v)",
				tc.provider, tc.model, out.CanonicalModel, out.Model, out.Flags.Unpriced, tc.want, tc.priced)
		}
	}
}

// TestEnrichOwnedInPlace enriches an event decoded into the result itself,
// over a result whose every member is set, and compares with enriching
// a copy of the event into a fresh one: each member Enriched adds to Event
// must be set afresh. A member added to Enriched and not to this test's
// old value fails it.
func TestEnrichOwnedInPlace(t *testing.T) {
	e := testEnricher(t)
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, ev := range []*schemas.Event{llmEvent("testprov", "cheap", usage(1000, 0, 0, 10, 0)), llmEvent("nobody", "unknown", usage(5, 0, 0, 1, 0))} {
		old := schemas.Enriched{Owner: schemas.Owner{Team: "t", Project: "p", CostCenter: "c", Rule: "r"},
			Pricing:   schemas.Pricing{CatalogVersion: "v", PriceID: "id", Lines: []schemas.CostLine{{Meter: "m", Quantity: 1}}},
			CostPicos: 9, CostSource: "s", EnrichedAt: at.Add(-time.Hour), CanonicalModel: "old",
			Flags: schemas.Flags{Unpriced: true, Unowned: true, UnapprovedModel: true, UsageMismatch: true, RegionNotAllowed: true, MissingLabels: true}}
		v := reflect.ValueOf(old)
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.Name != "Event" && v.Field(i).IsZero() {
				t.Fatalf("the old value leaves %s zero: set it", f.Name)
			}
		}
		owner, unowned := e.owners.Attribute(ev)
		var want schemas.Enriched
		wq := e.enrichOwned(&want, ev, at, owner, unowned)
		got := old
		got.Event = *ev
		gq := e.enrichOwned(&got, &got.Event, at, owner, unowned)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gq, wq) {
			t.Errorf("in place:\n got  %+v\n want %+v", got, want)
		}
	}
}
