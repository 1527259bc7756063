package pricing

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
)

// pinnedSources are the copies in testdata/sources, with the source name
// their exceptions use.
var pinnedSources = []struct {
	name, file string
	importer   func(io.Reader, string) ([]byte, error)
}{
	{"litellm", "testdata/sources/litellm-model-prices.json.gz", ImportLiteLLM},
	{"genai-prices", "testdata/sources/genai-prices.json.gz", ImportGenAIPrices},
}

func loadPinned(t testing.TB, file string, importer func(io.Reader, string) ([]byte, error)) *Catalog {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	z, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	y, err := importer(z, "pinned")
	if err != nil {
		t.Fatalf("importing %s: %v", file, err)
	}
	c, err := ParseCatalog(y)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDefaultCatalogAgainstSources holds the default catalog against the
// pinned LiteLLM and genai-prices copies: every difference must be listed,
// with its reason and source, in defaults/exceptions.yaml, and every
// exception must still cover a difference.
func TestDefaultCatalogAgainstSources(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	x, err := DefaultExceptions()
	if err != nil {
		t.Fatal(err)
	}
	usedAll := make([]int, len(x.list))
	for _, src := range pinnedSources {
		other := loadPinned(t, src.file, src.importer)
		diffs := Diff(c, other)
		open, used := x.Filter(src.name, diffs)
		for i, n := range used {
			usedAll[i] += n
		}
		for _, d := range open {
			t.Errorf("%s: %s", src.name, d)
		}
		t.Logf("%s: %d differences, %d not covered by an exception", src.name, len(diffs), len(open))
	}
	for i, n := range usedAll {
		if n == 0 {
			t.Errorf("%s covers no difference; remove it", x.Describe(i))
		}
	}
}

// TestDefaultCatalogProvenance: every entry says where its price comes
// from and when it was read.
func TestDefaultCatalogProvenance(t *testing.T) {
	var f catalogFile
	if err := yamlstrict.Decode(defaultCatalogYAML, &f); err != nil {
		t.Fatal(err)
	}
	for i, m := range f.Models {
		if m.SourceURL == "" || m.RetrievedAt == "" {
			t.Errorf("models[%d](%s): source_url and retrieved_at are required", i, m.ID)
		}
	}
	for i, g := range f.GPUs {
		if g.SourceURL == "" || g.RetrievedAt == "" {
			t.Errorf("gpus[%d](%s): source_url and retrieved_at are required", i, g.ID)
		}
	}
}

// TestDefaultCatalogCorrections prices one event of each class the
// catalog was corrected for; costs are hand-computed in pico-USD
// (USD per 1M tokens × tokens × 1e6).
func TestDefaultCatalogCorrections(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, provider, model, tier, date string
		in, out                           int64
		cost                              int64 // pico-USD; -1: unpriced
		warning                           string
	}{
		// Bedrock Sonnet 4.5: global 3/15; regional profiles and the
		// in-region id 3.30/16.50. 1000 in + 100 out = 0.0033 + 0.00165 USD.
		{"bedrock global", "aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "", "2026-11-01", 1000, 100, 3_000_000_000 + 1_500_000_000, ""},
		{"bedrock us. profile", "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "", "2026-11-01", 1000, 100, 3_300_000_000 + 1_650_000_000, ""},
		{"bedrock eu. haiku profile", "aws.bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "", "2026-11-01", 1000, 100, 1_100_000_000 + 550_000_000, ""},
		{"bedrock in-region id", "aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "", "2026-11-01", 1000, 100, 3_300_000_000 + 1_650_000_000, ""},
		// Regional long context: 250k in at 6.60, 1000 out at 24.75.
		{"bedrock us. long context", "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "", "2026-11-01", 250_000, 1000, 250_000*6_600_000 + 1000*24_750_000, ""},
		{"bedrock older claude profile", "aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "", "2026-11-01", 1000, 100, 3_000_000_000 + 1_500_000_000, ""},
		// Nova in eu.: 1.05/4.20.
		{"nova eu.", "aws.bedrock", "eu.amazon.nova-pro-v1:0", "", "2026-11-01", 1000, 100, 1_050_000_000 + 420_000_000, ""},
		// Mistral: snapshots priced as their own model; -latest follows.
		{"mistral medium 3", "mistral_ai", "mistral-medium-2508", "", "2026-11-01", 1000, 100, 400_000_000 + 200_000_000, ""},
		{"mistral medium 3.5", "mistral_ai", "mistral-medium-2604", "", "2026-11-01", 1000, 100, 1_500_000_000 + 750_000_000, ""},
		{"mistral medium latest before", "mistral_ai", "mistral-medium-latest", "", "2026-06-15", 1000, 100, 400_000_000 + 200_000_000, ""},
		{"mistral medium latest after", "mistral_ai", "mistral-medium-latest", "", "2026-06-16", 1000, 100, 1_500_000_000 + 750_000_000, ""},
		{"mistral large 3", "mistral_ai", "mistral-large-2512", "", "2026-11-01", 1000, 100, 500_000_000 + 150_000_000, ""},
		{"mistral large 2", "mistral_ai", "mistral-large-2411", "", "2026-11-01", 1000, 100, 2_000_000_000 + 600_000_000, ""},
		{"ministral 3b 2512", "mistral_ai", "ministral-3b-2512", "", "2026-11-01", 1000, 100, 100_000_000 + 10_000_000, ""},
		{"mistral small 2603", "mistral_ai", "mistral-small-2603", "", "2026-11-01", 1000, 100, 150_000_000 + 60_000_000, ""},
		{"unknown new snapshot is unpriced", "mistral_ai", "mistral-small-2611", "", "2026-11-01", 1000, 100, -1, ""},
		// OpenAI priority: gpt-4.1 3.50/14.00, gpt-4o 4.25/17.00; o4-mini
		// flex is half of 1.10/4.40.
		{"gpt-4.1 priority", "openai", "gpt-4.1", "priority", "2026-11-01", 1000, 100, 3_500_000_000 + 1_400_000_000, ""},
		{"gpt-4o priority", "openai", "gpt-4o", "priority", "2026-11-01", 1000, 100, 4_250_000_000 + 1_700_000_000, ""},
		{"o4-mini flex", "openai", "o4-mini", "flex", "2026-11-01", 1000, 100, 550_000_000 + 220_000_000, ""},
		// Gemini previews priced as their own entries: 0.15/0.60.
		{"gemini flash preview", "gcp.gemini", "gemini-2.5-flash-preview-05-20", "", "2026-11-01", 1000, 100, 150_000_000 + 60_000_000, ""},
		{"gemini flash GA", "gcp.gemini", "gemini-2.5-flash", "", "2026-11-01", 1000, 100, 300_000_000 + 250_000_000, ""},
		// Provisioned throughput: 0 per token, with a warning.
		{"gemini provisioned throughput", "gcp.vertex_ai", "gemini-2.5-pro", "provisioned_throughput", "2026-11-01", 1000, 100, 0, "provisioned_throughput: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := llmEvent(tc.provider, tc.model, usage(tc.in, 0, 0, tc.out, 0))
			ev.Time, _ = time.Parse(time.DateOnly, tc.date)
			ev.ServiceTier = tc.tier
			q := c.Price(ev)
			if tc.cost < 0 {
				if q.Priced {
					t.Fatalf("priced at %d (%s), want unpriced", q.CostPicos, q.PriceID)
				}
				return
			}
			if !q.Priced || q.CostPicos != tc.cost {
				t.Fatalf("priced=%v cost=%d (%s), want %d", q.Priced, q.CostPicos, q.PriceID, tc.cost)
			}
			found := tc.warning == ""
			for _, w := range q.Warnings {
				found = found || strings.HasPrefix(w, tc.warning)
			}
			if !found {
				t.Fatalf("warnings %q, want one starting %q", q.Warnings, tc.warning)
			}
		})
	}
}

// TestPinnedSourcesPriceMajorModels: catalogs imported from the pinned
// sources price the models most traffic uses, by the provider names
// events carry, above zero (a LiteLLM import once priced Vertex models at
// nothing because its provider names were not mapped).
func TestPinnedSourcesPriceMajorModels(t *testing.T) {
	models := [][2]string{
		{"openai", "gpt-4o"}, {"openai", "gpt-5"}, {"openai", "text-embedding-3-small"},
		{"anthropic", "claude-sonnet-4-5"},
		{"gcp.gemini", "gemini-2.5-pro"}, {"gcp.vertex_ai", "gemini-2.5-flash"}, {"google", "gemini-2.5-flash-lite"},
		{"aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"mistral", "mistral-large-latest"},
	}
	for _, src := range pinnedSources {
		c := loadPinned(t, src.file, src.importer)
		for _, m := range models {
			q := c.Price(llmEvent(m[0], m[1], usage(1000, 0, 0, 100, 0)))
			if !q.Priced || q.CostPicos <= 0 {
				t.Errorf("%s: %s %s priced=%v cost=%d (%s)", src.name, m[0], m[1], q.Priced, q.CostPicos, q.PriceID)
			}
		}
	}
}

func FuzzImportGenAIPrices(f *testing.F) {
	f.Add([]byte(`[{"id":"openai","models":[{"id":"m","match":{"or":[{"equals":"m"},{"starts_with":"m-"}]},"prices":[{"prices":{"input_mtok":1,"output_mtok":{"base":2,"tiers":[{"start":100,"price":3}]}}},{"constraint":{"start_date":"2026-01-01"},"prices":{"input_mtok":0.5,"output_mtok":1}}],"price_variants":[{"when":{"processing":"batch"},"prices":{"input_mtok":0.25,"output_mtok":0.5}}]}]}]`))
	f.Add([]byte(`[{"id":"google","models":[{"id":"g","match":{"and":[{"starts_with":"g"},{"regex":"^(?!x)"}]},"prices":{"input_mtok":1e-300,"output_mtok":1e300}}]}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ImportGenAIPrices(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		c, err := ParseCatalog(out)
		if err != nil {
			t.Fatalf("imported catalog does not load: %v", err)
		}
		_ = c.Price(llmEvent("openai", "m", usage(10, 2, 3, 5, 1)))
	})
}
