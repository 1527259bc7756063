package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

var (
	day1 = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	day2 = day1.AddDate(0, 0, 1)
)

// usage is one (provider, model) window of aivis traffic to seed.
type usage struct {
	at                      time.Time
	provider, model         string
	requests, unpriced      uint64
	input, read, write, out int64
	cost                    string // USD
}

// seedStore writes windows through the sink, as the aggregator does, in
// two partitions and twice (a replay must not count twice), and returns
// the store.
func seedStore(t *testing.T, rows []usage) *clickhouse.Store {
	t.Helper()
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	s, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var windows []schemas.WindowRow
	for i, u := range rows {
		picos := decimal.RequireFromString(u.cost).Shift(12).IntPart()
		// Split each usage over two partitions and windows, so that the
		// view's sums are what is compared.
		half := func(v int64) int64 { return v / 2 }
		for p := int32(0); p < 2; p++ {
			w := schemas.WindowRow{WindowStart: u.at.Add(time.Duration(p) * time.Hour), WindowSeconds: 60,
				Provider: u.provider, Model: u.model, Team: "search", Project: "p", SrcPartition: p, ThroughOffset: int64(i + 1),
				LatencyHist: make([]uint64, schemas.LatencyBuckets)}
			if p == 0 {
				w.Requests, w.UnpricedRequests = u.requests/2, u.unpriced/2
				w.InputTokens, w.CacheReadInputTokens, w.CacheWriteInputTokens, w.OutputTokens = half(u.input), half(u.read), half(u.write), half(u.out)
				w.CostPicos = schemas.PicosOf(picos / 2)
			} else {
				w.Requests, w.UnpricedRequests = u.requests-u.requests/2, u.unpriced-u.unpriced/2
				w.InputTokens, w.CacheReadInputTokens, w.CacheWriteInputTokens, w.OutputTokens = u.input-half(u.input), u.read-half(u.read), u.write-half(u.write), u.out-half(u.out)
				w.CostPicos = schemas.PicosOf(picos - picos/2)
			}
			windows = append(windows, w)
		}
	}
	for range 2 {
		if err := s.Write(ctx, nil, windows); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// rowsOf renders the comparison as "day provider model result" lines.
func rowsOf(res *Result) []string {
	var out []string
	for _, r := range res.Rows {
		s := r.Day + " " + r.Provider + " " + r.Model + " aivis=" + r.AivisUSD.String() + " billed=" + r.BilledUSD.String() +
			" credits=" + r.CreditsUSD.String() + " diff=" + r.DiffUSD.String() + " "
		if r.Agrees {
			s += "agrees"
		} else {
			var codes []string
			for _, c := range r.Causes {
				codes = append(codes, c.Code)
			}
			s += strings.Join(codes, ",")
		}
		out = append(out, s)
	}
	return out
}

// TestReconcileClickHouse runs each provider's fixtures against aivis
// data in a real ClickHouse: rows whose fixtures agree agree exactly, and
// every other row names its cause.
func TestReconcileClickHouse(t *testing.T) {
	traffic := []usage{
		// OpenAI: agrees; price drift (tokens agree, aivis priced lower);
		// day 2 fewer tokens than billed; gpt-4.1 has no events.
		{day1, "openai", "gpt-4o", 120, 0, 1_200_000, 200_000, 0, 100_000, "3.75"},
		{day1, "openai", "gpt-4o-mini", 400, 0, 2_000_000, 0, 0, 500_000, "0.5"},
		{day2, "openai", "gpt-4o-2024-08-06", 30, 0, 300_000, 0, 0, 40_000, "1.15"},
		// Anthropic: agrees (cache reads and writes inside input); haiku
		// has unpriced requests; day 2 agrees.
		{day1, "anthropic", "claude-sonnet-4-5", 50, 0, 1_600_000, 500_000, 100_000, 100_000, "5.025"},
		{day1, "anthropic", "claude-haiku-4-5-20251001", 10, 3, 800_000, 0, 0, 0, "0.7"},
		{day2, "anthropic", "claude-sonnet-4-5-20250929", 20, 0, 2_000_000, 0, 0, 0, "6"},
		// Bedrock: credits; an ambiguous usage type; day 2 through a
		// cross-region profile agrees.
		{day1, "aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", 10, 0, 1_000_000, 0, 0, 100_000, "4.5"},
		{day1, "aws.bedrock", "mistral.mistral-large-2407-v1:0", 4, 0, 100_000, 0, 0, 0, "0.4"},
		{day2, "aws.bedrock", "us.amazon.nova-pro-v1:0", 8, 0, 1_000_000, 0, 0, 200_000, "1.44"},
		// Vertex: agrees; day 2 pro is billed without events, flash has
		// events the bill lacks.
		{day1, "gcp.vertex_ai", "gemini-2.5-flash", 9, 0, 1_000_000, 0, 0, 100_000, "0.55"},
		{day2, "gcp.vertex_ai", "gemini-2.5-flash", 1, 0, 100_000, 0, 0, 0, "0.1"},
		// Another provider: not in any bill here, never reported.
		{day1, "mistral_ai", "mistral-small-latest", 5, 0, 1000, 0, 0, 100, "0.01"},
	}
	store := seedStore(t, traffic)
	ctx := context.Background()
	aivis, err := Load(ctx, store, day1, day2.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	models := testModels(t)
	tol, _ := ParseTolerance("0")

	cases := []struct {
		format string
		files  []string
		want   []string
	}{
		{FormatOpenAI, []string{"openai/costs.json", "openai/usage.json"}, []string{
			"2025-03-10 openai gpt-4o aivis=3.75 billed=3.75 credits=0 diff=0 agrees",
			"2025-03-10 openai gpt-4o-mini aivis=0.5 billed=0.6 credits=0 diff=0.1 price_drift",
			"2025-03-11 openai gpt-4.1 aivis=0 billed=0.2 credits=0 diff=0.2 missing_events",
			"2025-03-11 openai gpt-4o aivis=1.15 billed=1.5 credits=0 diff=0.35 missing_events",
		}},
		{FormatAnthropic, []string{"anthropic/cost_report.json", "anthropic/usage_report.json"}, []string{
			"2025-03-10 anthropic claude-haiku-4-5 aivis=0.7 billed=0.8 credits=0 diff=0.1 unpriced_usage",
			"2025-03-10 anthropic claude-sonnet-4-5 aivis=5.025 billed=5.025 credits=0 diff=0 agrees",
			"2025-03-11 anthropic claude-sonnet-4-5 aivis=6 billed=6 credits=0 diff=0 agrees",
		}},
		{FormatAWSCUR, []string{"aws-cur/cur.csv"}, []string{
			"2025-03-10 aws.bedrock MistralLarge aivis=0 billed=0.4 credits=0 diff=0.4 ambiguous_model,missing_events",
			"2025-03-10 aws.bedrock anthropic.claude-3-5-sonnet aivis=4.5 billed=4.5 credits=-1 diff=-1 discounts_credits",
			"2025-03-10 aws.bedrock mistral.mistral-large-2407 aivis=0.4 billed=0 credits=0 diff=-0.4 not_on_bill",
			"2025-03-11 aws.bedrock amazon.nova-pro aivis=1.44 billed=1.44 credits=0 diff=0 agrees",
		}},
		{FormatGCPBilling, []string{"gcp-billing/billing.jsonl"}, []string{
			"2025-03-10 gcp.gemini gemini-2.5-flash aivis=0.55 billed=0.55 credits=0 diff=0 agrees",
			"2025-03-11 gcp.gemini gemini-2.5-flash aivis=0.1 billed=0 credits=0 diff=-0.1 not_on_bill",
			"2025-03-11 gcp.gemini gemini-2.5-pro aivis=0 billed=1.25 credits=-0.25 diff=1 missing_events",
		}},
		{FormatGCPBilling, []string{"gcp-billing/billing.csv"}, nil}, // same as the JSON lines
	}
	cases[4].want = cases[3].want
	for _, c := range cases {
		t.Run(c.files[0], func(t *testing.T) {
			var bills []*Bill
			for _, f := range c.files {
				data, err := os.ReadFile(filepath.Join("testdata", f))
				if err != nil {
					t.Fatal(err)
				}
				b, err := Import(c.format, f, strings.NewReader(string(data)), models)
				if err != nil {
					t.Fatal(err)
				}
				bills = append(bills, b)
			}
			res, err := Compare(bills, aivis, models, Options{Tolerance: tol})
			if err != nil {
				t.Fatal(err)
			}
			got := rowsOf(res)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if res.From != "2025-03-10" || res.To != "2025-03-12" {
				t.Errorf("range %s .. %s, want the bill's days", res.From, res.To)
			}
			var table strings.Builder
			if err := WriteTable(&table, res); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", table.String())
		})
	}
}
