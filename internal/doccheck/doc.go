// Package doccheck keeps the SQL that people copy working: its tests run
// every query of docs/cookbook.md and every panel of the Grafana dashboards
// in deploy/grafana against ClickHouse 18.16 and current ClickHouse (chDB),
// on fixture rows written through the ClickHouse sink. It has no code of
// its own besides the fixture.
package doccheck

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Writer is what the fixture is written through: the ClickHouse sink's
// Store, on a server or on a chdbcheck.Recorder.
type Writer interface {
	Write(ctx context.Context, events []schemas.StoredEvent, rows []schemas.WindowRow) error
	WriteScores(ctx context.Context, scores []schemas.Score) error
	WriteBudgetStatus(ctx context.Context, rows []schemas.BudgetStatus) error
	WriteGPUSettings(ctx context.Context, energyUSDPerKWh, gridGCO2PerKWh float64) error
}

// Fixture is five hours of usage ending at End: three teams (one of them
// unattributed), three models of two providers, an event and a window row
// every five minutes per series, GPU usage with idle time, one anomaly and
// one budget.
type Fixture struct {
	End time.Time
	// TotalPicos is the LLM cost of every event, for exact checks.
	TotalPicos       int64
	UnattributedPico int64
	Events           int
}

type series struct {
	team, project, provider, model string
	picos                          int64 // per event
}

var fixtureSeries = []series{
	{"search", "ranker", "openai", "gpt-4o", 2_000_000_000},
	{"ml", "rag", "anthropic", "claude-sonnet-4", 3_000_000_000},
	{schemas.Unattributed, "", "openai", "gpt-4o-mini", 1_000_000_000},
}

// NewFixture returns the fixture ending at the top of the current hour, or
// an hour later in the first hour of a month (UTC): the queries of the
// month so far must find some of it. Its last events are then up to an
// hour ahead of the clock, which the queries, bounded from below, count.
func NewFixture() *Fixture {
	end := time.Now().UTC().Truncate(time.Hour)
	if end.Day() == 1 && end.Hour() == 0 {
		end = end.Add(time.Hour)
	}
	return &Fixture{End: end}
}

// Start is five hours before End.
func (f *Fixture) Start() time.Time { return f.End.Add(-5 * time.Hour) }

// Write writes the fixture through w.
func (f *Fixture) Write(ctx context.Context, w Writer) error {
	var events []schemas.StoredEvent
	var rows []schemas.WindowRow
	f.TotalPicos, f.UnattributedPico, f.Events = 0, 0, 0
	offset := int64(0)
	for at := f.Start(); at.Before(f.End); at = at.Add(5 * time.Minute) {
		for i, s := range fixtureSeries {
			offset++
			e := &schemas.Enriched{Event: schemas.Event{
				SchemaVersion: schemas.SchemaVersion,
				EventID:       fmt.Sprintf("01JFIXTURE%016d", offset),
				Time:          at.Add(10 * time.Second),
				Kind:          schemas.KindLLMRequest,
				Source:        "fixture",
				Provider:      s.provider,
				Model:         s.model,
				Status:        schemas.StatusOK,
				Usage: &schemas.Usage{InputTokens: schemas.Int64(1000), CacheReadInputTokens: schemas.Int64(200),
					CacheWriteInputTokens: schemas.Int64(0), OutputTokens: schemas.Int64(300), ReasoningOutputTokens: schemas.Int64(0)},
			}}
			latency := int64(400 + 100*i)
			e.LatencyMs = &latency
			e.Owner = schemas.Owner{Team: s.team, Project: s.project}
			e.Flags.Unowned = s.team == schemas.Unattributed
			e.Pricing = schemas.Pricing{CatalogVersion: "fixture", PriceID: s.provider + "/" + s.model}
			e.CostPicos, e.CostSource = s.picos, schemas.CostSourceCatalog
			events = append(events, schemas.StoredEvent{Event: e, Partition: int32(i), Offset: offset})
			hist := make([]uint64, schemas.LatencyBuckets)
			rows = append(rows, schemas.WindowRow{WindowStart: at, WindowSeconds: 60, Provider: s.provider, Model: s.model,
				Team: s.team, Project: s.project, SrcPartition: int32(i), ThroughOffset: offset, Requests: 1,
				InputTokens: 1000, CacheReadInputTokens: 200, OutputTokens: 300,
				CostPicos: schemas.PicosOf(s.picos), LatencyCount: 1, LatencySumMs: latency, LatencyHist: hist})
			f.TotalPicos += s.picos
			if s.team == schemas.Unattributed {
				f.UnattributedPico += s.picos
			}
			f.Events++
		}
	}
	// An hour of two H100s: one serving team ml's pod, busy half the time,
	// one allocated to no one (idle).
	joules := 1_800_000.0
	for i, owner := range []struct{ kind, id, team string }{{"pod", "ml/vllm-0", "ml"}, {"idle", "idle", schemas.Unattributed}} {
		offset++
		busy := 1800.0
		if owner.kind == "idle" {
			busy = 0
		}
		e := &schemas.Enriched{Event: schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: fmt.Sprintf("01JFIXTUREGPU%013d", i),
			Time: f.Start().Add(time.Hour), Kind: schemas.KindGPUUsage, Source: "gpuprobe",
			GPU: &schemas.GPUUsage{GPUModel: "H100", Host: "gpu-1", IntervalSeconds: 3600, AllocatedSeconds: 3600, BusySeconds: busy,
				EnergyJoules: &joules, OwnerKind: owner.kind, OwnerID: owner.id}},
			Owner: schemas.Owner{Team: owner.team}, CostPicos: 3_600_000_000_000, CostSource: schemas.CostSourceCatalog}
		events = append(events, schemas.StoredEvent{Event: e, Partition: 5, Offset: offset})
	}
	if err := w.Write(ctx, events, rows); err != nil {
		return fmt.Errorf("writing the fixture's events and windows: %w", err)
	}
	if err := w.WriteGPUSettings(ctx, 0.1, 400); err != nil {
		return fmt.Errorf("writing the fixture's GPU settings: %w", err)
	}
	spike := f.Start().Add(3 * time.Hour)
	scores := []schemas.Score{
		{SeriesCost: schemas.SeriesCost{WindowStart: spike, Team: "search", Model: "gpt-4o", CostPicos: schemas.PicosOf(9_000_000_000)},
			BaselinePicos: schemas.PicosOf(2e9), StddevPicos: schemas.PicosOf(5e8), Z: 14, Observations: 36, Anomaly: true, EWMAMeanPicos: schemas.PicosOf(2e9), EWMAVar: 2.5e17,
			IncidentID: "search/gpt-4o:1", IncidentStatus: schemas.AlertFiring, ScoredAt: f.End},
		{SeriesCost: schemas.SeriesCost{WindowStart: spike.Add(-5 * time.Minute), Team: "search", Model: "gpt-4o", CostPicos: schemas.PicosOf(2_000_000_000)},
			BaselinePicos: schemas.PicosOf(2e9), StddevPicos: schemas.PicosOf(5e8), Observations: 35, EWMAMeanPicos: schemas.PicosOf(2e9), EWMAVar: 2.5e17,
			ScoredAt: f.End},
	}
	if err := w.WriteScores(ctx, scores); err != nil {
		return fmt.Errorf("writing the fixture's anomaly scores: %w", err)
	}
	month := time.Date(f.End.Year(), f.End.Month(), 1, 0, 0, 0, 0, time.UTC)
	budgets := []schemas.BudgetStatus{{BudgetID: "search-monthly", Name: "Search, per month", Scope: "team=search", Period: "monthly",
		Timezone: "UTC", PeriodStart: month, PeriodEnd: month.AddDate(0, 1, 0),
		AmountUSD: decimal.RequireFromString("100"), SoftUSD: decimal.RequireFromString("80"), HardUSD: decimal.RequireFromString("100"),
		SpentUSD: decimal.RequireFromString("0.36"), ForecastUSD: decimal.RequireFromString("3.1"), ForecastLowUSD: decimal.RequireFromString("2.5"), ForecastHighUSD: decimal.RequireFromString("3.8"),
		ForecastMethod: "linear", ExhaustsAt: time.Unix(0, 0).UTC(), State: "ok", Alerted: []string{}, EvaluatedAt: f.End}}
	if err := w.WriteBudgetStatus(ctx, budgets); err != nil {
		return fmt.Errorf("writing the fixture's budget status: %w", err)
	}
	return nil
}
