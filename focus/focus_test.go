package focus_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/focus"
	"github.com/aivis-dev/aivis/internal/demodata"
)

// mandatory are FOCUS 1.2's columns that every dataset has, with their
// FOCUS data types and whether they may be null.
var mandatory = []focus.Column{
	{Name: "BilledCost", Type: "Decimal"},
	{Name: "BillingAccountId", Type: "String"},
	{Name: "BillingAccountName", Type: "String"},
	{Name: "BillingCurrency", Type: "String"},
	{Name: "BillingPeriodEnd", Type: "DateTime"},
	{Name: "BillingPeriodStart", Type: "DateTime"},
	{Name: "ChargeCategory", Type: "String"},
	{Name: "ChargeClass", Type: "String", Nullable: true},
	{Name: "ChargeDescription", Type: "String"},
	{Name: "ChargePeriodEnd", Type: "DateTime"},
	{Name: "ChargePeriodStart", Type: "DateTime"},
	{Name: "ContractedCost", Type: "Decimal"},
	{Name: "EffectiveCost", Type: "Decimal"},
	{Name: "InvoiceIssuerName", Type: "String"},
	{Name: "ListCost", Type: "Decimal"},
	{Name: "ProviderName", Type: "String"},
	{Name: "PublisherName", Type: "String"},
	{Name: "ServiceCategory", Type: "String"},
	{Name: "ServiceName", Type: "String"},
	// Conditional on usage charges, which every aivis row is.
	{Name: "ConsumedQuantity", Type: "Decimal"},
	{Name: "ConsumedUnit", Type: "String"},
	{Name: "PricingQuantity", Type: "Decimal"},
	{Name: "PricingUnit", Type: "String"},
}

// serviceCategories are FOCUS's allowed values of ServiceCategory.
var serviceCategories = map[string]bool{"AI and Machine Learning": true, "Analytics": true, "Compute": true, "Other": true}

// TestFocusExportOfPipelineData exports what the pipeline wrote as CSV
// and as Parquet and checks the mandatory columns, their types and values,
// and that EffectiveCost sums to cost_by_window's sum exactly, in total
// and per team.
func TestFocusExportOfPipelineData(t *testing.T) {
	data := demodata.Fill(t, demodata.Options{Rate: 100, Duration: 5 * time.Second, TimeScale: 720})
	ctx := context.Background()
	var wantTotal decimal.Decimal
	var wantRows uint64
	if err := data.Store.QueryRow(ctx, `SELECT sum(cost_usd), count() FROM cost_by_window
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?)`, data.From.Unix(), data.Until.Unix()).Scan(&wantTotal, &wantRows); err != nil {
		t.Fatal(err)
	}
	wantTeams := map[string]decimal.Decimal{}
	rows, err := data.Store.Query(ctx, `SELECT team, sum(cost_usd) FROM cost_by_window
WHERE window_start >= toDateTime(?) AND window_start < toDateTime(?) GROUP BY team`, data.From.Unix(), data.Until.Unix())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var team string
		var d decimal.Decimal
		if err := rows.Scan(&team, &d); err != nil {
			t.Fatal(err)
		}
		wantTeams[team] = d
	}
	rows.Close()
	if wantRows < 50 || wantTotal.Sign() <= 0 {
		t.Fatalf("the pipeline left too little data: %d windows, $%s", wantRows, wantTotal)
	}
	opts := focus.Options{From: data.From, Until: data.Until}

	t.Run("csv", func(t *testing.T) {
		opts := opts
		opts.Format = focus.FormatCSV
		var buf bytes.Buffer
		sum, err := focus.Export(ctx, data.Store, opts, &buf)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("the export is not CSV: %v", err)
		}
		col := map[string]int{}
		for i, name := range recs[0] {
			col[name] = i
		}
		for _, c := range mandatory {
			if _, ok := col[c.Name]; !ok {
				t.Errorf("mandatory column %s is missing", c.Name)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		total := decimal.Zero
		teams := map[string]decimal.Decimal{}
		gpuHours := decimal.Zero
		for n, rec := range recs[1:] {
			for _, c := range mandatory {
				v := rec[col[c.Name]]
				if v == "" {
					if !c.Nullable {
						t.Fatalf("row %d: %s is empty", n+1, c.Name)
					}
					continue
				}
				switch c.Type {
				case "Decimal":
					if _, err := decimal.NewFromString(v); err != nil {
						t.Fatalf("row %d: %s %q is not a decimal", n+1, c.Name, v)
					}
				case "DateTime":
					if ts, err := time.Parse(time.RFC3339, v); err != nil || !strings.HasSuffix(v, "Z") || ts.Location() != time.UTC {
						t.Fatalf("row %d: %s %q is not an ISO 8601 UTC time", n+1, c.Name, v)
					}
				}
			}
			get := func(name string) string { return rec[col[name]] }
			if get("ChargeCategory") != "Usage" || get("BillingCurrency") != "USD" || !serviceCategories[get("ServiceCategory")] {
				t.Fatalf("row %d: ChargeCategory %q, BillingCurrency %q, ServiceCategory %q", n+1, get("ChargeCategory"), get("BillingCurrency"), get("ServiceCategory"))
			}
			start, _ := time.Parse(time.RFC3339, get("ChargePeriodStart"))
			end, _ := time.Parse(time.RFC3339, get("ChargePeriodEnd"))
			bstart, _ := time.Parse(time.RFC3339, get("BillingPeriodStart"))
			bend, _ := time.Parse(time.RFC3339, get("BillingPeriodEnd"))
			if !start.Before(end) || start.Before(bstart) || end.After(bend) {
				t.Fatalf("row %d: charge period %s–%s outside billing period %s–%s", n+1, start, end, bstart, bend)
			}
			var tags map[string]string
			if err := json.Unmarshal([]byte(get("Tags")), &tags); err != nil || tags["team"] != get("SubAccountId") {
				t.Fatalf("row %d: Tags %q: %v", n+1, get("Tags"), err)
			}
			cost := decimal.RequireFromString(get("EffectiveCost"))
			for _, same := range []string{"BilledCost", "ListCost", "ContractedCost"} {
				if !decimal.RequireFromString(get(same)).Equal(cost) {
					t.Fatalf("row %d: %s %s differs from EffectiveCost %s", n+1, same, get(same), cost)
				}
			}
			total = total.Add(cost)
			teams[get("SubAccountId")] = teams[get("SubAccountId")].Add(cost)
			if get("ConsumedUnit") == "GPU-Hours" {
				gpuHours = gpuHours.Add(decimal.RequireFromString(get("ConsumedQuantity")))
			}
		}
		if uint64(len(recs)-1) != wantRows || sum.Rows != len(recs)-1 {
			t.Errorf("%d rows (summary %d), cost_by_window has %d", len(recs)-1, sum.Rows, wantRows)
		}
		if !total.Equal(wantTotal) || !sum.EffectiveCost.Equal(wantTotal) {
			t.Errorf("EffectiveCost sums to %s (summary %s), cost_by_window to %s", total, sum.EffectiveCost, wantTotal)
		}
		for team, want := range wantTeams {
			if !teams[team].Equal(want) {
				t.Errorf("team %s: EffectiveCost %s, cost_by_window %s", team, teams[team], want)
			}
		}
		// demodata sends 4 GPUs × 12 five-minute samples: 4 GPU-hours
		// (each row's hours rounded to 12 places: a quantity, not money).
		if gpuHours.Sub(decimal.NewFromInt(4)).Abs().GreaterThan(decimal.New(1, -9)) {
			t.Errorf("GPU-Hours sum to %s, want 4", gpuHours)
		}
	})

	t.Run("parquet", func(t *testing.T) {
		opts := opts
		opts.Format = focus.FormatParquet
		var buf bytes.Buffer
		if _, err := focus.Export(ctx, data.Store, opts, &buf); err != nil {
			t.Fatal(err)
		}
		tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(buf.Bytes()), parquet.NewReaderProperties(memory.DefaultAllocator),
			pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatalf("reading the Parquet file back: %v", err)
		}
		defer tbl.Release()
		schema := tbl.Schema()
		want := map[string]arrow.DataType{
			"Decimal":  &arrow.Decimal128Type{Precision: 38, Scale: 12},
			"DateTime": &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"},
			"String":   arrow.BinaryTypes.String,
		}
		for _, c := range mandatory {
			idx := schema.FieldIndices(c.Name)
			if len(idx) != 1 {
				t.Errorf("mandatory column %s is missing", c.Name)
				continue
			}
			f := schema.Field(idx[0])
			if !arrow.TypeEqual(f.Type, want[c.Type]) {
				t.Errorf("column %s is %s, want %s (FOCUS %s)", c.Name, f.Type, want[c.Type], c.Type)
			}
			if f.Nullable != c.Nullable {
				t.Errorf("column %s: nullable %v, want %v", c.Name, f.Nullable, c.Nullable)
			}
		}
		if uint64(tbl.NumRows()) != wantRows {
			t.Errorf("%d rows, cost_by_window has %d", tbl.NumRows(), wantRows)
		}
		total := decimal.Zero
		for _, chunk := range tbl.Column(schema.FieldIndices("EffectiveCost")[0]).Data().Chunks() {
			a := chunk.(*array.Decimal128)
			for i := 0; i < a.Len(); i++ {
				if a.IsNull(i) {
					t.Fatal("EffectiveCost is null")
				}
				total = total.Add(focus.FromDecimal128(a.Value(i)))
			}
		}
		if !total.Equal(wantTotal) {
			t.Errorf("Parquet EffectiveCost sums to %s, cost_by_window to %s", total, wantTotal)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		for _, o := range []focus.Options{{Format: "csv"}, {From: data.Until, Until: data.From, Format: "csv"}, {From: data.From, Until: data.Until, Format: "xlsx"}} {
			if _, err := focus.Export(ctx, data.Store, o, &bytes.Buffer{}); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
	})
}
