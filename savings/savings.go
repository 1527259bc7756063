// Package savings computes savings recommendations from an organisation's
// own usage: prompt caching, batch and flex service tiers, a cheaper
// equivalent model, provisioned throughput instead of on-demand, and idle,
// oversized or uneconomic GPUs. Each recommendation names its scope, the
// usage it is computed from, the saving over the range and per month in
// exact USD, and the assumption it rests on (docs/savings.md).
//
// Usage enters through the ClickHouse savings views (one per kind, see
// sinks/clickhouse); prices come from the pricing catalog: the usage is
// priced as it was sent and as the recommendation would send it, request
// shape by request shape, so tiers, cache meters and contracts apply as
// they would have. Build computes; Recommender recomputes once a day,
// stores the day's recommendations and publishes those above a threshold
// on aivis.alerts.v1.
package savings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// Recommendation kinds.
const (
	KindCaching     = "prompt_caching"
	KindTier        = "batch_tier"
	KindModel       = "cheaper_model"
	KindProvisioned = "provisioned"
	KindIdleGPU     = "idle_gpu"
	KindMIG         = "mig_right_size"
	KindSelfHosted  = "self_hosted_vs_api"
)

// Kinds lists the recommendation kinds in report order.
var Kinds = []string{KindCaching, KindTier, KindModel, KindProvisioned, KindIdleGPU, KindMIG, KindSelfHosted}

// Querier runs a read-only query; *clickhouse.Store satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Scope is what a recommendation is about; fields that do not apply are
// empty.
type Scope struct {
	Team       string `json:"team,omitempty"`
	Project    string `json:"project,omitempty"`
	APIKeyID   string `json:"api_key_id,omitempty"`
	Provider   string `json:"provider,omitempty"`
	Model      string `json:"model,omitempty"`
	Task       string `json:"task,omitempty"`
	Host       string `json:"host,omitempty"`
	GPUModel   string `json:"gpu_model,omitempty"`
	MIGProfile string `json:"mig_profile,omitempty"`
	Owner      string `json:"owner,omitempty"`
	Deployment string `json:"deployment,omitempty"`
}

// String lists the set fields as key=value.
func (s Scope) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("team", s.Team)
	add("project", s.Project)
	add("api_key", s.APIKeyID)
	add("model", joinModel(s.Provider, s.Model))
	add("task", s.Task)
	add("host", s.Host)
	add("gpu", s.GPUModel)
	add("mig", s.MIGProfile)
	add("owner", s.Owner)
	add("deployment", s.Deployment)
	return strings.Join(parts, " ")
}

func joinModel(provider, model string) string {
	if provider == "" {
		return model
	}
	return provider + "/" + model
}

// Evidence is the usage a recommendation is computed from.
type Evidence struct {
	Requests              uint64  `json:"requests,omitempty"`
	InputTokens           int64   `json:"input_tokens,omitempty"`
	CacheReadInputTokens  int64   `json:"cache_read_input_tokens,omitempty"`
	CacheWriteInputTokens int64   `json:"cache_write_input_tokens,omitempty"`
	OutputTokens          int64   `json:"output_tokens,omitempty"`
	AllocatedGPUSeconds   float64 `json:"allocated_gpu_seconds,omitempty"`
	BusyGPUSeconds        float64 `json:"busy_gpu_seconds,omitempty"`
	// Detail says in words what was measured.
	Detail string `json:"detail"`
}

// Recommendation is one change and what it would have saved.
type Recommendation struct {
	// ID is stable for one kind and scope, so a recommendation is the
	// same one from day to day.
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Scope    Scope    `json:"scope"`
	Action   string   `json:"action"`
	Evidence Evidence `json:"evidence"`
	// CurrentCostUSD is what the scope's usage cost over the range, and
	// AlternativeCostUSD what it would have cost after the change, both
	// at the catalog's prices at the end of the range; SavingUSD is their
	// difference (exact).
	CurrentCostUSD     decimal.Decimal `json:"current_cost_usd"`
	AlternativeCostUSD decimal.Decimal `json:"alternative_cost_usd"`
	SavingUSD          decimal.Decimal `json:"saving_usd"`
	// MonthlySavingUSD is SavingUSD × 30 days / the range, rounded half
	// to even to the cent.
	MonthlySavingUSD decimal.Decimal `json:"monthly_saving_usd"`
	Assumption       string          `json:"assumption"`
}

// Result is a computation over one range.
type Result struct {
	From            time.Time        `json:"from"`
	Until           time.Time        `json:"until"`
	Recommendations []Recommendation `json:"recommendations"`
	// MonthlySavingUSD sums the recommendations' monthly savings; kinds
	// can overlap (the same GPU idle and oversized), so it is an upper
	// bound.
	MonthlySavingUSD decimal.Decimal `json:"monthly_saving_usd"`
}

// Build computes the recommendations over [from, until), pricing with
// cat at until − 1s, sorted by monthly saving (largest first).
func Build(ctx context.Context, q Querier, cat *pricing.Catalog, rules Rules, from, until time.Time) (*Result, error) {
	if !until.After(from) {
		return nil, fmt.Errorf("computing savings: the range %s to %s is empty", from.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	if cat == nil {
		return nil, fmt.Errorf("computing savings: no pricing catalog")
	}
	if err := rules.check(); err != nil {
		return nil, fmt.Errorf("computing savings: invalid rules: %w", err)
	}
	b := &builder{q: q, cat: cat, rules: rules, from: from.UTC(), until: until.UTC(), at: until.Add(-time.Second)}
	b.minMonthly, _ = decimal.NewFromString(strings.TrimSpace(rules.MinMonthlyUSD))
	for _, step := range []func(context.Context) error{b.caching, b.tiers, b.models, b.provisioned, b.gpus, b.selfHosted} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(b.out, func(i, j int) bool {
		a, c := b.out[i], b.out[j]
		if k := a.MonthlySavingUSD.Cmp(c.MonthlySavingUSD); k != 0 {
			return k > 0
		}
		if a.Kind != c.Kind {
			return a.Kind < c.Kind
		}
		return a.ID < c.ID
	})
	res := &Result{From: b.from, Until: b.until, Recommendations: b.out, MonthlySavingUSD: decimal.Zero}
	if res.Recommendations == nil {
		res.Recommendations = []Recommendation{}
	}
	for _, r := range b.out {
		res.MonthlySavingUSD = res.MonthlySavingUSD.Add(r.MonthlySavingUSD)
	}
	return res, nil
}

type builder struct {
	q           Querier
	cat         *pricing.Catalog
	rules       Rules
	from, until time.Time
	at          time.Time
	minMonthly  decimal.Decimal
	out         []Recommendation
}

// monthSeconds is the 30-day month the savings are scaled to.
const monthSeconds = 30 * 24 * 3600

// monthly scales a saving over the range to 30 days, to the cent.
func (b *builder) monthly(saving decimal.Decimal) decimal.Decimal {
	secs := decimal.NewFromInt(int64(b.until.Sub(b.from) / time.Second))
	return saving.Mul(decimal.NewFromInt(monthSeconds)).DivRound(secs, 16).RoundBank(2)
}

// add records r when its saving is positive and its monthly saving at
// least the rules' minimum; the saving is current − alternative.
func (b *builder) add(r Recommendation) {
	r.SavingUSD = r.CurrentCostUSD.Sub(r.AlternativeCostUSD)
	if r.SavingUSD.Sign() <= 0 {
		return
	}
	r.MonthlySavingUSD = b.monthly(r.SavingUSD)
	if r.MonthlySavingUSD.LessThan(b.minMonthly) || r.MonthlySavingUSD.Sign() <= 0 {
		return
	}
	r.ID = recommendationID(r.Kind, r.Scope)
	b.out = append(b.out, r)
}

// recommendationID hashes the kind and scope.
func recommendationID(kind string, s Scope) string {
	h := sha256.New()
	for _, f := range []string{kind, s.Team, s.Project, s.APIKeyID, s.Provider, s.Model, s.Task, s.Host, s.GPUModel, s.MIGProfile, s.Owner, s.Deployment} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// shape is the token counts of one request (normalized: input includes
// the cache reads and writes, output the reasoning).
type shape struct {
	in, cacheRead, cacheWrite, out, reasoning int64
}

// shapeSQL selects a shape's columns, in field order.
const shapeSQL = `input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens`

func (s *shape) dest() []any { return []any{&s.in, &s.cacheRead, &s.cacheWrite, &s.out, &s.reasoning} }

// price is the catalog cost in pico-USD of one request of shape s to
// provider/model at service tier tier, for team (its contract applies).
// ok is false when the catalog cannot price it, or when the entry does not
// offer tier.
func (b *builder) price(team, provider, model, tier string, s shape) (int64, bool) {
	in, cr, cw, out, rs := s.in, s.cacheRead, s.cacheWrite, s.out, s.reasoning
	ev := &schemas.Event{SchemaVersion: schemas.SchemaVersion, Kind: schemas.KindLLMRequest, Time: b.at,
		Provider: provider, Model: model, Status: schemas.StatusOK, ServiceTier: tier,
		Usage: &schemas.Usage{InputTokens: &in, CacheReadInputTokens: &cr, CacheWriteInputTokens: &cw, OutputTokens: &out, ReasoningOutputTokens: &rs}}
	q := b.cat.PriceFor(ev, team)
	if !q.Priced {
		return 0, false
	}
	for _, w := range q.Warnings {
		if strings.HasPrefix(w, pricing.WarnUnknownServiceTier+":") {
			return 0, false
		}
	}
	return q.CostPicos, true
}

// usd converts pico-USD to decimal USD.
func usd(picos decimal.Decimal) decimal.Decimal { return picos.Shift(-12) }

// picos accumulates pico-USD without overflow.
type picos struct{ d decimal.Decimal }

func (p *picos) add(cost int64, n uint64) {
	p.d = p.d.Add(decimal.NewFromInt(cost).Mul(decimal.NewFromUint64(n)))
}

func (p picos) usd() decimal.Decimal { return usd(p.d) }

// rangeArgs binds the range as unix seconds, like package report.
func (b *builder) rangeArgs() []any { return []any{b.from.Unix(), b.until.Unix()} }

// inRange restricts a row's time to the range.
const inRange = `time >= toDateTime(?) AND time < toDateTime(?)`

// each runs query and calls row once per result row.
func each(ctx context.Context, q Querier, what, query string, args []any, row func(scan func(...any) error) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("querying %s: %w (has `aivis migrate` run against this database?)", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return fmt.Errorf("reading %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// standardTier reports whether a stored service tier means the standard
// rates, the only traffic a cheaper tier is recommended for.
func standardTier(t string) bool {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "", "default", "standard", "auto", "on_demand", "on-demand":
		return true
	}
	return false
}

func pct(part, whole int64) string {
	if whole == 0 {
		return "0%"
	}
	return decimal.NewFromInt(part*100).DivRound(decimal.NewFromInt(whole), 1).String() + "%"
}
