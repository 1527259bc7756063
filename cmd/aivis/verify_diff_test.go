package main

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestCLIVerifyDiffs runs aivis verify on groups whose events and windows
// disagree: names that carry escape sequences print escaped, and a model
// and team that would spell the same "model=… team=…" as another group's
// stay two groups.
func TestCLIVerifyDiffs(t *testing.T) {
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

	day := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	event := &schemas.Enriched{
		Event: schemas.Event{
			SchemaVersion: schemas.SchemaVersion, EventID: "01JVERIFY00000000000000001", Time: day.Add(10 * time.Hour),
			Kind: schemas.KindLLMRequest, Source: "test", Provider: "openai", Model: "a team=b", Status: schemas.StatusOK,
			Usage: &schemas.Usage{InputTokens: schemas.Int64(1000), OutputTokens: schemas.Int64(200)},
		},
		Owner:     schemas.Owner{Team: "c", Project: "p", Rule: "default"},
		CostPicos: 37_500, CostSource: schemas.CostSourceCatalog,
	}
	window := func(model, team string) schemas.WindowRow {
		return schemas.WindowRow{WindowStart: day.Add(10 * time.Hour), WindowSeconds: 60, Provider: "openai",
			Model: model, Team: team, Project: "p", ThroughOffset: 1, Requests: 1, InputTokens: 1000, OutputTokens: 200,
			CostPicos: schemas.PicosOf(37_500), LatencyHist: make([]uint64, schemas.LatencyBuckets)}
	}
	rows := []schemas.WindowRow{
		window("a", "b team=c"), // the same totals as the event, in another group
		window("gpt\u202eevil", "ads\x1b]0;pwned\x07\x1b[2K"),
	}
	if err := store.Write(ctx, []schemas.StoredEvent{{Event: event, Offset: 1}}, rows); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI("verify", "--clickhouse.addr", addr, "--clickhouse.database", db,
		"--from", "2025-03-10", "--to", "2025-03-11")
	if code != 1 || !strings.Contains(stderr, "3 differences") {
		t.Errorf("exit %d, want 1 with 3 differences:\n%s%s", code, stdout, stderr)
	}
	for _, r := range stdout {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) {
			t.Errorf("verify prints %U raw:\n%q", r, stdout)
			break
		}
	}
	for _, want := range []string{
		"DIFF day=2025-03-10 model=a team=b team=c\n  events:  requests=0 ",
		"DIFF day=2025-03-10 model=a team=b team=c\n  events:  requests=1 ",
		`DIFF day=2025-03-10 model=gpt\u202eevil team=ads\x1b]0;pwned\a\x1b[2K` + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}
}
