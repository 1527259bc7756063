package pricing

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

func mustCatalog(t testing.TB, path string) *Catalog {
	t.Helper()
	c, err := LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var f catalogFile
	if err := yamlstrict.Decode(defaultCatalogYAML, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Models) < 15 {
		t.Errorf("default catalog has %d model entries, want at least 15", len(f.Models))
	}
	providers := map[string]bool{}
	for _, m := range f.Models {
		providers[m.Provider] = true
		if m.SourceURL == "" || m.RetrievedAt == "" {
			t.Errorf("%s: source_url and retrieved_at are required in the default catalog", m.ID)
		}
	}
	for _, g := range f.GPUs {
		if g.SourceURL == "" || g.RetrievedAt == "" {
			t.Errorf("%s: source_url and retrieved_at are required in the default catalog", g.ID)
		}
	}
	for _, p := range []string{"openai", "anthropic", "gcp.gemini", "aws.bedrock", "mistral_ai"} {
		if !providers[p] {
			t.Errorf("default catalog has no %s models", p)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ provider, model string }{
		{"openai", "gpt-4o"},
		{"anthropic", "claude-sonnet-4-5-20250929"},
		{"google", "gemini-2.5-flash"},
		{"aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"mistral", "codestral-2501"},
	} {
		if _, _, ok := c.lookup(tc.provider, tc.model, now); !ok {
			t.Errorf("default catalog does not price %s/%s", tc.provider, tc.model)
		}
	}
}

func TestParseCatalogErrors(t *testing.T) {
	const head = "catalog_version: v\ncurrency: USD\n"
	entry := func(rates string) string {
		return head + "models:\n  - id: a/b\n    provider: p\n    match: {models: [b]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: " + rates + "\n"
	}
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"empty", "", []string{"empty"}},
		{"unknown top key", head + "modles: []\n", []string{"modles: unknown key", "line 3"}},
		{"unknown nested key", entry(`{input: "1", output: "1", inptu: "2"}`), []string{"models[0].rates.inptu: unknown key"}},
		{"negative", entry(`{input: "-1", output: "1"}`), []string{"models[0](a/b).rates.input", "negative"}},
		{"seven decimals", entry(`{input: "0.0000001", output: "1"}`), []string{"rates.input", "more than 6 decimal places"}},
		{"not a number", entry(`{input: "abc", output: "1"}`), []string{"rates.input", "not a decimal"}},
		{"too large", entry(`{input: "2000000", output: "1"}`), []string{"above the limit"}},
		{"missing output", entry(`{input: "1"}`), []string{"rates.output: is required"}},
		{"currency", "catalog_version: v\ncurrency: EUR\n", []string{"currency: must be USD"}},
		{"version", "currency: USD\n", []string{"catalog_version: is required"}},
		{"second document", head + "---\n" + head, []string{"second YAML document"}},
		{"bad date", head + "models:\n  - id: a\n    provider: p\n    match: {models: [b]}\n    effective_from: yesterday\n    rates: {input: \"1\", output: \"1\"}\n", []string{"effective_from: must be an RFC 3339"}},
		{"bad regex", head + "models:\n  - id: a\n    provider: p\n    match: {pattern: '('}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"1\", output: \"1\"}\n", []string{"match.pattern: is not a valid regular expression"}},
		{"no match", head + "models:\n  - id: a\n    provider: p\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"1\", output: \"1\"}\n", []string{"match: needs at least one"}},
		{"ambiguous name", head + "models:\n  - id: a\n    provider: p\n    match: {models: [m]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"1\", output: \"1\"}\n  - id: b\n    provider: p\n    match: {models: [m]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"1\", output: \"1\"}\n", []string{`"m" is already matched by "a"`}},
		{"duplicate version", head + "models:\n  - id: a\n    provider: p\n    match: {models: [m]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"1\", output: \"1\"}\n  - id: a\n    provider: p\n    match: {models: [m]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"2\", output: \"2\"}\n", []string{"already used by another entry"}},
		{"gpu decimals", head + "gpus:\n  - id: g\n    match: {gpu_models: [x]}\n    effective_from: 2025-01-01T00:00:00Z\n    gpu_hour: \"0.0000001\"\n", []string{"gpus[0](g).gpu_hour", "decimal places"}},
		{"every problem at once", head + "models:\n  - id: a\n    provider: p\n    match: {models: [m]}\n    effective_from: 2025-01-01T00:00:00Z\n    rates: {input: \"-1\", output: \"x\"}\n", []string{"rates.input", "rates.output"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tc.doc))
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	c := mustCatalog(t, "testdata/catalog.yaml")
	d := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct {
		name, provider, model, at string
		wantID                    string // "" = unpriced
	}{
		{"exact", "testprov", "full", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"alias case-insensitive", "testprov", "FULL-latest", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"exact beats an earlier regex", "testprov", "full-2025", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"first regex in file order", "testprov", "full-7", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"second regex", "testprov", "full-x", "2025-03-01T00:00:00Z", "test/regex-first@2025-01-01T00:00:00Z"},
		{"exact is case-insensitive", "testprov", "FULL", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"regex on the lower-cased name", "testprov", "FULL-7", "2025-03-01T00:00:00Z", "test/full@2025-01-01T00:00:00Z"},
		{"before first version", "testprov", "dated", "2024-12-31T23:59:59Z", ""},
		{"first version", "testprov", "dated", "2025-06-09T23:59:59Z", "test/dated@2025-01-01T00:00:00Z"},
		{"second version from its start", "testprov", "dated", "2025-06-10T00:00:00Z", "test/dated@2025-06-10T00:00:00Z"},
		{"provider case", "TestProv", "cheap", "2025-03-01T00:00:00Z", "test/cheap@2025-01-01T00:00:00Z"},
		{"provider alias", "google", "gemini-x", "2025-03-01T00:00:00Z", "test/gemini@2025-01-01T00:00:00Z"},
		{"unknown provider", "nope", "cheap", "2025-03-01T00:00:00Z", ""},
		{"unknown model", "testprov", "nope", "2025-03-01T00:00:00Z", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, _, ok := c.lookup(tc.provider, tc.model, d(tc.at))
			got := ""
			if ok {
				got = p.priceID
			}
			if got != tc.wantID {
				t.Errorf("lookup(%s, %s, %s) = %q, want %q", tc.provider, tc.model, tc.at, got, tc.wantID)
			}
		})
	}
}

func TestLoadCatalogMissingFile(t *testing.T) {
	_, err := LoadCatalog("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), `opening catalog "testdata/does-not-exist.yaml"`) {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseCatalog(f *testing.F) {
	for _, p := range []string{"testdata/catalog.yaml", "defaults/catalog.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("catalog_version: v\ncurrency: USD\nmodels: [{id: a, provider: p, match: {pattern: 'x*'}, effective_from: 2025-01-01T00:00:00Z, rates: {input: 1e3, output: .5}}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("- - - -\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog(data)
		if err != nil {
			return
		}
		// Whatever parses must price without panicking.
		ev := llmEvent("p", "a", usage(10, 2, 3, 5, 1))
		_ = c.Price(ev)
	})
}
