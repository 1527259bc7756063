package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestReconcileCommand runs `aivis reconcile` on OpenAI's fixtures
// against windows in a fresh ClickHouse database: one model agrees, the
// other names price drift; --json carries exact amounts; a bad bill names
// file, line and field.
func TestReconcileCommand(t *testing.T) {
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
	day := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	row := func(model string, in, read, out, picos int64) schemas.WindowRow {
		return schemas.WindowRow{WindowStart: day, WindowSeconds: 60, Provider: "openai", Model: model, Team: "t", Project: "p",
			ThroughOffset: 1, Requests: 10, InputTokens: in, CacheReadInputTokens: read, OutputTokens: out,
			CostPicos: schemas.PicosOf(picos), LatencyHist: make([]uint64, schemas.LatencyBuckets)}
	}
	if err := store.Write(ctx, nil, []schemas.WindowRow{
		row("gpt-4o", 1_200_000, 200_000, 100_000, 3_750_000_000_000),
		row("gpt-4o-mini", 2_000_000, 0, 500_000, 500_000_000_000),
	}); err != nil {
		t.Fatal(err)
	}
	bills := filepath.Join("..", "..", "reconcile", "testdata", "openai")
	args := []string{"reconcile", "--clickhouse.addr", addr, "--clickhouse.database", db,
		"--bill", filepath.Join(bills, "costs.json"), "--bill", filepath.Join(bills, "usage.json"), "--to", "2025-03-11"}

	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"tolerance 0.01 USD", "gpt-4o ", "agrees", "price_drift", "1 agree, 1 differ",
		"token quantities agree but the cost differs by $0.1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCLI(append(args, "--json", "--tolerance", "20%")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Rows []struct {
			Model    string `json:"model"`
			DiffUSD  string `json:"diff_usd"`
			Agrees   bool   `json:"agrees"`
			AivisUSD string `json:"aivis_usd"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if len(res.Rows) != 2 || res.Rows[0].AivisUSD != "3.75" || res.Rows[1].DiffUSD != "0.1" || !res.Rows[1].Agrees {
		t.Errorf("json rows %+v: want gpt-4o at 3.75 and gpt-4o-mini 0.1 apart, inside 20%%", res.Rows)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{\"data\": [{\"start_time\": 1741564800, \"results\": [\n{\"object\": \"organization.costs.result\", \"amount\": {\"value\": \"lots\", \"currency\": \"usd\"}}]}]}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("reconcile", "--clickhouse.addr", addr, "--clickhouse.database", db, "--bill", bad, "--format", "openai")
	if code != 1 || !strings.Contains(stderr, bad+":2") || !strings.Contains(stderr, "amount.value") {
		t.Errorf("exit %d, stderr %q: want 1 and the file, line and field", code, stderr)
	}
}
