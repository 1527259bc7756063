// Package report prints the cost report of `aivis report`: totals, top
// models (canonical: every name of one model is one row), teams and
// projects by cost, pricing confidence per model, the cost of each
// reported name of a model, recent anomalies, GPU cost and the governance
// section (incidents, data movement, auth failures) over a time range, as
// a text table, JSON or CSV. It reads ClickHouse through the documented
// views (cost_by_window, cost_anomalies_final, governance_incidents, …) and
// usage_events, so its numbers are the ones analysts get with SQL, and
// money stays decimal from the server to the page.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Querier runs a read-only query; *clickhouse.Store (sinks/clickhouse) and a
// driver.Conn both satisfy it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Formats that Report prints.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Options choose the range, the length of the top lists and the format.
type Options struct {
	// Since is the length of the range, ending at Until (default 24h).
	Since time.Duration
	// Until ends the range (exclusive); zero means now. Windows are
	// selected by their start.
	Until time.Time
	// Limit caps each top list and the anomalies (default 10).
	Limit int
	// Format is "table" (default), "json" or "csv".
	Format string
	// Comparables maps serving deployments to the API model
	// ("provider/model", e.g. openai/gpt-4o-mini) their cost per 1M
	// tokens is set against, priced by Catalog.
	Comparables map[string]string
	Catalog     *pricing.Catalog
}

func (o Options) withDefaults(now time.Time) Options {
	if o.Since == 0 {
		o.Since = 24 * time.Hour
	}
	if o.Until.IsZero() {
		o.Until = now
	}
	o.Until = o.Until.UTC()
	if o.Limit == 0 {
		o.Limit = 10
	}
	if o.Format == "" {
		o.Format = FormatTable
	}
	return o
}

// Validate returns every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Since < 0 {
		errs = append(errs, fmt.Errorf("since: must be positive, got %s", o.Since))
	}
	if o.Limit < 0 {
		errs = append(errs, fmt.Errorf("limit: must be positive, got %d", o.Limit))
	}
	switch o.Format {
	case "", FormatTable, FormatJSON, FormatCSV:
	default:
		errs = append(errs, fmt.Errorf("format: %q is not one of table, json, csv", o.Format))
	}
	return errors.Join(errs...)
}

// Result is the report's content, independent of its format.
type Result struct {
	From  time.Time `json:"from"`
	Until time.Time `json:"until"`
	// LatestWindow is the start of the newest window in range (zero when
	// there is none): how fresh the data is.
	LatestWindow time.Time  `json:"latest_window,omitzero"`
	Totals       Totals     `json:"totals"`
	Models       []ModelRow `json:"models"`
	Teams        []OwnerRow `json:"teams"`
	Projects     []OwnerRow `json:"projects"`
	// Confidence says per model how its cost was priced.
	Confidence []ConfidenceRow `json:"pricing_confidence"`
	// ReportedNames drills down into the models: the cost of each name a
	// model was reported under.
	ReportedNames []NameRow    `json:"reported_names"`
	Anomalies     []AnomalyRow `json:"anomalies"`
	// GPU is GPU time and cost by team; SelfHosted the serving
	// deployments' cost per 1M tokens against their comparable models.
	GPU        []GPURow        `json:"gpu"`
	SelfHosted []SelfHostedRow `json:"self_hosted"`
	// Governance lists the governance and security incidents open in or
	// changed during the range; DataMovement the bytes sent per provider,
	// region and team; AuthFailures the refused producer authentications
	// per source address.
	Governance   []IncidentRow `json:"governance"`
	DataMovement []DataRow     `json:"data_movement"`
	AuthFailures []AuthRow     `json:"auth_failures"`
}

// ConfidenceRow is how one model's events of the range were priced:
// exactly (a catalog price for the name as reported, or the provider's own
// cost), by a fallback that a warning names, or not at all.
type ConfidenceRow struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// ExactCostUSD is the cost of the events priced without a fallback.
	ExactCostUSD     decimal.Decimal `json:"exact_cost_usd"`
	ExactRequests    uint64          `json:"exact_requests"`
	FallbackCostUSD  decimal.Decimal `json:"fallback_cost_usd"`
	FallbackRequests uint64          `json:"fallback_requests"`
	// FallbackCodes are the pricing.FallbackCodes the fallback-priced
	// events carry, sorted.
	FallbackCodes    []string `json:"fallback_codes"`
	UnpricedRequests uint64   `json:"unpriced_requests"`
}

// NameRow is the usage of one reported name of a model (Model is the
// canonical model that Models, windows and anomalies group by).
type NameRow struct {
	Provider     string          `json:"provider"`
	Model        string          `json:"model"`
	ReportedName string          `json:"reported_name"`
	Requests     uint64          `json:"requests"`
	CostUSD      decimal.Decimal `json:"cost_usd"`
}

// Totals sum the whole range.
type Totals struct {
	Requests              uint64          `json:"requests"`
	Errors                uint64          `json:"errors"`
	UnpricedRequests      uint64          `json:"unpriced_requests"`
	InputTokens           int64           `json:"input_tokens"`
	OutputTokens          int64           `json:"output_tokens"`
	CacheReadInputTokens  int64           `json:"cache_read_input_tokens"`
	CacheWriteInputTokens int64           `json:"cache_write_input_tokens"`
	CostUSD               decimal.Decimal `json:"cost_usd"`
}

// ModelRow is one model's usage over the range.
type ModelRow struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Totals
	// Latency quantiles over all requests of the range, estimated from the
	// windows' histograms (0 when no latency was reported).
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP95Ms float64 `json:"latency_p95_ms"`
}

// OwnerRow is one team's (Project empty) or one project's usage.
type OwnerRow struct {
	Team    string `json:"team"`
	Project string `json:"project,omitempty"`
	Totals
}

// AnomalyRow is one window in which a (team, model) cost was anomalous.
type AnomalyRow struct {
	WindowStart time.Time       `json:"window_start"`
	Team        string          `json:"team"`
	Model       string          `json:"model"`
	CostUSD     decimal.Decimal `json:"cost_usd"`
	BaselineUSD decimal.Decimal `json:"baseline_usd"`
	ZScore      float64         `json:"z_score"`
}

// Report builds the report over opts' range and writes it to w.
func Report(ctx context.Context, q Querier, opts Options, w io.Writer) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("checking report options: %w", err)
	}
	opts = opts.withDefaults(time.Now())
	res, err := Build(ctx, q, opts)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatJSON:
		err = writeJSON(w, res)
	case FormatCSV:
		err = writeCSV(w, res)
	default:
		err = writeTable(w, res)
	}
	if err != nil {
		return fmt.Errorf("writing %s report: %w", opts.Format, err)
	}
	return nil
}

// totalsSQL selects the Totals columns, in field order, from cost_by_window.
const totalsSQL = `sum(requests), sum(errors), sum(unpriced_requests),
    sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens),
    sum(cost_usd)`

func totalsDest(t *Totals) []any {
	return []any{&t.Requests, &t.Errors, &t.UnpricedRequests,
		&t.InputTokens, &t.OutputTokens, &t.CacheReadInputTokens, &t.CacheWriteInputTokens, &t.CostUSD}
}

// inRange restricts window_start to [from, until); both are bound as unix
// seconds, which every server version converts the same way.
const inRange = `window_start >= toDateTime(?) AND window_start < toDateTime(?)`

// Build queries the report's content.
func Build(ctx context.Context, q Querier, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("checking report options: %w", err)
	}
	opts = opts.withDefaults(time.Now())
	res := &Result{From: opts.Until.Add(-opts.Since), Until: opts.Until}
	from, until := res.From.Unix(), res.Until.Unix()
	limit := " LIMIT " + strconv.Itoa(opts.Limit)

	var latest time.Time
	err := each(ctx, q, "totals", `SELECT `+totalsSQL+`, max(window_start) FROM `+clickhouse.ViewWindows+` WHERE `+inRange,
		[]any{from, until}, func(scan func(...any) error) error {
			return scan(append(totalsDest(&res.Totals), &latest)...)
		})
	if err != nil {
		return nil, err
	}
	if res.Totals.Requests > 0 {
		res.LatestWindow = latest.UTC()
	}

	if res.Models, err = topModels(ctx, q, from, until, limit); err != nil {
		return nil, err
	}
	if err := latencies(ctx, q, from, until, res.Models); err != nil {
		return nil, err
	}
	if res.Teams, err = topTeams(ctx, q, from, until, limit); err != nil {
		return nil, err
	}
	if res.Projects, err = topProjects(ctx, q, from, until, limit); err != nil {
		return nil, err
	}

	if res.Confidence, err = confidence(ctx, q, from, until, opts.Limit); err != nil {
		return nil, err
	}

	// Events, not windows: windows hold only the canonical model.
	err = each(ctx, q, "reported names", `SELECT provider, canonical_model, model, count(), sum(cost_usd)
FROM `+clickhouse.TableEvents+` FINAL
WHERE time >= toDateTime(?) AND time < toDateTime(?) AND kind = 'llm.request'
GROUP BY provider, canonical_model, model
ORDER BY sum(cost_usd) DESC, count() DESC, provider, canonical_model, model`+limit,
		[]any{from, until}, func(scan func(...any) error) error {
			var n NameRow
			if err := scan(&n.Provider, &n.Model, &n.ReportedName, &n.Requests, &n.CostUSD); err != nil {
				return err
			}
			res.ReportedNames = append(res.ReportedNames, n)
			return nil
		})
	if err != nil {
		return nil, err
	}

	if res.Anomalies, err = anomalies(ctx, q, from, until, limit); err != nil {
		return nil, err
	}
	if res.GPU, err = gpuTeams(ctx, q, from, until, limit); err != nil {
		return nil, err
	}
	if res.SelfHosted, err = selfHosted(ctx, q, res.From, res.Until, opts, limit); err != nil {
		return nil, err
	}
	if err := governance(ctx, q, res, from, until, limit); err != nil {
		return nil, err
	}
	return res, nil
}

// latencies fills the models' p50/p95. The view's per-window quantiles
// cannot be combined across windows, so this merges the windows' latency
// histograms (deduplicated with FINAL, like the view) and applies the
// view's estimate: the geometric middle of the bucket holding the quantile.
func latencies(ctx context.Context, q Querier, from, until int64, models []ModelRow) error {
	if len(models) == 0 {
		return nil
	}
	index := make(map[[2]string]int, len(models))
	for i, m := range models {
		index[[2]string{m.Provider, m.Model}] = i
	}
	quantile := func(q string) string {
		return `if(arraySum(h) = 0, 0, round(pow(2, (arrayFirstIndex(x -> x >= ` + q + ` * arraySum(h), arrayCumSum(h)) - 1.5) / 4), 1))`
	}
	return each(ctx, q, "model latencies", `SELECT provider, model, `+quantile("0.5")+`, `+quantile("0.95")+`
FROM (SELECT provider, model, sumForEach(latency_hist) AS h FROM `+clickhouse.TableWindows+` FINAL
      WHERE `+inRange+` GROUP BY provider, model)`,
		[]any{from, until}, func(scan func(...any) error) error {
			var provider, model string
			var p50, p95 float64
			if err := scan(&provider, &model, &p50, &p95); err != nil {
				return err
			}
			if i, ok := index[[2]string{provider, model}]; ok {
				models[i].LatencyP50Ms, models[i].LatencyP95Ms = p50, p95
			}
			return nil
		})
}

// confidence computes the pricing confidence section from usage_events
// (newest rating of each event, llm.request only: GPU time is priced per
// GPU-hour and has no provider or model): models with fallback-priced or unpriced
// events first, by fallback cost, then the rest by cost. The codes are the
// part of each stored warning before its colon.
func confidence(ctx context.Context, q Querier, from, until int64, limit int) ([]ConfidenceRow, error) {
	var out []ConfidenceRow
	err := each(ctx, q, "pricing confidence", `SELECT provider, canonical_model,
    sumIf(cost_usd, unpriced = 0 AND empty(pricing_warnings)) AS exact_usd,
    countIf(unpriced = 0 AND empty(pricing_warnings)) AS exact_n,
    sumIf(cost_usd, unpriced = 0 AND notEmpty(pricing_warnings)) AS fallback_usd,
    countIf(unpriced = 0 AND notEmpty(pricing_warnings)) AS fallback_n,
    arraySort(groupUniqArrayArray(arrayMap(w -> splitByChar(':', w)[1], if(unpriced = 0, pricing_warnings, emptyArrayString())))) AS codes,
    countIf(unpriced = 1) AS unpriced_n
FROM `+clickhouse.TableEvents+` FINAL
WHERE time >= toDateTime(?) AND time < toDateTime(?) AND kind = 'llm.request'
GROUP BY provider, canonical_model
ORDER BY fallback_n + unpriced_n > 0 DESC, fallback_usd DESC, unpriced_n DESC, exact_usd DESC, provider, canonical_model
LIMIT `+strconv.Itoa(limit),
		[]any{from, until}, func(scan func(...any) error) error {
			var r ConfidenceRow
			if err := scan(&r.Provider, &r.Model, &r.ExactCostUSD, &r.ExactRequests, &r.FallbackCostUSD, &r.FallbackRequests,
				&r.FallbackCodes, &r.UnpricedRequests); err != nil {
				return err
			}
			if r.FallbackCodes == nil {
				r.FallbackCodes = []string{}
			}
			out = append(out, r)
			return nil
		})
	return out, err
}

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
