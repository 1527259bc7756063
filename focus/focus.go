// Package focus exports aivis cost as a FOCUS 1.2 (FinOps Open Cost and
// Usage Specification) dataset, CSV or Parquet, for FinOps tools that read
// cloud bills in that form (`aivis export focus`).
//
// Rows come from the cost_by_window view: one row per meter, per window,
// per owner (team and project). The meter of an LLM window is the model's
// tokens (SkuId provider/model, SkuMeter "Tokens", quantity input plus
// output tokens); the meter of a GPU window (no provider or model) is GPU
// time (SkuMeter "GPU Time", quantity allocated GPU-hours from the events).
// BilledCost, EffectiveCost, ListCost and ContractedCost are the window's
// cost, a Decimal(38, 12) from ClickHouse to the file (decimal strings in
// CSV, DECIMAL(38, 12) in Parquet), so their sums equal cost_by_window's
// exactly. Columns aivis adds carry FOCUS's x_ prefix.
package focus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/progress"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// Querier runs a read-only query; *clickhouse.Store satisfies it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Formats that Export writes.
const (
	FormatCSV     = "csv"
	FormatParquet = "parquet"
)

// Options choose the range, the format and the billing account named in
// every row.
type Options struct {
	// From and Until bound window_start, [From, Until).
	From, Until time.Time
	Format      string
	// BillingAccountID and BillingAccountName name the organisation that
	// the cost belongs to (default "aivis").
	BillingAccountID, BillingAccountName string
	// Progress, when set, counts the rows written.
	Progress *progress.Meter
}

// Validate returns every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.From.IsZero() || o.Until.IsZero() {
		errs = append(errs, errors.New("from and to: both are required (e.g. --from 2026-11-01 --to 2026-12-01)"))
	} else if !o.From.Before(o.Until) {
		errs = append(errs, fmt.Errorf("from %s must be before to %s", o.From.Format(time.RFC3339), o.Until.Format(time.RFC3339)))
	}
	switch o.Format {
	case FormatCSV, FormatParquet:
	default:
		errs = append(errs, fmt.Errorf("format %q: want csv or parquet", o.Format))
	}
	return errors.Join(errs...)
}

// Summary is what an export wrote.
type Summary struct {
	Rows int
	// EffectiveCost is the sum of the EffectiveCost column.
	EffectiveCost decimal.Decimal
}

// Row is one FOCUS row.
type Row struct {
	BillingPeriodStart, BillingPeriodEnd time.Time
	ChargePeriodStart, ChargePeriodEnd   time.Time
	Provider, Model, Team, Project       string
	Requests                             uint64
	// Quantity is the meter's consumed quantity: tokens, or GPU-hours.
	Quantity decimal.Decimal
	Unit     string
	CostUSD  decimal.Decimal
}

// GPU is whether the row is GPU time (windows of gpu.usage events have no
// provider or model).
func (r Row) GPU() bool { return r.Provider == "" && r.Model == "" }

// Writer writes rows in one format.
type Writer interface {
	Write(r Row) error
	Close() error
}

// Export writes the FOCUS rows of opts' range to w.
func Export(ctx context.Context, q Querier, opts Options, w io.Writer) (Summary, error) {
	if err := opts.Validate(); err != nil {
		return Summary{}, fmt.Errorf("checking the FOCUS export options: %w", err)
	}
	if opts.BillingAccountID == "" {
		opts.BillingAccountID = "aivis"
	}
	if opts.BillingAccountName == "" {
		opts.BillingAccountName = opts.BillingAccountID
	}
	var fw Writer
	var err error
	switch opts.Format {
	case FormatParquet:
		fw, err = NewParquetWriter(w, opts)
	default:
		fw, err = NewCSVWriter(w, opts)
	}
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	opts.Progress.Phase("writing rows", "rows", 0)
	err = Rows(ctx, q, opts.From, opts.Until, func(r Row) error {
		opts.Progress.Add(1)
		sum.Rows++
		sum.EffectiveCost = sum.EffectiveCost.Add(r.CostUSD)
		return fw.Write(r)
	})
	if cerr := fw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sum, fmt.Errorf("writing the FOCUS %s export: %w", opts.Format, err)
	}
	return sum, nil
}

// gpuHoursQuery sums allocated GPU time per minute and owner.
const gpuHoursQuery = `SELECT toStartOfMinute(time) AS minute, team, project, sum(allocated_gpu_seconds)
FROM ` + clickhouse.TableEvents + ` FINAL
WHERE kind = 'gpu.usage' AND time >= toDateTime(?) AND time < toDateTime(?)
GROUP BY minute, team, project`

// windowsQuery reads the windows of the range in a stable order.
const windowsQuery = `SELECT window_start, window_seconds, provider, model, team, project, requests,
    input_tokens + output_tokens, cost_usd
FROM ` + clickhouse.ViewWindows + `
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?)
ORDER BY window_start, provider, model, team, project`

type ownerMinute struct {
	minute        int64
	team, project string
}

// Rows calls row for every FOCUS row of [from, until), oldest first.
func Rows(ctx context.Context, q Querier, from, until time.Time, row func(Row) error) error {
	gpu := map[ownerMinute]float64{}
	rows, err := q.Query(ctx, gpuHoursQuery, from.Unix(), until.Unix())
	if err != nil {
		return fmt.Errorf("querying GPU time for the FOCUS export: %w (has `aivis migrate` run against this database?)", err)
	}
	for rows.Next() {
		var m time.Time
		var k ownerMinute
		var seconds float64
		if err := rows.Scan(&m, &k.team, &k.project, &seconds); err != nil {
			rows.Close()
			return fmt.Errorf("reading GPU time: %w", err)
		}
		k.minute = m.Unix()
		gpu[k] += seconds
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading GPU time: %w", err)
	}

	rows, err = q.Query(ctx, windowsQuery, from.Unix(), until.Unix())
	if err != nil {
		return fmt.Errorf("querying cost_by_window for the FOCUS export: %w (has `aivis migrate` run against this database?)", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Row
		var seconds uint32
		var tokens int64
		if err := rows.Scan(&r.ChargePeriodStart, &seconds, &r.Provider, &r.Model, &r.Team, &r.Project, &r.Requests, &tokens, &r.CostUSD); err != nil {
			return fmt.Errorf("reading cost_by_window: %w", err)
		}
		r.ChargePeriodStart = r.ChargePeriodStart.UTC()
		r.ChargePeriodEnd = r.ChargePeriodStart.Add(time.Duration(seconds) * time.Second)
		r.BillingPeriodStart = time.Date(r.ChargePeriodStart.Year(), r.ChargePeriodStart.Month(), 1, 0, 0, 0, 0, time.UTC)
		r.BillingPeriodEnd = r.BillingPeriodStart.AddDate(0, 1, 0)
		if r.GPU() {
			var s float64
			for m := r.ChargePeriodStart.Unix(); m < r.ChargePeriodEnd.Unix(); m += 60 {
				s += gpu[ownerMinute{m, r.Team, r.Project}]
			}
			r.Quantity, r.Unit = decimal.NewFromFloat(s).DivRound(decimal.NewFromInt(3600), 12), "GPU-Hours"
		} else {
			r.Quantity, r.Unit = decimal.NewFromInt(tokens), "Tokens"
		}
		if err := row(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading cost_by_window: %w", err)
	}
	return nil
}

// Column is a FOCUS column and its FOCUS data type.
type Column struct {
	Name string
	// Type is String, Decimal, DateTime or JSON (FOCUS's names).
	Type     string
	Nullable bool
}

// Columns are the columns of the export, in order: FOCUS 1.2's mandatory
// columns, the conditional ones aivis can fill, and aivis's own (x_).
var Columns = []Column{
	{"BilledCost", "Decimal", false},
	{"BillingAccountId", "String", false},
	{"BillingAccountName", "String", false},
	{"BillingCurrency", "String", false},
	{"BillingPeriodEnd", "DateTime", false},
	{"BillingPeriodStart", "DateTime", false},
	{"ChargeCategory", "String", false},
	{"ChargeClass", "String", true},
	{"ChargeDescription", "String", false},
	{"ChargeFrequency", "String", false},
	{"ChargePeriodEnd", "DateTime", false},
	{"ChargePeriodStart", "DateTime", false},
	{"ConsumedQuantity", "Decimal", false},
	{"ConsumedUnit", "String", false},
	{"ContractedCost", "Decimal", false},
	{"EffectiveCost", "Decimal", false},
	{"InvoiceIssuerName", "String", false},
	{"ListCost", "Decimal", false},
	{"PricingCategory", "String", false},
	{"PricingCurrency", "String", false},
	{"PricingQuantity", "Decimal", false},
	{"PricingUnit", "String", false},
	{"ProviderName", "String", false},
	{"PublisherName", "String", false},
	{"ServiceCategory", "String", false},
	{"ServiceName", "String", false},
	{"ServiceSubcategory", "String", false},
	{"SkuId", "String", false},
	{"SkuMeter", "String", false},
	{"SubAccountId", "String", false},
	{"SubAccountName", "String", false},
	{"SubAccountType", "String", false},
	{"Tags", "JSON", false},
	{"x_Project", "String", false},
	{"x_Model", "String", false},
	{"x_Requests", "Decimal", false},
}

// values are a row's column values as strings, in Columns' order; nil is
// null. Times are ISO 8601 in UTC, decimals exact.
func (r Row) values(o Options) []*string {
	s := func(v string) *string { return &v }
	t := func(v time.Time) *string { return s(v.UTC().Format(time.RFC3339)) }
	cost := s(r.CostUSD.String())
	provider, service, sub, sku, meter := r.Provider, r.Provider+" API", "Generative AI", r.Provider+"/"+r.Model, "Tokens"
	desc := fmt.Sprintf("%s %s tokens for %s/%s", r.Provider, r.Model, r.Team, r.Project)
	if r.GPU() {
		provider, service, sub, sku, meter = "self-hosted", "GPU compute", "AI Platforms", "gpu", "GPU Time"
		desc = fmt.Sprintf("GPU time for %s/%s", r.Team, r.Project)
	}
	tags, _ := json.Marshal(map[string]string{"team": r.Team, "project": r.Project})
	qty := s(r.Quantity.String())
	return []*string{
		cost, s(o.BillingAccountID), s(o.BillingAccountName), s("USD"),
		t(r.BillingPeriodEnd), t(r.BillingPeriodStart),
		s("Usage"), nil, s(desc), s("Usage-Based"),
		t(r.ChargePeriodEnd), t(r.ChargePeriodStart),
		qty, s(r.Unit), cost, cost, s(provider), cost,
		s("Standard"), s("USD"), qty, s(r.Unit),
		s(provider), s(provider), s("AI and Machine Learning"), s(service), s(sub),
		s(sku), s(meter), s(r.Team), s(r.Team), s("Team"), s(string(tags)),
		s(r.Project), s(r.Model), s(fmt.Sprint(r.Requests)),
	}
}
