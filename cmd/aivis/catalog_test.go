package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestCLICatalogCheck runs aivis catalog check on the built-in catalog, as
// CI does: it must load; stale entries are warnings only.
func TestCLICatalogCheck(t *testing.T) {
	code, stdout, stderr := runCLI("catalog", "check")
	if code != 0 || !strings.Contains(stdout, "the built-in catalog loads") {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("catalog_version: x\ncurrency: EUR\nmodels: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("catalog", "check", "--catalog", bad)
	if code != 1 || !strings.Contains(stderr, "currency") {
		t.Errorf("broken catalog: exit %d, want 1 naming the problem:\n%s", code, stderr)
	}
	old := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(old, []byte(`catalog_version: x
currency: USD
models:
  - id: a
    provider: p
    match: {models: [a]}
    effective_from: 2024-01-01T00:00:00Z
    rates: {input: "1", output: "2"}
    source_url: https://example.com/pricing
    retrieved_at: 2020-01-01
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("catalog", "check", "--catalog", old, "--max-age-days", "30")
	if code != 0 || !strings.Contains(stdout, "warning: models[0](a@2024-01-01T00:00:00Z): retrieved_at 2020-01-01 is") {
		t.Errorf("stale entry: exit %d, want 0 with a warning:\n%s%s", code, stdout, stderr)
	}
}

// TestCLICatalogDiff diffs the built-in catalog against the pinned
// sources (clean under the built-in exceptions) and against itself with
// a changed price (one difference, exit 1).
func TestCLICatalogDiff(t *testing.T) {
	sources := filepath.Join("..", "..", "pricing", "testdata", "sources")
	for _, f := range []string{"litellm-model-prices.json.gz", "genai-prices.json.gz"} {
		code, stdout, stderr := runCLI("catalog", "diff", "--against", filepath.Join(sources, f))
		if code != 0 || !strings.Contains(stdout, ", 0 not\n") {
			t.Errorf("%s: exit %d:\n%s%s", f, code, stdout, stderr)
		}
	}
	changed := filepath.Join(t.TempDir(), "changed.yaml")
	data, err := os.ReadFile(filepath.Join("..", "..", "pricing", "defaults", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `rates: {input: "2.50", cache_read_input: "1.25", output: "10.00"}`, `rates: {input: "2.75", cache_read_input: "1.25", output: "10.00"}`, 1))
	if err := os.WriteFile(changed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("catalog", "diff", "--against", changed, "--format", "aivis", "--source-name", "mine")
	want := "openai gpt-4o @2024-05-13 standard/input: catalog 2.5 (openai/gpt-4o@2024-05-13T00:00:00Z), source 2.75 (openai/gpt-4o@2024-05-13T00:00:00Z)"
	if code != 1 || !strings.Contains(stdout, want) || !strings.Contains(stderr, "not covered by an exception") {
		t.Errorf("changed price: exit %d, want 1 listing %q:\n%s%s", code, want, stdout, stderr)
	}
}

// TestCLICatalogCheckTraffic: with a ClickHouse address given, catalog
// check lists the models of recent traffic that the catalog does not
// price, and only those.
func TestCLICatalogCheckTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	ctx := context.Background()
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var events []schemas.StoredEvent
	for i, m := range []struct {
		provider, model string
		age             time.Duration
	}{
		{"openai", "GPT-4o", time.Hour},                     // priced, whatever the case
		{"openai", "gpt-9-hyper", time.Hour},                // not priced
		{"openai", "gpt-9-hyper", 2 * time.Hour},            // counted once, twice
		{"acme", "rocket-1", 3 * time.Hour},                 // unknown provider
		{"openai", "gpt-old-unpriced", 30 * 24 * time.Hour}, // outside the range
	} {
		ev := testenv.LLMEvent(m.provider, m.model, testenv.Usage(10, 0, 0, 1, 0))
		ev.EventID, ev.Time = fmt.Sprintf("traffic-%d", i), now.Add(-m.age)
		events = append(events, schemas.StoredEvent{Event: &schemas.Enriched{Event: *ev, Owner: schemas.Owner{Team: "t"}}, Offset: int64(i)})
	}
	if err := store.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("catalog", "check", "--clickhouse.addr", addr, "--clickhouse.database", db, "--traffic-days", "7")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"warning: traffic: openai gpt-9-hyper: 2 requests in the last 7 days, not priced by the catalog",
		"warning: traffic: acme rocket-1: 1 requests",
		"traffic of the last 7 days: 3 models, 2 not priced",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "GPT-4o") || strings.Contains(stdout, "gpt-old-unpriced") {
		t.Errorf("lists a priced or old model:\n%s", stdout)
	}
	// Without a ClickHouse address the check stays offline.
	if code, stdout, _ := runCLI("catalog", "check"); code != 0 || strings.Contains(stdout, "traffic") {
		t.Errorf("offline check: exit %d:\n%s", code, stdout)
	}
}
