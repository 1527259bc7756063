package doccheck

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestQueriesOnClickHouse runs every dashboard, cookbook, README and demo
// query on ClickHouse 18.16 with the fixture, and requires each to return
// rows.
func TestQueriesOnClickHouse(t *testing.T) {
	addr, db := testenv.ClickHouseDatabase(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := NewFixture()
	if err := f.Write(ctx, store); err != nil {
		t.Fatal(err)
	}
	results := map[string][][]any{}
	for _, q := range slices.Concat(DashboardQueries(t, root), CookbookQueries(t, root), READMEQueries(t, root), DemoQueries(t, root)) {
		res, err := RunQuery(ctx, store, Substitute(t, q, f))
		rows := res.Rows
		if err != nil {
			t.Errorf("%s fails on ClickHouse %s: %v\n%s", q.Name, store.ServerVersion(), err, q.SQL)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("%s returns no rows on the fixture:\n%s", q.Name, q.SQL)
		}
		results[q.Name] = rows
	}

	// The figures people act on must be exact.
	total := decimal.New(f.TotalPicos, -12)
	if got := results[`aivis-cost.json panel "Total cost" #1`]; len(got) != 1 || !got[0][0].(decimal.Decimal).Equal(total) {
		t.Errorf("Total cost = %v, want %s", got, total)
	}
	share := float64(f.UnattributedPico) / float64(f.TotalPicos)
	if got := results[`aivis-cost.json panel "Unattributed share" #1`]; len(got) != 1 || fmt.Sprintf("%.4f", got[0][0]) != fmt.Sprintf("%.4f", share) {
		t.Errorf("Unattributed share = %v, want %.4f", got, share)
	}
	if got := results[`aivis-cost.json panel "Cost anomalies" #1`]; len(got) != 1 {
		t.Errorf("Cost anomalies = %v, want the fixture's one anomaly", got)
	}
	if got := results[`aivis-cost.json panel "GPU cost" #1`]; len(got) != 1 || !got[0][1].(decimal.Decimal).Equal(decimal.RequireFromString("3.6")) {
		t.Errorf("GPU cost = %v, want idle cost 3.6 (one idle H100 hour)", got)
	}
}

// byClause finds the start of an ORDER BY or GROUP BY list and byEnd the
// word that ends one.
var (
	byClause = regexp.MustCompile(`(?i)\b(?:ORDER|GROUP)\s+BY\s`)
	byEnd    = regexp.MustCompile(`(?i)\b(?:LIMIT|HAVING|WITH|SETTINGS|FORMAT|UNION|WHERE|FROM)\b`)
	byNumber = regexp.MustCompile(`(?i)^\d+(?:\s+(?:ASC|DESC))?$`)
)

// positional returns the first item of an ORDER BY or GROUP BY list of sql
// that is a column position, or "". ClickHouse 18.16 reads a position as a
// constant: `ORDER BY 3 DESC` sorts nothing there, while current servers
// sort by the third column.
func positional(sql string) string {
	for _, m := range byClause.FindAllStringIndex(sql, -1) {
		list := sql[m[1]:]
		if e := byEnd.FindStringIndex(list); e != nil {
			list = list[:e[0]]
		}
		depth, from := 0, 0
		for i := 0; i <= len(list); i++ {
			if i < len(list) {
				switch list[i] {
				case '(':
					depth++
					continue
				case ')':
					depth--
					if depth >= 0 {
						continue
					}
					// The list ends with the subquery it is in.
				case ',':
					if depth > 0 {
						continue
					}
				default:
					continue
				}
			}
			if item := strings.TrimSpace(strings.TrimSuffix(list[from:i], ";")); byNumber.MatchString(item) {
				return item
			}
			if i < len(list) && list[i] == ')' {
				break
			}
			from = i + 1
		}
	}
	return ""
}

func TestQueriesNameTheirColumns(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range slices.Concat(DashboardQueries(t, root), CookbookQueries(t, root), READMEQueries(t, root), DemoQueries(t, root)) {
		if m := positional(q.SQL); m != "" {
			t.Errorf("%s sorts or groups by column position (%q), which ClickHouse 18.16 ignores; name the column or its alias:\n%s", q.Name, m, q.SQL)
		}
	}
	for _, sql := range []string{"SELECT model, sum(cost_usd) FROM t GROUP BY model ORDER BY 2 DESC", "SELECT a, b FROM t ORDER BY a, 2", "SELECT a FROM t GROUP BY 1", "SELECT * FROM (SELECT a, b FROM t ORDER BY a, 2 DESC) LIMIT 5"} {
		if positional(sql) == "" {
			t.Errorf("the check misses %q", sql)
		}
	}
	for _, sql := range []string{"SELECT a FROM t ORDER BY a DESC LIMIT 10", "SELECT toStartOfHour(t) AS h FROM t GROUP BY h ORDER BY h, cost_usd DESC", "SELECT a FROM t ORDER BY a LIMIT 1, 2", "SELECT a FROM t ORDER BY if(a = 1, 2, 3), a", "SELECT * FROM (SELECT a FROM t ORDER BY a) ORDER BY a"} {
		if positional(sql) != "" {
			t.Errorf("the check takes %q for a positional one", sql)
		}
	}
}

func TestFloatTextAsClickHouse(t *testing.T) {
	// As ClickHouse 18.16 and current servers write Float64 in TSV.
	for x, want := range map[float64]string{
		0: "0", 0.5: "0.5", -3.25: "-3.25", 2.5e17: "250000000000000000",
		6.941482945039018e20: "694148294503901800000", 1.0864200713497131e21: "1.0864200713497131e21",
		1e-7: "1e-7", -2.5e-9: "-2.5e-9", 1e-6: "0.000001", 4.344438182239308: "4.344438182239308",
		math.Inf(1): "inf", math.Inf(-1): "-inf",
	} {
		if got := floatText(x, 64); got != want {
			t.Errorf("floatText(%v) = %q, want %q", x, got, want)
		}
	}
	if got := floatText(math.NaN(), 64); got != "nan" {
		t.Errorf("floatText(NaN) = %q, want nan", got)
	}
}
