package report

import (
	"context"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// GPURow is one team's GPU time and cost over the range (view
// gpu_cost_by_window). Idle GPU-seconds are allocated but not busy;
// IdleCostUSD is the cost of GPU time no process held (owner kind idle),
// which lands on the team that owner rules give idle GPUs.
type GPURow struct {
	Team                string          `json:"team"`
	AllocatedGPUSeconds float64         `json:"allocated_gpu_seconds"`
	BusyGPUSeconds      float64         `json:"busy_gpu_seconds"`
	IdleGPUSeconds      float64         `json:"idle_gpu_seconds"`
	EnergyKWh           float64         `json:"energy_kwh"`
	EnergyCostUSD       float64         `json:"energy_cost_usd"`
	EmissionsGCO2       float64         `json:"emissions_gco2"`
	CostUSD             decimal.Decimal `json:"cost_usd"`
	IdleCostUSD         decimal.Decimal `json:"idle_cost_usd"`
	// Efficiency is busy / allocated GPU-seconds (0 when none allocated).
	Efficiency float64 `json:"efficiency"`
}

// SelfHostedRow is one serving deployment's GPU cost against the tokens it
// served (view self_hosted_cost_by_day, whole UTC days overlapping the
// range), beside
// what the same tokens cost at the API price of a comparable model.
type SelfHostedRow struct {
	Deployment   string          `json:"deployment"`
	GPUCostUSD   decimal.Decimal `json:"gpu_cost_usd"`
	Requests     uint64          `json:"requests"`
	InputTokens  int64           `json:"input_tokens"`
	OutputTokens int64           `json:"output_tokens"`
	// CostPer1MUSD is the GPU cost per 1M tokens (input + output), rounded
	// half to even to 12 decimals; 0 when no tokens were served.
	CostPer1MUSD decimal.Decimal `json:"cost_per_1m_tokens_usd"`
	// Comparable is the configured "provider/model" (empty when none), and
	// ComparableCostPer1MUSD what the deployment's tokens, with their
	// input/output split, cost per 1M at its catalog price; Priced false
	// when the catalog has no price for it.
	Comparable             string          `json:"comparable,omitempty"`
	ComparableCostPer1MUSD decimal.Decimal `json:"comparable_cost_per_1m_tokens_usd"`
	ComparablePriced       bool            `json:"comparable_priced"`
}

func (r SelfHostedRow) tokens() int64 { return r.InputTokens + r.OutputTokens }

func gpuTeams(ctx context.Context, q Querier, from, until int64, limit string) ([]GPURow, error) {
	var out []GPURow
	err := each(ctx, q, "GPU cost by team", `SELECT team, sum(allocated_gpu_seconds), sum(busy_gpu_seconds), sum(idle_gpu_seconds),
    sum(energy_kwh), sum(energy_cost_usd), sum(emissions_gco2), sum(cost_usd), sum(idle_cost_usd),
    if(sum(allocated_gpu_seconds) = 0, 0, sum(busy_gpu_seconds) / sum(allocated_gpu_seconds))
FROM `+clickhouse.ViewGPUCost+` WHERE `+inRange+`
GROUP BY team ORDER BY sum(cost_usd) DESC, team`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var g GPURow
			if err := scan(&g.Team, &g.AllocatedGPUSeconds, &g.BusyGPUSeconds, &g.IdleGPUSeconds, &g.EnergyKWh, &g.EnergyCostUSD,
				&g.EmissionsGCO2, &g.CostUSD, &g.IdleCostUSD, &g.Efficiency); err != nil {
				return err
			}
			out = append(out, g)
			return nil
		})
	return out, err
}

// selfHosted reads the deployments' whole days (UTC) that overlap [from,
// until), so that a report of a few hours shows today's figures, and
// prices their tokens at the comparable models of opts.
func selfHosted(ctx context.Context, q Querier, from, until time.Time, opts Options, limit string) ([]SelfHostedRow, error) {
	firstDay := from.UTC().Truncate(24 * time.Hour).Format(time.DateOnly)
	day := func(t time.Time) string {
		d := t.UTC().Truncate(24 * time.Hour)
		if d.Before(t) {
			d = d.Add(24 * time.Hour)
		}
		return d.Format(time.DateOnly)
	}
	var out []SelfHostedRow
	err := each(ctx, q, "self-hosted cost", `SELECT deployment, sum(gpu_cost_usd), sum(requests), sum(input_tokens), sum(output_tokens)
FROM `+clickhouse.ViewSelfHostedCost+` WHERE date >= toDate(?) AND date < toDate(?)
GROUP BY deployment ORDER BY sum(gpu_cost_usd) DESC, deployment`+limit,
		[]any{firstDay, day(until)}, func(scan func(...any) error) error {
			var r SelfHostedRow
			if err := scan(&r.Deployment, &r.GPUCostUSD, &r.Requests, &r.InputTokens, &r.OutputTokens); err != nil {
				return err
			}
			if n := r.tokens(); n > 0 {
				r.CostPer1MUSD = r.GPUCostUSD.Mul(decMillion).DivRound(decimal.NewFromInt(n), 12)
			}
			r.Comparable = opts.Comparables[r.Deployment]
			if r.Comparable != "" && opts.Catalog != nil {
				r.ComparableCostPer1MUSD, r.ComparablePriced = comparablePer1M(opts.Catalog, r, until.Add(-time.Second))
			}
			out = append(out, r)
			return nil
		})
	return out, err
}

var decMillion = decimal.NewFromInt(1_000_000)

// comparablePer1M prices r's input and output tokens as one request to
// r.Comparable ("provider/model") at time at, per 1M tokens.
func comparablePer1M(c *pricing.Catalog, r SelfHostedRow, at time.Time) (decimal.Decimal, bool) {
	provider, model, ok := strings.Cut(r.Comparable, "/")
	if !ok || r.tokens() == 0 {
		return decimal.Zero, false
	}
	in, out := r.InputTokens, r.OutputTokens
	q := c.Price(&schemas.Event{SchemaVersion: schemas.SchemaVersion, Kind: schemas.KindLLMRequest, Time: at,
		Provider: provider, Model: model, Status: schemas.StatusOK,
		Usage: &schemas.Usage{InputTokens: &in, OutputTokens: &out}})
	if !q.Priced {
		return decimal.Zero, false
	}
	return decimal.New(q.CostPicos, -12).Mul(decMillion).DivRound(decimal.NewFromInt(r.tokens()), 12), true
}
