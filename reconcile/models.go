package reconcile

import (
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aivis-dev/aivis/pricing"
)

// Models maps the model names of events and of bills to the key rows are
// compared under: the catalog's canonical model (pricing.CanonicalModel:
// gpt-4o, claude-sonnet-4-5, anthropic.claude-3-5-sonnet), the name aivis
// stores windows under, so that "gpt-4o" in aivis and "gpt-4o-2024-08-06"
// in a bill meet; otherwise the name normalized and lower-cased, without a
// Bedrock cross-region prefix. A canonical model maps to itself.
type Models struct {
	catalog *pricing.Catalog
	mu      sync.Mutex
	keys    map[[3]string]string
}

// NewModels maps with catalog; nil means names are compared as they are.
func NewModels(catalog *pricing.Catalog) *Models {
	return &Models{catalog: catalog, keys: map[[3]string]string{}}
}

// crossRegion is the inference-profile prefix of Bedrock model ids
// (us.anthropic.claude-…): the same model, billed under it.
var crossRegion = regexp.MustCompile(`^(us|eu|apac|global|us-gov|jp|au|ca)\.`)

// Key is the comparison key of (provider, model) on day. provider is the
// aivis provider name (ProviderOf).
func (m *Models) Key(provider, model string, day time.Time) string {
	if model == "" {
		return ""
	}
	k := [3]string{provider, model, day.Format(time.DateOnly)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.keys[k]; ok {
		return v
	}
	name := model
	if provider == ProviderBedrock {
		name = crossRegion.ReplaceAllString(model, "")
	}
	v := name
	if m.catalog != nil {
		// The canonical model the enrich stage gives the name, which is
		// what aivis's rows are stored under (at any date: a bill may
		// predate the catalog's first price of a model it names); for a
		// name the catalog does not know, its normalized form, as enrich
		// stores an unpriced model.
		v = ""
		for _, try := range []string{model, name} {
			if id, ok := m.catalog.CanonicalModel(provider, try); ok {
				v = id
				break
			}
		}
		if v == "" {
			v, _ = m.catalog.CanonicalModel(provider, name)
		}
	}
	m.keys[k] = v
	return v
}

// resolve maps the candidate aivis model names a bill name may stand for
// to one key; when they map to different keys it returns the bill's name
// and an explanation, rather than a guess.
func (m *Models) resolve(provider, billName string, candidates []string, day time.Time) (key, ambiguous string) {
	keys := map[string]bool{}
	for _, c := range candidates {
		keys[m.Key(provider, c, day)] = true
	}
	if len(keys) == 1 {
		for k := range keys {
			return k, ""
		}
	}
	list := make([]string, 0, len(keys))
	for k := range keys {
		list = append(list, k)
	}
	sort.Strings(list)
	return billName, billName + " may be any of " + strings.Join(list, ", ")
}

// providerNames maps the provider names events use to the one a bill is
// compared under. Azure OpenAI stays apart: OpenAI does not bill it.
var providerNames = map[string]string{
	"openai":        ProviderOpenAI,
	"anthropic":     ProviderAnthropic,
	"aws.bedrock":   ProviderBedrock,
	"bedrock":       ProviderBedrock,
	"aws_bedrock":   ProviderBedrock,
	"gcp.gemini":    ProviderGemini,
	"gcp.vertex_ai": ProviderGemini,
	"gcp.gen_ai":    ProviderGemini,
	"google":        ProviderGemini,
	"gemini":        ProviderGemini,
	"vertex_ai":     ProviderGemini,
}

// ProviderOf is the provider a bill names for an event's provider.
func ProviderOf(eventProvider string) string {
	p := strings.ToLower(strings.TrimSpace(eventProvider))
	if v, ok := providerNames[p]; ok {
		return v
	}
	return p
}

// bedrockFamilies maps the model part of Bedrock usage types
// (USE1-Claude3.5Sonnet-input-tokens) to Bedrock model ids. AWS documents
// the meter suffixes of usage types, not a list of their model parts: these
// names are inferred from exports seen in practice and compared without
// case, dots or dashes. A part that stands for several model versions lists
// them all; Models.resolve says so when they price differently.
var bedrockFamilies = map[string][]string{
	"claude35sonnet":   {"anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
	"claude35sonnetv2": {"anthropic.claude-3-5-sonnet-20241022-v2:0"},
	"claude35haiku":    {"anthropic.claude-3-5-haiku-20241022-v1:0"},
	"claude37sonnet":   {"anthropic.claude-3-7-sonnet-20250219-v1:0"},
	"claudesonnet4":    {"anthropic.claude-sonnet-4-20250514-v1:0"},
	"claude4sonnet":    {"anthropic.claude-sonnet-4-20250514-v1:0"},
	"claudesonnet45":   {"anthropic.claude-sonnet-4-5-20250929-v1:0"},
	"claude45sonnet":   {"anthropic.claude-sonnet-4-5-20250929-v1:0"},
	"claudehaiku45":    {"anthropic.claude-haiku-4-5-20251001-v1:0"},
	"claudeopus41":     {"anthropic.claude-opus-4-1-20250805-v1:0"},
	"novapremier":      {"amazon.nova-premier-v1:0"},
	"novapro":          {"amazon.nova-pro-v1:0"},
	"novalite":         {"amazon.nova-lite-v1:0"},
	"novamicro":        {"amazon.nova-micro-v1:0"},
	"llama3370b":       {"meta.llama3-3-70b-instruct-v1:0"},
	"mistrallarge":     {"mistral.mistral-large-2402-v1:0", "mistral.mistral-large-2407-v1:0"},
	"gptoss120b":       {"openai.gpt-oss-120b-1:0"},
}

func familyKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bedrockMeters are the meter parts of Bedrock usage types, longest first
// (AWS: "Understanding your Amazon Bedrock Cost and Usage Report data").
var bedrockMeters = []struct{ part, meter string }{
	{"-cache-read-input-token", MeterCacheRead},
	{"-cache-write-input-token", MeterCacheWrite},
	{"-mantle-input-tokens", MeterInput},
	{"-mantle-output-tokens", MeterOutput},
	{"-input-tokens", MeterInput},
	{"-output-tokens", MeterOutput},
}

// usageRegion is the region prefix of a usage type: USE1, USW2, EUC1, APN1.
var usageRegion = regexp.MustCompile(`^[A-Z]{2,4}[0-9]{0,2}-`)

// parseBedrockUsageType splits a usage type into its model part and meter;
// ok is false when it is not a token usage type.
func parseBedrockUsageType(ut string) (family, meter string, ok bool) {
	rest := usageRegion.ReplaceAllString(ut, "")
	lower := strings.ToLower(rest)
	for _, m := range bedrockMeters {
		if i := strings.Index(lower, m.part); i > 0 {
			return rest[:i], m.meter, true
		}
	}
	return rest, MeterOther, false
}

// geminiSKU finds the model in a Cloud Billing SKU description such as
// "Gemini 2.5 Flash Text Input - Predictions".
var geminiSKU = regexp.MustCompile(`(?i)\bgemini[ -]?(\d+(?:\.\d+)?)[ -](pro|flash[ -]lite|flash)\b`)

// parseGeminiSKU returns the aivis model name and meter of a SKU
// description; model is "" when the SKU names no Gemini model. Google
// does not publish the SKU descriptions as a format: the words matched
// (input, output, cached, cache) are inferred from its price list.
func parseGeminiSKU(desc string) (model, meter string) {
	m := geminiSKU.FindStringSubmatch(desc)
	if m == nil {
		return "", MeterOther
	}
	variant := strings.ToLower(strings.ReplaceAll(m[2], " ", "-"))
	model = "gemini-" + m[1] + "-" + variant
	l := strings.ToLower(desc)
	switch {
	case strings.Contains(l, "cache") && strings.Contains(l, "storage"):
		meter = MeterOther
	case strings.Contains(l, "cached") || strings.Contains(l, "cache read") || strings.Contains(l, "caching"):
		meter = MeterCacheRead
	case strings.Contains(l, "input"):
		meter = MeterInput
	case strings.Contains(l, "output"):
		meter = MeterOutput
	default:
		meter = MeterOther
	}
	return model, meter
}
