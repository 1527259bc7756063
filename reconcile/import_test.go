package reconcile

import (
	"time"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/pricing"
)

func testModels(t testing.TB) *Models {
	t.Helper()
	c, err := pricing.Default()
	if err != nil {
		t.Fatal(err)
	}
	return NewModels(c)
}

// summary renders a bill's lines as sorted "day provider model meter cost
// [tokens] [credit] [ambiguous]" strings, so a table test can list them.
func summary(b *Bill) []string {
	var out []string
	for _, l := range b.Lines {
		s := fmt.Sprintf("%s %s %s %s %s", l.Day.Format("2006-01-02"), l.Provider, l.Model, l.Meter, l.CostUSD.String())
		if l.HasTokens {
			s += fmt.Sprintf(" tokens=%d", l.Tokens)
		}
		if l.Credit {
			s += " credit"
		}
		if l.Ambiguous != "" {
			s += " ambiguous"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestImportFixtures(t *testing.T) {
	cases := []struct {
		format, file string
		want         []string
		notes        []string
	}{
		{FormatOpenAI, "openai/costs.json", []string{
			"2025-03-10 openai gpt-4o cache_read 0.25",
			"2025-03-10 openai gpt-4o input 2.5",
			"2025-03-10 openai gpt-4o output 1",
			"2025-03-10 openai gpt-4o-mini input 0.3",
			"2025-03-10 openai gpt-4o-mini output 0.3",
			"2025-03-11 openai gpt-4.1 input 0.2",
			"2025-03-11 openai gpt-4o input 1",
			"2025-03-11 openai gpt-4o output 0.5",
		}, nil},
		{FormatOpenAI, "openai/usage.json", []string{
			"2025-03-10 openai gpt-4o cache_read 0 tokens=200000",
			"2025-03-10 openai gpt-4o cache_write 0 tokens=0",
			"2025-03-10 openai gpt-4o input 0 tokens=1000000",
			"2025-03-10 openai gpt-4o output 0 tokens=100000",
			"2025-03-10 openai gpt-4o-mini cache_read 0 tokens=0",
			"2025-03-10 openai gpt-4o-mini cache_write 0 tokens=0",
			"2025-03-10 openai gpt-4o-mini input 0 tokens=2000000",
			"2025-03-10 openai gpt-4o-mini output 0 tokens=500000",
			"2025-03-11 openai gpt-4.1 cache_read 0 tokens=0",
			"2025-03-11 openai gpt-4.1 cache_write 0 tokens=0",
			"2025-03-11 openai gpt-4.1 input 0 tokens=100000",
			"2025-03-11 openai gpt-4.1 output 0 tokens=0",
			"2025-03-11 openai gpt-4o cache_read 0 tokens=0",
			"2025-03-11 openai gpt-4o cache_write 0 tokens=0",
			"2025-03-11 openai gpt-4o input 0 tokens=400000",
			"2025-03-11 openai gpt-4o output 0 tokens=50000",
		}, nil},
		{FormatAnthropic, "anthropic/cost_report.json", []string{
			"2025-03-10 anthropic claude-haiku-4-5 input 0.8",
			"2025-03-10 anthropic claude-sonnet-4-5 cache_read 0.15",
			"2025-03-10 anthropic claude-sonnet-4-5 cache_write 0.375",
			"2025-03-10 anthropic claude-sonnet-4-5 input 3",
			"2025-03-10 anthropic claude-sonnet-4-5 output 1.5",
			"2025-03-11 anthropic claude-sonnet-4-5 input 6",
		}, nil},
		{FormatAnthropic, "anthropic/usage_report.json", []string{
			"2025-03-10 anthropic claude-haiku-4-5 cache_read 0 tokens=0",
			"2025-03-10 anthropic claude-haiku-4-5 cache_write 0 tokens=0",
			"2025-03-10 anthropic claude-haiku-4-5 input 0 tokens=800000",
			"2025-03-10 anthropic claude-haiku-4-5 output 0 tokens=0",
			"2025-03-10 anthropic claude-sonnet-4-5 cache_read 0 tokens=500000",
			"2025-03-10 anthropic claude-sonnet-4-5 cache_write 0 tokens=100000",
			"2025-03-10 anthropic claude-sonnet-4-5 input 0 tokens=1000000",
			"2025-03-10 anthropic claude-sonnet-4-5 output 0 tokens=100000",
			"2025-03-11 anthropic claude-sonnet-4-5 cache_read 0 tokens=0",
			"2025-03-11 anthropic claude-sonnet-4-5 cache_write 0 tokens=0",
			"2025-03-11 anthropic claude-sonnet-4-5 input 0 tokens=2000000",
			"2025-03-11 anthropic claude-sonnet-4-5 output 0 tokens=0",
		}, nil},
		{FormatAWSCUR, "aws-cur/cur.csv", []string{
			"2025-03-10 aws.bedrock MistralLarge input 0.4 tokens=100000 ambiguous",
			"2025-03-10 aws.bedrock anthropic.claude-3-5-sonnet input -1 credit",
			"2025-03-10 aws.bedrock anthropic.claude-3-5-sonnet input 3 tokens=1000000",
			"2025-03-10 aws.bedrock anthropic.claude-3-5-sonnet output 1.5 tokens=100000",
			"2025-03-11 aws.bedrock amazon.nova-pro input 0.8 tokens=1000000",
			"2025-03-11 aws.bedrock amazon.nova-pro output 0.64 tokens=200000",
		}, []string{"Tax lines left out", "1 rows of other AWS services left out"}},
		{FormatGCPBilling, "gcp-billing/billing.jsonl", []string{
			"2025-03-10 gcp.gemini gemini-2.5-flash input 0.3 tokens=1000000",
			"2025-03-10 gcp.gemini gemini-2.5-flash output 0.25 tokens=100000",
			"2025-03-11 gcp.gemini gemini-2.5-pro input 1.25 tokens=1000000",
			"2025-03-11 gcp.gemini gemini-2.5-pro other -0.25 credit",
		}, []string{`cost_type "tax" rows left out`, "1 rows of other Google Cloud services left out"}},
	}
	// The CSV flattening of the same rows reads the same.
	cases = append(cases, cases[len(cases)-1])
	cases[len(cases)-1].file = "gcp-billing/billing.csv"

	models := testModels(t)
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			bill, err := Import(c.format, c.file, f, models)
			if err != nil {
				t.Fatal(err)
			}
			got := summary(bill)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for _, n := range c.notes {
				if !strings.Contains(strings.Join(bill.Notes, "\n"), n) {
					t.Errorf("notes %q lack %q", bill.Notes, n)
				}
			}
			// Detection agrees with the format the fixture is in.
			data, _ := os.ReadFile(filepath.Join("testdata", c.file))
			if got, err := Detect(data); err != nil || got != c.format {
				t.Errorf("Detect = %q, %v; want %q", got, err, c.format)
			}
		})
	}
}

// TestImportErrors checks that bad input names the file, the line (and
// CSV row) and the field.
func TestImportErrors(t *testing.T) {
	cases := []struct {
		name, format, input string
		want                []string // substrings of the error
	}{
		{"openai amount", FormatOpenAI, "{\"data\": [\n {\"start_time\": 1741564800, \"results\": [\n  {\"object\": \"organization.costs.result\", \"amount\": {\"value\": \"x\", \"currency\": \"usd\"}}]}]}",
			[]string{"bill.json:3", "data[0].results[0].amount.value", `"x" is not a decimal`}},
		{"openai currency", FormatOpenAI, `{"data": [{"start_time": 1741564800, "results": [{"object": "organization.costs.result", "amount": {"value": 1, "currency": "eur"}}]}]}`,
			[]string{"bill.json:1", "amount.currency", "USD"}},
		{"openai start", FormatOpenAI, "{\"data\": [\n{\"start_time\": \"yesterday\", \"results\": []}]}",
			[]string{"bill.json:2", "data[0].start_time", "unix seconds"}},
		{"openai syntax", FormatOpenAI, "{\"data\": [\n{\"start_time\": 1,\n \"results\": [}]}",
			[]string{"bill.json:3", "invalid JSON"}},
		{"openai object", FormatOpenAI, `{"data": [{"start_time": 1, "results": [{"object": "list"}]}]}`,
			[]string{"results[0].object", "not an OpenAI"}},
		{"openai usage tokens", FormatOpenAI, `{"data": [{"start_time": 1, "results": [{"object": "organization.usage.completions.result", "model": "gpt-4o", "input_tokens": -5}]}]}`,
			[]string{"results[0].input_tokens", "negative"}},
		{"anthropic amount", FormatAnthropic, "{\"data\": [{\"starting_at\": \"2025-03-10T00:00:00Z\", \"results\": [\n\n{\"amount\": \"1e400\", \"currency\": \"USD\"}]}]}",
			[]string{"bill.json:3", "results[0].amount", "not a plausible"}},
		{"anthropic starting_at", FormatAnthropic, `{"data": [{"starting_at": "March 10", "results": []}]}`,
			[]string{"data[0].starting_at", "RFC 3339"}},
		{"anthropic type", FormatAnthropic, `{"data": [{"starting_at": "2025-03-10T00:00:00Z", "results": [{"amount": 12}]}]}`,
			[]string{"results[0].amount", "want string"}},
		{"aws header", FormatAWSCUR, "a,b\n1,2\n",
			[]string{"bill.csv:1", "lineItem/UsageStartDate", "missing from the header"}},
		{"aws cost", FormatAWSCUR, "lineItem/UsageStartDate,lineItem/ProductCode,lineItem/UsageType,lineItem/UnblendedCost\n2025-03-10T00:00:00Z,AmazonBedrock,USE1-NovaPro-input-tokens,1.0\n2025-03-10T00:00:00Z,AmazonBedrock,USE1-NovaPro-input-tokens,abc\n",
			[]string{"bill.csv:3 (row 2)", "field lineItem/UnblendedCost", `"abc" is not a decimal`}},
		{"aws date", FormatAWSCUR, "line_item_usage_start_date,line_item_product_code,line_item_usage_type,line_item_unblended_cost\nsoon,AmazonBedrock,USE1-NovaPro-input-tokens,1.0\n",
			[]string{"bill.csv:2 (row 1)", "field line_item_usage_start_date", "not a time"}},
		{"aws quoting", FormatAWSCUR, "lineItem/UsageStartDate,lineItem/ProductCode,lineItem/UsageType,lineItem/UnblendedCost\n\"2025,x\n",
			[]string{"bill.csv:", "invalid CSV"}},
		{"gcp json cost", FormatGCPBilling, "{\"service\": {\"description\": \"Vertex AI\"}, \"sku\": {\"description\": \"Gemini 2.5 Flash Text Input\"}, \"usage_start_time\": \"2025-03-10 00:00:00 UTC\", \"cost\": 1}\n{\"service\": {\"description\": \"Vertex AI\"}, \"usage_start_time\": \"2025-03-10 00:00:00 UTC\", \"cost\": \"cheap\"}\n",
			[]string{"bill.csv:2", "cost"}},
		{"gcp json credits", FormatGCPBilling, `{"service": {"description": "Vertex AI"}, "usage_start_time": "2025-03-10T00:00:00Z", "cost": 1, "credits": [{"amount": "x"}]}`,
			[]string{"bill.csv:1", "credits"}},
		{"gcp csv time", FormatGCPBilling, "service.description,sku.description,usage_start_time,cost\nVertex AI,Gemini 2.5 Pro Text Input,tomorrow,1\n",
			[]string{"bill.csv:2 (row 1)", "field usage_start_time", "not a time"}},
		{"gcp csv credits", FormatGCPBilling, "service.description,sku.description,usage_start_time,cost,credits\nVertex AI,Gemini 2.5 Pro Text Input,2025-03-10T00:00:00Z,1,[{\n",
			[]string{"bill.csv:2 (row 1)", "field credits"}},
	}
	models := testModels(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "bill.json"
			if c.format == FormatAWSCUR || c.format == FormatGCPBilling {
				name = "bill.csv"
			}
			_, err := Import(c.format, name, strings.NewReader(c.input), models)
			if err == nil {
				t.Fatal("no error")
			}
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Errorf("error %v is not an *ImportError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestModelKeysAreCanonical: a bill's names of one model meet aivis's
// rows, which are stored under the canonical model, and a canonical
// model maps to itself.
func TestModelKeysAreCanonical(t *testing.T) {
	m := testModels(t)
	day := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ provider, name, want string }{
		{ProviderOpenAI, "gpt-4o-2024-08-06", "gpt-4o"},
		{ProviderOpenAI, "GPT-4o", "gpt-4o"},
		{ProviderOpenAI, "gpt-4o", "gpt-4o"},
		{ProviderBedrock, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5"},
		{ProviderBedrock, "anthropic.claude-sonnet-4-5", "anthropic.claude-sonnet-4-5"},
		{ProviderOpenAI, "My-Finetune", "my-finetune"},
	} {
		if got := m.Key(tc.provider, tc.name, day); got != tc.want {
			t.Errorf("Key(%s, %s) = %q, want %q", tc.provider, tc.name, got, tc.want)
		}
	}
}
