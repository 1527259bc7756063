package pricing

import (
	"strings"
	"testing"
	"unsafe"
)

func TestNormalizeModel(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain name unchanged", "gpt-4o", "gpt-4o"},
		{"surrounding spaces", "  gpt-4o ", "gpt-4o"},
		{"vertex claude version", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"},
		{"vertex non-date version kept", "claude-x@latest", "claude-x@latest"},
		{"vertex publisher path", "publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"},
		{"vertex full resource name", "projects/P/locations/L/publishers/google/models/gemini-2.5-flash-001", "gemini-2.5-flash-001"},
		{"vertex claude resource name", "projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"},
		{"gemini api models/ prefix", "models/gemini-2.5-pro", "gemini-2.5-pro"},
		{"bedrock foundation model arn", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"bedrock inference profile arn", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"bedrock global profile arn", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"govcloud partition", "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{"application profile stays opaque", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"},
		{"not bedrock arn", "arn:aws:sagemaker:us-east-1:1:endpoint/x", "arn:aws:sagemaker:us-east-1:1:endpoint/x"},
		{"trailing models/ kept", "models/", "models/"},
		{"models/ inside a word kept", "mymodels/x", "mymodels/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeModel(tc.in); got != tc.want {
				t.Errorf("NormalizeModel(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSnapshotOf(t *testing.T) {
	cases := map[string]string{
		"gpt-4o":                     "",
		"gpt-4o-2024-08-06":          "2024-08-06",
		"claude-sonnet-4-5-20250929": "20250929",
		"anthropic.claude-3-5-haiku-20241022-v1:0": "20241022",
		"gemini-2.5-flash-001":                     "001",
		"gemini-2.5-pro-preview-06-05":             "06-05",
		"gemini-2.5-flash-preview-09-2025":         "09-2025",
		"gpt-4-0613":                               "0613",
		"gpt-oss-120b":                             "",
		"amazon.nova-pro-v1:0":                     "",
	}
	for in, want := range cases {
		if got := snapshotOf(in); got != want {
			t.Errorf("snapshotOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDefaultCatalogNames prices every provider form of a name with the
// built-in catalog: each must reach the entry the plain name reaches, and
// a regional Bedrock id the regional price.
func TestDefaultCatalogNames(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, provider, model string
		wantEntry             string // "" = unpriced
		wantWarn              string // a fallback code, or ""
	}{
		{"exact name", "openai", "gpt-4o", "openai/gpt-4o", ""},
		{"upper-case exact name", "openai", "GPT-4o", "openai/gpt-4o", ""},
		{"upper-case snapshot", "openai", "GPT-4O-2024-08-06", "openai/gpt-4o", ""},
		{"azure provider, model name", "azure.ai.openai", "gpt-4o", "openai/gpt-4o", ""},
		{"anthropic with vertex version", "anthropic", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5", ""},
		{"vertex publisher path", "gcp.vertex_ai", "publishers/google/models/gemini-2.5-pro", "google/gemini-2.5-pro", ""},
		{"vertex resource name, snapshot not listed", "gcp.vertex_ai",
			"projects/P/locations/L/publishers/google/models/gemini-2.5-flash-001", "google/gemini-2.5-flash", WarnSnapshotFallback},
		{"bedrock foundation model arn is in-region", "aws.bedrock",
			"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock/anthropic.claude-sonnet-4-5/regional", ""},
		{"bedrock us. profile arn is regional", "aws.bedrock",
			"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock/anthropic.claude-sonnet-4-5/regional", ""},
		{"bedrock global profile arn is global", "aws.bedrock",
			"arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock/anthropic.claude-sonnet-4-5", ""},
		{"bedrock older claude, one price for every profile", "bedrock",
			"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0", "aws.bedrock/anthropic.claude-sonnet-4", ""},
		{"bedrock application profile is opaque", "aws.bedrock",
			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := c.Price(llmEvent(tc.provider, tc.model, usage(1000, 0, 0, 100, 0)))
			if got := q.priceEntryID(); got != tc.wantEntry || q.Priced != (tc.wantEntry != "") {
				t.Fatalf("priced by %q (priced %v), want %q", got, q.Priced, tc.wantEntry)
			}
			checkFallback(t, q, tc.wantWarn)
		})
	}
}

// checkFallback requires q's fallback warnings to be exactly want (one
// code, or none when want is "").
func checkFallback(t *testing.T, q Quote, want string) {
	t.Helper()
	var codes []string
	for _, w := range q.Warnings {
		if code := FallbackCode(w); code != "" {
			codes = append(codes, code)
		}
		if !strings.Contains(w, ": ") {
			t.Errorf("warning %q is not in \"code: detail\" form", w)
		}
	}
	if want == "" && len(codes) != 0 || want != "" && (len(codes) != 1 || codes[0] != want) {
		t.Errorf("fallback warnings %q, want %q", q.Warnings, want)
	}
}

const fallbackCatalog = `
catalog_version: fallback-test
currency: USD
provider_aliases: {azure.ai.openai: openai, azure: openai}
azure_deployments:
  My-GPT4o-Prod: gpt-4o
  cheap-deploy: gpt-4o-mini
models:
  - id: openai/gpt-4o
    provider: openai
    match:
      models: [gpt-4o, gpt-4o-2024-08-06]
      pattern: '^gpt-4o(-\d{4}-\d{2}-\d{2})?$'
    effective_from: 2024-05-13T00:00:00Z
    rates: {input: "2.50", output: "10.00"}
    service_tiers:
      batch: {multiply: "0.5"}
      flex: {multiply: "0.5", warning: "flex_latency: flex requests may be slower"}
  - id: openai/gpt-4o-mini
    provider: openai
    match:
      models: [gpt-4o-mini]
    effective_from: 2024-05-13T00:00:00Z
    rates: {input: "0.15", output: "0.60"}
  - id: bedrock/claude-global
    provider: aws.bedrock
    match:
      models: [global.anthropic.claude-x-20250101-v1:0]
      pattern: '^((us|eu|global)\.)?anthropic\.claude-x-20250101-v1(:0)?$'
    effective_from: 2025-01-01T00:00:00Z
    rates: {input: "3.00", output: "15.00"}
  - id: bedrock/claude-y-global
    provider: aws.bedrock
    match:
      models: [global.anthropic.claude-y-20250101-v1:0]
    effective_from: 2025-01-01T00:00:00Z
    rates: {input: "1.00", output: "5.00"}
  - id: bedrock/claude-z
    provider: aws.bedrock
    match:
      models: [anthropic.claude-z-20250101-v1:0]
      pattern: '^((us|eu|global)\.)?anthropic\.claude-z-20250101-v1(:0)?$'
    effective_from: 2025-01-01T00:00:00Z
    rates: {input: "1.00", output: "5.00"}
`

// TestFallbackWarnings: every way an event is priced by fallback rather
// than exactly says so with its code, and the exact cases say nothing.
func TestFallbackWarnings(t *testing.T) {
	c, err := ParseCatalog([]byte(fallbackCatalog))
	if err != nil {
		t.Fatal(err)
	}
	u := usage(1_000_000, 0, 0, 100_000, 0) // 2.50 + 1.00 USD at gpt-4o list
	cases := []struct {
		name, provider, model, tier, providerCost string
		wantEntry                                 string
		wantPicos                                 int64
		wantWarn                                  string
	}{
		{"exact", "openai", "gpt-4o", "", "", "openai/gpt-4o", 3_500_000_000_000, ""},
		{"listed snapshot by exact name", "openai", "gpt-4o-2024-08-06", "", "", "openai/gpt-4o", 3_500_000_000_000, ""},
		{"known tier", "openai", "gpt-4o", "Batch", "", "openai/gpt-4o", 1_750_000_000_000, ""},
		{"standard tier names are not unknown", "openai", "gpt-4o", "default", "", "openai/gpt-4o", 3_500_000_000_000, ""},
		{"a catalog tier warning is not a fallback", "openai", "gpt-4o", "flex", "", "openai/gpt-4o", 1_750_000_000_000, ""},
		{"unknown tier prices standard, with a warning", "openai", "gpt-4o", "scale", "", "openai/gpt-4o", 3_500_000_000_000, WarnUnknownServiceTier},
		{"other snapshot through the pattern", "openai", "gpt-4o-2025-01-01", "", "", "openai/gpt-4o", 3_500_000_000_000, WarnSnapshotFallback},
		{"other snapshot, upper case", "openai", "GPT-4O-2025-01-01", "", "", "openai/gpt-4o", 3_500_000_000_000, WarnSnapshotFallback},
		{"provider cost within tolerance", "openai", "gpt-4o", "", "3.55", "openai/gpt-4o", 3_550_000_000_000, ""},
		{"provider cost beyond tolerance is kept, with a warning", "openai", "gpt-4o", "", "4.00", "openai/gpt-4o", 4_000_000_000_000, WarnProviderCostMismatch},
		{"azure deployment maps to its model", "azure.ai.openai", "my-gpt4o-prod", "", "", "openai/gpt-4o", 3_500_000_000_000, ""},
		{"azure deployment of another model", "azure", "cheap-deploy", "", "", "openai/gpt-4o-mini", 210_000_000_000, ""},
		{"deployment names only apply to azure", "openai", "cheap-deploy", "", "", "", 0, ""},
		{"global profile exact", "aws.bedrock", "global.anthropic.claude-x-20250101-v1:0", "", "", "bedrock/claude-global", 4_500_000_000_000, ""},
		{"regional id on a global-only entry", "aws.bedrock", "us.anthropic.claude-x-20250101-v1:0", "", "", "bedrock/claude-global", 4_500_000_000_000, WarnRegionalPriceMissing},
		{"regional id with no entry falls back to global", "aws.bedrock",
			"arn:aws:bedrock:us-east-1:1:inference-profile/eu.anthropic.claude-y-20250101-v1:0", "", "", "bedrock/claude-y-global", 1_500_000_000_000, WarnRegionalPriceMissing},
		{"entry for every profile is not a fallback", "aws.bedrock", "eu.anthropic.claude-z-20250101-v1:0", "", "", "bedrock/claude-z", 1_500_000_000_000, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := llmEvent(tc.provider, tc.model, u)
			ev.ServiceTier, ev.ProviderCostUSD = tc.tier, tc.providerCost
			q := c.Price(ev)
			if tc.wantEntry == "" {
				if q.Priced {
					t.Fatalf("priced by %s, want unpriced", q.PriceID)
				}
				return
			}
			if got := q.priceEntryID(); got != tc.wantEntry || !q.Priced || q.CostPicos != tc.wantPicos {
				t.Fatalf("priced by %q at %d picos (priced %v), want %q at %d", got, q.CostPicos, q.Priced, tc.wantEntry, tc.wantPicos)
			}
			checkFallback(t, q, tc.wantWarn)
		})
	}
}

func TestProviderCostTolerance(t *testing.T) {
	c, err := ParseCatalog([]byte(fallbackCatalog))
	if err != nil {
		t.Fatal(err)
	}
	ev := llmEvent("openai", "gpt-4o", usage(1_000_000, 0, 0, 100_000, 0))
	ev.ProviderCostUSD = "4.00" // 14% above the catalog's 3.50
	for _, tc := range []struct {
		tolerance float64
		warn      string
	}{{0.10, WarnProviderCostMismatch}, {0.15, ""}, {0, WarnProviderCostMismatch}} {
		ct, err := c.WithProviderCostTolerance(tc.tolerance)
		if err != nil {
			t.Fatal(err)
		}
		checkFallback(t, ct.Price(ev), tc.warn)
	}
	if _, err := c.WithProviderCostTolerance(-0.1); err == nil {
		t.Error("a negative tolerance is accepted")
	}
}

func TestCostsDisagree(t *testing.T) {
	cases := []struct {
		provider, catalog, ppm int64
		want                   bool
	}{
		{100, 100, 0, false},
		{102, 100, 20_000, false},
		{103, 100, 20_000, true},
		{98, 100, 20_000, false},
		{97, 100, 20_000, true},
		{1, 0, 20_000, true},
		{1 << 62, 1 << 62, 1_000_000_000, false},
		{0, 1 << 62, 1_000_000, false},
	}
	for _, tc := range cases {
		if got := costsDisagree(tc.provider, tc.catalog, tc.ppm); got != tc.want {
			t.Errorf("costsDisagree(%d, %d, %d) = %v, want %v", tc.provider, tc.catalog, tc.ppm, got, tc.want)
		}
	}
}

func TestFallbackCode(t *testing.T) {
	for w, want := range map[string]string{
		"unknown_service_tier: x":    WarnUnknownServiceTier,
		"provider_cost_mismatch: y":  WarnProviderCostMismatch,
		"provider_cost_rounded: z":   "",
		"provider_total_mismatch: a": "",
		"snapshot_fallback_extra: b": "",
		"regional_price_missing":     WarnRegionalPriceMissing,
	} {
		if got := FallbackCode(w); got != want {
			t.Errorf("FallbackCode(%q) = %q, want %q", w, got, want)
		}
	}
}

func TestCanonicalModel(t *testing.T) {
	c, err := ParseCatalog([]byte(`
catalog_version: t
currency: USD
models:
  - id: acme/big
    provider: acme
    match: {models: [big, big-2025-01-01], aliases: [acme/big]}
    effective_from: 2025-01-01T00:00:00Z
    rates: {input: "1", output: "2"}
  - id: acme/big/eu
    provider: acme
    model: big
    match: {models: [eu.big]}
    effective_from: 2025-01-01T00:00:00Z
    rates: {input: "1.1", output: "2.2"}
  - id: acme/small
    provider: acme
    model: small-v
    match: {pattern: '^small(-\d{8})?$'}
    effective_from: 2026-01-01T00:00:00Z
    rates: {input: "1", output: "2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model, want string
		known       bool
	}{
		{"big", "big", true}, {"BIG-2025-01-01", "big", true}, {"acme/big", "big", true}, {"eu.big", "big", true},
		// At any date: small's only price starts in 2026.
		{"small-20250101", "small-v", true},
		{" Other@20250101 ", "other-20250101", false},
	} {
		got, known := c.CanonicalModel("acme", tc.model)
		if got != tc.want || known != tc.known {
			t.Errorf("CanonicalModel(%q) = %q, %v; want %q, %v", tc.model, got, known, tc.want, tc.known)
		}
	}
	if got, known := c.CanonicalModel("nobody", "X/Y"); got != "x/y" || known {
		t.Errorf("unknown provider: %q, %v", got, known)
	}

	_, err = ParseCatalog([]byte(`
catalog_version: t
currency: USD
models:
  - {id: acme/big, provider: acme, match: {models: [big]}, effective_from: 2025-01-01T00:00:00Z, rates: {input: "1", output: "2"}}
  - {id: acme/big, provider: acme, model: huge, match: {models: [big]}, effective_from: 2026-01-01T00:00:00Z, rates: {input: "1", output: "2"}}
`))
	if err == nil || !strings.Contains(err.Error(), "models[1](acme/big).model") {
		t.Errorf("versions naming two models: err = %v", err)
	}
}

// The cache answers what resolve does, for pairs that share front slots
// and come back in turns, and for names whose memory the caller reuses.
func TestResolveCachedMatchesResolve(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, got, want resolved) {
		t.Helper()
		if got.v != want.v || got.name != want.name || strings.Join(got.warnings, "|") != strings.Join(want.warnings, "|") {
			t.Fatalf("%s: cached %+v, resolve gives %+v", what, got, want)
		}
	}
	var pairs [][2]string
	for _, p := range []string{"openai", "anthropic", "bedrock", "azure", "nope"} {
		for _, m := range []string{"gpt-4o", "GPT-4o-2024-08-06", "claude-sonnet-4-5-20250929", "anthropic.claude-3-haiku-20240307-v1:0", "unknown-model"} {
			pairs = append(pairs, [2]string{p, m})
		}
	}
	for i := range 3 * resolveFrontSize {
		pairs = append(pairs, [2]string{"openai", "gpt-4o-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))})
	}
	for range 3 {
		for _, p := range pairs {
			same(p[0]+"/"+p[1], c.resolveCached(p[0], p[1]), c.resolve(p[0], p[1]))
		}
	}
	// Names in a buffer the caller overwrites: the same address and
	// length, other text.
	buf := []byte("gpt-4o-mini")
	name := unsafe.String(&buf[0], len(buf))
	same("first text", c.resolveCached("openai", name), c.resolve("openai", "gpt-4o-mini"))
	copy(buf, "unknown-mod")
	same("same address, other text", c.resolveCached("openai", name), c.resolve("openai", "unknown-mod"))
	copy(buf, "gpt-4o-mini")
	same("the first text again", c.resolveCached("openai", name), c.resolve("openai", "gpt-4o-mini"))
}
